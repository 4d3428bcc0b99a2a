"""What a venv lock actually resolved, read before anything is downloaded: the wheel variant of
torch and of its companions (torchvision, torchaudio), the CUDA libraries, the download size and
where each package comes from, so a lock is labelled as what it holds, never as what was asked.

A torch build's variant is its local version (``2.14.0+cpu``, ``+cu126``); PyPI's own builds have
none: on Linux x86_64 (and aarch64 since 2.x) PyPI's torch is a CUDA build that requires its CUDA
libraries as ``nvidia-*`` wheels and ``triton``, and it runs on a CPU too; elsewhere (macOS,
Windows) PyPI's torch is a CPU build. So: a local version names the variant; without one, CUDA
libraries in the resolution make it a CUDA build (its CUDA version read from the
``nvidia-cuda-runtime`` wheel resolved, else the knowledge base's ``pypi_default`` for the
release), none make it a CPU build. A companion goes with torch when its local version is torch's
(the same index, the same variant) and its release is the one the knowledge base pairs with
torch's (:func:`dlsetup.compat.companions.pair_fits`).
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: packages that are CUDA libraries as wheels (a CPU build requires none of them)
CUDA_LIBRARY_PREFIX = "nvidia-"
CUDA_LIBRARY_NAMES = frozenset({"triton"})
#: above this, the download size is said where another variant is offered (bytes)
LARGE_DOWNLOAD = 1 << 30
#: PyPI's file host, named as the registry it serves
_PYPI_FILES = "files.pythonhosted.org"


def local_tag(version: str) -> str:
    """``"2.14.0+cu126" -> "cu126"``; ``""`` for a version without a local part."""
    return version.partition("+")[2]


def is_cuda_library(name: str) -> bool:
    """Whether ``name`` is a CUDA library shipped as a wheel (``nvidia-*``, ``triton``)."""
    return name.startswith(CUDA_LIBRARY_PREFIX) or name in CUDA_LIBRARY_NAMES


def _runtime_variant(packages: Mapping[str, str]) -> str | None:
    """``cu126`` from ``nvidia-cuda-runtime-cu12 12.6.77`` (``nvidia-cuda-runtime 13.0.96``)."""
    for name, version in packages.items():
        if re.fullmatch(r"nvidia-cuda-runtime(-cu\d+)?", name):
            parts = version.split(".")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                return f"cu{parts[0]}{parts[1]}"
    return None


def _pypi_default(torch_version: str) -> str | None:
    from dlsetup.compat import knowledge_base
    from dlsetup.compat.frameworks import release_key

    key = release_key(torch_version)
    facts = knowledge_base().torch.releases.get(key) if key else None
    return None if facts is None else facts.pypi_default


@dataclass(frozen=True)
class ResolvedBuild:
    """The PyTorch build one platform's resolution holds.

    Attributes:
        variant: ``cpu``, ``cu126``, ``cu130``, ... (``cuda`` when a CUDA build's version is not
            known).
        torch_version: the torch version resolved (``2.14.0+cu126``).
        pypi_build: torch has no local version (PyPI's own build, or a mirror of it).
        cuda_libraries: the CUDA libraries resolved (``nvidia-*``, ``triton``), sorted.
        companions: ``(name, version)`` of torchvision / torchaudio resolved.
        problems: each companion that does not go with torch, in words.
        unchecked: what the metadata cannot show: the CUDA version a companion of PyPI's CUDA
            torch was built for (PyPI's builds carry no local version; ``dlsetup doctor``
            reads it from the installed package), where the wheel's ``NAME/version.py`` could
            not be read either (:mod:`dlsetup.envs.venv.companion_cuda`).
        checked: each companion of PyPI's CUDA torch whose wheel's ``NAME/version.py`` names
            torch's CUDA build, in words.
    """

    variant: str
    torch_version: str
    pypi_build: bool
    cuda_libraries: tuple[str, ...]
    companions: tuple[tuple[str, str], ...]
    problems: tuple[str, ...]
    unchecked: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()

    def describe(self) -> str:
        """``torch 2.14.0, PyPI's CUDA 13.0 build (3 CUDA libraries as wheels: nvidia-*, triton)``."""
        if not self.pypi_build:
            return f"torch {self.torch_version} ({self.variant} build)"
        if not self.cuda_libraries:
            return f"torch {self.torch_version} (PyPI's CPU build)"
        cuda = variant_cuda_text(self.variant)
        return (
            f"torch {self.torch_version}, PyPI's CUDA{cuda} build "
            f"({len(self.cuda_libraries)} CUDA libraries as wheels: "
            f"{', '.join(_library_groups(self.cuda_libraries))}), which also runs on a CPU"
        )


def variant_cuda_text(variant: str) -> str:
    """``" 13.0"`` for ``cu130``; empty when the variant names no CUDA version."""
    digits = variant.removeprefix("cu")
    if variant.startswith("cu") and digits.isdigit() and len(digits) >= 2:
        return f" {digits[:-1]}.{digits[-1]}"
    return ""


def _library_groups(names: Sequence[str]) -> list[str]:
    groups = ["nvidia-*"] if any(n.startswith(CUDA_LIBRARY_PREFIX) for n in names) else []
    return groups + sorted(n for n in names if n in CUDA_LIBRARY_NAMES)


def _companion_problem(name: str, version: str, torch_version: str) -> str | None:
    from dlsetup.compat.companions import pair_fits

    mine, theirs = local_tag(version), local_tag(torch_version)
    if mine != theirs:
        what = f"the {mine} build" if mine else "PyPI's build (no local version)"
        other = f"the {theirs} build" if theirs else "PyPI's build"
        return (
            f"{name} {version} is {what}, torch {torch_version} is {other}: a companion loads "
            "only beside a torch of its own variant"
        )
    verdict = pair_fits(name, version, torch_version)
    return verdict.reason if verdict.fits is False else None


def resolved_build(packages: Mapping[str, str]) -> ResolvedBuild | None:
    """The PyTorch build in one platform's resolution (``{name: version}``); None without torch."""
    from dlsetup.compat.companions import COMPANIONS

    torch = packages.get("torch")
    if torch is None:
        return None
    libraries = tuple(sorted(n for n in packages if is_cuda_library(n)))
    tag = local_tag(torch)
    if tag:
        variant = tag
    elif libraries:
        variant = _runtime_variant(packages) or _pypi_default(torch) or "cuda"
    else:
        variant = "cpu"
    companions = tuple((c, packages[c]) for c in COMPANIONS if c in packages)
    problems = tuple(p for c, v in companions if (p := _companion_problem(c, v, torch)) is not None)
    unchecked = tuple(
        f"{c} {v} is PyPI's build, whose metadata does not name the CUDA version it was built "
        f"for (torch's: {variant_cuda_text(variant).strip() or 'not named'}); dlsetup doctor "
        "checks the pair once installed"
        for c, v in companions
        if not tag and libraries and not local_tag(v)
    )
    return ResolvedBuild(variant, torch, not tag, libraries, companions, problems, unchecked)


def holds_cuda(build: ResolvedBuild) -> bool:
    """Whether the build is a CUDA one (by its variant or the CUDA libraries beside it)."""
    return build.variant != "cpu" or bool(build.cuda_libraries)


def fits_label(build: ResolvedBuild, expected: str) -> bool:
    """Whether ``build`` is what a lock labelled ``expected`` (``cpu``, ``cu126``) may hold: a cpu
    lock holds no CUDA library, a ``cuXYZ`` lock a build of that CUDA version."""
    if expected == "cpu":
        return not holds_cuda(build)
    return build.variant == expected


# --- size and origin ------------------------------------------------------------------------


def _wheel_size(wheel: Mapping[str, Any]) -> int | None:
    size = wheel.get("size")
    if isinstance(size, int):
        return size
    url = wheel.get("url")
    if isinstance(url, str) and url.startswith("file:"):
        from pathlib import Path

        try:
            return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)).stat().st_size
        except OSError:
            return None
    return None


