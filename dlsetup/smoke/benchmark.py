"""Benchmark figures of a smoke run, github-action-benchmark output, and the regression gate.

The benchmark document (schema ``dlsetup.smoke-benchmark``) holds, per framework and device, the
milliseconds per training step of the stacked 48-model grid, steps per second, the seconds of each
phase, peak host RSS and peak device memory, plus the machine and the whole run's wall time.
:func:`metrics` flattens it into github-action-benchmark's ``customSmallerIsBetter`` entries
(``[{"name", "unit", "value"}]``), and :func:`compare` checks a run against a baseline in either
format.

The gate compares figures a baseline from another machine, or from the same machine on a busier
day, can still speak to: the **step per kernel** (the median over 20-step chunks of the chunk's
milliseconds per step divided by one run of a fixed NumPy calibration kernel right after it, in
the same worker, :mod:`dlsetup.smoke.timing_kernel`) and peak memory. Raw timings (ms per step, train seconds,
wall time) are shown beside them as ``info``, never gated: on a shared 2-core machine they move by
2-3x with the load.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.errors import InputError
from dlsetup.facts import Missing
from dlsetup.output import envelope
from dlsetup.smoke.results import KernelTiming, Machine, SmokeReport

if TYPE_CHECKING:
    from dlsetup.smoke.device_peak import DevicePeak

BENCHMARK_SCHEMA = "dlsetup.smoke-benchmark"
#: The name suffix of the normalized step figure, the one timing the gate reads.
NORMALIZED = "step per kernel"
#: Name suffixes of the figures the gate reads: the normalized step, each timed kernel
#: normalized the same way (``torch cpu matmul 128x256x96 per kernel``), and memory.
GATED_SUFFIXES: tuple[str, ...] = ("per kernel", "peak RSS", "peak device memory")
#: The default ``--max-regression``: a 1.3x slower step fails, noise does not
#: (``benchmarks/bench_gate.py``; the gate measures again, up to :data:`COMPARE_RUNS` runs, while
#: a figure sits near its bound, and reads the medians; a figure whose recorded spread is wide is
#: held to :data:`SPREAD_FACTOR` times it instead, :func:`figure_bound`). Timed in wall time, 4 of
#: 6 gates on unchanged code failed 20% at load 8-9; timed as the smaller of wall and CPU seconds
#: (``worker_clock.timing_clock``), none of 10 at load 8-10 (but 2 of 10 at load 0.7-1.6:
#: TensorFlow's step has two modes on a quiet machine, docs/smoke.md).
DEFAULT_MAX_REGRESSION = "20%"
#: A gated figure whose baseline was recorded from several runs is held to at least this many
#: times its recorded spread (the half-width of the runs' range, ``benchmarks/bench_gate.py
#: --record``): a figure that moved by ±15% between clean recordings cannot be held to 20%.
SPREAD_FACTOR = 2.0
#: A figure whose recorded spread asks for a bound wider than this is not gated but reported as
#: ``noisy``: at such a bound even a 2x slower kernel could pass, so the gate says it cannot
#: judge that figure instead of passing it (record the baseline again on a quieter machine).
MAX_FIGURE_BOUND = 0.5
#: A timed kernel's figure (``... matmul 128x256x96 per kernel``, one call of tens to hundreds of
#: microseconds) is held to at least this: clean runs of it moved by up to ±21% (TensorFlow) and
#: fell into two modes 20% apart (PyTorch: 0.0142 and 0.0172 in 5 recordings at load 4), while a
#: 2x slower matmul read +68% .. +103% (TensorFlow) and +113% .. +188% (PyTorch) in 20 gates
#: (``benchmarks/bench_gate.py``). The step figures are held to ``--max-regression``.
KERNEL_MIN_BOUND = 0.4
#: The timed kernels the gate reads (the others' ms are shown as ``info``): the sum and ``exp``
#: calls last 10-150 microseconds, and their figures moved by up to +83% between clean runs at
#: load 8 (``benchmarks/bench_gate.py``), matmul's by at most +31%.
GATED_KERNELS: tuple[str, ...] = ("matmul",)
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
    best_ms_per_step: float | Missing
    kernel_ms: float | Missing
    step_per_kernel: float | Missing
    import_s: float | Missing
    phases: dict[str, float]
    peak_rss_bytes: int | Missing
    peak_device_bytes: int | Missing
    kernel_timings: tuple[KernelTiming, ...] = ()


@dataclass(frozen=True)
class Benchmark:
    """The benchmark document's data.

    ``device_peak``: with ``--benchmark``, each device's matmul (and GPU memory bandwidth) against
    its peak (:mod:`dlsetup.smoke.device_peak`); None otherwise. Not a gated metric.
    """

    wall_s: float
    machine: Machine
    runs: tuple[BenchmarkRun, ...]
    device_peak: tuple[DevicePeak, ...] | None = None


def benchmark_from_report(report: SmokeReport) -> Benchmark:
    """Extract the benchmark figures of a smoke run."""
    imports = {f.framework: f.import_s for f in report.frameworks}
    runs = []
    for run in report.runs:
        ms = run.ms_per_step
        sps: float | Missing = (
            1000.0 / ms if isinstance(ms, float) and ms > 0 else Missing(run.status)
        )
        best, kernel, ratio = run.best_ms_per_step, run.kernel_ms, run.step_per_kernel
        runs.append(
            BenchmarkRun(
                framework=run.framework,
                device=run.device,
                status=run.status,
                combinations=len(run.combinations),
                steps=run.steps,
                ms_per_step=ms,
                steps_per_second=sps,
                best_ms_per_step=best,
                kernel_ms=kernel,
                step_per_kernel=ratio,
                import_s=imports.get(run.framework, Missing("not_run")),
                phases=dict(run.phases),
                peak_rss_bytes=run.peak_rss_bytes,
                peak_device_bytes=run.peak_device_bytes,
                kernel_timings=run.kernel_timings,
            )
        )
    return Benchmark(wall_s=report.wall_s, machine=report.machine, runs=tuple(runs))


def benchmark_document(bench: Benchmark) -> dict[str, Any]:
    """The versioned envelope written by ``--output``."""
    return envelope(BENCHMARK_SCHEMA, bench)


@dataclass(frozen=True)
class Metric:
    """One github-action-benchmark ``customSmallerIsBetter`` entry.

    ``spread``: in a baseline recorded from several runs (``value`` their median), the half-width
    of their range as a fraction of the median (the entry's ``range``, ``"±12.5%"``); None for a
    single run.
    """

    name: str
    unit: str
    value: float
    spread: float | None = None


def _device_key(device: str) -> str:
    return device.lower().replace("cuda:", "gpu:")


def metrics(bench: Benchmark) -> list[Metric]:
    """Flatten the figures into smaller-is-better metrics with stable names."""
    out = [Metric("smoke wall time", "s", round(bench.wall_s, 4))]
    for run in bench.runs:
        out += _run_metrics(
            run.framework,
            run.device,
            ms_per_step=run.ms_per_step,
            step_per_kernel=run.step_per_kernel,
            phases=run.phases,
            peak_rss_bytes=run.peak_rss_bytes,
            peak_device_bytes=run.peak_device_bytes,
            kernels=run.kernel_timings,
        )
    return out


def _run_metrics(
    framework: str,
    device: str,
    *,
    ms_per_step: object,
    step_per_kernel: object = None,
    phases: dict[str, float],
    peak_rss_bytes: object,
    peak_device_bytes: object,
    kernels: tuple[KernelTiming, ...] = (),
) -> list[Metric]:
    key = f"{framework} {_device_key(device)}"
    out = []
    if _is_number(step_per_kernel):
        out.append(Metric(f"{key} {NORMALIZED}", "x", round(float(step_per_kernel), 4)))  # type: ignore[arg-type]
    for k in kernels:
        name = f"{key} {k.kernel} {k.shape}"
        if k.per_kernel is not None and k.kernel in GATED_KERNELS:
            out.append(Metric(f"{name} per kernel", "x", round(k.per_kernel, 6)))
        out.append(Metric(f"{name} ms", "ms", round(k.ms, 6)))
    if _is_number(ms_per_step):
        out.append(Metric(f"{key} ms per step", "ms", round(float(ms_per_step), 4)))  # type: ignore[arg-type]
    for phase in PHASE_METRICS:
        if phase in phases:
            out.append(Metric(f"{key} {phase[:-2]}", "s", round(phases[phase], 4)))
    if isinstance(peak_rss_bytes, int) and not isinstance(peak_rss_bytes, bool):
        out.append(Metric(f"{key} peak RSS", "MiB", round(peak_rss_bytes / 2**20, 1)))
    if isinstance(peak_device_bytes, int) and not isinstance(peak_device_bytes, bool):
        out.append(Metric(f"{key} peak device memory", "MiB", round(peak_device_bytes / 2**20, 1)))
    return out


def github_benchmark(bench: Benchmark) -> list[dict[str, Any]]:
    """The ``customSmallerIsBetter`` JSON list for github-action-benchmark."""
    return [{"name": m.name, "unit": m.unit, "value": m.value} for m in metrics(bench)]


def parse_regression(text: str) -> float:
    """Parse ``--max-regression`` (``25%`` or ``25``, a percentage) into a fraction (0.25).

    Raises:
        InputError: the value is not a finite, non-negative percentage.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text)
    value = float(m.group(1)) / 100.0 if m else math.nan
    if not math.isfinite(value):
        raise InputError(
            f"--max-regression {text!r} is not a percentage",
            fix="give a non-negative percentage such as 25% or 300%",
        )
    return value


