"""``dlsetup smoke``: prove the installed frameworks train, on every device, with the seed's math."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dlsetup.commands.options import (
    FINITE_NON_NEGATIVE,
    INTERPRETER,
    PERCENTAGE,
    SEED,
    check_devices,
    seconds,
)
from dlsetup.errors import ExistsError, ExitCode, InputError, MissingToolError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from dlsetup.smoke.benchmark import Benchmark, Comparison, Metric
    from dlsetup.smoke.results import Agreement, DeviceRun, SmokeReport
    from dlsetup.smoke.runner import RunOptions

SCHEMA = "dlsetup.smoke"


def check_output_path(path: Path, force: bool, option: str) -> None:
    """Refuse, before the run, an output file that could not be written after it.

    Raises:
        ExistsError: ``path`` exists and ``force`` is not set.
        InputError: ``path`` is a directory, its directory does not exist (or is a file), or that
            directory is not writable.
    """
    if path.is_dir():
        raise InputError(f"{option} {path} is a directory", fix=f"give {option} a file name")
    if path.exists() and not force:
        raise ExistsError(f"{option} {path} already exists", fix="pass --force to overwrite it")
    parent = path.absolute().parent
    if not parent.is_dir():
        ancestor = next((a for a in (parent, *parent.parents) if a.exists()), None)
        if ancestor is not None and not ancestor.is_dir():
            raise InputError(
                f"{option} {path}: {ancestor} is a file, not a directory",
                fix=f"give {option} a path in an existing directory",
            )
        raise InputError(
            f"{option} {path}: the directory {parent} does not exist",
            fix=f"create it first (mkdir -p {parent}) or give {option} a path in an existing "
            "directory",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"{option} {path}: the directory {parent} is not writable",
            fix=f"give {option} a path in a directory you can write to",
        )


def _write(path: Path, option: str, write: Callable[[], None]) -> None:
    """Run ``write`` (an atomic write of ``path``); an OSError becomes an error naming it."""
    try:
        write()
    except OSError as exc:
        raise InputError(
            f"{option} {path} could not be written: {exc.strerror or exc}",
            fix=f"give {option} a path on a writable file system with free space",
        ) from exc


@click.command("smoke")
@click.option(
    "--framework",
    "frameworks",
    multiple=True,
    type=click.Choice(["torch", "tensorflow"]),
    help="Framework to test (repeatable). Default: every one installed.",
)
@click.option(
    "--device",
    "devices",
    multiple=True,
    callback=check_devices,
    help="Device to test (repeatable): cpu, cuda:0 (= GPU:0), mps. Default: every detected one.",
)
@click.option(
    "--python",
    "python",
    type=INTERPRETER,
    default=None,
    help="Interpreter of the environment to test. Default: this one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the dlsetup.smoke JSON envelope.")
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the grid of loss curves (both frameworks overlaid) to this PNG.",
)
@click.option(
    "--benchmark",
    is_flag=True,
    help="Show the benchmark figures (ms per step, phases) and each device's matmul throughput "
    "against its peak (GPU datasheet; CPU cores x GHz x vector width).",
)
@click.option(
    "--gate-device-peak",
    is_flag=True,
    help="With --benchmark, exit 1 when a matmul figure is below the bar (default: a warning).",
)
@click.option(
    "--device-peak-bar",
    type=click.FloatRange(0, 1000),
    default=60.0,
    show_default=True,
    help="With --benchmark, the share of the peak (percent) below which a matmul is reported "
    "(a CPU's bound is an estimate from its reported frequency and may be exceeded; a bar above "
    "100 reports every figure).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the benchmark document (dlsetup.smoke-benchmark) to this JSON file.",
)
@click.option(
    "--github-benchmark",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the figures in github-action-benchmark's customSmallerIsBetter format.",
)
@click.option(
    "--compare",
    "baseline",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Compare the figures with this baseline (a --output file, or a list recorded from "
    "several runs by benchmarks/bench_gate.py --record); exit 1 on a regression.",
)
@click.option(
    "--max-regression",
    type=PERCENTAGE,
    default="20%",
    show_default=True,
    help="How much larger than the baseline a gated figure may be (a finite percentage). Gated: "
    "each step time and each timed matmul divided by a fixed calibration kernel timed in the "
    "same run (in the worker's CPU time on a CPU device), and peak memory; raw timings are "
    "shown, not gated. A figure recorded with a wide spread is held to twice that spread, and "
    "one too noisy to gate is shown as noisy. A figure near its bound is measured again (up to "
    "3 runs in all) and its median decides.",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of data and weights.")
@click.option(
    "--steps", type=click.IntRange(min=2), default=200, show_default=True, help="Training steps."
)
@click.option(
    "--timeout",
    type=seconds(1.0),
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds (finite, at least 1) one device may take before it is ended and failed, and a "
    "worker may take to start (import its framework, list the devices).",
)
@click.option(
    "--max-disagreement",
    type=FINITE_NON_NEGATIVE,
    default=None,
    metavar="X",
    help="Fail a pair whose PyTorch and TensorFlow loss curves (same start, same device class) "
    "differ by more than X at any step (absolute, loss units; finite, >= 0). Default: twice the "
    "float32 band at each step.",
)
@click.option(
    "--force", is_flag=True, help="Overwrite existing --output/--github-benchmark/--plot files."
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Run as one rank of a multi-node job started by torchrun or srun: collectives, "
    "bandwidth, stragglers, a DDP step and the grid on every rank; rank 0 prints the report "
    "(docs/fleet.md). With it, --timeout is per collective (default 30).",
)
@click.pass_context
def smoke(  # noqa: PLR0917 - click passes each option
    ctx: click.Context,
    frameworks: tuple[str, ...],
    devices: tuple[str, ...],
    python: str | None,
    as_json: bool,
    plot: Path | None,
    benchmark: bool,
    gate_device_peak: bool,
    device_peak_bar: float,
    output: Path | None,
    github_benchmark: Path | None,
    baseline: Path | None,
    max_regression: float,
    seed: int,
    steps: int,
    timeout: float,
    max_disagreement: float | None,
    force: bool,
    distributed: bool,
) -> None:
    """Train a 2-16-1 network with each of the seed's 6 activations x 8 losses on every device.

    Each framework and device is checked five ways: every activation and loss (value and
    gradient) against a NumPy reference; one forward/backward/update step against the same step
    in NumPy; every step's loss against the NumPy reference's training from the same weights
    (inside a float32 band); training of all 48 pairs (loss finite, falling, accuracy reached);
    and the gap between the PyTorch and TensorFlow loss curves from the same starting weights
    (where both frameworks ran on the same device class).
    Exit status 1 when a check fails, a gated figure regressed beyond --max-regression,
    --compare found no gated figure of this run in the baseline, or (--gate-device-peak) a
    matmul figure is below --device-peak-bar of its peak.
    """
    if distributed:
        from dlsetup.commands.fleet import smoke_distributed

        smoke_distributed(ctx, python=python, as_json=as_json, seed=seed, steps=steps)
        return
    from dlsetup.smoke.runner import RunOptions, run_smoke

    _check_outputs(output=output, github_benchmark=github_benchmark, plot=plot, force=force)
    baseline_metrics = None
    if baseline is not None:  # read before the run; otherwise the benchmark module (and NumPy)
        from dlsetup.smoke import benchmark as bm  # is imported once the workers have started

        baseline_metrics = bm.load_baseline(baseline)
    interpreter = Path(python) if python is not None else Path(sys.executable)
    options = RunOptions(
        python=interpreter,
        frameworks=frameworks,
        devices=devices,
        seed=seed,
        steps=steps,
        timeout_s=timeout,
        max_disagreement=max_disagreement,
    )
    report = run_smoke(options)
    from dlsetup.smoke import benchmark as bm

    bench = bm.benchmark_from_report(report)
    if benchmark:  # after the run, so the smoke figures are not measured beside it
        bench = _with_device_peaks(
            bench, interpreter, bar=device_peak_bar / 100, gate=gate_device_peak
        )
    comparison = None
    if baseline_metrics is not None and baseline is not None:
        comparison = _compare(options, bench, baseline_metrics, max_regression, str(baseline))
    _write_outputs(report, bench, output=output, github_benchmark=github_benchmark, plot=plot)
    with_benchmark = benchmark or output is not None or github_benchmark is not None
    if as_json:
        _print_json(report, bench if with_benchmark else None, comparison, baseline)
    else:
        _print_human(report, bench, comparison, with_benchmark=with_benchmark)
    peak_failed = any(p.failed for p in bench.device_peak or ())
    if not report.passed or (comparison is not None and not comparison.passed) or peak_failed:
        ctx.exit(int(ExitCode.FINDINGS))


def _compare(
    options: RunOptions, bench: Benchmark, baseline: list[Metric], max_regression: float,
    source: str,
) -> Comparison:  # fmt: skip
    """The gate: this run's figures against the baseline, measured again (the whole smoke, at
    most ``COMPARE_RUNS`` runs in all) while a gated figure sits near the bound or beyond it;
    the verdict reads each figure's median over the runs."""
    from dlsetup.smoke import benchmark as bm
    from dlsetup.smoke.runner import run_smoke

    runs = [bm.metrics(bench)]
    comparison = bm.compare(runs[0], baseline, max_regression, source)
    while len(runs) < bm.COMPARE_RUNS and bm.in_doubt(comparison, baseline):
        again = run_smoke(options)
        runs.append(bm.metrics(bm.benchmark_from_report(again)))
        median = bm.median_metrics(runs)
        comparison = bm.compare(median, baseline, max_regression, source, runs=len(runs))
    return comparison