def download_bytes(packages: Iterable[Mapping[str, Any]]) -> int | None:
    """The bytes of wheels one platform's resolution installs (the largest wheel a package
    offers, so an upper bound); None when no size is known."""
    total, known = 0, False
    for package in packages:
        sizes = [s for w in package.get("wheels", []) if (s := _wheel_size(w)) is not None]
        if sizes:
            total += max(sizes)
            known = True
    return total if known else None


def human_size(size: int) -> str:
    """``2.6 GB`` (GiB, as uv and pip count), ``120 MB``."""
    if size >= LARGE_DOWNLOAD:
        return f"{size / LARGE_DOWNLOAD:.1f} GB"
    return f"{size / (1 << 20):.0f} MB"


def origin(url: str, indexes: Sequence[str]) -> str:
    """Where a wheel at ``url`` comes from, as the user named it: the index whose root holds it
    (``file:///opt/pypi-more/simple`` for ``file:///opt/pypi-more/files/...``), ``PyPI`` for
    PyPI's file host, else the wheel's directory (a find-links directory)."""
    from dlsetup.envs.credentials import strip_auth

    bare = strip_auth(url)
    for index in indexes:
        plain = strip_auth(index).rstrip("/")
        root = plain.removesuffix("/simple")
        if plain and bare.startswith(root + "/"):
            return plain
    if urllib.parse.urlparse(bare).hostname == _PYPI_FILES:
        return "PyPI"
    return bare.rsplit("/", 1)[0]


def origins(
    packages: Iterable[Mapping[str, Any]], indexes: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    """``(name, origin)`` of each package, as :func:`origin` names it."""
    found = []
    for package in packages:
        wheels = package.get("wheels", [])
        url = wheels[0].get("url") if wheels else None
        if isinstance(url, str):
            found.append((str(package["name"]), origin(url, indexes)))
    return tuple(found)
