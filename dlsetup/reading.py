"""Bounded reading of the files dlsetup is given: one way for every kind of file.

Every file a user names (a fleet document, a benchmark baseline, a lock, an environment file) is
read here, and each read is bounded the same way:

- **a regular file only**: the path is ``stat``-ed before it is opened, so a FIFO, a device
  (``/dev/zero``), a socket or a directory is refused by name without being opened; the file is
  then opened with ``O_NONBLOCK`` and ``fstat``-ed again, so one swapped in between cannot hang
  the read either;
- **size-capped**: the caller gives the cap for its kind of file; a larger file is refused before
  it is read (and a file that grows while it is read stops at the cap);
- **decoded strictly**: UTF-8 (a leading BOM is dropped); an invalid byte is named with its
  offset and line;
- **depth-capped**: nesting deeper than ``max_depth`` is refused before a recursive parser sees
  it (JSON and TOML are scanned for bracket depth outside strings; YAML is bounded by libyaml's
  own limit and measured on the result), so no :class:`RecursionError` reaches the user;
- **absurd values refused**: an integer with more than :data:`MAX_INTEGER_DIGITS` digits (Python
  refuses to parse or print those past 4,300), a YAML document that refers to itself or expands
  through aliases far past its own size.

Every refusal is a :class:`ReadError`, an :class:`~dlsetup.errors.InputError` (exit 2) whose
message names the kind of file (``what``), its path and the problem. Parsing uses the standard
library's ``json``, ``tomllib`` (``tomli`` before Python 3.11) and PyYAML's safe loader (the C
one where present); this module writes no parser of its own.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from dlsetup.errors import InputError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "MAX_INTEGER_DIGITS",
    "MiB",
    "ReadError",
    "decode",
    "is_regular_file",
    "load_json",
    "load_toml",
    "load_yaml",
    "parse_json",
    "parse_toml",
    "parse_yaml",
    "read_bytes",
    "read_text",
    "require_depth",
]

MiB = 1024 * 1024

#: Nesting deeper than this is refused unless the caller says otherwise. The files dlsetup reads
#: nest less than a dozen levels; Python's recursion limit (1,000 frames) is far above this.
DEFAULT_MAX_DEPTH = 100

#: An integer with more digits than this is no real value in any file dlsetup reads (a byte
#: count, a version, a timestamp); past 4,300 digits Python cannot even print it.
MAX_INTEGER_DIGITS = 100

Reason = Literal[
    "missing",
    "not_regular",
    "unreadable",
    "too_large",
    "not_utf8",
    "too_deep",
    "syntax",
    "value",
    "aliases",
]

Syntax = Literal["json", "toml", "yaml"]

_SYNTAX_NAMES: dict[Syntax, str] = {"json": "JSON text", "toml": "TOML", "yaml": "YAML"}

_DEFAULT_FIXES: dict[Reason, str] = {
    "missing": "check the path",
    "not_regular": "give the path of a regular file (not a FIFO, device or directory)",
    "unreadable": "check the file's permissions",
}

_READ_CHUNK = 1 * MiB
_MAX_INTEGER_BITS = int(MAX_INTEGER_DIGITS * 3.3219280948873626) + 1  # log2(10)


class ReadError(InputError):
    """A file could not be read within the bounds (exit 2).

    Attributes:
        path: the file, as given.
        reason: what was wrong, for callers that word some cases their own way.
    """

    def __init__(self, message: str, *, fix: str | None, path: str, reason: Reason) -> None:
        super().__init__(message, fix=fix)
        self.path = path
        self.reason = reason


def _error(path: str, what: str, problem: str, reason: Reason, fix: str | None) -> ReadError:
    return ReadError(
        f"{what} {path} {problem}",
        fix=fix if fix is not None else _DEFAULT_FIXES.get(reason, "check the file"),
        path=path,
        reason=reason,
    )


def _a(what: str) -> str:
    return f"an {what}" if what[:1].lower() in "aeio" else f"a {what}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < MiB:
        return f"{n / 1024:.3g} KiB"
    return f"{n / MiB:.3g} MiB"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bytes(
    path: str | os.PathLike[str], *, what: str, max_bytes: int, fix: str | None = None
) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them.

    Args:
        path: the file.
        what: what the file is, in the words of messages ("fleet document", "pylock.toml").
        max_bytes: the cap for this kind of file.
        fix: the ``fix`` of every error; a default per problem when None.

    Raises:
        ReadError: the path does not exist, is not a regular file (it is then never opened), cannot
            be read, or holds more than ``max_bytes``.
    """
    name = os.fspath(path)
    try:
        before = os.stat(name)
    except FileNotFoundError as exc:
        raise _error(name, what, "does not exist", "missing", fix) from exc
    except NotADirectoryError as exc:
        raise _error(name, what, "does not exist (a parent is a file)", "missing", fix) from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _error(name, what, f"cannot be read: {problem}", "unreadable", fix) from exc
    _require_regular(name, what, before, max_bytes, fix)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _error(
            name, what, f"cannot be read: {exc.strerror or exc}", "unreadable", fix
        ) from exc
    try:
        after = os.fstat(fd)  # swapped for a FIFO between stat and open: still never read
        _require_regular(name, what, after, max_bytes, fix)
        chunks: list[bytes] = []
        total = 0
        want = min(max(after.st_size + 1, 4096), max_bytes + 1)
        while True:
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise _error(
                    name,
                    what,
                    f"holds more than {_size(max_bytes)}, the most {_a(what)} may have",
                    "too_large",
                    fix,
                )
            want = min(_READ_CHUNK, max_bytes + 1 - total)
    except OSError as exc:
        raise _error(
            name, what, f"cannot be read: {exc.strerror or exc}", "unreadable", fix
        ) from exc
    finally:
        os.close(fd)
    return b"".join(chunks)


