"""The exact cuDNN/cuBLAS wheel pins of framework releases (``compat/data/cuda_wheel_pins.yaml``).

Read by ``python -m tools.refresh_compat --wheel-pins`` from each release's manylinux x86-64 wheel
on PyPI (PEP 658 metadata, or ranged reads of the wheel's dist-info where PyPI serves none, as for
TensorFlow 2.16-2.18). doctor uses them when an installed framework's own METADATA names no CUDA
library wheel (a copy installed without its metadata, a stand-in), so a torch 2.5 beside a
TensorFlow 2.18 is judged all the same.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from dlsetup.errors import KnowledgeBaseError

DATA = Path(__file__).with_name("data") / "cuda_wheel_pins.yaml"

#: Keys of a release's row that are not pins.
_NOT_PINS = frozenset({"wheel", "read_via", "source"})


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, dict[str, str]]]:
    """``{framework: {version: {package: pinned version}}}``, validated."""
    import yaml

    from dlsetup.reading import read_text

    text = read_text(DATA, what="the wheel pins data", max_bytes=1 << 20)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document: Any = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    pins = document.get("pins") if isinstance(document, dict) else None
    if not isinstance(pins, dict):
        raise KnowledgeBaseError(f"{DATA}: no 'pins' mapping")
    table: dict[str, dict[str, dict[str, str]]] = {}
    for framework, releases in pins.items():
        if not isinstance(releases, dict):
            raise KnowledgeBaseError(f"{DATA}: pins.{framework} is not a mapping")
        for version, row in releases.items():
            if not isinstance(row, dict) or row.get("source") not in document.get("sources", {}):
                raise KnowledgeBaseError(f"{DATA}: pins.{framework}.{version} names no source")
            table.setdefault(str(framework), {})[str(version)] = {
                str(k): str(v) for k, v in row.items() if k not in _NOT_PINS
            }
    return table


def release_pins(framework: str, version: str) -> dict[str, str] | None:
    """The pins of PyPI's ``framework`` ``version`` wheel for Linux x86-64
    (``{"nvidia-cudnn-cu12": "9.3.0.75", ...}``), or None when the data has no such release.

    A local version (``2.5.1+cu124``, ``2.13.0+cpu``) is another build than PyPI's: None.
    """
    if "+" in version:
        return None
    return _table().get(framework, {}).get(version)


__all__ = ["DATA", "release_pins"]
