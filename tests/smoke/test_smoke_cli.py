"""``dlsetup smoke`` end to end with the real torch and tensorflow-cpu, fault injection included.

Faults are injected from outside the package (``tests/smoke/faults/sitecustomize.py``, through
:func:`tests.smoke.fault_env.fault_env`) into the real workers, so these tests run the real code
paths, not mocks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.output import load_schema
from dlsetup.smoke.reference import ACTIVATIONS, LOSSES
from tests.smoke.fault_env import fault_env
from tests.support.proc import run_cli
from tests.support.shared import built_once
from tests.support.signals import SIGNALLED

#: The grid's size, from the registry (48 today).
N = len(ACTIVATIONS) * len(LOSSES)

pytestmark = [pytest.mark.slow, pytest.mark.torch, pytest.mark.tensorflow]


def validate(document: Any, schema: str) -> None:
    jsonschema.validate(document, load_schema(schema), cls=jsonschema.Draft202012Validator)


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real run of both frameworks with every output written (once for the whole run)."""

    def run(out: Path) -> Any:
        proc = run_cli(
            "smoke", "--json", "--benchmark",
            "--output", str(out / "bench.json"),
            "--github-benchmark", str(out / "gh.json"),
            "--plot", str(out / "curves.png"),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)

    out, doc = built_once(tmp_path_factory, "smoke", run)
    return {"doc": doc, "dir": out}


def runs_by_framework(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["framework"]: r for r in doc["data"]["runs"]}


def test_both_cpu_frameworks_pass_every_check_and_all_48_combinations(
    full_run: dict[str, Any],
) -> None:
    doc = full_run["doc"]
    assert doc["data"]["passed"] is True
    runs = runs_by_framework(doc)
    assert set(runs) == {"torch", "tensorflow"}
    assert runs["torch"]["device"] == "cpu"
    assert runs["tensorflow"]["device"] == "CPU:0"
    for run in runs.values():
        assert run["status"] == "ok"
        assert len(run["combinations"]) == N
        assert [(c["activation"], c["loss"]) for c in run["combinations"]] == [
            (a, lo) for a in ACTIVATIONS for lo in LOSSES
        ]
        assert all(c["passed"] for c in run["combinations"])
        # 6 activations (+1 alpha for PReLU's second alpha) x value/grad, 8 losses x value/grad + 0/1
        assert len(run["function_checks"]) >= 2 * 33
        assert all(c["passed"] for c in run["function_checks"])
        assert len(run["curves"]) == N and len(run["curves"][0]) == 201


def test_frameworks_agree_on_every_loss_curve_from_the_same_start(full_run: dict[str, Any]) -> None:
    agreement = full_run["doc"]["data"]["agreement"]
    assert len(agreement) == N
    assert {a["device"] for a in agreement} == {"cpu"}
    assert max(a["max_rel_deviation"] for a in agreement) < 1e-3


def test_json_output_and_benchmark_files_match_their_schemas(full_run: dict[str, Any]) -> None:
    validate(full_run["doc"], "dlsetup.smoke")
    bench = json.loads((full_run["dir"] / "bench.json").read_text())
    validate(bench, "dlsetup.smoke-benchmark")
    assert {r["framework"] for r in bench["data"]["runs"]} == {"torch", "tensorflow"}
    assert all(r["peak_rss_bytes"] > 50 * 2**20 for r in bench["data"]["runs"])
    assert all(
        r["peak_device_bytes"] == {"reason": "host_device", "detail": ""}
        for r in bench["data"]["runs"]
    )


def test_github_benchmark_file_is_a_custom_smaller_is_better_list(full_run: dict[str, Any]) -> None:
    entries = json.loads((full_run["dir"] / "gh.json").read_text())
    names = {e["name"] for e in entries}
    assert {"smoke wall time", "torch cpu ms per step", "tensorflow cpu:0 ms per step"} <= names
    assert {"torch cpu step per kernel", "tensorflow cpu:0 step per kernel"} <= names
    assert all(set(e) == {"name", "unit", "value"} and e["value"] >= 0 for e in entries)


