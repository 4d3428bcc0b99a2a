"""Calibration: with the shipped dataset, steps and thresholds a correct framework passes all 48
combinations, for 20 seeds, in both real frameworks on CPU (each in one worker process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
            assert len(event["combinations"]) == 48
            for c in event["combinations"]:
                if not c["passed"]:
                    failures.append(
                        (fw, event["seed"], c["activation"], c["loss"], c["failures"][0]["what"])
                    )
    assert seen == {"torch": set(range(SEEDS)), "tensorflow": set(range(SEEDS))}
    assert failures == []
