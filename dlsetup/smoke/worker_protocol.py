"""The smoke workers' entry point and protocol: arguments in, one JSON line per event out.

Runs INSIDE the target interpreter: the framework workers (``torch_worker.py``, ``tf_worker.py``)
are started as scripts by file path, put this directory on ``sys.path`` and call :func:`main` with
a function that imports their framework and returns its backend (:class:`worker_grid.Backend`).
It imports only the standard library and NumPy (plus its sibling modules), so dlsetup need not be
installed in the target environment.

Protocol: the worker writes one JSON object per line to stdout, each line prefixed with
:data:`LINE_PREFIX`; events are ``hello`` (framework, version, devices), ``unavailable`` (the
framework cannot be imported), ``device_start``, ``device_result`` (:func:`worker_device.run_device`),
``calibration``, and after a device's result, for each companion of the framework (PyTorch:
torchvision, torchaudio; see :mod:`companions`), ``companion_start`` (device, companion) and
``companion_result`` (device, check). The companions come after the device's result, so a
companion whose import crashes or hangs the worker cannot take the device's grid with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from dlsetup.smoke.worker_device import run_device, train_grid
    from dlsetup.smoke.worker_grid import DEFAULT_STEPS, Backend
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from worker_device import run_device, train_grid
    from worker_grid import DEFAULT_STEPS, Backend

LINE_PREFIX = "DLSETUP-SMOKE "


def emit(event: dict[str, Any]) -> None:
    """Write one protocol line to stdout."""
    sys.stdout.write(LINE_PREFIX + json.dumps(event, allow_nan=False) + "\n")
    sys.stdout.flush()


def normalize_device(name: str) -> str:
    """One spelling for both frameworks: ``cpu``, ``gpu:N`` (torch ``cuda:N``, TF ``GPU:N``), ``mps``."""
    low = name.strip().lower()
    if low in ("cpu", "cpu:0"):
        return "cpu"
    if low.startswith("cuda"):
        low = "gpu" + low[4:]
    if low == "gpu":
        low = "gpu:0"
    if low in ("mps", "mps:0"):
        return "mps"
    return low


def main(framework: str, load: Callable[[], Backend], argv: Sequence[str] | None = None) -> int:
    """The worker's entry point: import the framework, list devices, run the selected ones.

    Args:
        framework: ``torch`` or ``tensorflow``.
        load: imports the framework and returns its backend (ImportError: not installed).
        argv: command-line arguments (``sys.argv[1:]`` by default).
    """
    t0 = time.perf_counter()
    parser = argparse.ArgumentParser(description=f"dlsetup smoke worker ({framework})")
    parser.add_argument("--devices", default="", help="comma-separated devices (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--calibrate-seeds", type=int, default=0, help="train N seeds only")
    parser.add_argument("--calibrate-first", type=int, default=0, help="the first of those seeds")
    parser.add_argument(
        "--reference-cache",
        default=None,
        help="file of the NumPy reference shared by the run's workers (read when another worker "
        "stored it for the same grid, else computed and stored)",
    )
    parser.add_argument(
        "--no-companions",
        action="store_true",
        help="skip the companion checks (torchvision, torchaudio) after each device",
    )
    parser.add_argument(
        "--one-device",
        action="store_true",
        help="run only the first selected device, then exit (the runner starts a fresh worker "
        "for each further device)",
    )
    args = parser.parse_args(argv)
    try:
        backend = load()
    except ImportError as exc:
        emit(
            {
                "event": "unavailable",
                "framework": framework,
                "reason": f"{type(exc).__name__}: {exc}",
            }
        )
        return 0
    import_s = time.perf_counter() - t0
    devices = backend.devices()
    wanted = [normalize_device(d) for d in args.devices.split(",") if d.strip()]
    selected = [d for d in devices if not wanted or normalize_device(d) in wanted]
    emit({
        "event": "hello",
        "framework": framework,
        "version": backend.version,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "devices": devices,
        "selected": selected,
        "import_s": import_s,
    })  # fmt: skip
    if args.calibrate_seeds:
        for device in selected:
            for seed in range(args.calibrate_first, args.calibrate_first + args.calibrate_seeds):
                found, _, times = train_grid(backend, device, seed, args.steps, step_check=False)
                emit({
                    "event": "calibration", "device": device, "seed": seed,
                    "combinations": [v.as_dict() for v in found],
                    "band_ratio": times["band_ratio"],
                    "param_drift": times.get("param_ratio", 0.0),
                })  # fmt: skip
        return 0
    for device in selected[:1] if args.one_device else selected:
        emit({"event": "device_start", "device": device})
        result = run_device(backend, device, args.seed, args.steps, args.reference_cache)
        emit(result)
        if not args.no_companions and result["status"] == "ok":
            run_companions(backend, device)
    return 0


def run_companions(backend: Backend, device: str) -> None:
    """Check each companion of the backend's framework on ``device`` and emit the results.

    A backend with companions has ``companions`` (their names) and ``companion_check(name,
    device)`` returning the check's dict (:func:`companions.check_companion`).
    """
    check = getattr(backend, "companion_check", None)
    if check is None:
        return
    for name in getattr(backend, "companions", ()):
        emit({"event": "companion_start", "device": device, "companion": name})
        emit({"event": "companion_result", "device": device, "check": check(name, device)})


def exit_now(code: int) -> NoReturn:
    """End the worker at once with ``code``, its output flushed.

    Everything the runner needs has been written by then; the interpreter's own shutdown (the
    framework's module teardown, its thread pools) would add about half a second for TensorFlow
    and a third for PyTorch to every smoke, and can only fail after the results are out.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