#: The ``schema_version`` of the benchmark documents this dlsetup writes and reads.
BENCHMARK_SCHEMA_VERSION = 1
_WRITE_ONE = "write one with `dlsetup smoke --benchmark --output FILE.json`"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}… ({len(text)} characters)"


class _Baseline:
    """Reads the fields :func:`compare` uses from a parsed baseline, naming each bad one.

    Unknown fields are ignored (a newer writer may add some); a missing or mistyped field that
    compare reads is an :class:`InputError` naming the file and the field's path.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> InputError:
        return InputError(
            f"baseline {self.path}: {where} {problem}",
            fix=f"regenerate it: {_WRITE_ONE}, or give a customSmallerIsBetter list "
            '([{"name": ..., "unit": ..., "value": ...}])',
        )

    def field(self, obj: dict[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(f"{where}.{key}", "is missing")
        return obj[key]

    def obj(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be an object, got {_show(value)}")
        return value

    def text(self, obj: dict[str, Any], key: str, where: str) -> str:
        value = self.field(obj, key, where)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key}", f"must be a non-empty string, got {_show(value)}")
        return value

    def number(self, value: object, where: str) -> float:
        if not _is_number(value) or float(value) < 0:  # type: ignore[arg-type]
            raise self.fail(where, f"must be a finite number >= 0, got {_show(value)}")
        return float(value)  # type: ignore[arg-type]

    def number_or_missing(self, obj: dict[str, Any], key: str, where: str, *, integer: bool) -> Any:
        value = self.field(obj, key, where)
        if isinstance(value, dict) and isinstance(value.get("reason"), str):
            return Missing(value["reason"], str(value.get("detail", "")))
        kind = "an integer" if integer else "a number"
        if integer and not (isinstance(value, int) and not isinstance(value, bool)):
            raise self.fail(
                f"{where}.{key}",
                f"must be {kind} or a missing marker "
                f'({{"reason": ..., "detail": ...}}), got {_show(value)}',
            )
        number = self.number(value, f"{where}.{key}")
        return int(number) if integer else number

    def custom_list(self, doc: list[Any]) -> list[Metric]:
        if not doc:
            raise self.fail("the list", "is empty: it has no metric to compare with")
        out = []
        for i, raw in enumerate(doc):
            where = f"entry {i}"
            entry = self.obj(raw, where)
            name = self.text(entry, "name", where)
            unit = self.field(entry, "unit", where)
            if not isinstance(unit, str):
                raise self.fail(f"{where}.unit", f"must be a string, got {_show(unit)}")
            value = self.number(self.field(entry, "value", where), f"{where}.value")
            out.append(Metric(name, unit, value, self.spread(entry, where)))
        return out

    def spread(self, entry: dict[str, Any], where: str) -> float | None:
        """The entry's ``range`` (``"±12.5%"``, written by ``benchmarks/bench_gate.py --record``)
        as a fraction; None without one, or with a range in the value's own unit (``"±0.1"``,
        as github-action-benchmark's customSmallerIsBetter entries carry: not a spread we read)."""
        text = entry.get("range")
        if text is None:
            return None
        m = re.fullmatch(r"\s*±\s*(\d+(?:\.\d+)?)\s*%\s*", str(text))
        return None if m is None else float(m.group(1)) / 100.0

    def kernels(self, run: dict[str, Any], where: str) -> tuple[KernelTiming, ...]:
        """The run's ``kernel_timings`` (none in a document written before they existed)."""
        raw = run.get("kernel_timings", [])
        if not isinstance(raw, list):
            raise self.fail(f"{where}.kernel_timings", f"must be a list, got {_show(raw)}")
        out = []
        for j, item in enumerate(raw):
            at = f"{where}.kernel_timings[{j}]"
            t = self.obj(item, at)
            ratio = t.get("per_kernel")
            out.append(
                KernelTiming(
                    kernel=self.text(t, "kernel", at),
                    shape=self.text(t, "shape", at),
                    ms=self.number(self.field(t, "ms", at), f"{at}.ms"),
                    rate=self.number(self.field(t, "rate", at), f"{at}.rate"),
                    unit=self.text(t, "unit", at),
                    per_kernel=None if ratio is None else self.number(ratio, f"{at}.per_kernel"),
                )
            )
        return tuple(out)

    def document(self, doc: dict[str, Any]) -> list[Metric]:
        version = self.field(doc, "schema_version", "the document")
        if version != BENCHMARK_SCHEMA_VERSION:
            newer = _is_number(version) and version > BENCHMARK_SCHEMA_VERSION
            raise InputError(
                f"baseline {self.path}: schema_version {_show(version)} is not one this dlsetup "
                f"reads ({BENCHMARK_SCHEMA_VERSION})"
                + ("; it was written by a newer dlsetup" if newer else ""),
                fix=("upgrade dlsetup, or " if newer else "") + _WRITE_ONE,
            )
        data = self.obj(self.field(doc, "data", "the document"), "data")
        wall = self.number(self.field(data, "wall_s", "data"), "data.wall_s")
        runs = self.field(data, "runs", "data")
        if not isinstance(runs, list):
            raise self.fail("data.runs", f"must be a list, got {_show(runs)}")
        out = [Metric("smoke wall time", "s", round(wall, 4))]
        for i, raw in enumerate(runs):
            where = f"data.runs[{i}]"
            run = self.obj(raw, where)
            phases = self.obj(self.field(run, "phases", where), f"{where}.phases")
            for key, value in phases.items():
                self.number(value, f"{where}.phases.{key}")
            ratio = (
                self.number_or_missing(run, "step_per_kernel", where, integer=False)
                if "step_per_kernel" in run
                else None
            )
            out += _run_metrics(
                self.text(run, "framework", where),
                self.text(run, "device", where),
                ms_per_step=self.number_or_missing(run, "ms_per_step", where, integer=False),
                step_per_kernel=ratio,
                phases={str(k): float(v) for k, v in phases.items()},
                peak_rss_bytes=self.number_or_missing(run, "peak_rss_bytes", where, integer=True),
                peak_device_bytes=self.number_or_missing(
                    run, "peak_device_bytes", where, integer=True
                ),
                kernels=self.kernels(run, where),
            )
        return out