def _check_outputs(
    *, output: Path | None, github_benchmark: Path | None, plot: Path | None, force: bool
) -> None:
    """Refuse, before the run, output files that cannot be written, two outputs on one file, and
    ``--plot`` without matplotlib."""
    outputs = [
        (path, option)
        for path, option in (
            (output, "--output"),
            (github_benchmark, "--github-benchmark"),
            (plot, "--plot"),
        )
        if path is not None
    ]
    for path, option in outputs:
        check_output_path(path, force, option)
    for i, (path, option) in enumerate(outputs):
        for other, other_option in outputs[i + 1 :]:
            if path.absolute() == other.absolute():
                raise InputError(
                    f"{option} and {other_option} are the same file, {path}",
                    fix="give each output a file of its own",
                )
    if plot is not None:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise MissingToolError(
                "--plot needs matplotlib, which is not installed",
                fix="pip install 'dlsetup[plot]'",
            )


def _with_device_peaks(bench: Benchmark, interpreter: Path, *, bar: float, gate: bool) -> Benchmark:
    """``bench`` with each device's matmul figure against its peak (``--benchmark``)."""
    from dlsetup.smoke.device_peak import measure_devices

    peaks = measure_devices(
        str(interpreter),
        [run.device for run in bench.runs if run.status == "ok"],
        bar=bar,
        gate=gate,
    )
    return dataclasses.replace(bench, device_peak=peaks)


