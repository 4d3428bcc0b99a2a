"""The smoke benchmark gate on a noisy machine: false alarms on unchanged code, detections of a
2x slower matmul alone (the step does not use it) and of a 1.3x slower training step; and a
baseline recorded from several runs (median and spread), twice, to see that two recordings agree.

Runs the ``dlsetup smoke`` gate command of ``.ci/run`` (both frameworks on CPU, compared
with ``benchmarks/baseline/smoke-cpu.json``) at the default bound (CI's wider
``--max-regression`` left out); the gate itself measures again,
up to 3 runs, while a figure sits near the bound) ``--runs`` times on unchanged code, then
``--slow-runs`` times per framework with the test-only shim (``tests/smoke/faults``) making that
framework's 2-D matmul 2x slower (``slow-mm=2``), and its training step 1.3x slower
(``slow=1.3``; both as busy waits of the process's CPU time, the clock the gate reads on a CPU). Prints each run's gated figures against the baseline, and the counts:

    .venv/bin/python benchmarks/bench_gate.py [--runs 10] [--slow-runs 5]
    .venv/bin/python benchmarks/bench_gate.py --record FILE [--record-runs 5]
    .venv/bin/python benchmarks/bench_gate.py --agree FILE FILE

``--record`` writes a baseline: the gate command without ``--compare``, ``--record-runs`` times,
each figure's median as its ``value`` and the half-width of its range as ``range`` (``±12.5%``;
of 5 runs or more, the range of the middle runs: the fastest and the slowest dropped, since the
gate reads medians, which one outlier does not move, and an outlier in the recording would widen
that figure's bound, :func:`dlsetup.smoke.benchmark.figure_bound`),
in github-action-benchmark's customSmallerIsBetter list (``--compare`` reads it, spreads
included). ``--agree`` says by how much two recorded baselines differ, figure by figure, against
the bound the gate holds each figure to.

A false alarm is a failed gate on unchanged code; a detection is a failed gate that names the
slowed framework's figure (``matmul ... per kernel``, ``step per kernel``) as a regression.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAULTS = REPO / "tests" / "smoke" / "faults"


def gate_args() -> list[str]:
    """``.ci/run``'s gate command, at the product's default bound: CI's own ``--max-regression``
    (a wider one, so that a quiet CI machine cannot fail a landing by chance) is left out, since
    this measures what the default bound catches and how often it alarms."""
    text = (REPO / ".ci" / "run").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(".venv/bin/dlsetup smoke")]
    args = shlex.split(line)[1:]
    if "--max-regression" in args:
        at = args.index("--max-regression")
        del args[at : at + 2]
    return args


def _env(faults: str | None) -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1"}
    if faults:
        env |= {"PYTHONPATH": str(FAULTS), "DLSETUP_TEST_FAULTS": faults}
    return env


def run_gate(faults: str | None) -> tuple[int, dict[str, Any], float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dlsetup", *gate_args(), "--json"],
        env=_env(faults), cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout), time.perf_counter() - start


def gated(doc: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    """{metric: (change, status)} of the gated timing figures."""
    comparison = doc["data"]["comparison"]
    return {
        d["name"]: (d["change"], d["status"])
        for d in comparison["deltas"]
        if d["name"].endswith("per kernel")
    }


def show(label: str, code: int, doc: dict[str, Any], took: float) -> None:
    runs = doc["data"]["comparison"]["runs"]
    parts = [
        f"{name.replace(' per kernel', '')} {'n/a' if ch is None else f'{ch:+.0%}'}"
        + ("!" if status == "regression" else "")
        for name, (ch, status) in sorted(gated(doc).items())
    ]
    print(f"  {label:<10} exit {code} {took:5.1f} s {runs} run(s): " + ", ".join(parts), flush=True)


def scenario(label: str, faults: str | None, runs: int, wanted: str | None) -> tuple[int, dict]:
    """Run the gate ``runs`` times; count failed gates (``wanted``: only those that name a
    regressed figure starting with it), and collect each figure's changes."""
    print(f"{label}, {runs} runs (load {os.getloadavg()[0]:.1f}):", flush=True)
    hits = 0
    seen: dict[str, list[float]] = {}
    for i in range(runs):
        code, doc, took = run_gate(faults)
        show(f"run {i + 1}", code, doc, took)
        regressed = [n for n, (_, status) in gated(doc).items() if status == "regression"]
        hits += code != 0 and (wanted is None or any(n.startswith(wanted) for n in regressed))
        for name, (ch, _) in gated(doc).items():
            if ch is not None:
                seen.setdefault(name, []).append(ch)
    return hits, seen


