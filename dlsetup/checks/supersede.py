"""Coherent findings: a check that names the real cause of a failure supersedes the generic one.

``framework.import_failed`` says "reinstall"; when ``ld_library_path.shadows_framework_libs`` has
found the directory that makes the import fail, reinstalling does not help, and two findings with
two different fixes for one failure confuse the reader. The generic finding is kept (its facts,
the error text, stay in the report and in ``--json``) but downgraded to ``info``, its fix points
to the specific finding, its reinstall command is dropped, and ``details.superseded_by`` names the
specific id. Only the generic findings of the frameworks the specific one explains are touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dlsetup.checks.finding import Finding

#: specific id -> the generic ids it explains (for the frameworks it names).
SUPERSEDES: dict[str, tuple[str, ...]] = {
    "ld_library_path.shadows_framework_libs": (
        "framework.import_failed",
        "framework.import_crashed",
        "framework.cuda_libs_failed",
    ),
    "cuda_wheels.pin_conflict": ("framework.import_failed", "framework.cuda_libs_failed"),
    "fabric.manager_not_running": ("torch.cuda_unavailable",),
}

#: GPU-scoped reconciliation: specific id -> the ids whose advice cannot stand beside it on the same
#: GPU (``"*"``: every other GPU finding). The checks themselves leave such a GPU out of those
#: findings (its facts stay in the specific finding's details): "the repair handles them" and
#: "reset it" beside "RMA", or any reading of a GPU NVML cannot open. Held over every scenario of
#: the suite by tests/doctor/test_findings_agree.py; the rule is written in docs/doctor.md.
GPU_EXPLAINS: dict[str, tuple[str, ...]] = {
    "gpu.row_remap_failed": ("gpu.ecc_errors", "gpu.ecc_errors_aggregate", "gpu.reset_pending"),
    "gpu.unreachable": ("*",),
    "gpu.lost": ("*",),
}

#: The framework a generic finding is about, when its details do not say.
_FRAMEWORK_OF_ID = {"torch.cuda_unavailable": "torch"}


def explained_frameworks(specific: Finding) -> set[str] | None:
    """Frameworks whose failure ``specific`` explains; None means every framework."""
    details = specific.details
    if specific.id == "ld_library_path.shadows_framework_libs":
        return set(details.get("frameworks") or [details.get("framework")])
    if specific.id == "cuda_wheels.pin_conflict":
        return set(details.get("broken", []))
    return None  # Fabric Manager: no framework can see a GPU until it runs


def _framework(generic: Finding) -> str | None:
    named = generic.details.get("framework")
    return named if isinstance(named, str) else _FRAMEWORK_OF_ID.get(generic.id)


def supersede(findings: Sequence[Finding]) -> list[Finding]:
    """Downgrade each generic finding that a specific finding in ``findings`` explains.

    Returns:
        The findings in the same order; superseded ones replaced by their downgraded copy.
    """
    causes: dict[str, list[tuple[Finding, set[str] | None]]] = {}
    for f in findings:
        for generic_id in SUPERSEDES.get(f.id, ()):
            causes.setdefault(generic_id, []).append((f, explained_frameworks(f)))
    if not causes:
        return list(findings)
    out: list[Finding] = []
    for f in findings:
        framework = _framework(f)
        cause = next(
            (
                specific
                for specific, frameworks in causes.get(f.id, ())
                if frameworks is None or framework in frameworks
            ),
            None,
        )
        if cause is None:
            out.append(f)
            continue
        out.append(
            dataclasses.replace(
                f,
                severity="info",
                message=f"{f.message} The cause is {cause.id}: {cause.title}.",
                fix=f"See {cause.id}, which names the cause (the generic fix does not help): "
                f"{cause.fix}",
                details={**f.details, "superseded_by": cause.id},
                command="",
            )
        )
    return out


__all__ = ["GPU_EXPLAINS", "SUPERSEDES", "explained_frameworks", "supersede"]
