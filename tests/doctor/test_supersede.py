"""A check that names the real cause of a failure supersedes the generic finding for it.

Over constructed facts (the real checks and ``evaluate``): the generic ``framework.import_failed``
("reinstall") beside ``ld_library_path.shadows_framework_libs`` is downgraded to info, points to
the specific id and loses its reinstall command; without the specific cause (or for another
framework that it does not explain) the generic finding keeps its error and its reinstall fix.
The same through a real doctor subprocess is in test_failure_modes.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dlsetup.checks import evaluate
from dlsetup.checks.finding import Finding
from dlsetup.checks.supersede import SUPERSEDES, supersede
from dlsetup.facts import Missing
from tests.doctor import health_cases as hc
from tests.doctor import test_checks as tc

SHADOWING = (("/opt/other/lib", ()), (hc.CUDA_LIB_DIR, ("libcublas.so.12", "libcublasLt.so.12")))


def by_id(findings: tuple[Finding, ...], check_id: str) -> list[Finding]:
    return [f for f in findings if f.id == check_id]


def test_shadowing_ld_library_path_supersedes_the_reinstall_advice() -> None:
    found = evaluate(hc.shadowed(SHADOWING))
    (specific,) = by_id(found, "ld_library_path.shadows_framework_libs")
    (generic,) = by_id(found, "framework.import_failed")
    assert specific.severity == "error"
    assert specific.details["frameworks"] == ["torch"]
    assert generic.severity == "info"
    assert generic.details["superseded_by"] == "ld_library_path.shadows_framework_libs"
    assert generic.command == ""
    assert "--force-reinstall" not in generic.fix
    assert generic.fix.startswith("See ld_library_path.shadows_framework_libs")
    assert hc.CUBLAS_SHADOWED in generic.message  # the error text stays in the report
    # Errors first: the named cause leads the report, the downgraded generic one comes last.
    assert found.index(specific) < found.index(generic)


def test_without_the_shadowing_directory_the_reinstall_advice_stays() -> None:
    found = evaluate(hc.shadowed((("/opt/other/lib", ()),)))
    assert not by_id(found, "ld_library_path.shadows_framework_libs")
    (generic,) = by_id(found, "framework.import_failed")
    assert generic.severity == "error"
    assert "superseded_by" not in generic.details
    assert "--force-reinstall" in generic.command


def test_another_frameworks_unrelated_import_failure_keeps_its_own_advice() -> None:
    facts = hc.shadowed(SHADOWING)
    fw = facts.frameworks
    assert not isinstance(fw, Missing)
    tf_failed = tc.tensorflow(
        status="import_failed",
        detail="ModuleNotFoundError: No module named 'google.protobuf'",
        tensorflow=Missing("import_failed"),
    )
    facts = dataclasses.replace(facts, frameworks=dataclasses.replace(fw, tensorflow=tf_failed))
    found = evaluate(facts)
    generic = {f.details["framework"]: f for f in by_id(found, "framework.import_failed")}
    assert generic["torch"].severity == "info"
    assert generic["tensorflow"].severity == "error"
    assert "superseded_by" not in generic["tensorflow"].details
    assert "--force-reinstall tensorflow" in generic["tensorflow"].command


def test_shadowing_named_in_both_frameworks_supersedes_both() -> None:
    facts = hc.shadowed(SHADOWING)
    fw = facts.frameworks
    assert not isinstance(fw, Missing)
    tf_failed = tc.tensorflow(
        status="import_failed", detail=hc.CUBLAS_SHADOWED, tensorflow=Missing("import_failed")
    )
    facts = dataclasses.replace(facts, frameworks=dataclasses.replace(fw, tensorflow=tf_failed))
    found = evaluate(facts)
    assert len(by_id(found, "ld_library_path.shadows_framework_libs")) == 1
    assert {f.severity for f in by_id(found, "framework.import_failed")} == {"info"}
    assert by_id(found, "ld_library_path.shadows_framework_libs")[0].details["frameworks"] == [
        "tensorflow",
        "torch",
    ]


def _generic(check_id: str, framework: str | None = "torch") -> Finding:
    details: dict[str, Any] = {} if framework is None else {"framework": framework}
    return Finding(check_id, "error", "t", "m.", "reinstall", details, command="pip install x")


def test_pin_conflict_supersedes_only_the_framework_it_breaks() -> None:
    (pin,) = by_id(
        evaluate(
            hc.pins_case(
                hc.TORCH_2_3_1_CUDNN,
                ("torch", "2.5.1", hc.TORCH_2_5_1_CUDNN),
                ("tensorflow", "2.19.0", hc.TF_2_19_0_CUDNN),
            )
        ),
        "cuda_wheels.pin_conflict",
    )
    assert set(pin.details["broken"]) == {"torch", "tensorflow"}
    torch_pin = dataclasses.replace(pin, details={**pin.details, "broken": ["torch"]})
    out = supersede(
        [torch_pin, _generic("framework.import_failed"), _generic("framework.import_failed", "tf")]
    )
    assert [f.severity for f in out] == ["error", "info", "error"]
    assert out[1].details["superseded_by"] == "cuda_wheels.pin_conflict"


def test_fabric_manager_supersedes_cuda_unavailable() -> None:
    found = evaluate(hc.fabric_case("not_started", (hc.ERROR_802,), switches=4))
    (generic,) = by_id(found, "torch.cuda_unavailable")
    assert generic.severity == "info"
    assert generic.details["superseded_by"] == "fabric.manager_not_running"
    assert "nvidia-fabricmanager" in generic.fix
    # Fabric Manager has registered the GPUs: cuda_unavailable is the only finding and an error.
    found = evaluate(hc.fabric_case("completed", switches=4))
    assert [(f.id, f.severity) for f in found if f.id.startswith(("torch.", "fabric."))] == [
        ("torch.cuda_unavailable", "error")
    ]


def test_every_superseded_id_and_cause_is_a_catalogued_check() -> None:
    from dlsetup.checks import CHECK_IDS

    for specific, generics in SUPERSEDES.items():
        assert specific in CHECK_IDS
        assert set(generics) <= set(CHECK_IDS)


def test_nothing_to_supersede_returns_the_findings_unchanged() -> None:
    findings = [_generic("framework.import_failed"), _generic("torch.cuda_unavailable", None)]
    assert supersede(findings) == findings