def _require_regular(
    name: str, what: str, st: os.stat_result, max_bytes: int, fix: str | None
) -> None:
    mode, size = st.st_mode, st.st_size
    if not stat.S_ISREG(mode):
        raise _error(name, what, f"is {_kind(mode)}, not a regular file", "not_regular", fix)
    if size > max_bytes:
        shown, cap = _size(size), _size(max_bytes)
        if shown == cap:  # 1.0 MiB over a 1.0 MiB cap: say it in bytes
            shown, cap = f"{size} bytes", f"{max_bytes} bytes"
        raise _error(
            name,
            what,
            f"is {shown}, more than the {cap} {_a(what)} may have",
            "too_large",
            fix,
        )


def read_text(
    path: str | os.PathLike[str], *, what: str, max_bytes: int, fix: str | None = None
) -> str:
    """The text of the regular file ``path``: :func:`read_bytes`, then strict UTF-8.

    A leading UTF-8 byte-order mark is dropped.

    Raises:
        ReadError: as :func:`read_bytes`, or a byte that is not UTF-8 (named with its offset and
            line).
    """
    data = read_bytes(path, what=what, max_bytes=max_bytes, fix=fix)
    return decode(data, source=os.fspath(path), what=what, fix=fix)


def decode(data: bytes, *, source: str, what: str, fix: str | None = None) -> str:
    """``data`` as strict UTF-8 (a leading BOM dropped).

    Raises:
        ReadError: a byte that is not UTF-8, named with its offset in ``data`` and its line.
    """
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8") if skip else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        line = data.count(b"\n", 0, offset) + 1
        raise _error(
            source,
            what,
            f"is not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset} (line {line})",
            "not_utf8",
            fix if fix is not None else f"give {_a(what)} saved as UTF-8 text",
        ) from exc


# --- depth ------------------------------------------------------------------------------------

_BRACKET = re.compile(r"[\[\]{}]")
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_TOML_TOKEN = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""+'
    r"|'''(?:[^']|'(?!''))*'''+"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*"
    r"|[\[\]{}]",
    re.DOTALL,
)
#: A run of characters an absurd integer is written with (digits, hex, ``_``, YAML's ``:``).
_LONG_NUMBER = re.compile(rf"[0-9A-Fa-f_:]{{{MAX_INTEGER_DIGITS},}}")
#: A YAML alias (``*name``) where one can start: after space, line start, ``[``, ``{`` or ``,``.
_YAML_ALIAS = re.compile(r"(?:^|[\s\[{,])\*[^\s\[\]{},]")
_YAML_PREFIX = "[ \\t?:-]"


def _bracket_depth(text: str, tokens: re.Pattern[str]) -> int:
    """The deepest bracket nesting of ``text``, brackets inside strings and comments skipped."""
    depth = deepest = 0
    for char in tokens.findall(text):  # strings, not match objects: a fleet reads 1,000 files
        if char in {"[", "{"}:
            depth += 1
            deepest = max(deepest, depth)
        elif char in {"]", "}"}:
            depth = max(depth - 1, 0)
    return deepest


