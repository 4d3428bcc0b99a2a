"""Calibration: with the shipped dataset, steps and thresholds a correct framework passes all 48
combinations, for 20 seeds, in both real frameworks on CPU (each in one worker process), the
every-step and parameter checks included: each loss curve stays inside the float32 band around
the NumPy reference's, and every parameter element at every checkpoint inside its own, with room
to spare (each band is 16x the largest drift seen when it was set)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dlsetup.smoke.reference import combinations
from dlsetup.smoke.runner import LINE_PREFIX, worker_path

pytestmark = [pytest.mark.slow, pytest.mark.torch, pytest.mark.tensorflow]

SEEDS = 20


def test_all_48_combinations_pass_for_20_seeds_in_torch_and_tensorflow_on_cpu() -> None:
    procs = {
        fw: subprocess.Popen(
            [
                sys.executable,
                str(worker_path(fw)),
                "--devices",
                "cpu",
                "--calibrate-seeds",
                str(SEEDS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for fw in ("torch", "tensorflow")
    }
    failures: list[tuple[str, int, str, str, str]] = []
    seen: dict[str, set[int]] = {}
    ratios: list[float] = []
    drifts: list[float] = []
    for fw, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        for line in out.splitlines():
            if not line.startswith(LINE_PREFIX):
                continue
            event = json.loads(line[len(LINE_PREFIX) :])
            if event["event"] != "calibration":
                continue
            seen.setdefault(fw, set()).add(event["seed"])
            ratios.append(event["band_ratio"])
            drifts.append(event["param_drift"])
            assert len(event["combinations"]) == len(combinations())
            for c in event["combinations"]:
                if not c["passed"]:
                    failures.append(
                        (fw, event["seed"], c["activation"], c["loss"], c["failures"][0]["what"])
                    )
    assert seen == {"torch": set(range(SEEDS)), "tensorflow": set(range(SEEDS))}
    assert failures == []
    # the largest drift from the reference, as a share of the band: 0.06 when the band was set
    assert max(ratios) < 0.25
    # the parameters' largest drift in units of u (4 + t) max(1, |p|): 1.42 over torch's seeds
    # 0-119 when the band (16 units) was set
    assert max(drifts) < 4.0
