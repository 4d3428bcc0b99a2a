"""Channel credentials: kept out of every file and message, filled in from the environment.

The convention is conda-lock's (and conda's): a private channel's URL names its credentials by
environment variable, ``https://${CHANNEL_USER}:${CHANNEL_PASSWORD}@host/channel`` (basic auth) or
``https://host/t/${CHANNEL_TOKEN}/channel`` (anaconda.org / Quetz tokens) or a query parameter
``?token=${CHANNEL_TOKEN}`` (artifact servers, signed URLs); ``$NAME`` works too.

* :func:`strip_auth` is what goes into files (the environment file, the lock's channels and
  package URLs): placeholders are kept, so the file names the variables it needs; literal
  credentials (``https://alice:s3cret@host``) are removed.
* :func:`expand_auth` fills the placeholders from ``os.environ`` just before a URL is used (the
  solve, a download); a variable that is not set is an :class:`InputError` naming the variable.
* :func:`redact` is applied to every message: the user-info part of any URL in the text becomes
  ``***`` (placeholders are shown as written), as does a literal ``/t/TOKEN/`` segment, the value
  of a query parameter whose name says it is a secret (``token``, ``access_token``, ``api_key``,
  ``password``, ``signature``, ``X-Amz-Signature``, ...) and any value :func:`expand_auth` filled in.

rattler sends a URL's user-info as HTTP basic auth, so a URL with the credentials filled in is all
the solver and the installer need. Standard library only.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

from dlsetup.errors import DlsetupError, InputError

#: ``${NAME}``, ``$NAME`` and ``${NAME}`` as a URL parser percent-encodes it (``$%7BNAME%7D``).
_PLACEHOLDER = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}"
    r"|\$%7[Bb](?P<encoded>[A-Za-z_][A-Za-z0-9_]*)%7[Dd]"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
#: a URL: scheme, then everything up to white space
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
#: the user-info of a URL (from just after ``://``): up to the last ``@`` before the first ``/``
_USERINFO = re.compile(r"^(?P<userinfo>[^/]*)@")
#: an anaconda.org-style token segment
_TOKEN = re.compile(r"/t/(?P<token>[^/]+)")
#: a query parameter whose name says it carries a secret, and its value
_SECRET_PARAM = re.compile(
    r"(?P<name>[^=&#?]*(?:token|passw(?:or)?d|secret|api[_-]?key|apikey|auth|signature|sig"
    r"|credential)[^=&#?]*)=(?P<value>[^&#]*)",
    re.IGNORECASE,
)
#: values filled in by :func:`expand_auth` (and literal ones seen), masked by :func:`redact`
_SECRETS: set[str] = set()
#: shorter values are not masked as free text (they would mask ordinary words)
_MIN_SECRET = 4
MASK = "***"


def _only_placeholders(text: str) -> bool:
    """True for user-info or a token made of placeholders alone (``${USER}:${PASSWORD}``)."""
    rest = _PLACEHOLDER.sub("", text).replace(":", "")
    return rest == "" and _PLACEHOLDER.search(text) is not None


def _remember(value: str) -> None:
    if len(value) >= _MIN_SECRET and _PLACEHOLDER.search(value) is None:
        _SECRETS.add(value)
        _SECRETS.add(quote(value, safe=""))


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme://, user-info or "", rest)``; no ``://``: ``("", "", url)``."""
    scheme, sep, after = url.partition("://")
    if not sep:
        return "", "", url
    match = _USERINFO.match(after)
    if match is None:
        return scheme + sep, "", after
    return scheme + sep, match.group("userinfo"), after[match.end() :]


def _query_pairs(rest: str) -> tuple[str, list[str], str]:
    """``(before "?", the query's ``name=value`` pairs, "#fragment" or "")``."""
    rest, hash_, fragment = rest.partition("#")
    path, question, query = rest.partition("?")
    pairs = query.split("&") if question and query else []
    return path, pairs, hash_ + fragment


def _secret_value(pair: str) -> str | None:
    """The value of a secret-named ``name=value`` pair, unless it is placeholders alone."""
    match = _SECRET_PARAM.fullmatch(pair)
    if match is None or not match.group("value") or _only_placeholders(match.group("value")):
        return None
    return match.group("value")


def has_literal_auth(url: str) -> bool:
    """Whether ``url`` carries credentials that are not placeholders."""
    _, userinfo, rest = _split(url)
    if userinfo and not _only_placeholders(userinfo):
        return True
    if any(not _only_placeholders(m.group("token")) for m in _TOKEN.finditer(rest)):
        return True
    return any(_secret_value(pair) is not None for pair in _query_pairs(rest)[1])