def require_depth(
    text: str,
    *,
    syntax: Syntax,
    source: str,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    fix: str | None = None,
) -> None:
    """Refuse ``text`` when it nests deeper than ``max_depth`` (before a recursive parser sees it).

    For JSON and TOML the brackets outside strings (and TOML comments) are counted. For YAML the
    flow brackets and the block indentation give a bound; only when it is over the cap is the
    text run through libyaml's event parser (iterative, and itself capped at 1,000 levels) and
    measured exactly.

    Raises:
        ReadError: the nesting is deeper than ``max_depth``.
    """
    openers = text.count("[") + text.count("{")
    if syntax == "yaml":
        if openers + 2 <= max_depth and not re.search(
            rf"^{_YAML_PREFIX}{{{max_depth - openers - 1},}}", text, re.MULTILINE
        ):
            return
        depth = _yaml_depth(text, source=source, what=what, max_depth=max_depth, fix=fix)
    elif openers <= max_depth:
        return
    else:
        depth = _bracket_depth(text, _JSON_TOKEN if syntax == "json" else _TOML_TOKEN)
    if depth > max_depth:
        raise _too_deep(source, what, max_depth, fix)


def _too_deep(source: str, what: str, max_depth: int, fix: str | None) -> ReadError:
    return _error(
        source,
        what,
        f"is nested more than {max_depth} levels deep; no {what} nests like that",
        "too_deep",
        fix,
    )


def _yaml_loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_depth(text: str, *, source: str, what: str, max_depth: int, fix: str | None) -> int:
    import yaml

    depth = deepest = 0
    try:
        for event in yaml.parse(text, Loader=_yaml_loader()):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > max_depth:
                    return depth
                deepest = max(deepest, depth)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):  # libyaml's own cap (1,000 levels)
            return max_depth + 1
        raise _syntax_error(source, what, "yaml", exc, fix) from exc
    except RecursionError as exc:  # the pure-Python parser, where libyaml is absent
        raise _too_deep(source, what, max_depth, fix) from exc
    return deepest


# --- values -----------------------------------------------------------------------------------


def _check_values(
    root: Any,
    *,
    source: str,
    what: str,
    max_depth: int,
    max_nodes: int,
    fix: str | None,
) -> None:
    """Walk a parsed document without recursion: absurd integers, nesting, self-reference and
    alias expansion (a YAML alias shares one object in many places; consumers walk each)."""
    heights: dict[int, int] = {}
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if isinstance(node, int) and not isinstance(node, bool):
            if node.bit_length() > _MAX_INTEGER_BITS:
                raise _error(
                    source,
                    what,
                    f"holds an integer of more than {MAX_INTEGER_DIGITS} digits; no value in "
                    f"{_a(what)} is that large",
                    "value",
                    fix,
                )
            continue
        if not isinstance(node, (dict, list, tuple, set, frozenset)):
            continue
        key = id(node)
        if not done and key in heights:
            continue
        children: list[Any] = (
            [x for kv in node.items() for x in kv] if isinstance(node, dict) else list(node)
        )
        if done:
            on_path.discard(key)
            height = 1 + max((heights.get(id(c), 0) for c in children), default=0)
            size = 1 + sum(sizes.get(id(c), 1) for c in children)
            if height > max_depth:
                raise _too_deep(source, what, max_depth, fix)
            if size > max_nodes:
                raise _error(
                    source,
                    what,
                    f"expands to more than {max_nodes} values through YAML aliases",
                    "aliases",
                    fix,
                )
            heights[key] = height
            sizes[key] = size
            continue
        if key in on_path:
            raise _error(
                source,
                what,
                "refers to itself (a YAML alias inside its own anchor)",
                "aliases",
                fix,
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children)


def _max_nodes(text: str) -> int:
    # Without aliases a document has at most about one value per character.
    return max(1_000_000, 10 * len(text))


def _syntax_error(
    source: str, what: str, syntax: Syntax, exc: BaseException, fix: str | None
) -> ReadError:
    detail = " ".join(str(exc).split())
    if len(detail) > 300:
        detail = detail[:300] + "…"
    return _error(source, what, f"is not {_SYNTAX_NAMES[syntax]}: {detail}", "syntax", fix)


def _value_error(source: str, what: str, exc: BaseException, fix: str | None) -> ReadError:
    text = str(exc)
    if "integer string conversion" in text:
        return _error(
            source,
            what,
            f"holds an integer of more than {MAX_INTEGER_DIGITS} digits; no value in "
            f"{_a(what)} is that large",
            "value",
            fix,
        )
    return _error(source, what, f"holds a value that cannot be read: {text[:200]}", "value", fix)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# --- parsing ----------------------------------------------------------------------------------


