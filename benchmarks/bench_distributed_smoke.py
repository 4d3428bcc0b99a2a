"""Benchmark ``dlsetup smoke --distributed`` launch to report: 2 torchrun agents x 2 gloo ranks.

Two torchrun agents on 127.0.0.1 stand in for two nodes of two ranks (``tests/fleet/launch.py``,
the loopback cluster of the tests), with the command's defaults (the seed's grid of 200 steps
included). Measured, ``--repeat`` times per rendezvous backend (static and c10d, side by side, the
ratio printed): the wall time from starting both agents to both having exited with rank 0's
report printed (``launch to report``), rank 0's own ``wall_s`` from the report, and the CPU time
of everything the run started (user + system, the agents and every rank). The machine's 1-minute
load average is printed before and after each run: on a machine whose load is above its CPU
count, the wall time is mostly the wait for a CPU, and the CPU time is the figure to compare.

Target (issue 23): launch to report under 20 s for 2 x 2 on this machine. Exit 1 when a run does
not PASS or the median misses the target.

Usage: ``python benchmarks/bench_distributed_smoke.py [--repeat 3] [--rdzv static c10d]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fleet.launch import torchrun_nodes

TARGET_S = 20.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(rdzv: str) -> dict[str, float]:
    load = os.getloadavg()[0]
    cpu = _cpu_s()
    ended, wall = torchrun_nodes(["--json"], rdzv=rdzv)
    cpu = _cpu_s() - cpu
    reporter = next((e for e in ended if e.stdout.strip()), ended[0])
    codes = [e.returncode for e in ended]
    data = json.loads(reporter.stdout)["data"] if reporter.stdout.strip() else {}
    if codes != [0, 0] or not data.get("passed"):
        sys.stderr.write(reporter.stderr[-3000:])
        raise SystemExit(f"{rdzv}: the clean run did not PASS (exit {codes})")
    return {
        "wall_s": wall,
        "rank0_s": float(data["wall_s"]),
        "cpu_s": cpu,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rdzv", nargs="+", default=["static", "c10d"])
    args = parser.parse_args()
    medians = {}
    print(f"{os.cpu_count()} CPU(s); target: launch to report < {TARGET_S:g} s")
    print("rdzv     run   launch->report s   rank 0 wall_s   CPU s   load before/after")
    for rdzv in args.rdzv:
        runs = [one_run(rdzv) for _ in range(args.repeat)]
        for i, r in enumerate(runs):
            print(
                f"{rdzv:8} {i:>3}   {r['wall_s']:16.1f}   {r['rank0_s']:13.1f}   "
                f"{r['cpu_s']:5.1f}   {r['load_before']:.1f}/{r['load_after']:.1f}"
            )
        medians[rdzv] = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        print(f"{rdzv:8} median launch to report {medians[rdzv]:.1f} s, CPU {cpu:.1f} s")
    if len(medians) == 2:
        a, b = args.rdzv
        print(f"ratio {b}/{a}: {medians[b] / medians[a]:.2f}")
    missed = [k for k, v in medians.items() if v >= TARGET_S]
    if missed:
        print(f"target missed ({', '.join(missed)}): see the load average above")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
