"""The compatibility knowledge base: ``data/compat.yaml`` (every fact with its source) and pure
functions over it (:mod:`.cuda`, :mod:`.arch`, :mod:`.frameworks`, :mod:`.recommend`,
:mod:`.lines`).

The YAML is loaded lazily, once per process, on the first question asked of it, and validated
into the typed records of :mod:`.model` (:func:`knowledge_base`); a malformed file raises
:class:`dlsetup.errors.KnowledgeBaseError` naming the key. The parsed document is kept in a
per-user cache keyed by the file's sha256 (:mod:`.cache`), so most runs skip the YAML parser; it
is validated all the same.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlsetup.compat.model import KnowledgeBase

#: The knowledge base's file name, for messages.
DATA_FILE = "dlsetup/compat/data/compat.yaml"


@lru_cache(maxsize=1)
def _source() -> bytes:
    """The shipped ``compat.yaml``, as bytes."""
    try:  # the file beside this module: importlib.resources costs ~1.5 ms more to import
        with open(os.path.join(os.path.dirname(__file__), "data", "compat.yaml"), "rb") as fh:
            return fh.read()
    except OSError:  # not a plain directory (a zip import): ask the package's loader
        from importlib import resources

        return resources.files("dlsetup.compat").joinpath("data/compat.yaml").read_bytes()


def _parse_yaml(data: bytes) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document: dict[str, Any] = yaml.load(data.decode("utf-8"), Loader=loader)  # noqa: S506 - safe
    return document


def load_knowledge_base(
    data: bytes, origin: str = DATA_FILE, *, use_cache: bool = True
) -> tuple[KnowledgeBase, dict[str, Any]]:
    """Validate the knowledge base ``data`` (the bytes of a ``compat.yaml``) into its records.

    The YAML parse is skipped when the per-user cache (:mod:`.cache`) holds the document of these
    very bytes; the document is validated either way, and a cached one that fails validation is
    discarded for a fresh parse. A document parsed here is cached only once it has validated.

    Returns:
        ``(records, document)``: the typed records and the plain document they were read from.

    Raises:
        KnowledgeBaseError: the file is malformed (names the key).
    """
    from dlsetup.compat import cache
    from dlsetup.compat.model import parse_knowledge_base

    key = cache.source_key(data) if use_cache else ""
    cached = cache.load(key) if use_cache else None
    if cached is not None:
        try:
            return parse_knowledge_base(cached, origin), cached
        except Exception:  # noqa: S110 - not what we wrote (tampered?): the YAML decides
            pass
    document = _parse_yaml(data)
    records = parse_knowledge_base(document, origin)
    if use_cache:
        cache.store(key, document)
    return records, document


@lru_cache(maxsize=1)
def _loaded() -> tuple[KnowledgeBase, dict[str, Any]]:
    return load_knowledge_base(_source())


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    """The YAML parser's output, unvalidated (never from the cache)."""
    return _parse_yaml(_source())


def knowledge_base() -> KnowledgeBase:
    """The knowledge base as validated, typed records, parsed once per process.

    Raises:
        KnowledgeBaseError: the shipped file is malformed (names the key).
    """
    return _loaded()[0]


def load_data() -> dict[str, Any]:
    """The knowledge base as plain dicts and lists, validated first (cached).

    Prefer :func:`knowledge_base`: its records are typed. This stays for callers that read
    sections the records do not model (notes, the ``left_out`` lists).

    Raises:
        KnowledgeBaseError: the shipped file is malformed (names the key).
    """
    return _loaded()[1]
