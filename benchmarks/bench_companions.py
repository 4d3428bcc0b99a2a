"""Benchmark: what the companion checks (torchvision, torchaudio) add to ``dlsetup smoke``.

Run: ``python benchmarks/bench_companions.py [--repeat 3] [--python PATH]``

Side by side, in one process, the whole torch smoke (``run_smoke``: worker start, import, grid,
companions) with the companion checks off (``--no-companions`` in the worker) and on, alternated
``--repeat`` times, for:

* the target interpreter as it is (``--python``, default this one): with no companion installed
  the checks cost a ``find_spec`` each; with real ones, torchvision's compiled extension loaded
  alone (``torch.ops.load_library``, no ``import torchvision``) and its ``nms`` kernel, and
  torchaudio's import and one transform;
* this interpreter with the working stand-ins of the test suite on ``PYTHONPATH`` (torchvision's
  ``nms`` registered through ``torch.library``, torchaudio's ``Spectrogram`` through
  ``torch.stft``): the checks' own work, without the real packages' import cost; once with a
  torchvision that has no compiled extension (the check imports the package) and once with one
  whose ``_C.so`` registers ``nms`` (the fast path: only the extension is loaded).

Prints the median wall seconds of each, their difference, and the ``companions_s`` phase the
worker measured (import and check of both companions). The target: at most 1 s added.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dlsetup.smoke.runner import RunOptions, run_smoke  # noqa: E402
from tests.smoke.companion_standins import torchaudio_standin, torchvision_standin  # noqa: E402


def once(python: Path, companions: bool, env: tuple[tuple[str, str], ...]) -> tuple[float, float]:
    """(wall seconds of the whole torch smoke, the worker's companions_s phase)."""
    t0 = time.perf_counter()
    report = run_smoke(
        RunOptions(python=python, frameworks=("torch",), companions=companions, env=env)
    )
    wall = time.perf_counter() - t0
    if not report.passed:
        states = [(c.companion, c.status, c.error) for r in report.runs for c in r.companions]
        raise SystemExit(f"the smoke failed: {states}")
    phase = sum(r.phases.get("companions_s", 0.0) for r in report.runs)
    return wall, phase


def row(label: str, python: Path, env: tuple[tuple[str, str], ...], repeat: int) -> None:
    off: list[float] = []
    on: list[float] = []
    phases: list[float] = []
    once(python, True, env)  # warm the file cache
    for _ in range(repeat):
        off.append(once(python, False, env)[0])
        wall, phase = once(python, True, env)
        on.append(wall)
        phases.append(phase)
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(
        f"{label:<46} {m_off:8.2f} s {m_on:8.2f} s {m_on - m_off:+8.2f} s "
        f"{statistics.median(phases):10.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python", type=Path, default=Path(sys.executable))
    args = parser.parse_args()
    print(f"torch smoke, median of {args.repeat} (2-core shared machine: figures move)")
    print(f"{'':<46} {'without':>10} {'with':>10} {'added':>10} {'companions_s':>12}")
    row(f"{args.python} as it is", args.python, (), args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        torchvision_standin(Path(tmp))
        torchaudio_standin(Path(tmp))
        row(
            "this venv + working stand-ins",
            Path(sys.executable),
            (("PYTHONPATH", tmp),),
            args.repeat,
        )
    with tempfile.TemporaryDirectory() as tmp:
        torchvision_standin(Path(tmp), "extension")  # a compiled _C.so: the fast path
        torchaudio_standin(Path(tmp))
        row(
            "this venv + stand-ins, torchvision's _C.so",
            Path(sys.executable),
            (("PYTHONPATH", tmp),),
            args.repeat,
        )


if __name__ == "__main__":
    main()
