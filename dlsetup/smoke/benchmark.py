"""Benchmark figures of a smoke run, github-action-benchmark output, and the regression gate.

The benchmark document (schema ``dlsetup.smoke-benchmark``) holds, per framework and device, the
milliseconds per training step of the stacked 48-model grid, steps per second, the seconds of each
phase, peak host RSS and peak device memory, plus the machine and the whole run's wall time.
:func:`metrics` flattens it into github-action-benchmark's ``customSmallerIsBetter`` entries
(``[{"name", "unit", "value"}]``), and :func:`compare` checks a run against a baseline in either
format.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlsetup.errors import InputError
from dlsetup.facts import Missing
from dlsetup.output import envelope, to_jsonable
from dlsetup.smoke.results import Machine, SmokeReport

BENCHMARK_SCHEMA = "dlsetup.smoke-benchmark"
#: Phases reported as their own metric (seconds). Short phases (function checks, warm-up) are
#: left out: at tens of milliseconds their noise on a shared machine exceeds any sensible bound.
PHASE_METRICS: tuple[str, ...] = ("train_s",)


@dataclass(frozen=True)
class BenchmarkRun:
    """The figures of one framework on one device."""

    framework: str
    device: str
    status: str
    combinations: int
    steps: int
    ms_per_step: float | Missing
    steps_per_second: float | Missing
    import_s: float | Missing
    phases: dict[str, float]
    peak_rss_bytes: int | Missing
    peak_device_bytes: int | Missing


@dataclass(frozen=True)
class Benchmark:
    """The benchmark document's data."""

    wall_s: float
    machine: Machine
    runs: tuple[BenchmarkRun, ...]


def benchmark_from_report(report: SmokeReport) -> Benchmark:
    """Extract the benchmark figures of a smoke run."""
    imports = {f.framework: f.import_s for f in report.frameworks}
    runs = []
    for run in report.runs:
        ms = run.ms_per_step
        sps: float | Missing = (
            1000.0 / ms if isinstance(ms, float) and ms > 0 else Missing(run.status)
        )
        runs.append(
            BenchmarkRun(
                framework=run.framework,
                device=run.device,
                status=run.status,
                combinations=len(run.combinations),
                steps=run.steps,
                ms_per_step=ms,
                steps_per_second=sps,
                import_s=imports.get(run.framework, Missing("not_run")),
                phases=dict(run.phases),
                peak_rss_bytes=run.peak_rss_bytes,
                peak_device_bytes=run.peak_device_bytes,
            )
        )
    return Benchmark(wall_s=report.wall_s, machine=report.machine, runs=tuple(runs))


def benchmark_document(bench: Benchmark) -> dict[str, Any]:
    """The versioned envelope written by ``--output``."""
    return envelope(BENCHMARK_SCHEMA, bench)


@dataclass(frozen=True)
class Metric:
    """One github-action-benchmark ``customSmallerIsBetter`` entry."""

    name: str
    unit: str
    value: float


def _device_key(device: str) -> str:
    return device.lower().replace("cuda:", "gpu:")


def metrics(bench: Benchmark) -> list[Metric]:
    """Flatten the figures into smaller-is-better metrics with stable names."""
    out = [Metric("smoke wall time", "s", round(bench.wall_s, 4))]
    for run in bench.runs:
        key = f"{run.framework} {_device_key(run.device)}"
        if isinstance(run.ms_per_step, float):
            out.append(Metric(f"{key} ms per step", "ms", round(run.ms_per_step, 4)))
        for phase in PHASE_METRICS:
            if phase in run.phases:
                out.append(Metric(f"{key} {phase[:-2]}", "s", round(run.phases[phase], 4)))
        if isinstance(run.peak_rss_bytes, int):
            out.append(Metric(f"{key} peak RSS", "MiB", round(run.peak_rss_bytes / 2**20, 1)))
        if isinstance(run.peak_device_bytes, int):
            out.append(
                Metric(f"{key} peak device memory", "MiB", round(run.peak_device_bytes / 2**20, 1))
            )
    return out


def github_benchmark(bench: Benchmark) -> list[dict[str, Any]]:
    """The ``customSmallerIsBetter`` JSON list for github-action-benchmark."""
    return [to_jsonable(m) for m in metrics(bench)]


