"""PyTorch and TensorFlow releases: supported Pythons, CUDA variants, arch lists, Windows GPU.

All figures come from ``data/compat.yaml`` (sources there). Version keys are ``"major.minor"``
strings; :func:`release_key` maps any installed version (``"2.13.0+cpu"``) onto one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from dlsetup.compat import knowledge_base

if TYPE_CHECKING:
    from dlsetup.compat.model import TfRelease, TorchRelease


def release_key(version: str) -> str | None:
    """``"2.13.0+cpu" -> "2.13"``; None when ``version`` is not a version."""
    try:
        v = Version(version)
    except InvalidVersion:
        return None
    return f"{v.major}.{v.minor}"


@dataclass(frozen=True)
class PythonSupport:
    """A release's supported CPython range (inclusive), from the project's own table."""

    minimum: str
    maximum: str
    experimental: str | None
    source: str

    def supports(self, python: str) -> bool:
        """True when ``python`` (``"3.11"`` or ``"3.11.7"``) is in range or experimental."""
        have = _minor(python)
        if self.experimental is not None and have == _minor(self.experimental):
            return True
        return _minor(self.minimum) <= have <= _minor(self.maximum)


def _minor(version: str) -> tuple[int, int]:
    parts = version.split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def _release(framework: str, version: str) -> TorchRelease | TfRelease | None:
    key = release_key(version)
    if key is None:
        return None
    kb = knowledge_base()
    if framework == "torch":
        return kb.torch.releases.get(key)
    return kb.tensorflow.releases.get(key)


def python_support(framework: str, version: str) -> PythonSupport | None:
    """The Python range of a torch or tensorflow release; None when the release is unknown.

    Args:
        framework: ``"torch"`` or ``"tensorflow"``.
        version: the installed version, ``"2.13.0+cpu"``.
    """
    entry = _release(framework, version)
    if entry is None:
        return None
    experimental = getattr(entry, "python_experimental", None)
    return PythonSupport(
        entry.python_min, entry.python_max, experimental, knowledge_base().cite(entry.sources)
    )


def torch_releases() -> list[str]:
    """Known PyTorch release keys, oldest first (``"2.0"`` .. ``"2.14"``)."""
    return sorted(knowledge_base().torch.releases, key=Version)


def tf_releases() -> list[str]:
    """Known TensorFlow release keys, oldest first (``"2.10"`` .. ``"2.21"``)."""
    return sorted(knowledge_base().tensorflow.releases, key=Version)


def tf_release_cuda(release: str) -> str:
    """The CUDA version a TensorFlow release was built and tested with (``"2.21"`` -> ``"12.5"``)."""
    return knowledge_base().tensorflow.releases[release].cuda


def tf_and_cuda_first() -> str:
    """The first TensorFlow release with the ``and-cuda`` extra (CUDA libraries as pip wheels)."""
    return knowledge_base().tensorflow.and_cuda_first


def torch_variants(release: str) -> dict[str, str | None]:
    """``{variant: arch list or None}`` of a PyTorch release's CUDA wheels (None: not known)."""
    entry = knowledge_base().torch.releases.get(release)
    return {} if entry is None else dict(entry.variants)


def variant_cuda(variant: str) -> str:
    """``"cu126" -> "12.6"``, ``"cu118" -> "11.8"``, ``"cu130" -> "13.0"``."""
    digits = variant.removeprefix("cu")
    return f"{digits[:-1]}.{digits[-1]}"


def torch_index_url(variant: str) -> str:
    """The wheel index of a PyTorch variant, ``https://download.pytorch.org/whl/cu126``."""
    return knowledge_base().torch.index_url.format(variant=variant)


def torch_rules_release() -> str | None:
    """The newest PyTorch release whose CUDA variants the data knows (a verified arch list):
    the release whose rules a newer one is judged by. None when no release has one."""
    known = [k for k, r in knowledge_base().torch.releases.items() if r.has_variant_facts]
    return max(known, key=Version) if known else None


def torch_variant_facts(release: str) -> bool:
    """Whether the data knows the CUDA variants of PyTorch ``release`` (``"2.14"``)."""
    entry = knowledge_base().torch.releases.get(release)
    return entry is not None and entry.has_variant_facts


_LABELS = {"torch": "PyTorch", "tensorflow": "TensorFlow"}


@dataclass(frozen=True)
class NewerThanData:
    """An installed framework release newer than every release the knowledge base knows.

    Attributes:
        framework: ``torch`` / ``tensorflow``.
        version: the installed version (``"2.16.0+cu130"``).
        release: its ``X.Y`` (``"2.16"``).
        last_known: the newest release the data knows (``"2.15"``).
        rules_of: the release whose facts the verdicts and fixes use instead (for PyTorch the
            newest whose CUDA variants are known, which can be older than ``last_known``).
        refreshed: the day the data was last refreshed, or None (schema 1).
    """

    framework: str
    version: str
    release: str
    last_known: str
    rules_of: str
    refreshed: str | None

    @property
    def label(self) -> str:
        """``PyTorch`` / ``TensorFlow``."""
        return _LABELS.get(self.framework, self.framework)

    @property
    def note(self) -> str:
        """``dlsetup's compatibility data ends at PyTorch 2.15, 2026-11-27; verdicts for 2.16 use
        the rules of 2.14``."""
        when = f", {self.refreshed}" if self.refreshed else ""
        return (
            f"dlsetup's compatibility data ends at {self.label} {self.last_known}{when}; "
            f"verdicts for {self.release} use the rules of {self.rules_of}"
        )


def newer_than_data(framework: str, version: str) -> NewerThanData | None:
    """The note to give when ``version`` of ``framework`` is newer than the data knows, else None
    (a known release, an older unknown one, or not a version).

    Args:
        framework: ``"torch"`` or ``"tensorflow"``.
        version: the installed version (``"2.16.0"``, ``"2.16.0.dev20261120+cu130"``).
    """
    key = release_key(version)
    if key is None or framework not in _LABELS:
        return None
    known = torch_releases() if framework == "torch" else tf_releases()
    if not known or key in known or Version(key) <= Version(known[-1]):
        return None
    rules = torch_rules_release() if framework == "torch" else known[-1]
    return NewerThanData(
        framework, version, key, known[-1], rules or known[-1], knowledge_base().refreshed
    )


def tf_windows_native_gpu_last() -> str:
    """The last TensorFlow release with GPU support on native Windows (``"2.10"``)."""
    return knowledge_base().tensorflow.windows_native_gpu_last


def tf_windows_fix() -> str:
    """What to do instead of native-Windows GPU TensorFlow >= 2.11."""
    return knowledge_base().tensorflow.windows_fix


def tf_has_native_windows_gpu(version: str) -> bool:
    """True when TensorFlow ``version`` still has GPU support on native Windows (<= 2.10)."""
    key = release_key(version)
    if key is None:
        return False
    return Version(key) <= Version(tf_windows_native_gpu_last())