_JSON_KINDS: dict[type, str] = {
    dict: "object without a schema",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


#: A benchmark document is a few KiB; a github-action-benchmark list grows with its history.
MAX_BASELINE_BYTES = 32 * 1024 * 1024


def load_baseline(path: Path) -> list[Metric]:
    """Read a baseline: a ``dlsetup.smoke-benchmark`` document or a customSmallerIsBetter list.

    Only the fields the comparison reads are checked (unknown fields are ignored, so a document
    from a newer dlsetup with more fields still reads); each must be there with the right type.
    The file is read by :mod:`dlsetup.reading` (a regular file, at most
    :data:`MAX_BASELINE_BYTES`, UTF-8, nested and numbered within bounds).

    Raises:
        InputError: the file is missing or unreadable, not UTF-8 JSON, neither format, of another
            ``schema_version``, has no metric, or a field compare reads is missing or mistyped
            (the message names the file and the field).
    """
    from dlsetup.reading import ReadError, load_json

    fix = f"give --compare a file written by `dlsetup smoke --output` ({_WRITE_ONE})"
    try:
        doc = load_json(
            path, what="baseline", max_bytes=MAX_BASELINE_BYTES, allow_nan=False, fix=fix
        )
    except ReadError as exc:
        if exc.reason == "missing":
            raise InputError(f"baseline {path} does not exist", fix=_WRITE_ONE) from exc
        if exc.reason == "not_utf8":  # a binary file: say what it is not, then why
            detail = exc.message.removeprefix(f"baseline {path} is ")
            raise InputError(f"baseline {path} is not JSON text ({detail})", fix=fix) from exc
        raise
    reader = _Baseline(path)
    if isinstance(doc, list):
        return reader.custom_list(doc)
    if isinstance(doc, dict) and doc.get("schema") == BENCHMARK_SCHEMA:
        return reader.document(doc)
    what = (
        f"a {doc['schema']!s:.60} document"
        if isinstance(doc, dict) and isinstance(doc.get("schema"), str)
        else f"a JSON {_JSON_KINDS.get(type(doc), 'value')}"
    )
    raise InputError(
        f"baseline {path} is {what}, neither a {BENCHMARK_SCHEMA} document nor a "
        "customSmallerIsBetter list",
        fix=_WRITE_ONE,
    )


@dataclass(frozen=True)
class Delta:
    """One metric of the comparison.

    Attributes:
        status: ``ok``, ``regression`` (worse than the bound), ``improved``, ``new`` (not in the
            baseline), ``missing`` (in the baseline, not in this run), ``info`` (a raw timing,
            shown, never gated) or ``noisy`` (a gated figure whose recorded spread is too wide
            to gate, :data:`MAX_FIGURE_BOUND`: shown, not gated, and said so).
        change: (current - baseline) / baseline, a fraction (positive is slower/larger).
        bound: the largest ``change`` this gated figure may show (:func:`figure_bound`); None
            for a figure that is not gated.
    """

    name: str
    unit: str
    baseline: float | None
    current: float | None
    change: float | None
    status: str
    bound: float | None = None


@dataclass(frozen=True)
class Comparison:
    """The regression gate's result."""

    baseline: str
    max_regression: float
    deltas: tuple[Delta, ...]
    runs: int = 1

    @property
    def regressed(self) -> bool:
        """True when any metric is worse than the baseline by more than the bound."""
        return any(d.status == "regression" for d in self.deltas)

    @property
    def compared(self) -> int:
        """How many gated metrics are both in this run and in the baseline."""
        return sum(d.status in ("ok", "regression", "improved") for d in self.deltas)

    @property
    def passed(self) -> bool:
        """The gate passes: something was compared and nothing regressed beyond the bound."""
        return self.compared > 0 and not self.regressed


def is_gated(name: str) -> bool:
    """Whether the gate reads metric ``name`` (the others are shown as ``info``)."""
    return name.endswith(GATED_SUFFIXES)


def is_kernel_figure(name: str) -> bool:
    """Whether gated figure ``name`` is a timed kernel's (``torch cpu matmul 128x256x96 per
    kernel``), not the step's."""
    return name.endswith("per kernel") and not name.endswith(NORMALIZED)


def figure_bound(name: str, max_regression: float, spread: float | None) -> float:
    """The bound gated figure ``name`` is held to (a fraction, 0.2 for +20%): ``--max-regression``;
    at least :data:`KERNEL_MIN_BOUND` for a timed kernel; :data:`SPREAD_FACTOR` times the
    figure's recorded spread when that is wider still."""
    floor = max(max_regression, KERNEL_MIN_BOUND) if is_kernel_figure(name) else max_regression
    return max(floor, SPREAD_FACTOR * (spread or 0.0))


def too_noisy(spread: float | None) -> bool:
    """Whether a figure's recorded spread asks for a bound wider than :data:`MAX_FIGURE_BOUND`."""
    return SPREAD_FACTOR * (spread or 0.0) > MAX_FIGURE_BOUND


#: A gated figure this close to its bound (a fraction of the baseline, either side; or the
#: baseline's own recorded spread when wider, up to :data:`MAX_DOUBT`) is measured again before
#: the gate decides.
DOUBT = 0.1
MAX_DOUBT = 0.25
#: Runs of the smoke a comparison may take in all (the first and the repeats); the gate then
#: reads each figure's median over them.
COMPARE_RUNS = 3


def in_doubt(comparison: Comparison, baseline: list[Metric]) -> bool:
    """Whether a gated figure sits near enough to the bound that one more measurement could
    change the verdict (a regression is always measured again before it fails the gate)."""
    spreads = {m.name: m.spread or 0.0 for m in baseline}
    for d in comparison.deltas:
        if d.status not in ("ok", "regression", "improved") or d.change is None:
            continue
        doubt = max(DOUBT, min(MAX_DOUBT, spreads.get(d.name, 0.0)))
        bound = comparison.max_regression if d.bound is None else d.bound
        if d.status == "regression" or abs(d.change - bound) <= doubt:
            return True
    return False


def median_metrics(runs: list[list[Metric]]) -> list[Metric]:
    """Each metric's median over several runs' metrics (a metric some runs lack: over the
    others), in the first run's order."""
    values: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    for run in runs:
        for m in run:
            values.setdefault(m.name, []).append(m.value)
            units.setdefault(m.name, m.unit)
    out = []
    for name, got in values.items():
        ordered = sorted(got)
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
        out.append(Metric(name, units[name], median))
    return out


def compare(
    current: list[Metric], baseline: list[Metric], max_regression: float, source: str,
    runs: int = 1,
) -> Comparison:  # fmt: skip
    """Compare smaller-is-better metrics against a baseline.

    The gated figures (:data:`GATED_SUFFIXES`: the step per kernel, memory) regress when
    ``current > baseline * (1 + bound)``, ``bound`` being ``max_regression``, at least
    :data:`KERNEL_MIN_BOUND` for a timed kernel, or, for a figure recorded with a wide spread,
    :data:`SPREAD_FACTOR` times it (:func:`figure_bound`); one too
    noisy to gate is ``noisy``. Raw timings are reported as ``info``. A metric missing from this
    run (for example a GPU that disappeared) is reported, not failed.
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
        bound = figure_bound(name, max_regression, b.spread) if is_gated(name) else None
        if bound is None:
            status = "info"
        elif too_noisy(b.spread):
            status = "noisy"
        elif change > bound:
            status = "regression"
        elif change < 0:
            status = "improved"
        else:
            status = "ok"
        deltas.append(Delta(name, m.unit, b.value, m.value, change, status, bound))
    for name, b in base.items():
        if name not in cur:
            deltas.append(Delta(name, b.unit, b.value, None, None, "missing"))
    return Comparison(source, max_regression, tuple(deltas), runs)