def _write_outputs(
    report: SmokeReport,
    bench: Benchmark,
    *,
    output: Path | None,
    github_benchmark: Path | None,
    plot: Path | None,
) -> None:
    """Write ``--output``, ``--github-benchmark`` and ``--plot`` (each one atomically)."""
    from dlsetup.atomic_write import write_text_atomically
    from dlsetup.smoke import benchmark as bm

    if output is not None:
        text = json.dumps(bm.benchmark_document(bench), indent=2) + "\n"
        _write(output, "--output", functools.partial(write_text_atomically, output, text))
    if github_benchmark is not None:
        text = json.dumps(bm.github_benchmark(bench), indent=2) + "\n"
        _write(
            github_benchmark,
            "--github-benchmark",
            functools.partial(write_text_atomically, github_benchmark, text),
        )
    if plot is not None:
        from dlsetup.smoke.plot import plot_curves

        _write(plot, "--plot", functools.partial(plot_curves, report, plot))


def _print_json(
    report: SmokeReport,
    bench: Benchmark | None,
    comparison: Comparison | None,
    baseline: Path | None,
) -> None:
    """The ``--json`` document (``bench``: None unless benchmark figures were asked for), and on
    stderr a comparison that compared nothing."""
    from dlsetup.output import dumps, envelope, to_jsonable

    data: dict[str, Any] = to_jsonable(report)
    data["benchmark"] = to_jsonable(bench) if bench is not None else None
    data["comparison"] = _comparison_json(comparison)
    click.echo(dumps(envelope(SCHEMA, data)))
    if comparison is not None and comparison.compared == 0:
        click.echo(
            f"Comparison: FAIL — nothing compared: no metric of this run is in {baseline}",
            err=True,
        )


def _print_human(
    report: SmokeReport, bench: Benchmark, comparison: Comparison | None, *, with_benchmark: bool
) -> None:
    """The report, then the benchmark figures (``with_benchmark``), device peaks and comparison."""
    from dlsetup.output import make_console

    console = make_console()
    render_report(console, report)
    if with_benchmark:
        render_benchmark(console, bench)
    if bench.device_peak:
        from dlsetup.smoke.device_peak import device_peak_lines

        for peak in bench.device_peak:
            for line in device_peak_lines(peak):
                console.print(line, markup=False, highlight=False)
    if comparison is not None:
        render_comparison(console, comparison)


