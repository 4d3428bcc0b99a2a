"""A fast reader for the YAML layout conda-lock's writer emits, with PyYAML as the judge of the rest.

PyYAML takes about 0.2 s (C scanner, Python constructor) for a 1,000-package conda-lock file on
these machines: the whole budget of reading a lock. conda-lock's writer (``yaml.dump`` in block
style) gives every package the same shape: ``- key: value`` lines, two-space keys, one level of
nested mappings (``hash:``, ``dependencies:``) and ``{}``/``[]`` for empty ones. This module reads
exactly that shape, a package at a time, and gives a package to PyYAML (``yaml.safe_load``) as
soon as anything in it differs: a quoted key, a flow collection, a multi-line scalar, an anchor,
a comment, a plain scalar that YAML would not read as a string (PyYAML's own implicit resolvers
decide: ``1.10``, ``yes``, ``null``, ``2026-01-01``). The header (everything before ``package:``)
is always read by PyYAML. So the result is what ``yaml.safe_load`` returns for the file, only
sooner; a test compares the two on every lock the tests write and on mutated ones.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_ENTRY_SPLIT = re.compile(r"^(?=- )", re.MULTILINE)
#: the first line of the package list's tail that starts at column 0 with a key (``version: 1``)
_TOP_LEVEL = re.compile(r"^(?=[A-Za-z_][A-Za-z0-9_]*:)", re.MULTILINE)
_KEY_LINE = re.compile(
    r"^(?P<indent>(?:- |  )|    )(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*):(?: (?P<value>.*))?$"
)
_PLAIN_SAFE = re.compile(r"^[^\s'\"\[\]{}&*!|>%@`#,?:-][^#]*$")


@functools.cache
def _resolver() -> Any:
    import yaml

    return yaml.resolver.Resolver()


#: the only words PyYAML's implicit resolvers read as something other than a string when a plain
#: scalar starts with a letter (bool and null; compared in lower case, which is stricter)
_LETTER_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null"})


@functools.lru_cache(maxsize=8192)
def _resolve(raw: str) -> str:
    """The tag PyYAML gives the plain scalar ``raw`` (its own implicit resolvers)."""
    if raw[0].isascii() and raw[0].isalpha() and raw.lower() not in _LETTER_WORDS:
        return "tag:yaml.org,2002:str"  # no implicit resolver of PyYAML starts with a letter
    import yaml

    return str(_resolver().resolve(yaml.ScalarNode, raw, (True, False)))


class _NotFast(Exception):
    """The text leaves the writer's layout: PyYAML reads it."""


def _scalar(raw: str) -> Any:
    """A scalar as PyYAML would read it, or :class:`_NotFast`."""
    if raw == "{}":
        return {}
    if raw == "[]":
        return []
    if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
        inner = raw[1:-1]
        if "'" in inner.replace("''", ""):
            raise _NotFast
        return inner.replace("''", "'")
    if raw in ("true", "false"):
        return raw == "true"
    if (
        not raw
        or raw != raw.strip()
        or not _PLAIN_SAFE.match(raw)
        or ": " in raw
        or raw.endswith(":")
    ):
        raise _NotFast
    if _resolve(raw) != "tag:yaml.org,2002:str":
        raise _NotFast
    return raw


def _key(raw: str) -> str:
    if _scalar(raw) != raw:  # ``true:`` or ``1:`` is no string key
        raise _NotFast
    return raw


def _entry(block: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    nested: dict[str, Any] | None = None
    for number, line in enumerate(block.rstrip("\n").split("\n")):
        match = _KEY_LINE.match(line)
        if match is None:
            raise _NotFast
        indent, key, value = match["indent"], _key(match["key"]), match["value"]
        if (indent == "- ") != (number == 0):
            raise _NotFast
        if indent == "    ":
            if nested is None or value is None or key in nested:
                raise _NotFast
            nested[key] = _scalar(value)
            continue
        if nested is not None and not nested:  # ``key:`` with nothing under it is a null
            raise _NotFast
        if key in data:
            raise _NotFast
        if value is None:
            nested = data[key] = {}
        else:
            nested = None
            data[key] = _scalar(value)
    if nested is not None and not nested:
        raise _NotFast
    return data


def load_conda_lock(text: str) -> Any:
    """``yaml.safe_load(text)``, quicker for conda-lock's own layout (see the module docstring).

    Raises:
        yaml.YAMLError: as ``yaml.safe_load`` would.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return _fast(text, loader)
    except Exception:  # anything unexpected: the judge reads the whole file
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def _fast(text: str, loader: Any) -> Any:
    import yaml

    head, sep, body = text.partition("\npackage:\n")
    if not sep or not body.startswith("- "):
        raise _NotFast
    # older conda-lock writers sort the top-level keys: ``version: 1`` follows the packages
    trailing = _TOP_LEVEL.search(body)
    tail = body[trailing.start() :] if trailing else ""
    body = body[: trailing.start()] if trailing else body
    header = yaml.load(head + "\n", Loader=loader)  # noqa: S506 - a safe loader
    after = yaml.load(tail, Loader=loader) if tail else {}  # noqa: S506 - a safe loader
    if (
        not isinstance(header, dict)
        or not isinstance(after, dict)
        or "package" in header
        or "package" in after
        or set(header) & set(after)
    ):
        raise _NotFast
    header.update(after)
    packages: list[Any] = []
    for block in _ENTRY_SPLIT.split(body):
        if not block:
            continue
        if not block.startswith("- "):
            raise _NotFast
        try:
            packages.append(_entry(block))
        except _NotFast:
            item = yaml.load(block, Loader=loader)  # noqa: S506 - a safe loader
            if not isinstance(item, list) or len(item) != 1:
                raise
            packages.append(item[0])
    header["package"] = packages
    return header
