"""A local PyTorch-shaped wheel index and a small PyPI beside it, built at test time (no network).

Laid out like the real ones, as PEP 503 "simple" indexes that uv reads through ``file://`` URLs:

* ``ROOT/whl/<variant>/simple/<project>/index.html`` for ``cpu``, ``cu126`` and ``cu130`` (the shape of
  ``https://download.pytorch.org/whl/<variant>``): ``torch`` wheels named and tagged like the
  real ones (``torch-2.14.0+cu126-cp311-cp311-manylinux_2_28_x86_64.whl``, the cpu variant's
  macOS wheel without a local version), each requiring its CUDA libraries as ``nvidia-*`` wheels
  on Linux, which the variant's index serves too (``nvidia-cudnn-cu12`` on cu126,
  ``nvidia-cudnn-cu13`` on cu130).
  Each variant's index serves PyTorch's companions of the same variant too: ``torchvision`` 0.29.0
  and ``torchaudio`` 2.11.0 (``+cpu``/``+cu126``/``+cu130``; both built on torch's stable ABI, so
  they require ``torch>=`` their own release, as the real ones do).
* ``ROOT/pypi/simple``: ``numpy``, ``ipykernel``, ``tensorflow`` (with an ``and-cuda`` extra that
  pulls ``nvidia-cudnn-cu12``), ``tensorflow-cpu`` and the ``nvidia-*`` wheels TensorFlow needs;
  and PyPI's own PyTorch builds, shaped like the real ones: a Linux ``torch`` without a local
  version that is a CUDA build (``nvidia-*-cu13`` requirements and ``triton``; 2.14.0 and the
  knowledge base's newest release), with
  ``torchvision``/``torchaudio`` of the same shape (:data:`PYPI_TORCH`).

Each variant's index also holds a ``torch`` release the knowledge base does not know yet
(:func:`torch_versions`): a lock that let the resolver take the newest would pick it, so a lock
showing the recommended release shows the pin. Every stand-in ``torch`` has ``torch/version.py`` (``cuda = "12.6"`` or ``None``)
and a ``torchrun`` console script printing the variant, so a test can run it from the venv.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.wheels import Wheel, build_index

#: the variants laid out, and their CUDA version (None: cpu)
VARIANTS: dict[str, str | None] = {"cpu": None, "cu126": "12.6", "cu130": "13.0"}
PYTHONS: tuple[str, ...] = ("cp311", "cp312")
LINUX = "manylinux_2_28_x86_64"
LINUX_ARM = "manylinux_2_28_aarch64"
WINDOWS = "win_amd64"
MAC = "macosx_11_0_arm64"
LINUX_ONLY = "platform_system == 'Linux'"
#: the CUDA libraries each variant's torch requires on Linux
CUDA_LIBS: dict[str, tuple[tuple[str, str], ...]] = {
    "cu126": (("nvidia-cudnn-cu12", "9.10.2.21"), ("nvidia-cuda-runtime-cu12", "12.6.77")),
    "cu130": (("nvidia-cudnn-cu13", "9.13.0.50"), ("nvidia-cuda-runtime", "13.0.96")),
}
#: PyTorch's companions on every variant's index and on the small PyPI (stable-ABI releases)
TORCHVISION = "0.29.0"
TORCHAUDIO = "2.11.0"
#: the torch release PyPI's CUDA build has here (and the knowledge base's newest, 2.15.0, too), and
#: what it requires (PyPI's Linux torch 2.14 is built for CUDA 13.0, the data's ``pypi_default``)
PYPI_TORCH = "2.14.0"
PYPI_TORCH_LIBS: tuple[tuple[str, str], ...] = (
    ("nvidia-cudnn-cu13", "9.13.0.50"),
    ("nvidia-cuda-runtime", "13.0.96"),
    ("triton", "3.6.0"),
)
NUMPY = "2.3.4"
IPYKERNEL = "7.1.0"
TENSORFLOW = "2.21.0"
EXTRA = "Provides-Extra: and-cuda"


def torch_versions() -> tuple[str, ...]:
    """The torch versions in every variant's index: the knowledge base's two newest releases and
    the next one, which it does not know yet (``2.14.0``, ``2.15.0``, ``2.16.0``)."""
    from dlsetup.compat.frameworks import torch_releases

    known = torch_releases()[-2:]
    major, minor = (int(x) for x in known[-1].split("."))
    return (*(f"{r}.0" for r in known), f"{major}.{minor + 1}.0")


@dataclass(frozen=True)
class TorchIndex:
    """The indexes built.

    Attributes:
        root: the directory holding everything.
        torch_url: ``file://ROOT/whl/{variant}/simple`` (``str.format`` with ``variant=``), for
            ``--torch-index-url``.
        pypi_url: ``file://ROOT/pypi/simple``, for ``--index-url``.
    """

    root: Path
    torch_url: str
    pypi_url: str

    def variant_url(self, variant: str) -> str:
        """The index of one variant (``file://ROOT/whl/cu126/simple``)."""
        return self.torch_url.format(variant=variant)


def _torch_files(version: str, variant: str, cuda: str | None) -> dict[str, bytes]:
    init = (
        f'__version__ = "{version}"\n'
        "from torch.version import cuda as _cuda\n\n\n"
        "def _main() -> None:\n"
        f'    print("torch {version} {variant}", _cuda)\n'
    )
    dist_info = f"torch-{version}.dist-info"
    return {
        "torch/__init__.py": init.encode(),
        "torch/version.py": f"cuda = {cuda!r}\n".encode(),
        f"{dist_info}/entry_points.txt": b"[console_scripts]\ntorchrun = torch:_main\n",
    }


def _torch_wheels(variant: str, cuda: str | None) -> list[Wheel]:
    requires = tuple(f"{name}=={ver}; {LINUX_ONLY}" for name, ver in CUDA_LIBS.get(variant, ()))
    wheels: list[Wheel] = []
    for release in torch_versions():
        local = f"{release}+{variant}"
        for py in PYTHONS:
            for platform in (LINUX, WINDOWS, *((LINUX_ARM,) if variant == "cpu" else ())):
                wheels.append(
                    Wheel(
                        "torch",
                        local,
                        requires,
                        tag=f"{py}-{py}-{platform}",
                        requires_python=">=3.10",
                        files=_torch_files(local, variant, cuda),
                    )
                )
            if variant == "cpu":  # download.pytorch.org/whl/cpu: macOS wheels have no +cpu
                wheels.append(
                    Wheel(
                        "torch",
                        release,
                        tag=f"{py}-none-{MAC}",
                        requires_python=">=3.10",
                        files=_torch_files(release, variant, cuda),
                    )
                )
    for name, ver in CUDA_LIBS.get(variant, ()):
        for platform in (LINUX, WINDOWS):
            wheels.append(Wheel(name, ver, tag=f"py3-none-{platform}"))
    return wheels + _companion_wheels(f"+{variant}", variant == "cpu")


def _companion_wheels(local: str, mac: bool) -> list[Wheel]:
    """torchvision and torchaudio with the local version ``local`` (empty: PyPI's), for Linux
    and Windows (and, where ``mac``: the cpu index, Linux aarch64 and macOS, the macOS wheels
    without a local version)."""
    wheels: list[Wheel] = []
    for name, release, floor in (
        ("torchvision", TORCHVISION, "2.14.0"),
        ("torchaudio", TORCHAUDIO, "2.11.0"),
    ):
        for platform in (LINUX, WINDOWS, *((LINUX_ARM, MAC) if mac else ())):
            version = release if platform == MAC else f"{release}{local}"
            requires = (f"torch>={floor}",)
            wheels.append(Wheel(name, version, requires, tag=f"py3-none-{platform}"))
    return wheels


def _pypi_torch_wheels() -> list[Wheel]:
    """PyPI's torch: a CUDA build on Linux (no local version; nvidia-* and triton required)."""
    requires = tuple(f"{name}=={ver}; {LINUX_ONLY}" for name, ver in PYPI_TORCH_LIBS)
    wheels = [
        Wheel(
            "torch",
            version,
            requires,
            tag=f"{py}-{py}-{LINUX}",
            requires_python=">=3.10",
            files=_torch_files(version, "pypi", "13.0"),
        )
        for version in dict.fromkeys((PYPI_TORCH, torch_versions()[1]))
        for py in PYTHONS
    ]
    for name, ver in PYPI_TORCH_LIBS:
        wheels.append(Wheel(name, ver, tag=f"py3-none-{LINUX}"))
    return wheels + _companion_wheels("", mac=False)


def _pypi_wheels() -> list[Wheel]:
    wheels = [Wheel("ipykernel", IPYKERNEL, ("numpy>=1.24",), requires_python=">=3.9")]
    # tensorflow 2.21's and-cuda extra asks for ranges (nvidia-cudnn-cu12 resolves to 9.28 alone),
    # so the version torch's index pins fits it
    and_cuda = tuple(
        f"{name}>={ver.split('.')[0]},<{int(ver.split('.')[0]) + 1}; extra == 'and-cuda' and "
        f"{LINUX_ONLY}"
        for name, ver in CUDA_LIBS["cu126"]
    )
    for py in PYTHONS:
        for platform in (LINUX, LINUX_ARM, WINDOWS, MAC):
            tag = f"{py}-{py}-{platform}"
            wheels.append(Wheel("numpy", NUMPY, tag=tag, requires_python=">=3.10"))
            # wheels.py writes Requires-Dist lines only: the extra's declaration rides on one
            wheels.append(
                Wheel("tensorflow", TENSORFLOW, (f"numpy>=1.26\n{EXTRA}", *and_cuda), tag=tag)
            )
            wheels.append(Wheel("tensorflow-cpu", TENSORFLOW, ("numpy>=1.26",), tag=tag))
    for name, ver in CUDA_LIBS["cu126"]:
        for platform in (LINUX, WINDOWS):
            wheels.append(Wheel(name, ver, tag=f"py3-none-{platform}"))
    return wheels + _pypi_torch_wheels()


def build_torch_index(root: Path) -> TorchIndex:
    """Build the PyTorch-shaped indexes and the small PyPI under ``root`` (a few hundred ms)."""
    for variant, cuda in VARIANTS.items():
        build_index(root / "whl" / variant, _torch_wheels(variant, cuda))
    pypi = build_index(root / "pypi", _pypi_wheels())
    torch_url = (root / "whl").resolve().as_uri() + "/{variant}/simple"
    return TorchIndex(root=root, torch_url=torch_url, pypi_url=pypi)