def _check_parsed(
    document: Any, text: str, *, source: str, what: str, max_depth: int, fix: str | None
) -> None:
    """:func:`_check_values` on a parsed ``document``, with a node bound from its ``text``."""
    _check_values(
        document, source=source, what=what, max_depth=max_depth, max_nodes=_max_nodes(text),
        fix=fix,
    )  # fmt: skip


def parse_json(
    text: str,
    *,
    source: str,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    allow_nan: bool = True,
    fix: str | None = None,
) -> Any:
    """``json.loads(text)``, bounded: depth, integers; ``allow_nan=False`` refuses NaN/Infinity.

    Raises:
        ReadError: not JSON, too deep, or an absurd value; the message names ``source``.
    """
    require_depth(text, syntax="json", source=source, what=what, max_depth=max_depth, fix=fix)
    hook: Callable[[str], Any] | None = None if allow_nan else _refuse_constant
    try:
        document = json.loads(text, parse_constant=hook)
    except json.JSONDecodeError as exc:
        raise _syntax_error(source, what, "json", exc, fix) from exc
    except RecursionError as exc:
        raise _too_deep(source, what, max_depth, fix) from exc
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise _value_error(source, what, exc, fix) from exc
        raise _syntax_error(source, what, "json", exc, fix) from exc
    if _LONG_NUMBER.search(text):
        _check_parsed(document, text, source=source, what=what, max_depth=max_depth, fix=fix)
    return document


def parse_toml(
    text: str,
    *,
    source: str,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    fix: str | None = None,
) -> dict[str, Any]:
    """``tomllib.loads(text)``, bounded: depth, integers.

    Raises:
        ReadError: not TOML, too deep, or an absurd value; the message names ``source``.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    require_depth(text, syntax="toml", source=source, what=what, max_depth=max_depth, fix=fix)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(source, what, "toml", exc, fix) from exc
    except RecursionError as exc:
        raise _too_deep(source, what, max_depth, fix) from exc
    except (ValueError, TypeError, OverflowError) as exc:
        raise _value_error(source, what, exc, fix) from exc
    if _LONG_NUMBER.search(text):
        _check_parsed(document, text, source=source, what=what, max_depth=max_depth, fix=fix)
    return document


def parse_yaml(
    text: str,
    *,
    source: str,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    fix: str | None = None,
) -> Any:
    """PyYAML's safe load of ``text`` (the C loader where present), bounded: depth, integers,
    self-reference and alias expansion.

    Raises:
        ReadError: not YAML, too deep, or an absurd value; the message names ``source``.
    """
    import yaml

    require_depth(text, syntax="yaml", source=source, what=what, max_depth=max_depth, fix=fix)
    try:
        document = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):
            raise _too_deep(source, what, max_depth, fix) from exc
        raise _syntax_error(source, what, "yaml", exc, fix) from exc
    except RecursionError as exc:
        raise _too_deep(source, what, max_depth, fix) from exc
    except (ValueError, TypeError, OverflowError) as exc:  # int("1"*5001), a 13th month
        raise _value_error(source, what, exc, fix) from exc
    if _LONG_NUMBER.search(text) or _YAML_ALIAS.search(text):
        _check_parsed(document, text, source=source, what=what, max_depth=max_depth, fix=fix)
    return document


# --- reading and parsing ----------------------------------------------------------------------


def load_json(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    allow_nan: bool = True,
    fix: str | None = None,
) -> Any:
    """:func:`read_text` then :func:`parse_json`."""
    text = read_text(path, what=what, max_bytes=max_bytes, fix=fix)
    return parse_json(
        text, source=os.fspath(path), what=what, max_depth=max_depth, allow_nan=allow_nan, fix=fix
    )


def load_toml(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    fix: str | None = None,
) -> dict[str, Any]:
    """:func:`read_text` then :func:`parse_toml`."""
    text = read_text(path, what=what, max_bytes=max_bytes, fix=fix)
    return parse_toml(text, source=os.fspath(path), what=what, max_depth=max_depth, fix=fix)


def load_yaml(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    fix: str | None = None,
) -> Any:
    """:func:`read_text` then :func:`parse_yaml`."""
    text = read_text(path, what=what, max_bytes=max_bytes, fix=fix)
    return parse_yaml(text, source=os.fspath(path), what=what, max_depth=max_depth, fix=fix)


def is_regular_file(path: Path) -> bool:
    """Whether ``path`` (symlinks followed) is a regular file, without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
