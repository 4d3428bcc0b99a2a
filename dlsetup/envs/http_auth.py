"""Basic auth for dlsetup's own reads from an index, and urllib openers that keep it on the host
it was given for.

dlsetup sends an index's or a channel's user-info as HTTP basic auth where it reads from them
itself (the reachability probe, a wheel's metadata, a companion's ``version.py``). urllib follows
a redirect by copying every header of the request, ``Authorization`` included, to wherever the
server points: a private mirror that hands its files to a CDN or an object store (a 302 to
another host) would pass the user's password on. :func:`opener` drops it there, as pip
(requests' ``should_strip_auth``) and uv do: on another host or port, or from https to http.
:func:`split_auth` turns a URL's user-info into that header (urllib does not send it).
Standard library only.
"""

from __future__ import annotations

import base64
import urllib.parse
import urllib.request
from typing import IO, Any


def split_auth(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its user-info, and the ``Authorization`` header of HTTP basic auth that
    carries it (``{}`` for a URL without one). User and password are unquoted each."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}


def _leaves_home(before: str, after: str) -> bool:
    """True when a redirect from ``before`` to ``after`` leaves the credentials' host: another
    host name or port, or https to http (http to https on the default ports keeps them)."""
    old, new = urllib.parse.urlsplit(before), urllib.parse.urlsplit(after)
    if old.hostname != new.hostname:
        return True
    defaults = {"http": 80, "https": 443}
    old_port = old.port or defaults.get(old.scheme)
    new_port = new.port or defaults.get(new.scheme)
    if (old.scheme, new.scheme) == ("http", "https") and (old_port, new_port) == (80, 443):
        return False
    return old_port != new_port or old.scheme != new.scheme


class CredentialsStayHome(urllib.request.HTTPRedirectHandler):
    """Follows a redirect as urllib does, without ``Authorization`` where it leaves home."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _leaves_home(req.full_url, new.full_url):
            new.remove_header("Authorization")
        return new


def opener(*handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
    """``urllib.request.build_opener(*handlers)`` whose redirects keep credentials home (the
    proxy settings of now: each call reads the environment again)."""
    return urllib.request.build_opener(CredentialsStayHome(), *handlers)
