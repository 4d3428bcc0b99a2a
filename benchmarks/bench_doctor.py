"""Benchmark ``dlsetup doctor`` against ``python -m torch.utils.collect_env``, side by side.

Runs, interleaved, ``--repeat`` times each (median reported):

* ``dlsetup doctor --json`` (torch and TensorFlow probed in parallel subprocesses) vs
  ``python -m torch.utils.collect_env`` (torch only, no diagnosis): ratio, target <= 1.0;
* ``dlsetup --help`` and ``dlsetup doctor --no-frameworks --json``: wall time, target <= 0.3 s;
* peak RSS of the doctor process itself (sampled with psutil, its framework workers excluded),
  target <= 80 MB; and of the whole process tree (``wait4``'s ``ru_maxrss``, workers included).

Usage: ``python benchmarks/bench_doctor.py [--repeat 5]``. Nothing is asserted: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

PY = sys.executable
SCRIPT = Path(PY).with_name("dlsetup")
DLSETUP = [str(SCRIPT)] if SCRIPT.exists() else [PY, "-m", "dlsetup"]


def run(cmd: list[str]) -> tuple[float, float, float, int]:
    """Run ``cmd``; return (wall s, own peak RSS MB sampled, tree peak RSS MB, exit code)."""
    env = dict(os.environ, NO_COLOR="1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            me = psutil.Process(proc.pid)
            while not done.is_set():
                peak = max(peak, me.memory_info().rss)
                time.sleep(0.005)
        except psutil.Error:
            return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, peak / 1e6, usage.ru_maxrss / 1e3, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    cases = {
        "collect_env": [PY, "-m", "torch.utils.collect_env"],
        "doctor --json": [*DLSETUP, "doctor", "--json"],
        "dlsetup --help": [*DLSETUP, "--help"],
        "doctor --no-frameworks --json": [*DLSETUP, "doctor", "--no-frameworks", "--json"],
    }
    results: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in cases}
    run(cases["doctor --json"])  # warm the file cache for both sides
    run(cases["collect_env"])
    for _ in range(args.repeat):
        for name, cmd in cases.items():  # interleaved, so load changes hit every case alike
            results[name].append(run(cmd))

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'command':32} {'median s':>9} {'min s':>7} {'own RSS MB':>11} {'tree RSS MB':>12} exit"
    )
    med: dict[str, float] = {}
    for name, rows in results.items():
        walls = [r[0] for r in rows]
        med[name] = statistics.median(walls)
        print(
            f"{name:32} {med[name]:9.3f} {min(walls):7.3f} {max(r[1] for r in rows):11.1f} "
            f"{max(r[2] for r in rows):12.1f} {rows[-1][3]}"
        )
    ratio = med["doctor --json"] / med["collect_env"]
    print()
    print(f"doctor --json / collect_env (median wall): {ratio:.2f}  (target <= 1.0)")
    print(f"dlsetup --help: {med['dlsetup --help']:.3f} s  (target <= 0.3)")
    print(
        f"doctor --no-frameworks --json: {med['doctor --no-frameworks --json']:.3f} s  "
        "(target <= 0.3)"
    )
    own = max(r[1] for r in results["doctor --json"])
    print(f"doctor process peak RSS (own, workers excluded): {own:.1f} MB  (target <= 80)")


if __name__ == "__main__":
    main()
