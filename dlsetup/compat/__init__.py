"""The compatibility knowledge base: ``data/compat.yaml`` (every fact with its source) and pure
functions over it (:mod:`.cuda`, :mod:`.arch`, :mod:`.frameworks`, :mod:`.recommend`).

The YAML is loaded lazily, once per process, on the first question asked of it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def load_data() -> dict[str, Any]:
    """Parse and return the knowledge base (``dlsetup/compat/data/compat.yaml``), cached.

    Returns:
        The YAML document as plain dicts and lists.
    """
    from importlib import resources

    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = resources.files("dlsetup.compat").joinpath("data/compat.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    return data
