"""``--variant auto``: pick cpu, cuda or mps from what the hardware probes see.

Rules: a CUDA variant needs an NVIDIA GPU and a driver that reports a CUDA version (NVML's
``cuda_driver_version``), and a platform where CUDA exists; Apple silicon (osx-arm64) gets mps
when the target has it; everything else gets cpu. ``--cuda X.Y`` overrides the driver's CUDA
version (and lets a CPU-only machine lock a CUDA environment for another one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlsetup.envs.spec import validate_cuda
from dlsetup.envs.virtual import CUDA_PLATFORMS
from dlsetup.errors import InputError

if TYPE_CHECKING:
    from dlsetup.probes.nvidia import NvidiaFacts


@dataclass(frozen=True)
class VariantChoice:
    """The variant chosen and why.

    Attributes:
        variant: ``cpu`` | ``cuda`` | ``mps``.
        cuda: the CUDA version to solve for (cuda variant only), else ``None``.
        reason: one sentence for the user ("NVIDIA driver 550.54.14 supports CUDA 12.4").
    """

    variant: str
    cuda: str | None
    reason: str


def _probe() -> NvidiaFacts:
    from dlsetup.probes.nvidia import probe_nvidia

    return probe_nvidia()


def choose_variant(
    requested: str,
    *,
    cuda: str | None,
    platforms: tuple[str, ...],
    has_variant: Callable[[str], bool],
    probe: Callable[[], NvidiaFacts] = _probe,
) -> VariantChoice:
    """Resolve ``--variant`` (``auto`` included) and ``--cuda`` into a :class:`VariantChoice`.

    Args:
        requested: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        cuda: ``--cuda`` when given.
        platforms: the platforms being locked.
        has_variant: whether the target has a variant (``"mps"`` only exists for pytorch).
        probe: returns this machine's NVIDIA facts (NVML); called only when needed.

    Raises:
        InputError: a cuda variant with no CUDA version known, or an impossible combination.
    """
    if cuda is not None:
        validate_cuda(cuda)
    if requested in ("cpu", "mps"):
        if cuda is not None:
            raise InputError(
                f"--cuda {cuda} only applies to --variant cuda (got --variant {requested})",
                fix=f"drop --cuda, or use --variant cuda --cuda {cuda}",
            )
        return VariantChoice(requested, None, f"--variant {requested} was asked for")
    if requested == "cuda":
        if cuda is not None:
            return VariantChoice("cuda", cuda, f"--cuda {cuda} was asked for")
        facts = probe()
        driver_cuda = facts.cuda_driver_version
        if isinstance(driver_cuda, str):
            return VariantChoice(
                "cuda",
                driver_cuda,
                f"the NVIDIA driver {facts.driver_version} supports CUDA {driver_cuda}",
            )
        raise InputError(
            f"--variant cuda needs a CUDA version, and NVML could not give one ({facts.status}: "
            f"{driver_cuda})",
            fix="name the CUDA version the target machine's driver supports, e.g. --cuda 12.4 "
            "(nvidia-smi shows it as 'CUDA Version')",
        )
    if requested != "auto":
        raise InputError(f"unknown variant {requested!r}; valid variants: auto, cpu, cuda, mps")
    if cuda is not None:
        return VariantChoice("cuda", cuda, f"--cuda {cuda} was asked for")
    if platforms and all(p == "osx-arm64" for p in platforms) and has_variant("mps"):
        return VariantChoice("mps", None, "Apple silicon (osx-arm64): the Metal (MPS) backend")
    if not any(p in CUDA_PLATFORMS for p in platforms):
        return VariantChoice("cpu", None, f"no CUDA on {', '.join(platforms)}")
    facts = probe()
    if facts.status != "ok":
        return VariantChoice("cpu", None, f"no usable NVIDIA driver ({facts.status})")
    if not facts.gpus:
        return VariantChoice("cpu", None, "the NVIDIA driver sees no GPU")
    driver_cuda = facts.cuda_driver_version
    if not isinstance(driver_cuda, str):
        return VariantChoice(
            "cpu", None, f"the driver does not report a CUDA version ({driver_cuda})"
        )
    if not has_variant("cuda"):
        return VariantChoice("cpu", None, "this target has no CUDA variant")
    return VariantChoice(
        "cuda",
        driver_cuda,
        f"{len(facts.gpus)} NVIDIA GPU(s); driver {facts.driver_version} supports CUDA {driver_cuda}",
    )
