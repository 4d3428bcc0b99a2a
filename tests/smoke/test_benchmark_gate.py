"""The benchmark gate compares step times divided by a calibration kernel timed in the same run.

Raw timings are shown as ``info`` and never gated (a baseline from a faster or busier machine
must not fail or pass the gate by itself); the normalized figure and memory are gated, by default
at +50%, so a 2x slower step of either framework fails the ``.ci/run`` gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlsetup.commands.smoke import smoke as smoke_command
from dlsetup.smoke import benchmark as bm
from tests.support.proc import REPO, run_cli

FAULTS_DIR = Path(__file__).resolve().parent / "faults"


def metric(name: str, value: float, unit: str = "x") -> bm.Metric:
    return bm.Metric(name, unit, value)


def test_the_cli_default_bound_is_the_documented_one() -> None:
    (option,) = [p for p in smoke_command.params if p.name == "max_regression"]
    assert option.default == bm.DEFAULT_MAX_REGRESSION == "50%"


def test_a_baseline_from_a_3x_faster_machine_passes_when_the_normalized_step_is_unchanged() -> None:
    baseline = [
        metric("torch cpu step per kernel", 0.25),
        metric("torch cpu ms per step", 0.7, "ms"),
        metric("smoke wall time", 2.0, "s"),
    ]
    current = [
        metric("torch cpu step per kernel", 0.26),
        metric("torch cpu ms per step", 2.1, "ms"),
        metric("smoke wall time", 6.0, "s"),
    ]
    result = bm.compare(current, baseline, 0.5, "base.json")
    status = {d.name: d.status for d in result.deltas}
    assert status == {
        "torch cpu step per kernel": "ok",
        "torch cpu ms per step": "info",
        "smoke wall time": "info",
    }
    assert result.passed and result.compared == 1


def test_a_2x_slower_normalized_step_fails_at_the_default_bound() -> None:
    bound = bm.parse_regression(bm.DEFAULT_MAX_REGRESSION)
    for name in ("torch cpu step per kernel", "tensorflow cpu:0 step per kernel"):
        result = bm.compare([metric(name, 0.5)], [metric(name, 0.25)], bound, "base.json")
        assert result.regressed and not result.passed


def test_raw_timings_alone_compare_nothing_and_fail_the_gate() -> None:
    name = "torch cpu ms per step"
    result = bm.compare([metric(name, 100.0, "ms")], [metric(name, 1.0, "ms")], 0.5, "b.json")
    assert not result.regressed and result.compared == 0 and not result.passed


def test_the_committed_baseline_has_the_normalized_figure_of_both_frameworks() -> None:
    names = {m.name for m in bm.load_baseline(REPO / "benchmarks" / "baseline" / "smoke-cpu.json")}
    assert {"torch cpu step per kernel", "tensorflow cpu:0 step per kernel"} <= names


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.tensorflow
@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_a_2x_slower_step_fails_the_ci_gate(framework: str) -> None:
    from tests.smoke.test_every_step import ci_gate_args

    proc = run_cli(
        *ci_gate_args(),
        "--json",
        env={"PYTHONPATH": str(FAULTS_DIR), "DLSETUP_TEST_FAULTS": f"{framework}:slow=2"},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    data = json.loads(proc.stdout)["data"]
    assert data["passed"] is True  # every check passed: the benchmark gate alone fails
    deltas = {d["name"]: d for d in data["comparison"]["deltas"]}
    key = "torch cpu" if framework == "torch" else "tensorflow cpu:0"
    assert deltas[f"{key} step per kernel"]["status"] == "regression"
    assert deltas[f"{key} step per kernel"]["change"] > 0.5
