"""Everything the checks look at: the facts of every probe, each possibly missing."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlsetup.facts import Maybe, Missing
from dlsetup.probes.cuda_libs import CudaLibsFacts, VisibleResolution, resolve_visible_devices
from dlsetup.probes.envmanagers import EnvManagersFacts
from dlsetup.probes.frameworks import FrameworksFacts
from dlsetup.probes.health_sysfs import HealthFacts
from dlsetup.probes.nvidia import GpuFacts, NvidiaFacts
from dlsetup.probes.system import SystemFacts


@dataclass(frozen=True)
class DoctorFacts:
    """The inputs of every check.

    Attributes:
        system: host facts, or why they are missing.
        nvidia: NVML facts (always present; ``status`` says whether NVML answered).
        cuda_libs: CUDA libraries and ``CUDA_VISIBLE_DEVICES``.
        env_managers: conda, pip, uv, ...
        frameworks: torch and TensorFlow in the target interpreter.
        probe_errors: ``{probe: error text}`` for probes that failed outright.
        health: XID errors, InfiniBand ports, GPUs on the PCI bus (read from the kernel).
    """

    system: Maybe[SystemFacts]
    nvidia: NvidiaFacts
    cuda_libs: Maybe[CudaLibsFacts]
    env_managers: Maybe[EnvManagersFacts]
    frameworks: Maybe[FrameworksFacts]
    probe_errors: dict[str, str] = field(default_factory=dict)
    health: Maybe[HealthFacts] = Missing("not_probed")

    @property
    def gpus(self) -> tuple[GpuFacts, ...]:
        """The GPUs NVML sees, when it answered."""
        return self.nvidia.gpus if self.nvidia.status == "ok" else ()

    @property
    def os_name(self) -> str:
        """``linux``/``darwin``/``windows``, or ``unknown``."""
        return "unknown" if isinstance(self.system, Missing) else self.system.os_name

    @property
    def driver_os(self) -> str:
        """The OS column of the driver tables: ``windows`` on native Windows, else ``linux``."""
        return "windows" if self.os_name == "windows" else "linux"

    @property
    def visible(self) -> VisibleResolution | None:
        """``CUDA_VISIBLE_DEVICES`` resolved against NVML's GPUs the way CUDA reads it.

        None when the CUDA facts are missing or NVML lists no GPU (nothing to resolve against).
        """
        if isinstance(self.cuda_libs, Missing) or not self.gpus:
            return None
        return resolve_visible_devices(
            self.cuda_libs.visible_devices,
            [g.uuid if isinstance(g.uuid, str) else "" for g in self.gpus],
            [
                g.mig_mode_current if isinstance(g.mig_mode_current, bool) else None
                for g in self.gpus
            ],
        )
