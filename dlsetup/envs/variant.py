"""``--variant auto``: pick cpu, cuda or mps from what the hardware probes see.

Rules: a CUDA variant needs an NVIDIA GPU and a driver that reports a CUDA version (NVML's
``cuda_driver_version``), and a platform where CUDA exists (:mod:`dlsetup.platforms`); Apple silicon
(osx-arm64) gets mps when the target has it; everything else gets cpu. ``--cuda X.Y`` overrides the
driver's CUDA version and ``--gpu-arch X.Y`` the GPUs (so a machine without them can lock a CUDA
environment for another one).

The variant carries the GPUs it was chosen for (each with its compute capability): the CUDA *line*
(:func:`dlsetup.compat.lines.choose_cuda_line`) is then chosen per platform from them, in
:mod:`dlsetup.envs.conda.request`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlsetup.envs.files.spec import validate_cuda
from dlsetup.errors import InputError
from dlsetup.platforms import CUDA_PLATFORMS

if TYPE_CHECKING:
    from dlsetup.compat.lines import Gpu
    from dlsetup.probes.nvidia import NvidiaFacts

#: where the GPUs of a choice came from
GPUS_NVML = "driver:nvml"
GPUS_OPTION = "option:--gpu-arch"
GPUS_NONE = "none"


@dataclass(frozen=True)
class VariantChoice:
    """The variant chosen and why.

    Attributes:
        variant: ``cpu`` | ``cuda`` | ``mps``.
        cuda: the CUDA version to solve for (cuda variant only), else ``None``.
        reason: one sentence for the user ("NVIDIA driver 550.54.14 supports CUDA 12.4").
        gpus: the GPUs a CUDA build must run on (NVML's, or ``--gpu-arch``); empty: not known.
        gpu_source: ``driver:nvml``, ``option:--gpu-arch`` or ``none``.
        driver_version: the NVIDIA driver's version when NVML gave the CUDA version (for the
            minor-version-compatibility floor), else None.
    """

    variant: str
    cuda: str | None
    reason: str
    gpus: tuple[Gpu, ...] = ()
    gpu_source: str = GPUS_NONE
    driver_version: str | None = None


def _probe() -> NvidiaFacts:
    from dlsetup.probes.nvidia import probe_nvidia

    return probe_nvidia()


def nvml_gpus(facts: NvidiaFacts) -> tuple[Gpu, ...]:
    """The GPUs NVML sees, with their compute capabilities (a GPU whose capability NVML could not
    read, or that is lost, is left out: nothing can be checked for it)."""
    from dlsetup.compat.lines import Gpu

    gpus = []
    for g in facts.gpus:
        cc = g.compute_capability
        if g.lost or not isinstance(cc, tuple):
            continue
        name = g.name if isinstance(g.name, str) else "NVIDIA GPU"
        gpus.append(Gpu(g.index, name, cc))
    return tuple(gpus)


def _option_gpus(gpu_arch: tuple[str, ...]) -> tuple[Gpu, ...]:
    from dlsetup.compat.lines import gpus_from_arch

    return gpus_from_arch(gpu_arch)


def choose_variant(
    requested: str,
    *,
    cuda: str | None,
    platforms: tuple[str, ...],
    has_variant: Callable[[str], bool],
    probe: Callable[[], NvidiaFacts] = _probe,
    gpu_arch: tuple[str, ...] = (),
) -> VariantChoice:
    """Resolve ``--variant`` (``auto`` included), ``--cuda`` and ``--gpu-arch`` into a choice.

    Args:
        requested: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        cuda: ``--cuda`` when given.
        platforms: the platforms being locked.
        has_variant: whether the target has a variant (``"mps"`` only exists for pytorch; a
            user's file without a CUDA package has no ``"cuda"`` for auto).
        probe: returns this machine's NVIDIA facts (NVML); called only when needed.
        gpu_arch: ``--gpu-arch`` values (``"6.1"``, ``"8.6,6.1"``, ``"sm_61"``).

    Raises:
        InputError: a cuda variant with no CUDA version known, a malformed ``--cuda`` or
            ``--gpu-arch``, or an impossible combination.
    """
    if cuda is not None:
        validate_cuda(cuda)
    option_gpus = _option_gpus(gpu_arch) if gpu_arch else ()
    if requested in ("cpu", "mps"):
        for given, value in (("--cuda", cuda), ("--gpu-arch", ",".join(gpu_arch) or None)):
            if value is not None:
                raise InputError(
                    f"{given} {value} only applies to --variant cuda (got --variant {requested})",
                    fix=f"drop {given}, or use --variant cuda {given} {value}",
                )
        return VariantChoice(requested, None, f"--variant {requested} was asked for")
    if requested not in ("cuda", "auto"):
        raise InputError(f"unknown variant {requested!r}; valid variants: auto, cpu, cuda, mps")
    if cuda is not None:  # the driver is named: GPUs only from --gpu-arch, nothing probed
        source = GPUS_OPTION if option_gpus else GPUS_NONE
        return VariantChoice("cuda", cuda, f"--cuda {cuda} was asked for", option_gpus, source)
    if requested == "auto" and not option_gpus:
        if platforms and all(p == "osx-arm64" for p in platforms) and has_variant("mps"):
            return VariantChoice("mps", None, "Apple silicon (osx-arm64): the Metal (MPS) backend")
        if not any(p in CUDA_PLATFORMS for p in platforms):
            return VariantChoice("cpu", None, f"no CUDA on {', '.join(platforms)}")
        if not has_variant("cuda"):
            return VariantChoice("cpu", None, "this target has no CUDA variant")
    facts = probe()
    driver_cuda = facts.cuda_driver_version
    gpus, source = (option_gpus, GPUS_OPTION) if option_gpus else (nvml_gpus(facts), GPUS_NVML)
    if requested == "cuda" or option_gpus:
        if isinstance(driver_cuda, str):
            return VariantChoice(
                "cuda",
                driver_cuda,
                f"the NVIDIA driver {facts.driver_version} supports CUDA {driver_cuda}",
                gpus,
                source,
                _text(facts.driver_version),
            )
        asked = "--variant cuda" if not option_gpus else f"--gpu-arch {','.join(gpu_arch)}"
        raise InputError(
            f"{asked} needs a CUDA version, and NVML could not give one ({facts.status}: "
            f"{driver_cuda})",
            fix="name the CUDA version the target machine's driver supports, e.g. --cuda 12.4 "
            "(nvidia-smi shows it as 'CUDA Version')",
        )
    if facts.status != "ok":
        return VariantChoice("cpu", None, f"no usable NVIDIA driver ({facts.status})")
    if not facts.gpus:
        return VariantChoice("cpu", None, "the NVIDIA driver sees no GPU")
    if not isinstance(driver_cuda, str):
        return VariantChoice(
            "cpu", None, f"the driver does not report a CUDA version ({driver_cuda})"
        )
    return VariantChoice(
        "cuda",
        driver_cuda,
        f"{len(facts.gpus)} NVIDIA GPU(s); driver {facts.driver_version} supports CUDA {driver_cuda}",
        gpus,
        source,
        _text(facts.driver_version),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