def _comparison_json(comparison: Comparison | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    from dlsetup.output import to_jsonable

    data: dict[str, Any] = to_jsonable(comparison)
    data["regressed"] = comparison.regressed
    data["compared"] = comparison.compared
    data["passed"] = comparison.passed
    return data


def _cell(run: DeviceRun, act: str, loss: str) -> str:
    for c in run.combinations:
        if c.activation == act and c.loss == loss:
            value = c.final_loss
            text = f"{value:.2g}" if isinstance(value, float) else str(value)
            return f"ok {text}" if c.passed else f"FAIL {text}"
    return "-"


def render_report(console: Console, report: SmokeReport) -> None:
    """The human report: a grid per framework and device, failures explained, agreement."""
    console.print(f"Python: {report.python}  (seed {report.seed}, {report.steps} steps)")
    for fw in report.frameworks:
        if fw.status == "unavailable":
            console.print(f"{fw.framework}: not installed ({fw.reason})")
        elif fw.status == "error":
            console.print(f"{fw.framework}: FAILED to start: {fw.reason}")
    for run in report.runs:
        title = f"{run.framework} {_version(report, run.framework)} on {run.device}"
        if run.status != "ok":
            console.print(
                f"\n{title}: FAIL ({run.status}) — every row of this device fails: {run.error}"
            )
            continue
        n_ok = sum(c.passed for c in run.combinations)
        f_ok = sum(c.passed for c in run.function_checks)
        k_ok = sum(c.passed for c in run.kernel_checks)
        kernels = f", {k_ok}/{len(run.kernel_checks)} kernel checks" if run.kernel_checks else ""
        verdict = "PASS" if run.passed else "FAIL"
        checked = [c for c in run.companions if c.status != "not_installed"]
        companions = (
            f", {sum(c.status == 'passed' for c in checked)}/{len(checked)} companion checks"
            if checked
            else ""
        )
        console.print(
            f"\n{title}: {verdict} — {n_ok}/{len(run.combinations)} combinations, "
            f"{f_ok}/{len(run.function_checks)} function checks{kernels}{companions}"
        )
        console.print(
            _grid_table(
                "final loss after training (activation x loss)",
                functools.partial(_cell, run),
            )
        )
        for kernel in run.kernel_checks:
            if not kernel.passed:
                console.print(f"  FAIL {kernel.describe()}", soft_wrap=True, markup=False)
        for check in run.function_checks:
            if not check.passed:
                console.print(f"  FAIL {check.describe()}")
        for combo in run.combinations:
            for failure in combo.failures:
                console.print(
                    f"  FAIL {combo.activation} / {combo.loss}: {failure.describe()}",
                    soft_wrap=True,
                    markup=False,
                )
            if combo.isolated_rerun is not None:
                console.print(
                    f"       rerun alone: {combo.isolated_rerun.attribution}", soft_wrap=True
                )
        _render_companions(console, run)
    _render_agreement(console, report)
    for pair in report.agreement:
        if pair.passed is False:
            console.print(f"  FAIL {pair.describe()}", soft_wrap=True)  # one line per pair
    if report.max_disagreement is not None and not report.agreement:
        console.print(
            f"\nAgreement not checked (--max-disagreement {report.max_disagreement:g}): it needs "
            "both PyTorch and TensorFlow to run on the same device class.",
            soft_wrap=True,
        )
    console.print(f"\nNote on 0/1: {report.zero_one_note}")
    console.print(f"\nResult: {'PASS' if report.passed else 'FAIL'} in {report.wall_s:.1f} s")


def _render_companions(console: Console, run: DeviceRun) -> None:
    """The companion checks of one device (torchvision, torchaudio), under its grid."""
    if not run.companions:
        return
    console.print(f"  companions on {run.device} (each against a NumPy reference):")
    for check in run.companions:
        mark = "FAIL " if check.status == "failed" else ""
        console.print(f"    {mark}{check.describe()}", soft_wrap=True, markup=False)
        if check.fix:
            console.print(f"         fix: {check.fix}", soft_wrap=True, markup=False)


def _version(report: SmokeReport, framework: str) -> str:
    for fw in report.frameworks:
        if fw.framework == framework:
            return str(fw.version)
    return ""


def _render_agreement(console: Console, report: SmokeReport) -> None:
    devices = sorted({a.device for a in report.agreement})
    for device in devices:
        rows = {(a.activation, a.loss): a for a in report.agreement if a.device == device}
        bound = (
            "; ! = outside twice the float32 band at some step"
            if report.max_disagreement is None
            else f"; ! = above --max-disagreement {report.max_disagreement:g}"
        )
        console.print(
            _grid_table(
                f"largest |PyTorch - TensorFlow| loss-curve gap on {device} "
                f"(same start weights{bound})",
                functools.partial(_gap_cell, rows),
            )
        )


def _gap_cell(rows: dict[tuple[str, str], Agreement], act: str, loss: str) -> str:
    """One cell of the agreement grid: the largest gap, ``!`` when above --max-disagreement."""
    pair = rows[(act, loss)]
    value = pair.max_abs_deviation
    text = "n/a" if value is None else f"{value:.1e}"
    return f"{text}!" if pair.passed is False else text


def _grid_table(title: str, cell: Callable[[str, str], str]) -> Table:
    """An activations x losses table whose cells come from ``cell(activation, loss)``."""
    from rich import box
    from rich.table import Table

    from dlsetup.smoke.reference import ACTIVATIONS, LOSSES

    table = Table(title=title, title_justify="left", box=box.SIMPLE)
    table.add_column("activation")
    for loss in LOSSES:
        table.add_column(loss, justify="right")
    for act in ACTIVATIONS:
        table.add_row(act, *(cell(act, loss) for loss in LOSSES))
    return table


def render_benchmark(console: Console, bench: Benchmark) -> None:
    """The benchmark figures as a table."""
    from rich.table import Table

    table = Table(title=f"benchmark (whole run {bench.wall_s:.2f} s wall)", title_justify="left")
    for col in (
        "framework",
        "device",
        "import s",
        "checks s",
        "warmup s",
        "ms/step",
        "best ms/step",
        "kernel ms",
        "step/kernel",
        "peak RSS MiB",
        "peak device MiB",
    ):
        table.add_column(col, justify="right" if col not in ("framework", "device") else "left")
    for run in bench.runs:
        table.add_row(
            run.framework,
            run.device,
            _fmt(run.import_s),
            _fmt(run.phases.get("function_checks_s")),
            _fmt(run.phases.get("warmup_s")),
            _fmt(run.ms_per_step),
            _fmt(run.best_ms_per_step),
            _fmt(run.kernel_ms),
            _fmt(run.step_per_kernel),
            _fmt(run.peak_rss_bytes, scale=2**20),
            _fmt(run.peak_device_bytes, scale=2**20),
        )
    console.print(table)


def render_comparison(console: Console, comparison: Comparison) -> None:
    """The regression table."""
    from rich.table import Table

    table = Table(
        title=f"compared with {comparison.baseline} (bound +{comparison.max_regression:.0%} on "
        "the gated figures, twice a figure's recorded spread when wider; info: raw timings, "
        "not gated" + (f"; median of {comparison.runs} runs" if comparison.runs > 1 else "") + ")",
        title_justify="left",
    )
    for col in ("metric", "baseline", "now", "change", "bound", "status"):
        table.add_column(col, justify="left" if col in ("metric", "status") else "right")
    for d in comparison.deltas:
        table.add_row(
            d.name,
            "" if d.baseline is None else f"{d.baseline:g} {d.unit}",
            "" if d.current is None else f"{d.current:g} {d.unit}",
            "" if d.change is None else f"{d.change:+.1%}",
            "" if d.bound is None else f"+{d.bound:.0%}",
            d.status.upper() if d.status == "regression" else d.status,
        )
    console.print(table)
    from dlsetup.smoke import benchmark as bm

    for d in comparison.deltas:
        if d.status == "noisy":
            console.print(
                f"not gated: {d.name} — its recorded spread needs a bound over "
                f"+{bm.MAX_FIGURE_BOUND:.0%}, too wide to judge it; record the baseline again on "
                "a quieter machine (benchmarks/bench_gate.py --record)",
                soft_wrap=True,
            )
    if comparison.compared == 0:
        console.print(
            f"Comparison: FAIL — nothing compared: no metric of this run is in "
            f"{comparison.baseline} (a baseline from another machine or device set?); "
            "write a baseline on this machine with --output",
            soft_wrap=True,
        )
        return
    verdict = (
        "REGRESSION beyond the bound" if comparison.regressed else "no regression beyond the bound"
    )
    console.print(f"Comparison: {verdict}")


def _fmt(value: object, scale: float = 1.0) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{value / scale:.3g}" if scale != 1.0 else f"{value:.3g}"