def record(path: Path, runs: int) -> int:
    """Write a baseline of ``runs`` recordings: each figure's median and spread (of 5 or more,
    that of the middle runs), every run's value in ``extra``."""
    args = [a for a in gate_args() if a != "--compare"]
    args = [a for i, a in enumerate(args) if i == 0 or args[i - 1] != "--compare"]
    args = [a for a in args if not a.endswith(".json")]
    values: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            out = Path(tmp) / f"run{i}.json"
            proc = subprocess.run(
                [sys.executable, "-m", "dlsetup", *args, "--github-benchmark", str(out)],
                env=_env(None), cwd=REPO, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:])
                return 1
            for m in json.loads(out.read_text()):
                values.setdefault(m["name"], []).append(m["value"])
                units[m["name"]] = m["unit"]
            print(f"  recording {i + 1} of {runs} (load {os.getloadavg()[0]:.1f})", flush=True)
    entries = []
    for name, got in values.items():
        ordered = sorted(got)
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        middle = ordered[1:-1] if len(ordered) >= 5 else ordered
        half = (middle[-1] - middle[0]) / 2 / median * 100 if median > 0 else 0.0
        entries.append({
            "name": name, "unit": units[name], "value": round(median, 6),
            "range": f"±{half:.1f}%",
            "extra": f"median of {len(got)} runs: " + " ".join(f"{v:g}" for v in ordered)
            + (", range of the middle runs" if middle is not ordered else ""),
        })  # fmt: skip
    path.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"wrote {path}: {len(entries)} figures, the median of {runs} runs each")
    return 0


def agree(first: Path, second: Path) -> int:
    """How far two recorded baselines differ on each gated figure, against the bound the gate
    holds that figure to (``--max-regression``, or twice the wider of the two recorded spreads)."""
    from dlsetup.smoke.benchmark import (
        DEFAULT_MAX_REGRESSION,
        figure_bound,
        is_gated,
        load_baseline,
        parse_regression,
    )

    default = parse_regression(DEFAULT_MAX_REGRESSION)
    a = {m.name: m for m in load_baseline(first)}
    b = {m.name: m for m in load_baseline(second)}
    worst = 0.0
    beyond = []
    for name in sorted(a.keys() & b.keys()):
        if not is_gated(name) or a[name].value <= 0:
            continue
        change = b[name].value / a[name].value - 1
        spread = max(a[name].spread or 0.0, b[name].spread or 0.0)
        bound = figure_bound(name, default, spread)
        worst = max(worst, abs(change))
        if abs(change) > bound:
            beyond.append(name)
        print(f"  {name:<48} {a[name].value:<10g} {b[name].value:<10g} {change:+.1%} "
              f"(bound +{bound:.0%})")  # fmt: skip
    print(f"largest difference {worst:.1%}; beyond its figure's bound: {beyond or 'none'}")
    return 1 if beyond else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="gate runs on unchanged code")
    parser.add_argument("--slow-runs", type=int, default=5, help="slowed runs per framework")
    parser.add_argument("--record", type=Path, help="write a baseline of several runs here")
    parser.add_argument("--record-runs", type=int, default=5)
    parser.add_argument("--agree", type=Path, nargs=2, help="compare two recorded baselines")
    args = parser.parse_args()
    if args.record:
        return record(args.record, args.record_runs)
    if args.agree:
        return agree(*args.agree)
    print("gate:", "dlsetup", shlex.join(gate_args()))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    alarms, spread = scenario("unchanged code", None, args.runs, None)
    results = []
    for fw in ("torch", "tensorflow"):
        key = "torch cpu" if fw == "torch" else "tensorflow cpu:0"
        hits, _ = scenario(f"{fw} matmul 2x slower", f"{fw}:slow-mm=2", args.slow_runs,
                           f"{key} matmul")  # fmt: skip
        results.append((f"2x slower {fw} matmul", hits))
        hits, _ = scenario(f"{fw} step 1.3x slower", f"{fw}:slow=1.3", args.slow_runs,
                           f"{key} step")  # fmt: skip
        results.append((f"1.3x slower {fw} step", hits))
    print()
    for name, values in sorted(spread.items()):
        print(f"  unchanged {name}: {min(values):+.0%} .. {max(values):+.0%}")
    print(f"false alarms on unchanged code: {alarms} of {args.runs}")
    for label, hits in results:
        print(f"{label} caught: {hits} of {args.slow_runs}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
