"""The compatibility knowledge base: ``data/compat.yaml`` (every fact with its source) and pure
functions over it (:mod:`.cuda`, :mod:`.arch`, :mod:`.frameworks`, :mod:`.recommend`,
:mod:`.lines`).

The YAML is loaded lazily, once per process, on the first question asked of it, and validated
into the typed records of :mod:`.model` (:func:`knowledge_base`); a malformed file raises
:class:`dlsetup.errors.KnowledgeBaseError` naming the key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlsetup.compat.model import KnowledgeBase

#: The knowledge base's file name, for messages.
DATA_FILE = "dlsetup/compat/data/compat.yaml"


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    from importlib import resources

    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = resources.files("dlsetup.compat").joinpath("data/compat.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    return data


@lru_cache(maxsize=1)
def knowledge_base() -> KnowledgeBase:
    """The knowledge base as validated, typed records, parsed once per process.

    Raises:
        KnowledgeBaseError: the shipped file is malformed (names the key).
    """
    from dlsetup.compat.model import parse_knowledge_base

    return parse_knowledge_base(_raw(), DATA_FILE)


def load_data() -> dict[str, Any]:
    """The knowledge base as plain dicts and lists, validated first (cached).

    Prefer :func:`knowledge_base`: its records are typed. This stays for callers that read
    sections the records do not model (notes, the ``left_out`` lists).

    Raises:
        KnowledgeBaseError: the shipped file is malformed (names the key).
    """
    knowledge_base()
    return _raw()