def parse_regression(text: str) -> float:
    """Parse ``--max-regression`` (``25%`` or ``25``, a percentage) into a fraction (0.25).

    Raises:
        InputError: the value is not a non-negative percentage.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text)
    if not m:
        raise InputError(
            f"--max-regression {text!r} is not a percentage",
            fix="give a non-negative percentage such as 25% or 300%",
        )
    return float(m.group(1)) / 100.0


def load_baseline(path: Path) -> list[Metric]:
    """Read a baseline: a ``dlsetup.smoke-benchmark`` document or a customSmallerIsBetter list.

    Raises:
        InputError: the file is missing, not JSON, or neither format.
    """
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise InputError(
            f"baseline {path} does not exist",
            fix="write one with `dlsetup smoke --benchmark --output FILE.json`",
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"baseline {path} is not readable JSON: {exc}", fix="regenerate it"
        ) from exc
    if isinstance(doc, list) and all(
        isinstance(e, dict) and {"name", "unit", "value"} <= set(e) for e in doc
    ):
        return [Metric(str(e["name"]), str(e["unit"]), float(e["value"])) for e in doc]
    if isinstance(doc, dict) and doc.get("schema") == BENCHMARK_SCHEMA:
        data = doc["data"]
        bench = Benchmark(
            wall_s=float(data["wall_s"]),
            machine=Machine(**data["machine"]),
            runs=tuple(
                BenchmarkRun(
                    **{
                        **r,
                        "ms_per_step": r["ms_per_step"]
                        if isinstance(r["ms_per_step"], float)
                        else Missing("absent"),
                        "peak_rss_bytes": r["peak_rss_bytes"]
                        if isinstance(r["peak_rss_bytes"], int)
                        else Missing("absent"),
                        "peak_device_bytes": r["peak_device_bytes"]
                        if isinstance(r["peak_device_bytes"], int)
                        else Missing("absent"),
                    }
                )
                for r in data["runs"]
            ),
        )
        return metrics(bench)
    raise InputError(
        f"baseline {path} is neither a {BENCHMARK_SCHEMA} document nor a customSmallerIsBetter list",
        fix="write one with `dlsetup smoke --benchmark --output FILE.json`",
    )


@dataclass(frozen=True)
class Delta:
    """One metric of the comparison.

    Attributes:
        status: ``ok``, ``regression`` (worse than the bound), ``improved``, ``new`` (not in the
            baseline) or ``missing`` (in the baseline, not in this run).
        change: (current - baseline) / baseline, a fraction (positive is slower/larger).
    """

    name: str
    unit: str
    baseline: float | None
    current: float | None
    change: float | None
    status: str


@dataclass(frozen=True)
class Comparison:
    """The regression gate's result."""

    baseline: str
    max_regression: float
    deltas: tuple[Delta, ...]

    @property
    def regressed(self) -> bool:
        """True when any metric is worse than the baseline by more than the bound."""
        return any(d.status == "regression" for d in self.deltas)


def compare(
    current: list[Metric], baseline: list[Metric], max_regression: float, source: str
) -> Comparison:
    """Compare smaller-is-better metrics against a baseline.

    Memory metrics and timings alike regress when ``current > baseline * (1 + max_regression)``.
    A metric missing from this run (for example a GPU that disappeared) is reported, not failed.
    """
    base = {m.name: m for m in baseline}
    cur = {m.name: m for m in current}
    deltas = []
    for name, m in cur.items():
        b = base.get(name)
        if b is None:
            deltas.append(Delta(name, m.unit, None, m.value, None, "new"))
            continue
        change = (
            (m.value - b.value) / b.value if b.value > 0 else (0.0 if m.value <= 0 else math.inf)
        )
        if change > max_regression:
            status = "regression"
        elif change < 0:
            status = "improved"
        else:
            status = "ok"
        deltas.append(Delta(name, m.unit, b.value, m.value, change, status))
    for name, b in base.items():
        if name not in cur:
            deltas.append(Delta(name, b.unit, b.value, None, None, "missing"))
    return Comparison(source, max_regression, tuple(deltas))
