"""Firing and silent cases over constructed facts for the GPU health checks and the failure modes
of issue 11; :mod:`tests.doctor.test_checks` merges them into its FIRES/SILENT tables, so the
catalogue-wide tests (every id fires and stays silent, docs list every id) cover them.

The helpers of test_checks are looked up when a case runs, not at import, so this module can be
imported while test_checks itself is still being imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlsetup.checks.context import DoctorFacts

Case = Callable[[], DoctorFacts]


def _tc() -> Any:
    from tests.doctor import test_checks

    return test_checks


def one_gpu(**kw: Any) -> DoctorFacts:
    """The healthy H100 of test_checks with some NVML fields replaced."""
    tc = _tc()
    return tc.facts(nvidia=tc.nvidia(gpus=(tc.gpu(**kw),)))


def gpus(count: int, **kw: Any) -> DoctorFacts:
    tc = _tc()
    return tc.facts(nvidia=tc.nvidia(gpus=tuple(tc.gpu(i, **kw) for i in range(count))))


BUSY = {"utilization_gpu_percent": 97, "clocks_event_reasons": 0}
IDLE = {"utilization_gpu_percent": 0, "clocks_event_reasons": 0x1}
LINK = {"pcie_gen_max": 5, "pcie_width_max": 16, "pcie_gen_gpu_max": 5}

HEALTH_FIRES: dict[str, Case] = {
    "gpu.pcie_link_degraded": lambda: one_gpu(
        **LINK, **BUSY, pcie_gen_current=5, pcie_width_current=8
    ),
    "gpu.pcie_slot_limits_gpu": lambda: one_gpu(
        pcie_gen_current=3, pcie_gen_max=3, pcie_gen_gpu_max=5
    ),
    "gpu.clocks_slowdown": lambda: one_gpu(utilization_gpu_percent=99, clocks_event_reasons=0x88),
    "gpu.temperature_near_slowdown": lambda: one_gpu(temperature_c=85, temperature_slowdown_c=87),
    "gpu.power_limit_below_default": lambda: one_gpu(
        power_limit_w=450.0, power_limit_default_w=700.0
    ),
    "gpu.ecc_errors_aggregate": lambda: one_gpu(ecc_errors_uncorrected_aggregate=2),
    "gpu.reset_pending": lambda: one_gpu(remapped_rows_pending=True),
    "gpu.row_remap_failed": lambda: one_gpu(remapped_rows_failed=True),
    "gpu.persistence_off": lambda: gpus(2, persistence_mode=False),
}

#: The nearest healthy variant of each: the thing that would look alike but is normal.
HEALTH_SILENT: dict[str, Case] = {
    # Gen1 at idle is power saving, not a fault.
    "gpu.pcie_link_degraded": lambda: one_gpu(
        **LINK, **IDLE, pcie_gen_current=1, pcie_width_current=16
    ),
    "gpu.pcie_slot_limits_gpu": lambda: one_gpu(pcie_gen_current=1, **LINK),
    # At the power limit under load: sw_power_cap is the limit doing its job.
    "gpu.clocks_slowdown": lambda: one_gpu(utilization_gpu_percent=99, clocks_event_reasons=0x4),
    "gpu.temperature_near_slowdown": lambda: one_gpu(temperature_c=70, temperature_slowdown_c=87),
    "gpu.power_limit_below_default": lambda: one_gpu(
        power_limit_w=700.0, power_limit_default_w=700.0
    ),
    # Errors since the driver loaded are gpu.ecc_errors' job; this one stays quiet then.
    "gpu.ecc_errors_aggregate": lambda: one_gpu(
        ecc_errors_uncorrected=2, ecc_errors_uncorrected_aggregate=2
    ),
    "gpu.reset_pending": lambda: one_gpu(remapped_rows_pending=False, retired_pages_pending=False),
    "gpu.row_remap_failed": lambda: one_gpu(remapped_rows_failed=False),
    # One desktop GPU: persistence off is the normal default there.
    "gpu.persistence_off": lambda: one_gpu(name="NVIDIA GeForce RTX 4090", persistence_mode=False),
}


def register(fires: dict[str, Case], silent: dict[str, Case]) -> None:
    """Add this module's cases to test_checks' tables."""
    fires.update(HEALTH_FIRES)
    silent.update(HEALTH_SILENT)
