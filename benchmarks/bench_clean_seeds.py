"""Clean runs on seeds far outside the calibrated range: every check of the grid (one step, every
step, parameters, training) on PyTorch and TensorFlow, CPU, 20 seeds each (1000-1019 by default),
and the largest drift of the loss curves and of the parameters as a share of their bands.

    .venv/bin/python benchmarks/bench_clean_seeds.py [--first 1000] [--seeds 20]

Prints the failures (the issue's figure: 0 over 40 seeds) and the worst ratios. Not a test: the
40 trainings take a few minutes on the shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from dlsetup.smoke.curve_band import PARAM_FACTOR
from dlsetup.smoke.runner import LINE_PREFIX, worker_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--framework", action="append", choices=["torch", "tensorflow"])
    args = parser.parse_args()
    frameworks = args.framework or ["torch", "tensorflow"]
    start = time.perf_counter()
    load = os.getloadavg()[0]
    failures: list[str] = []
    for fw in frameworks:
        proc = subprocess.run(
            [sys.executable, str(worker_path(fw)), "--devices", "cpu",
             "--calibrate-first", str(args.first), "--calibrate-seeds", str(args.seeds)],
            capture_output=True, text=True, check=False, timeout=3600,
        )  # fmt: skip
        seeds, band, drift = 0, 0.0, 0.0
        for line in proc.stdout.splitlines():
            if not line.startswith(LINE_PREFIX):
                continue
            event = json.loads(line[len(LINE_PREFIX) :])
            if event["event"] != "calibration":
                continue
            seeds += 1
            band = max(band, event["band_ratio"])
            drift = max(drift, event["param_drift"])
            failures += [
                f"{fw} seed {event['seed']} {c['activation']}/{c['loss']}: {c['failures'][0]}"
                for c in event["combinations"]
                if not c["passed"]
            ]
        print(
            f"{fw}: {seeds} seeds from {args.first}, largest loss drift {band:.3f} of the band, "
            f"largest parameter drift {drift / PARAM_FACTOR:.3f} of the band ({drift:.2f} units)"
        )
        if proc.returncode != 0 or seeds != args.seeds:
            failures.append(f"{fw}: the worker ended with {proc.returncode}: {proc.stderr[-500:]}")
    print(f"failures: {len(failures)}")
    for failure in failures:
        print("  " + failure)
    wall = time.perf_counter() - start
    print(
        f"{wall:.0f} s, load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