def test_plot_is_a_png(full_run: dict[str, Any]) -> None:
    assert (full_run["dir"] / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schema_rejects_an_unknown_field_so_drift_fails(full_run: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(full_run["doc"]))
    doc["data"]["runs"][0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, "dlsetup.smoke")


def test_wrong_activation_and_nan_fail_their_rows_and_a_raising_device_fails_only_its_own() -> None:
    proc = run_cli(
        "smoke", "--json", "--steps", "60",
        env=fault_env("torch:wrong-activation=relu,torch:nan=tanh/hinge,tensorflow:raise=cpu"),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    validate(doc, "dlsetup.smoke")
    runs = runs_by_framework(doc)
    tf = runs["tensorflow"]
    assert tf["status"] == "error"
    assert "injected failure on CPU:0" in tf["error"]
    torch = runs["torch"]
    assert torch["status"] == "ok"
    failed = {(c["activation"], c["loss"]) for c in torch["combinations"] if not c["passed"]}
    assert failed == {("relu", lo) for lo in LOSSES} | {("tanh", "hinge")}
    relu_rows = [c for c in torch["combinations"] if c["activation"] == "relu"]
    assert all(c["failures"][0]["check"] == "one step" for c in relu_rows)
    bad_checks = {(c["name"], c["quantity"]) for c in torch["function_checks"] if not c["passed"]}
    assert ("relu", "value") in bad_checks and all(name == "relu" for name, _ in bad_checks)
    nan_row = next(
        c for c in torch["combinations"] if (c["activation"], c["loss"]) == ("tanh", "hinge")
    )
    assert "loss stays finite" in [f["what"] for f in nan_row["failures"]]
    assert (
        nan_row["isolated_rerun"]["attribution"]
        == "fails on its own too: the fault is in this combination"
    )


def test_human_report_explains_a_failure_and_the_zero_one_surrogate() -> None:
    proc = run_cli(
        "smoke", "--framework", "torch", "--steps", "60",
        env=fault_env("*:wrong-activation=elu"),
    )  # fmt: skip
    assert proc.returncode == 1
    out = proc.stdout
    assert "torch 2.13.0+cpu on cpu: FAIL — 40/48 combinations" in out
    assert (
        "FAIL activation elu value (float32) at x=100: got 150, expected 100 (NumPy reference, rtol 1e-05, atol 1e-06)"
        in out
    )
    assert "FAIL elu / hinge: one step: loss before the step was" in out
    assert "rerun alone: fails on its own too: the fault is in this combination" in out
    assert "Note on 0/1: The 0/1 loss is flat almost everywhere" in out
    assert "Result: FAIL" in out


def test_a_hung_device_is_ended_by_the_timeout_and_fails_its_rows() -> None:
    proc = run_cli(
        "smoke", "--framework", "torch", "--json", "--timeout", "10",
        env=fault_env("*:hang=cpu"),
    )  # fmt: skip
    assert proc.returncode == 1
    (run,) = json.loads(proc.stdout)["data"]["runs"]
    assert run["status"] == "timeout"
    assert run["error"] == "no result within 10 s (per-device timeout)"


def test_a_crashing_device_is_reported_as_crashed() -> None:
    proc = run_cli("smoke", "--framework", "torch", "--json", env=fault_env("*:crash=cpu"))
    assert proc.returncode == 1
    (run,) = json.loads(proc.stdout)["data"]["runs"]
    assert run["status"] == "crashed"
    assert run["error"].startswith("the worker exited with status 3")


def test_compare_exits_1_on_a_regression_beyond_the_bound_and_0_within(tmp_path: Path) -> None:
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps([{"name": "torch cpu step per kernel", "unit": "x", "value": 1e-4}]))
    proc = run_cli("smoke", "--framework", "torch", "--steps", "30", "--compare", str(fast))
    assert proc.returncode == 1, proc.stderr
    assert "Comparison: REGRESSION beyond the bound" in proc.stdout
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps([{"name": "torch cpu step per kernel", "unit": "x", "value": 1e6}]))
    proc = run_cli(
        "smoke",
        "--framework",
        "torch",
        "--steps",
        "30",
        "--compare",
        str(slow),
        "--max-regression",
        "300%",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Comparison: no regression beyond the bound" in proc.stdout


def test_no_framework_in_the_target_interpreter_is_a_clear_missing_tool_error(
    tmp_path: Path,
) -> None:
    for name in ("torch", "tensorflow"):
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(f"raise ImportError('no {name} in this environment')\n")
    proc = run_cli("smoke", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 3
    assert "Error: no framework to test: torch or tensorflow cannot be imported by" in proc.stderr
    assert "Fix: install one into that environment" in proc.stderr


def test_python_pointing_at_a_missing_file_is_a_missing_tool_error(tmp_path: Path) -> None:
    missing = tmp_path / "env" / "bin" / "python"
    result = CliRunner().invoke(cli, ["smoke", "--python", str(missing)])
    assert result.exit_code == 3
    assert f"Error: no Python interpreter at {missing}" in result.output


def test_existing_output_file_is_not_overwritten_without_force(tmp_path: Path) -> None:
    target = tmp_path / "bench.json"
    target.write_text("keep me")
    result = CliRunner().invoke(cli, ["smoke", "--output", str(target), "--python", sys.executable])
    assert result.exit_code == 2
    assert f"Error: --output {target} already exists" in result.output
    assert target.read_text() == "keep me"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to one process is POSIX")
def test_sigint_to_smoke_alone_while_devices_hang_exits_130_and_leaves_no_worker() -> None:
    import os
    import signal
    import subprocess
    import time

    import psutil

    from tests.support.proc import REPO

    env = {**os.environ, "NO_COLOR": "1", **fault_env("*:hang=cpu")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlsetup", "smoke", "--timeout", "300"],
        env=env,
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while True:  # both framework workers (torch_worker.py, tf_worker.py) are running
            kids = psutil.Process(proc.pid).children(recursive=True)
            pids |= {k.pid for k in kids}
            scripts = {a for k in kids for a in _cmdline(k) if a.endswith("_worker.py")}
            if len(scripts) == 2:
                break
            assert proc.poll() is None and time.monotonic() < deadline, "workers did not start"
            time.sleep(0.1)
        _wait_until_idle([psutil.Process(pid) for pid in pids], deadline)  # in the injected hang
        assert all(os.getpgid(pid) == pid for pid in pids), "each worker leads its own group"
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)  # the smoke process only, not its workers' groups
        _, err = proc.communicate(timeout=20)  # not the 300 s per-device timeout
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = [pid for pid in pids if _alive(pid)]
        for pid in left:  # a regression must not leave hung workers behind
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert err.strip().endswith("Interrupted.")
    assert took < 5.0
    assert len(pids) >= 2 and left == []


def _cmdline(process: Any) -> list[str]:
    import psutil

    try:
        return list(process.cmdline())
    except psutil.Error:
        return []


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_until_idle(processes: list[Any], deadline: float) -> None:
    """Wait until no process in ``processes`` used CPU time for 1 s: past importing the
    framework and asleep in the injected hang."""
    import time

    def used() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in processes)

    before = used()
    while True:
        time.sleep(1.0)
        now = used()
        if now == before:
            return
        assert time.monotonic() < deadline, "the workers never reached the injected hang"
        before = now


WRONG_TF_RELU = fault_env("tensorflow:wrong-activation=relu")


def failed_combinations(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (r["framework"], c["activation"], c["loss"])
        for r in doc["data"]["runs"]
        for c in r["combinations"]
        if not c["passed"]
    }


@pytest.fixture(scope="module")
def wrong_tf_relu_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The same injected fault (TF's ReLU off by 1.5x), with and without the agreement gate
    (once for the whole test run)."""

    def run_both(_: Path) -> dict[str, dict[str, Any]]:
        docs = {}
        for name, extra in (("gated", ["--max-disagreement", "1e-3"]), ("report_only", [])):
            proc = run_cli("smoke", "--json", "--steps", "60", *extra, env=WRONG_TF_RELU)
            assert proc.returncode == 1, proc.stderr[-2000:]
            docs[name] = json.loads(proc.stdout)
        return docs

    return built_once(tmp_path_factory, "smoke-wrong-tf-relu", run_both)[1]


def test_max_disagreement_fails_agreement_of_exactly_the_pairs_of_a_wrong_activation_in_one_framework(
    wrong_tf_relu_runs: dict[str, dict[str, Any]],
) -> None:
    doc = wrong_tf_relu_runs["gated"]
    validate(doc, "dlsetup.smoke")
    data = doc["data"]
    assert data["passed"] is False
    assert data["max_disagreement"] == 1e-3
    assert len(data["agreement"]) == N
    failed = {
        (a["device"], a["activation"], a["loss"]) for a in data["agreement"] if not a["passed"]
    }
    assert failed == {("cpu", "relu", lo) for lo in LOSSES}
    assert all(a["max_allowed"] == 1e-3 for a in data["agreement"])
    for a in data["agreement"]:
        assert a["passed"] is (a["max_abs_deviation"] <= 1e-3)


def test_without_max_disagreement_agreement_is_gated_by_twice_the_float32_band(
    wrong_tf_relu_runs: dict[str, dict[str, Any]], full_run: dict[str, Any]
) -> None:
    doc = wrong_tf_relu_runs["report_only"]
    validate(doc, "dlsetup.smoke")
    data = doc["data"]
    assert data["max_disagreement"] is None
    assert {a["bound"] for a in data["agreement"]} == {"band"}
    failed = {(a["activation"], a["loss"]) for a in data["agreement"] if a["passed"] is False}
    assert failed == {("relu", lo) for lo in LOSSES}
    for a in data["agreement"]:
        if a["passed"] is False:  # the first step outside, where the gap exceeds the band
            assert a["step"] is not None and a["gap_at_step"] > a["max_allowed"]
        else:
            assert a["step"] is None and a["gap_at_step"] <= a["max_allowed"]
    assert failed_combinations(doc) == {("tensorflow", "relu", lo) for lo in LOSSES}
    assert failed_combinations(doc) == failed_combinations(wrong_tf_relu_runs["gated"])
    clean = full_run["doc"]["data"]
    assert clean["passed"] is True and clean["max_disagreement"] is None
    assert all(a["passed"] is True and a["bound"] == "band" for a in clean["agreement"])
    # the band is float32's: about 1e-6 at the start, 1e-4 after 200 steps
    assert all(0 < a["max_allowed"] < 1e-3 for a in clean["agreement"])


def test_a_bound_of_zero_fails_a_clean_run_on_agreement_alone_in_the_human_report() -> None:
    proc = run_cli("smoke", "--steps", "60", "--max-disagreement", "0")
    assert proc.returncode == 1, proc.stderr[-2000:]
    out = proc.stdout
    assert "torch 2.13.0+cpu on cpu: PASS — 48/48 combinations" in out
    assert "on CPU:0: PASS — 48/48 combinations" in out
    assert "(same start weights; ! = above --max-disagreement 0)" in out
    fails = [line.strip() for line in out.splitlines() if line.strip().startswith("FAIL")]
    assert fails and all(line.startswith("FAIL agreement ") for line in fails)
    assert all("loss-curve gap at step " in line for line in fails)
    assert all(line.endswith("expected <= 0 (--max-disagreement)") for line in fails)
    assert "Result: FAIL" in out


def test_max_disagreement_with_one_framework_compares_nothing_and_says_so() -> None:
    proc = run_cli("smoke", "--framework", "torch", "--steps", "30", "--max-disagreement", "1e-3")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (
        "Agreement not checked (--max-disagreement 0.001): it needs both PyTorch and TensorFlow to "
        "run on the same device class." in proc.stdout
    )
    assert "Result: PASS" in proc.stdout


def test_each_device_runs_in_its_own_worker_so_a_broken_interpreter_spoils_only_its_device() -> (
    None
):
    # Two real TensorFlow CPU devices (CPU:0, CPU:1); CPU:0 fails and leaves its process unusable,
    # as a sticky CUDA error would. In a shared worker CPU:1 would fail too.
    proc = run_cli(
        "smoke", "--framework", "tensorflow", "--json", "--steps", "30",
        env=fault_env("tensorflow:cpu-devices=2,tensorflow:poison=CPU:0"),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    validate(doc, "dlsetup.smoke")
    (framework,) = doc["data"]["frameworks"]
    assert framework["selected"] == ["CPU:0", "CPU:1"]
    first, second = doc["data"]["runs"]
    assert (first["device"], first["status"]) == ("CPU:0", "error")
    assert first["error"] == "RuntimeError: injected sticky failure on CPU:0 (test fault poison)"
    assert (second["device"], second["status"]) == ("CPU:1", "ok")
    assert all(c["passed"] for c in second["combinations"])
    assert all(c["passed"] for c in second["function_checks"])
