"""A per-user cache of the parsed knowledge base, so a ``dlsetup lock`` skips the YAML parser.

Parsing ``data/compat.yaml`` with PyYAML costs a ``dlsetup lock`` process about 7 ms, a third of
the 20 ms issue 8 allows the hardware-aware CUDA line; reading the same document back as JSON
costs well under one. The cache holds the document the YAML parser returned, never the records:
:func:`dlsetup.compat.knowledge_base` validates what it reads from here exactly as it validates a
fresh parse, so the cache cannot weaken a check, and a cached document that fails validation is
dropped for the YAML (see there).

The file, ``$XDG_CACHE_HOME/dlsetup/knowledge-base.json`` (``~/.cache/dlsetup`` without
``XDG_CACHE_HOME``), is two lines: a JSON header and the document as JSON. It is used only when
the header names

* this file format,
* the sha256 of the very ``compat.yaml`` bytes being loaded (any edit, any other installed copy
  of dlsetup with other data: a miss, never a stale fact),
* this dlsetup version,
* and the sha256 of the document line that follows (a truncated or bit-flipped file: a miss).

Anything else (no file, unreadable, not JSON, another key) is a miss: the YAML is parsed and, once
it has validated, written here again, atomically (a temporary file and a rename), so concurrent
processes see the old file or the new one. A document that JSON cannot carry exactly (a
non-string key, a date) is not cached at all. A directory that cannot be written (read-only home,
no home) only means every run parses the YAML.

JSON, not pickle: whoever can write the cache directory could otherwise run code in every dlsetup
process; the worst a forged JSON document can do is fail validation (then it is ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: Bump when the file's layout changes: older files then read as a miss.
FORMAT = 1
#: The cache file's name inside the cache directory.
FILE_NAME = "knowledge-base.json"
#: the cached knowledge base is under 1 MiB; a larger file there is not one of ours
MAX_CACHE_BYTES = 64 * 1024 * 1024


def cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/dlsetup`` (a relative value is ignored, as the XDG spec says), else
    ``~/.cache/dlsetup``; None when there is no home directory to put it in."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / "dlsetup"
    try:
        return Path.home() / ".cache" / "dlsetup"
    except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry
        return None


def source_key(data: bytes) -> str:
    """The key of a ``compat.yaml``: the sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def _header(key: str, body: bytes) -> dict[str, object]:
    from dlsetup import __version__

    return {
        "format": FORMAT,
        "source_sha256": key,
        "dlsetup": __version__,
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }


def load(key: str, directory: Path | None = None) -> dict[str, Any] | None:
    """The cached document of the ``compat.yaml`` whose :func:`source_key` is ``key``, or None
    on any miss (no file, unreadable, corrupt, another key or version). Never raises."""
    directory = directory if directory is not None else cache_dir()
    if directory is None:
        return None
    from dlsetup.errors import InputError
    from dlsetup.reading import read_bytes

    try:  # a FIFO or device at the cache's path is a miss, never a hang
        blob = read_bytes(directory / FILE_NAME, what="compat cache", max_bytes=MAX_CACHE_BYTES)
        head, sep, body = blob.partition(b"\n")
        if not sep:
            return None
        header = json.loads(head)
        if header != _header(key, body):
            return None
        document = json.loads(body)
    except (InputError, OSError, ValueError, RecursionError):  # JSONDecodeError, UnicodeError
        return None
    return document if isinstance(document, dict) else None


def _same(a: object, b: object) -> bool:
    """``a == b`` with types and mapping order too: ``1 != 1.0 != True``, ``{"a", "b"}`` order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def store(key: str, document: dict[str, Any], directory: Path | None = None) -> bool:
    """Write ``document`` (already validated) as the cache of the ``compat.yaml`` ``key``.

    Returns:
        True when written; False when JSON cannot carry the document exactly, or the directory
        cannot be written (nothing is raised: the cache is only a shortcut).
    """
    directory = directory if directory is not None else cache_dir()
    if directory is None:
        return False
    try:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        body = text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):  # a date, a set, a NaN, a lone surrogate
        return False
    if "\n" in text or not _same(json.loads(body), document):  # 2.10 -> "2.10", {1: ...}
        return False
    head = json.dumps(_header(key, body), separators=(",", ":")).encode("ascii")
    try:
        from dlsetup.atomic_write import write_text_atomically

        directory.mkdir(parents=True, exist_ok=True)
        write_text_atomically(directory / FILE_NAME, (head + b"\n" + body).decode("utf-8"))
    except (OSError, UnicodeError):
        return False
    return True