def strip_auth(url: str) -> str:
    """``url`` as it may be written to a file: literal credentials removed, placeholders kept.

    >>> strip_auth("https://alice:s3cret@host/ch")
    'https://host/ch'
    >>> strip_auth("https://${USER}:${PASS}@host/t/${TOKEN}/ch")
    'https://${USER}:${PASS}@host/t/${TOKEN}/ch'
    >>> strip_auth("https://host/t/tk-123/ch")
    'https://host/ch'
    >>> strip_auth("https://host/ch?token=tk-123&x=1")
    'https://host/ch?x=1'
    """
    scheme, userinfo, rest = _split(url)
    if not scheme:
        return url
    if userinfo and not _only_placeholders(userinfo):
        _remember_userinfo(userinfo)
        userinfo = ""

    def token(match: re.Match[str]) -> str:
        if _only_placeholders(match.group("token")):
            return match.group(0)
        _remember(match.group("token"))
        return ""

    rest = _TOKEN.sub(token, rest)
    path, pairs, fragment = _query_pairs(rest)
    if pairs:
        kept = []
        for pair in pairs:
            secret = _secret_value(pair)
            if secret is None:
                kept.append(pair)
            else:
                _remember(secret)
        rest = path + ("?" + "&".join(kept) if kept else "") + fragment
    return f"{scheme}{userinfo}@{rest}" if userinfo else f"{scheme}{rest}"


def _remember_userinfo(userinfo: str) -> None:
    _remember(userinfo)
    for part in userinfo.split(":"):
        _remember(part)


def placeholders(url: str) -> tuple[str, ...]:
    """The environment variables ``url`` names, in order (``("USER", "PASS")``)."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(url):
        name = match.group("braced") or match.group("encoded") or match.group("bare")
        if name not in names:
            names.append(name)
    return tuple(names)


def canonical(url: str) -> str:
    """``url`` with each placeholder written ``${NAME}``, however a URL parser encoded it.

    rattler reads a lock's ``https://${USER}@host/...`` package URL back as
    ``https://$%7BUSER%7D@host/...`` but its channel as written, so compare the two through this.

    >>> canonical("http://$%7BU%7D:$%7bP%7D@host/ch/linux-64/x.conda")
    'http://${U}:${P}@host/ch/linux-64/x.conda'
    """

    def braced(match: re.Match[str]) -> str:
        encoded = match.group("encoded")
        return "${" + encoded + "}" if encoded else match.group(0)

    return _PLACEHOLDER.sub(braced, url)


def expand_auth(url: str) -> str:
    """Fill ``url``'s ``${VAR}`` placeholders from the environment, just before it is used.

    The values are percent-encoded (a password may hold ``@``, ``:`` or ``/``) and remembered, so
    :func:`redact` masks them should they appear in any message. Never write the result to a file.

    Raises:
        InputError: a variable is not set, or is empty (the message names the variable and the
            channel as written, never a value).
    """

    def fill(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("encoded") or match.group("bare")
        value = os.environ.get(name)
        if not value:
            state = "is empty" if value == "" else "is not set"
            raise InputError(
                f"channel {redact(url)} needs the environment variable {name}, which {state}",
                fix=f"export {name}=... (the channel's user name, password or token) and rerun; "
                "see 'Private channels' in docs/environments.md",
            )
        _remember(value)
        return quote(value, safe="")

    return _PLACEHOLDER.sub(fill, url)


def _redact_url(url: str) -> str:
    scheme, userinfo, rest = _split(url)
    if userinfo and not _only_placeholders(userinfo):
        _remember_userinfo(userinfo)
        userinfo = MASK

    def token(match: re.Match[str]) -> str:
        if _only_placeholders(match.group("token")):
            return match.group(0)
        return f"/t/{MASK}"

    rest = _TOKEN.sub(token, rest)
    path, pairs, fragment = _query_pairs(rest)
    if pairs:
        masked = []
        for pair in pairs:
            secret = _secret_value(pair)
            if secret is not None:
                _remember(secret)
            masked.append(pair if secret is None else pair[: len(pair) - len(secret)] + MASK)
        rest = f"{path}?{'&'.join(masked)}{fragment}"
    return f"{scheme}{userinfo}@{rest}" if userinfo else f"{scheme}{rest}"


def redact(text: str) -> str:
    """``text`` safe to show: every URL's literal user-info and token masked, known secrets too.

    >>> redact("cannot reach https://alice:s3cret@host/ch/noarch/repodata.json")
    'cannot reach https://***@host/ch/noarch/repodata.json'
    """
    text = _URL.sub(lambda m: _redact_url(m.group(0)), text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_error(exc: DlsetupError) -> DlsetupError:
    """``exc`` with :func:`redact` applied to its message and fix (the same object, for ``raise``)."""
    exc.message = redact(exc.message)
    exc.fix = redact(exc.fix) if exc.fix is not None else None
    exc.args = (exc.message,)
    return exc
