"""One device's run in a smoke worker: the function checks, the stacked training of the grid, the
verdicts against the NumPy reference, and the rerun alone of each failed combination.

Runs INSIDE the target interpreter (the workers load it by path): standard library and NumPy only.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dlsetup.smoke import curve_band
    from dlsetup.smoke import reference as ref
    from dlsetup.smoke.worker_checks import function_checks, json_number
    from dlsetup.smoke.worker_clock import one_cpu, timing_clock
    from dlsetup.smoke.worker_grid import (
        LEARNING_RATES,
        Backend,
        TrainOutput,
        combinations,
        init_params,
        make_data,
        make_plan,
    )
    from dlsetup.smoke.worker_kernels import kernel_checks, kernel_timings
    from dlsetup.smoke.worker_reference import GridReference, compute, shared
    from dlsetup.smoke.worker_verdicts import ComboVerdict, verdicts
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import curve_band
    import reference as ref
    from worker_checks import function_checks, json_number
    from worker_clock import one_cpu, timing_clock
    from worker_grid import (
        LEARNING_RATES,
        Backend,
        TrainOutput,
        combinations,
        init_params,
        make_data,
        make_plan,
    )
    from worker_kernels import kernel_checks, kernel_timings
    from worker_reference import GridReference, compute, shared
    from worker_verdicts import ComboVerdict, verdicts


def train_grid(
    backend: Backend, device: str, seed: int, steps: int, *, step_check: bool,
    reference_cache: str | None = None,
) -> tuple[list[ComboVerdict], TrainOutput, dict[str, float]]:  # fmt: skip
    """Checks (2)-(4): train all 48 combinations as one stacked program, then rerun each
    failed combination alone to attribute the failure.

    Args:
        step_check: check the first step too (check 2).
        reference_cache: the run's file of the shared NumPy reference
            (:func:`worker_reference.shared`; with ``step_check`` only); None: compute it here.

    Returns:
        The verdicts, the stacked run's output, and its figures: seconds of each phase
        (``build_s``, ``train_s``, ``warmup_s``, ``loop_s``, ``reference_s``, ``rerun_s``), and
        ``kernel_ms``, ``best_ms_per_step``, ``step_per_kernel``, ``band_ratio``.
    """
    combos = combinations()
    plan = make_plan(combos)
    x, y = make_data(seed)
    init = init_params(seed, len(combos))
    lr = np.array([LEARNING_RATES[loss] for _, loss in combos])
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    trainer = backend.trainer(device, plan)
    times["build_s"] = time.perf_counter() - t0
    out = trainer.run(init, x, y, lr=lr, steps=steps)
    times["kernel_ms"] = min(out.clock.kernel_ms, default=math.nan)
    times["best_ms_per_step"] = out.clock.best_ms
    times["step_per_kernel"] = out.clock.step_per_kernel
    times["train_s"] = out.warmup_s + out.loop_s
    times["warmup_s"] = out.warmup_s
    times["loop_s"] = out.loop_s
    t0 = time.perf_counter()
    reference: GridReference = (
        shared(reference_cache, combos, init, x, y, lr=lr, steps=steps)
        if step_check
        else compute(combos, init, x, y, lr=lr, steps=steps, step_check=False)
    )
    ref_losses, ref_after, ref_curves = (
        reference.first_losses,
        reference.first_after,
        reference.curves,
    )
    times["reference_s"] = time.perf_counter() - t0
    times["reference_shared"] = float(reference.shared)
    found = verdicts(plan, out, y, ref_losses, ref_after, ref_curves=ref_curves)
    ends = [steps if v.checked_to is None else v.checked_to for v in found]
    times["band_ratio"] = max(
        curve_band.worst_ratio(out.curves[: end + 1, i], ref_curves.loss[: end + 1, i])
        for i, end in enumerate(ends)
    )
    if out.params and ref_curves.checkpoints:  # the parameters' drift, for calibration runs
        ratios = curve_band.param_ratios(
            out.params, dict(ref_curves.params), ref_curves.checkpoints, ref_curves.unit_parted
        )
        times["param_ratio"] = curve_band.PARAM_FACTOR * max(
            (
                float(ratios[:n, i].max())
                for i in range(ratios.shape[1])
                if (
                    n := curve_band.clean_checkpoints(ref_curves.checkpoints, ref_curves.kink[:, i])
                )
            ),
            default=0.0,
        )
    t0 = time.perf_counter()
    for i, v in enumerate(found):
        if not v.failures:
            continue
        single = make_plan([combos[i]])
        sub_init = {k: a[i : i + 1] for k, a in init.items()}
        sub = backend.trainer(device, single).run(sub_init, x, y, lr=lr[i : i + 1], steps=steps)
        sub_ref = None if ref_after is None else {k: a[i : i + 1] for k, a in ref_after.items()}
        sub_losses = None if ref_losses is None else ref_losses[i : i + 1]
        sub_curves = ref.Curves(
            ref_curves.loss[:, i : i + 1],
            ref_curves.kink[:, i : i + 1],
            ref_curves.checkpoints,
            {k: np.asarray(a)[:, i : i + 1] for k, a in ref_curves.params.items()},
            None if ref_curves.unit_parted is None else ref_curves.unit_parted[i : i + 1],
        )
        alone = verdicts(single, sub, y, sub_losses, sub_ref, ref_curves=sub_curves)[0]
        v.isolated = {
            "passed": not alone.failures,
            "final_loss": json_number(alone.final_loss),
            "attribution": (
                "fails on its own too: the fault is in this combination"
                if alone.failures
                else "passes alone: the fault is in the stacked (batched) program"
            ),
        }
    times["rerun_s"] = time.perf_counter() - t0
    return found, out, times


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory (bytes; None where the platform cannot say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_device(
    backend: Backend, device: str, seed: int, steps: int, reference_cache: str | None = None
) -> dict[str, Any]:
    """All checks on one device, as a ``device_result`` event; never raises (an exception
    becomes an ``error`` result). ``reference_cache``: see :func:`train_grid`."""
    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        ops = backend.kernel_ops(device)
        with one_cpu(device):  # first: before any pool of threads is up and spinning
            timings = kernel_timings(ops, timing_clock(device))
        phases["kernel_timing_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        kernels = kernel_checks(ops, device)
        phases["kernel_checks_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        checks = function_checks(backend, device)
        phases["function_checks_s"] = time.perf_counter() - t0
        with one_cpu(device):  # the timed training loop on one core (worker_clock.one_cpu)
            found, out, times = train_grid(
                backend, device, seed, steps, step_check=True, reference_cache=reference_cache
            )
        times.pop("band_ratio")  # not seconds: reported by calibration runs only
        times.pop("param_ratio", None)
        shared_reference = bool(times.pop("reference_shared"))
        kernel_ms = times.pop("kernel_ms")
        best_ms = times.pop("best_ms_per_step")
        ratio = times.pop("step_per_kernel")
        phases.update(times)
    except Exception as exc:  # a device that fails fails its own rows only
        return {
            "event": "device_result",
            "device": device,
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
            "phases": phases,
            "peak_rss_bytes": peak_rss_bytes(),
        }
    phases["total_s"] = time.perf_counter() - t_start
    if shared_reference:  # read from the run's cache: another worker computed it
        phases["reference_read_s"] = phases.pop("reference_s")
    loop_steps = max(steps - 1, 1)
    return {
        "event": "device_result",
        "device": device,
        "status": "ok",
        "seed": seed,
        "steps": steps,
        "kernel_checks": kernels,
        "kernel_timings": timings,
        "function_checks": checks,
        "combinations": [v.as_dict() for v in found],
        "curves": [[json_number(v) for v in out.curves[:, i]] for i in range(out.curves.shape[1])],
        "phases": phases,
        "ms_per_step": 1000.0 * out.loop_s / loop_steps,
        "best_ms_per_step": _finite_or_none(best_ms),
        "kernel_ms": _finite_or_none(kernel_ms),
        "step_per_kernel": _finite_or_none(ratio),
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_device_bytes": backend.peak_device_memory(device),
    }
