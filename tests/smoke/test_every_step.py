"""Faults that only the every-step check can catch fail the CI gate, naming combination and step.

Each fault is patched into the real framework inside the workers by the test-only shim
``tests/smoke/faults/sitecustomize.py`` (on ``PYTHONPATH``, driven by ``DLSETUP_TEST_FAULTS``); no
production module knows about it. Each run is the exact ``dlsetup smoke`` command of ``.ci/run``'s
gate, so a fault that passed here would pass CI.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from dlsetup.smoke.reference import LOSSES
from tests.support.proc import REPO, run_cli
from tests.support.shared import built_once

pytestmark = [pytest.mark.slow, pytest.mark.torch, pytest.mark.tensorflow]

FAULTS_DIR = Path(__file__).resolve().parent / "faults"

FAULTS = {
    "lr_halved_after_step_1": "torch:lr-scale-after=1:0.5",
    "matmul_1_01_after_100_calls": "torch:matmul-scale-after=100:1.01",
    "leaky_relu_slope_0_21": "tensorflow:leaky-slope=0.21",
    "nan_at_step_150": "torch:nan-at-step=150:relu/hinge",
}


def ci_gate_args() -> list[str]:
    """The arguments of the ``dlsetup smoke`` gate in ``.ci/run`` (joined continuation lines)."""
    text = (REPO / ".ci" / "run").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(".venv/bin/dlsetup smoke")]
    return shlex.split(line)[1:]


def run_gate(faults: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = run_cli(
        *ci_gate_args(),
        "--json",
        *extra,
        env={"PYTHONPATH": str(FAULTS_DIR), "DLSETUP_TEST_FAULTS": faults},
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each fault's gate run, once for the whole test run (four real smoke runs)."""

    def run_all(_: Path) -> dict[str, tuple[int, dict[str, Any]]]:
        out = {}
        for name, faults in FAULTS.items():
            code, doc, err = run_gate(faults)
            assert doc["data"]["frameworks"], err[-2000:]
            out[name] = (code, doc)
        return out

    return built_once(tmp_path_factory, "every-step-gated", run_all)[1]


def failures(doc: dict[str, Any], framework: str, check: str) -> dict[tuple[str, str], int]:
    """{(activation, loss): step} of the failures of ``check`` in ``framework``'s run."""
    (run,) = [r for r in doc["data"]["runs"] if r["framework"] == framework]
    return {
        (c["activation"], c["loss"]): f["step"]
        for c in run["combinations"]
        for f in c["failures"]
        if f["check"] == check
    }


def passed(doc: dict[str, Any], framework: str) -> bool:
    (run,) = [r for r in doc["data"]["runs"] if r["framework"] == framework]
    return all(c["passed"] for c in run["combinations"]) and all(
        c["passed"] for c in run["function_checks"]
    )


def test_the_gate_command_is_the_one_in_ci_run() -> None:
    args = ci_gate_args()
    assert args[:1] == ["smoke"] and "--compare" in args


def test_a_learning_rate_halved_from_step_1_fails_at_step_2(
    gated: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    code, doc = gated["lr_halved_after_step_1"]
    assert code == 1
    steps = failures(doc, "torch", "every step")
    assert failures(doc, "torch", "one step") == {}  # the first update is right
    assert steps[("sigmoid", "log")] == 2  # the loss before step 2 is the first one it changes
    assert min(steps.values()) == 2 and len(steps) >= 30
    assert passed(doc, "tensorflow")
    torn = {(a["activation"], a["loss"]) for a in doc["data"]["agreement"] if a["passed"] is False}
    assert set(steps) <= torn


def test_a_matmul_one_percent_off_after_warm_up_fails_at_the_step_it_starts(
    gated: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    code, doc = gated["matmul_1_01_after_100_calls"]
    assert code == 1
    steps = failures(doc, "torch", "every step")
    assert failures(doc, "torch", "one step") == {}
    # two matmuls per forward pass: call 101 is step 50's first
    assert set(steps.values()) == {50} and len(steps) >= 30
    assert passed(doc, "tensorflow")


def test_a_changed_leaky_relu_slope_fails_its_rows_from_step_0_and_its_function_checks(
    gated: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    code, doc = gated["leaky_relu_slope_0_21"]
    assert code == 1
    assert failures(doc, "tensorflow", "every step") == {("leaky_relu", lo): 0 for lo in LOSSES}
    (run,) = [r for r in doc["data"]["runs"] if r["framework"] == "tensorflow"]
    assert {c["name"] for c in run["function_checks"] if not c["passed"]} == {"leaky_relu"}
    assert passed(doc, "torch")


def test_a_nan_at_step_150_fails_that_combination_at_step_150(
    gated: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    code, doc = gated["nan_at_step_150"]
    assert code == 1
    assert failures(doc, "torch", "every step") == {("relu", "hinge"): 150}
    assert failures(doc, "torch", "training") == {("relu", "hinge"): 150}
    assert passed(doc, "tensorflow")


def test_a_fault_only_in_the_stacked_program_is_attributed_to_it_by_the_rerun_alone(
    gated: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    # The NaN is injected only where 48 models are stacked; relu / hinge trained alone is fine,
    # so the isolated rerun must pass and say so (a rerun that reused the stacked verdict would
    # say "fails on its own too").
    _, doc = gated["nan_at_step_150"]
    (run,) = [r for r in doc["data"]["runs"] if r["framework"] == "torch"]
    (combo,) = [c for c in run["combinations"] if not c["passed"]]
    assert combo["isolated_rerun"] == {
        "passed": True,
        "final_loss": combo["isolated_rerun"]["final_loss"],
        "attribution": "passes alone: the fault is in the stacked (batched) program",
    }
    assert isinstance(combo["isolated_rerun"]["final_loss"], float)


def test_the_human_report_names_the_combination_and_the_step() -> None:
    proc = run_cli(
        *ci_gate_args(),
        env={"PYTHONPATH": str(FAULTS_DIR), "DLSETUP_TEST_FAULTS": FAULTS["nan_at_step_150"]},
    )
    assert proc.returncode == 1
    out = proc.stdout
    assert (
        "FAIL relu / hinge: every step: loss at step 150 (the first step outside the band) was nan"
        in out
    )
    assert "rerun alone: passes alone: the fault is in the stacked (batched) program" in out
    assert "Result: FAIL" in out


def test_the_fault_shims_live_outside_the_production_package() -> None:
    package = REPO / "dlsetup"
    for hook in ("DLSETUP_TEST_FAULTS", "DLSETUP_SMOKE_INJECT", "broken_reference"):
        assert not [p for p in package.rglob("*.py") if hook in p.read_text()], hook
