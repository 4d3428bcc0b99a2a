"""Doctor's rules: pure functions from :class:`DoctorFacts` to :class:`Finding` lists.

:data:`CHECK_IDS` is the catalogue of every finding id with its default severity; docs/doctor.md
documents each one and the tests make each fire and stay silent.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dlsetup.checks import environment_faults, health, nvidia, system
from dlsetup.checks.context import DoctorFacts
from dlsetup.checks.finding import SEVERITIES, Finding, Severity
from dlsetup.checks.supersede import supersede
from dlsetup.facts import Missing

Check = Callable[[DoctorFacts], list[Finding]]


def _frameworks_probed(facts: DoctorFacts) -> bool:
    """True when at least one framework probe ran (it may have failed: that is a finding)."""
    fw = facts.frameworks
    return not isinstance(fw, Missing) and not (
        isinstance(fw.torch, Missing) and isinstance(fw.tensorflow, Missing)
    )


def _over_frameworks(module: str, name: str) -> Check:
    """``dlsetup.checks.<module>.<name>``, imported when first needed.

    These checks judge only the framework probes: with no framework probed (``--no-frameworks``,
    neither torch nor TensorFlow installed, or the probe itself failed) they have nothing to
    judge, so they are not called and their modules (and the knowledge-base code they import:
    compat.*, packaging) are not imported. ``doctor --no-frameworks`` must stay within 0.3 s;
    tests/doctor/test_doctor_speed.py holds every such check to returning nothing then.
    """

    def check(facts: DoctorFacts) -> list[Finding]:
        if not _frameworks_probed(facts):
            return []
        found: list[Finding] = getattr(importlib.import_module(f"dlsetup.checks.{module}"), name)(
            facts
        )
        return found

    check.__name__ = check.__qualname__ = name
    return check


#: Every check, in report order (hardware and driver first, then frameworks, then the host).
CHECKS: tuple[Check, ...] = (
    environment_faults.check_container_gpu_access,
    nvidia.check_nvml_status,
    nvidia.check_functions_not_found,
    nvidia.check_gpu_lost,
    nvidia.check_gpu_unreachable,
    system.check_visible_devices,
    nvidia.check_mig,
    nvidia.check_memory_held,
    nvidia.check_ecc,
    *health.CHECKS,
    environment_faults.check_fabric_manager,
    environment_faults.check_ld_library_path,
    environment_faults.check_wheel_pins,
    _over_frameworks("frameworks", "check_import"),
    _over_frameworks("frameworks", "check_cuda_libs_failed"),
    _over_frameworks("frameworks", "check_cpu_build"),
    _over_frameworks("frameworks", "check_driver_vs_build"),
    _over_frameworks("frameworks", "check_arch"),
    _over_frameworks("frameworks", "check_cuda_unavailable"),
    _over_frameworks("frameworks", "check_tf_windows"),
    _over_frameworks("frameworks", "check_python_support"),
    _over_frameworks("frameworks", "check_newer_release"),
    _over_frameworks("companions", "check_companions"),
    environment_faults.check_nvcc,
    system.check_cpu_avx,
    system.check_ram,
    system.check_disk,
    system.check_wsl_libcuda,
)

#: id -> the severity it has (some ids can be raised or lowered by context; this is the usual one).
#: Built on first use (module ``__getattr__``): the companions' ids come from the knowledge-base
#: module :mod:`dlsetup.checks.companions`, which ``doctor --no-frameworks`` does not import.
CHECK_IDS: dict[str, Severity]


def _check_ids() -> dict[str, Severity]:
    from dlsetup.checks import companions

    return {
        "nvml.no_library": "info",
        "nvml.driver_not_loaded": "error",
        "nvml.driver_mismatch": "error",
        "nvml.no_permission": "warning",
        "nvml.error": "warning",
        "nvml.function_not_found": "info",
        "gpu.lost": "error",
        "gpu.unreachable": "error",
        "cuda_visible_devices.hides_all": "warning",
        "cuda_visible_devices.unknown_device": "error",
        "gpu.mig_enabled": "warning",
        "gpu.mig_pending_reset": "warning",
        "gpu.memory_held": "warning",
        "gpu.ecc_errors": "warning",
        **health.CHECK_IDS,
        **environment_faults.CHECK_IDS,
        "framework.import_crashed": "error",
        "framework.import_timeout": "error",
        "framework.import_failed": "error",
        "framework.cuda_libs_failed": "error",
        "torch.cpu_build_on_gpu_machine": "error",
        "tensorflow.cpu_build_on_gpu_machine": "error",
        "driver.too_old_for_build": "error",
        "driver.minor_version_compat": "info",
        "gpu.arch_not_in_build": "error",
        "gpu.ptx_jit_only": "info",
        "torch.cuda_unavailable": "error",
        "tf.windows_native_gpu": "error",
        "python.unsupported_by_framework": "warning",
        "knowledge.newer_release": "info",
        **companions.CHECK_IDS,
        "cpu.no_avx": "error",
        "memory.low_ram": "warning",
        "disk.low_free": "warning",
        "wsl.libcuda_not_symlink": "warning",
        "probe.failed": "warning",
    }


def __getattr__(name: str) -> Any:
    if name == "CHECK_IDS":
        ids = _check_ids()
        globals()["CHECK_IDS"] = ids
        return ids
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_probe_errors(facts: DoctorFacts) -> list[Finding]:
    """``probe.failed``: a probe raised instead of returning facts (a bug or a broken system)."""
    return [
        Finding(
            "probe.failed",
            "warning",
            f"The {name} probe failed",
            f"Reading the {name} facts raised {error}; that section of the report is missing.",
            "Re-run with the same options; if it persists, report it with dlsetup doctor --json "
            "attached.",
            {"probe": name, "error": error},
        )
        for name, error in sorted(facts.probe_errors.items())
    ]


def evaluate(facts: DoctorFacts) -> tuple[Finding, ...]:
    """Run every check; a check that raises becomes a ``probe.failed`` finding, never a crash.

    A generic finding that a specific one explains (``framework.import_failed`` beside
    ``ld_library_path.shadows_framework_libs``) is downgraded to ``info`` and points to it
    (:mod:`dlsetup.checks.supersede`).

    Returns:
        Findings sorted by severity (errors first), then in check order.
    """
    found: list[Finding] = check_probe_errors(facts)
    for check in CHECKS:
        try:
            found.extend(check(facts))
        except Exception as exc:  # a rule bug must not end the report
            found.append(
                Finding(
                    "probe.failed",
                    "warning",
                    f"The check {check.__name__} failed",
                    f"{check.__name__} raised {type(exc).__name__}: {exc}.",
                    "Report this with dlsetup doctor --json attached.",
                    {"check": check.__name__, "error": f"{type(exc).__name__}: {exc}"},
                )
            )
    found = supersede(found)  # a named cause downgrades the generic "reinstall" finding
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return tuple(sorted(found, key=lambda f: -rank[f.severity]))


__all__ = ["CHECKS", "CHECK_IDS", "DoctorFacts", "Finding", "Severity", "evaluate"]
