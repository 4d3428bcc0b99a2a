"""The CUDA library wheels (``nvidia-cudnn-cu12``, ``nvidia-cublas-cu12``, ...) installed in the
target environment, and the exact versions its frameworks pin them to.

PyTorch's Linux x86-64 wheels pin them unconditionally (``Requires-Dist: nvidia-cudnn-cu12
(==9.1.0.70) ; platform_system == "Linux" and platform_machine == "x86_64"``); TensorFlow pins them
in its ``and-cuda`` extra (``Requires-Dist: nvidia-cudnn-cu12 ==9.3.0.75 ; extra == 'and-cuda'``).
pip installs one version of each package per environment, so two frameworks that pin different
versions leave one of them on a version it was not built with.

Read from the ``*.dist-info`` directories on the target interpreter's ``sys.path`` (directory
listings and two small METADATA files; no import of any framework).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

from dlsetup import children

#: Frameworks whose pins are read (distribution names, normalised).
FRAMEWORK_DISTS = ("torch", "tensorflow")

#: The CUDA library wheels judged: cuDNN and cuBLAS (both bundle kernels a framework is built for).
_LIBRARY_DIST = re.compile(r"^nvidia_(cudnn|cublas)_cu\d+$")
_REQUIRES = re.compile(
    r"^Requires-Dist:\s*(nvidia[-_.](?:cudnn|cublas)[-_.]cu\d+)\s*\(?\s*==\s*([\w.]+)\s*\)?"
    r"\s*(?:;\s*(.*))?$"
)


@dataclass(frozen=True)
class WheelPin:
    """A framework's exact pin of a CUDA library wheel.

    Attributes:
        framework: ``torch`` or ``tensorflow``.
        framework_version: its installed version (``"2.5.1"``).
        package: the pinned distribution, normalised (``nvidia-cudnn-cu12``).
        version: the pinned version (``"9.1.0.70"``).
        marker: the pin's environment marker (``extra == 'and-cuda'``), or "".
        source: ``metadata`` (the installed framework's own METADATA) or ``knowledge_base``
            (its METADATA names no CUDA library wheel: the pins PyPI's wheel of that release
            carries, from ``compat/data/cuda_wheel_pins.yaml``).
    """

    framework: str
    framework_version: str
    package: str
    version: str
    marker: str = ""
    source: str = "metadata"


@dataclass(frozen=True)
class CudaWheelsFacts:
    """CUDA library wheels of the target environment.

    Attributes:
        python: the interpreter whose ``sys.path`` was read.
        installed: ``{package: version}`` of the installed cuDNN/cuBLAS wheels.
        pins: every framework pin on them (markers for another platform dropped).
    """

    python: str
    installed: dict[str, str] = field(default_factory=dict)
    pins: tuple[WheelPin, ...] = ()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _target_path(python: str | None, timeout: float) -> list[str]:
    if python is None or os.path.realpath(python) == os.path.realpath(sys.executable):
        return list(sys.path)
    argv = [python, "-c", "import json, sys; print(json.dumps(sys.path))"]
    out = children.run(argv, timeout=timeout, grace=1.0)
    if out.timed_out:
        raise subprocess.TimeoutExpired(argv, timeout, out.stdout, out.stderr)
    if out.returncode != 0:
        raise subprocess.CalledProcessError(out.returncode, argv, out.stdout, out.stderr)
    value = json.loads(out.stdout)
    return [str(p) for p in value] if isinstance(value, list) else []


def _marker_applies(marker: str) -> bool:
    """True when the pin applies here; an ``extra`` counts as installed (the wheels are there)."""
    if not marker:
        return True
    try:
        from packaging.markers import Marker

        return bool(Marker(marker).evaluate({"extra": "and-cuda"}))
    except Exception:  # an unparseable marker: keep the pin rather than hide a conflict
        return True


def parse_pins(framework: str, framework_version: str, metadata: str) -> list[WheelPin]:
    """The cuDNN/cuBLAS ``==`` pins in a framework's METADATA text that apply on this platform."""
    pins = []
    for line in metadata.splitlines():
        found = _REQUIRES.match(line.strip())
        if found is None:
            continue
        marker = (found.group(3) or "").strip()
        if _marker_applies(marker):
            pins.append(
                WheelPin(
                    framework, framework_version, _normalise(found.group(1)), found.group(2), marker
                )
            )
    return pins


_NAMES_NVIDIA = re.compile(r"^Requires-Dist:\s*nvidia[-_.]", re.MULTILINE)


def known_pins(framework: str, version: str) -> list[WheelPin]:
    """The pins of PyPI's Linux x86-64 wheel of ``framework`` ``version`` from the knowledge base
    (none elsewhere, or for a build with a local version such as ``+cpu``)."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return []
    from dlsetup.compat.wheel_pins import release_pins  # the data file: only when needed

    found = release_pins(framework, version) or {}
    return [
        WheelPin(framework, version, package, pinned, "", "knowledge_base")
        for package, pinned in sorted(found.items())
    ]


def probe_cuda_wheels(python: str | None = None, timeout: float = 10.0) -> CudaWheelsFacts:
    """Read the installed cuDNN/cuBLAS wheels and the frameworks' pins on them.

    Args:
        python: the target interpreter (default: this one, read without a subprocess).
        timeout: seconds for the target interpreter to print its ``sys.path``.
    """
    installed: dict[str, str] = {}
    pins: list[WheelPin] = []
    seen: set[str] = set()
    unpinned: list[tuple[str, str]] = []  # frameworks whose METADATA names no nvidia-* wheel
    for entry in _target_path(python, timeout):
        if not entry or not os.path.isdir(entry):
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            dist, _, version = name[: -len(".dist-info")].partition("-")
            dist_key = dist.lower()
            if dist_key in seen:  # the first on sys.path wins, as for imports
                continue
            if _LIBRARY_DIST.match(dist_key):
                seen.add(dist_key)
                installed[_normalise(dist_key)] = version
            elif dist_key in FRAMEWORK_DISTS:
                seen.add(dist_key)
                try:
                    with open(os.path.join(entry, name, "METADATA"), encoding="utf-8") as fh:
                        text = fh.read()
                except OSError:
                    continue
                pins.extend(parse_pins(dist_key, version, text))
                if not _NAMES_NVIDIA.search(text):
                    unpinned.append((dist_key, version))
    if installed:  # a conflict needs a CUDA library wheel installed; only then ask the data
        for framework, version in unpinned:
            pins.extend(known_pins(framework, version))
    return CudaWheelsFacts(python=python or sys.executable, installed=installed, pins=tuple(pins))
