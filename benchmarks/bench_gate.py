"""The smoke benchmark gate on a noisy machine: false alarms on unchanged code, detections of a 2x
slowdown.

Runs the exact ``dlsetup smoke`` gate command of ``.ci/run`` (both frameworks on CPU, compared
with ``benchmarks/baseline/smoke-cpu.json`` at the default bound) ``--runs`` times on unchanged
code, then ``--slow-runs`` times per framework with that framework's training step made 2x slower
by the test-only shim (``tests/smoke/faults``: PyTorch sleeps as long as each step took; TensorFlow
runs each graph call once more with a learning rate of zero). Prints each run's normalized figures
(step time / calibration-kernel time) against the baseline, and the counts:

    .venv/bin/python benchmarks/bench_gate.py [--runs 10] [--slow-runs 5]

A false alarm is a failed gate on unchanged code; a detection is a failed gate that names the
slowed framework's ``step per kernel`` as a regression.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAULTS = REPO / "tests" / "smoke" / "faults"


def gate_args() -> list[str]:
    text = (REPO / ".ci" / "run").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(".venv/bin/dlsetup smoke")]
    return shlex.split(line)[1:]


def run_gate(faults: str | None) -> tuple[int, dict[str, Any], float]:
    env = {**os.environ, "NO_COLOR": "1"}
    if faults:
        env |= {"PYTHONPATH": str(FAULTS), "DLSETUP_TEST_FAULTS": faults}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dlsetup", *gate_args(), "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - start
    return proc.returncode, json.loads(proc.stdout), took


def changes(doc: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    comparison = doc["data"]["comparison"]
    return {
        d["name"].split()[0]: (d["change"], d["status"])
        for d in comparison["deltas"]
        if d["name"].endswith("step per kernel")
    }


def show(label: str, code: int, doc: dict[str, Any], took: float) -> None:
    parts = [
        f"{fw} {'n/a' if ch is None else f'{ch:+.0%}'} ({status})"
        for fw, (ch, status) in sorted(changes(doc).items())
    ]
    print(f"  {label:<16} exit {code}  {took:5.1f} s  " + ", ".join(parts), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="gate runs on unchanged code")
    parser.add_argument("--slow-runs", type=int, default=5, help="slowed runs per framework")
    args = parser.parse_args()
    print("gate:", "dlsetup", shlex.join(gate_args()))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    alarms = 0
    spread: dict[str, list[float]] = {}
    print(f"unchanged code, {args.runs} runs:")
    for i in range(args.runs):
        code, doc, took = run_gate(None)
        show(f"run {i + 1}", code, doc, took)
        alarms += code != 0
        for fw, (ch, _) in changes(doc).items():
            if ch is not None:
                spread.setdefault(fw, []).append(ch)
    detected: dict[str, int] = {}
    for fw in ("torch", "tensorflow"):
        print(f"{fw} step 2x slower, {args.slow_runs} runs:")
        detected[fw] = 0
        for i in range(args.slow_runs):
            code, doc, took = run_gate(f"{fw}:slow=2")
            show(f"slow {i + 1}", code, doc, took)
            caught = code != 0 and changes(doc).get(fw, (None, ""))[1] == "regression"
            detected[fw] += caught
    bound = json.loads(json.dumps(doc["data"]["comparison"]["max_regression"]))
    print(f"\nbound: +{bound:.0%} on step per kernel")
    for fw, values in sorted(spread.items()):
        print(f"  unchanged {fw}: change from baseline {min(values):+.0%} .. {max(values):+.0%}")
    print(f"false alarms on unchanged code: {alarms} of {args.runs}")
    for fw, n in detected.items():
        print(f"2x slower {fw} step caught: {n} of {args.slow_runs}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
