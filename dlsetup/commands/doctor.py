"""``dlsetup doctor``: parse options, call :func:`dlsetup.doctor.run_doctor`, render."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dlsetup.commands.options import INTERPRETER, seconds
from dlsetup.errors import ExitCode

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from dlsetup.doctor import DoctorReport
    from dlsetup.facts import Maybe
    from dlsetup.probes.envmanagers import EnvManagersFacts
    from dlsetup.probes.frameworks import FrameworkProbe, FrameworksFacts
    from dlsetup.probes.nvidia import GpuFacts, NvidiaFacts
    from dlsetup.probes.system import SystemFacts

HELP = """Report this machine's hardware and software and diagnose why PyTorch or TensorFlow
does or does not see the GPU, with the command that fixes each problem.

\b
What it reads:
  System        OS, kernel, glibc, Python, CPU model/cores/AVX/AVX-512/AMX, RAM, swap,
                free disk, container and WSL
  NVIDIA        driver, CUDA driver version, every GPU through NVML (no GPU memory used)
  CUDA libs     nvcc, CUDA_HOME, libcudart/libcudnn/libcuda, CUDA_VISIBLE_DEVICES
  Env managers  conda, mamba, micromamba, pixi, uv, pip; the active environment
  Frameworks    torch and TensorFlow in --python's interpreter, each probed in its own
                subprocess with a timeout (a crash or hang becomes a finding)

\b
What it diagnoses (check ids, see docs/doctor.md): a CPU-only framework build on a GPU
machine, a driver too old for the build's CUDA, a GPU the build has no kernels for, driver
not loaded / library mismatch, CUDA_VISIBLE_DEVICES mistakes, MIG, GPU memory held by
others, TensorFlow >= 2.11 on native Windows, unsupported Python, no AVX, low RAM/disk,
the WSL libcuda.so.1 symlink, framework imports that crash, hang or miss CUDA libraries.

\b
Exit codes:
  0  no error finding (warnings allowed unless --strict)
  1  at least one error finding (or a warning with --strict)
  2  usage error
  3  the --python interpreter does not exist

\b
Examples:
  dlsetup doctor                        the report, for people
  dlsetup doctor --json | jq .data.findings
  dlsetup doctor --no-frameworks        hardware and driver only (fast)
  dlsetup doctor --strict --skip gpu.memory_held    CI gate with one accepted warning
  dlsetup doctor --python ~/miniforge3/envs/dl/bin/python --timeout 120
"""


@click.command("doctor", help=HELP, short_help="Report hardware and software, diagnose mismatches.")
@click.option("--json", "as_json", is_flag=True, help="Print the dlsetup.doctor JSON envelope.")
@click.option("--strict", is_flag=True, help="Warnings count as errors for the exit code.")
@click.option("--no-frameworks", is_flag=True, help="Skip the torch/TensorFlow probes.")
@click.option(
    "--python",
    "python",
    type=INTERPRETER,
    default=None,
    help="Interpreter whose frameworks are probed (default: the one running dlsetup).",
)
@click.option(
    "--timeout",
    type=seconds(0.1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds (finite, at least 0.1) each framework probe may take before it is killed.",
)
@click.option(
    "--full-import",
    is_flag=True,
    help="Run the complete 'import torch' and 'import tensorflow' (their Python APIs and Keras "
    "too; seconds slower) instead of loading only each framework's native core where no GPU "
    "needs the full import.",
)
@click.option(
    "--skip",
    "skip",
    metavar="CHECK_ID",
    multiple=True,
    help="Leave out this check's findings (repeatable), e.g. a known, accepted warning under "
    "--strict in CI: --skip gpu.memory_held. Ids: docs/doctor.md.",
)
@click.pass_context
def doctor(
    ctx: click.Context,
    as_json: bool,
    strict: bool,
    no_frameworks: bool,
    python: str | None,
    timeout: float,
    full_import: bool,
    skip: tuple[str, ...],
) -> None:
    """Run the probes and checks, print the report, exit 1 on error findings."""
    from dlsetup.doctor import run_doctor

    report = run_doctor(
        python=python,
        frameworks=not no_frameworks,
        timeout=timeout,
        full_import=full_import,
        skip=skip,
    )
    code = ExitCode.FINDINGS if report.failed(strict) else ExitCode.OK
    if as_json:
        from dlsetup.output import dumps, envelope

        data = report_data(report, strict=strict, exit_code=int(code))
        click.echo(dumps(envelope("dlsetup.doctor", data)))
    else:
        from dlsetup.output import make_console

        render(make_console(), report, strict=strict)
    ctx.exit(int(code))


def report_data(report: DoctorReport, *, strict: bool, exit_code: int) -> dict[str, Any]:
    """The ``data`` of the ``dlsetup.doctor`` envelope."""
    from dlsetup.output import to_jsonable

    facts = report.facts
    return {
        "exit_code": exit_code,
        "strict": strict,
        "skipped_checks": list(report.skipped),
        "elapsed_s": report.elapsed_s,
        "summary": {s: report.count(s) for s in ("error", "warning", "info")},
        "findings": to_jsonable(list(report.findings)),
        "system": to_jsonable(facts.system),
        "nvidia": to_jsonable(facts.nvidia),
        "cuda_libs": to_jsonable(facts.cuda_libs),
        "env_managers": to_jsonable(facts.env_managers),
        "frameworks": to_jsonable(facts.frameworks),
        "probe_errors": dict(facts.probe_errors),
        "health": to_jsonable(facts.health),
    }


# ----------------------------------------------------------------------------- human output ----


def _v(value: object, unit: str = "") -> str:
    from dlsetup.facts import Missing

    if isinstance(value, Missing):
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(x, int) for x in value):
        return f"{value[0]}.{value[1]}"
    return f"{value}{unit}"


def _lib(version: object, path: object) -> str:
    from dlsetup.facts import Missing

    if isinstance(path, Missing):
        return "not found"
    return f"{_v(version)} ({path})"


def _watts(value: object) -> str:
    return f"{value:.0f} W" if isinstance(value, float) else _v(value)


def _gib(value: object) -> str:
    return f"{value / 1024**3:.1f} GiB" if isinstance(value, int) else _v(value)


def _mib(value: object) -> str:
    return f"{value // 1024**2} MiB" if isinstance(value, int) else _v(value)


def _visible(report: DoctorReport) -> str:
    """``CUDA_VISIBLE_DEVICES`` and, when set, what CUDA makes of it: ``'0,7,1' (CUDA sees GPU 0)``."""
    from dlsetup.checks.system import echo_value
    from dlsetup.facts import Missing

    libs = report.facts.cuda_libs
    if isinstance(libs, Missing):
        return _v(libs)
    raw = libs.visible_devices.raw
    resolved = report.facts.visible
    if isinstance(raw, Missing):
        return _v(raw)
    if resolved is None:
        return echo_value(raw)
    if resolved.hides_all:
        return f"{echo_value(raw)} (CUDA sees no GPU)"
    seen = [f"GPU {i}" for i in dict.fromkeys(resolved.gpu_indices)] + [
        echo_value(m, quote=False) for m in resolved.mig_entries
    ]
    shown = ", ".join(seen[:16]) + (f" and {len(seen) - 16} more" if len(seen) > 16 else "")
    return f"{echo_value(raw)} (CUDA sees {shown})"


def render(console: Console, report: DoctorReport, *, strict: bool) -> None:
    """Print the report as rich sections and a findings table."""
    facts = report.facts
    _section(console, "System", _system_rows(facts.system))
    _section(console, "NVIDIA", _nvidia_rows(facts.nvidia))
    if facts.nvidia.gpus:
        console.print(_gpu_table(facts.nvidia.gpus))
        console.print()
    _section(console, "CUDA libraries", _cuda_libs_rows(report))
    _section(console, "Environment managers", _env_managers_rows(facts.env_managers))
    _section(console, "Frameworks", _frameworks_rows(facts.frameworks))
    if not report.findings:
        console.print("No problems found.")
    else:
        render_findings(console, report)
    console.print(_summary(report, strict=strict), markup=False)


def _section(console: Console, title: str, rows: list[tuple[str, str]]) -> None:
    """One section: a borderless two-column table of ``rows`` under ``title``, then a blank line."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, value in rows:
        table.add_row(Text(key), Text(value))  # Text: no markup, '[and-cuda]' stays
    console.print(table)
    console.print()


def _system_rows(s: Maybe[SystemFacts]) -> list[tuple[str, str]]:
    from dlsetup.facts import Missing

    if isinstance(s, Missing):
        return [("error", str(s))]
    feats = s.cpu_features
    return [
        ("Host", s.hostname),
        ("OS", f"{_v(s.distribution)} ({s.os_name}, kernel {s.kernel}, {s.machine})"),
        ("glibc", _v(s.glibc)),
        ("Python", f"{s.python_version} ({s.python_executable})"),
        (
            "CPU",
            f"{_v(s.cpu_model)}, {_v(s.cpu_physical_cores)} cores / "
            f"{_v(s.cpu_logical_cores)} threads",
        ),
        (
            "CPU features",
            _v(feats) if isinstance(feats, Missing) else " ".join(feats) or "none",
        ),
        (
            "RAM",
            f"{_gib(s.ram_available_bytes)} available of {_gib(s.ram_total_bytes)}; "
            f"swap {_gib(s.swap_used_bytes)} used of {_gib(s.swap_total_bytes)}",
        ),
        ("Disk", f"{_gib(s.disk_free_bytes)} free at {s.disk_path}"),
        ("Container / WSL", f"{s.container} / {s.wsl}"),
    ]


def _nvidia_rows(nv: NvidiaFacts) -> list[tuple[str, str]]:
    rows = [("NVML", nv.status + (f" ({nv.status_detail})" if nv.status_detail else ""))]
    if nv.status == "ok":
        rows += [
            ("Driver", _v(nv.driver_version)),
            ("CUDA (driver)", _v(nv.cuda_driver_version)),
            ("NVML version", _v(nv.nvml_version)),
        ]
    return rows


def _gpu_table(gpus: tuple[GpuFacts, ...]) -> Table:
    """One row per GPU (a lost one says so)."""
    from rich.table import Table

    from dlsetup.facts import Missing

    table = Table(title="GPUs", title_justify="left")
    for col, wrap in (
        ("#", False),
        ("name", False),
        ("CC", False),
        ("memory used/total", False),
        ("temp, power/limit", True),
        ("PCIe gen, width", True),
        ("MIG cur/pend", True),
        ("ECC, uncorr.", True),
        ("procs", True),
    ):
        table.add_column(col, no_wrap=not wrap)
    for g in gpus:
        if g.lost:
            table.add_row(str(g.index), "LOST (fell off the bus)", *["-"] * 7)
            continue
        procs = g.processes
        table.add_row(
            str(g.index),
            _v(g.name),
            _v(g.compute_capability),
            f"{_mib(g.memory_used_bytes)} / {_mib(g.memory_total_bytes)}",
            f"{_v(g.temperature_c, ' C')}, {_watts(g.power_draw_w)}/{_watts(g.power_limit_w)}",
            f"{_v(g.pcie_gen_current)}/{_v(g.pcie_gen_max)}, "
            f"x{_v(g.pcie_width_current)}/{_v(g.pcie_width_max)}",
            f"{_v(g.mig_mode_current)}/{_v(g.mig_mode_pending)}",
            f"{_v(g.ecc_mode_current)}, {_v(g.ecc_errors_uncorrected)}",
            _v(procs) if isinstance(procs, Missing) else str(len(procs)),
        )
    return table


def _cuda_libs_rows(report: DoctorReport) -> list[tuple[str, str]]:
    from dlsetup.facts import Missing

    c = report.facts.cuda_libs
    if isinstance(c, Missing):
        return [("error", str(c))]
    return [
        ("nvcc", f"{_v(c.nvcc.version)} ({_v(c.nvcc.path)})"),
        ("CUDA_HOME", _v(c.cuda_home)),
        ("libcudart", _lib(c.cudart.version, c.cudart.path)),
        ("libcudnn", _lib(c.cudnn.version, c.cudnn.path)),
        ("libcuda", _lib(c.libcuda.version, c.libcuda.path)),
        ("CUDA_VISIBLE_DEVICES", _visible(report)),
    ]


def _env_managers_rows(m: Maybe[EnvManagersFacts]) -> list[tuple[str, str]]:
    from dlsetup.facts import Missing

    if isinstance(m, Missing):
        return [("error", str(m))]
    mrows = [
        (mgr.name, f"{_v(mgr.version)} ({_v(mgr.path)})" if mgr.present else "not installed")
        for mgr in m.managers
    ]
    active = m.active
    mrows.append(
        (
            "active env",
            "none"
            if active.kind == "none"
            else f"{active.kind}: {_v(active.name)} ({_v(active.prefix)})",
        )
    )
    return mrows


def _frameworks_rows(fw: Maybe[FrameworksFacts]) -> list[tuple[str, str]]:
    """The target interpreter's Python, then a row per framework probed that answered."""
    from dlsetup.facts import Missing
    from dlsetup.probes.frameworks import FrameworkProbe

    if isinstance(fw, Missing):
        return [("error", str(fw))]
    frows = [("Python", f"{_v(fw.python_version)} ({fw.python_executable})")]
    for name, probe in (("torch", fw.torch), ("tensorflow", fw.tensorflow)):
        if not isinstance(probe, FrameworkProbe):
            frows.append((name, _v(probe).replace("n/a ", "")))
        elif probe.status != "ok":
            frows.append((name, f"{probe.status}: {probe.detail}"))
        elif (build := _framework_build(probe)) is not None:
            frows.append((name, build))
    return frows


def _framework_build(probe: FrameworkProbe) -> str | None:
    """What a framework's probe found out about its build (None: neither a torch nor a
    TensorFlow build)."""
    from dlsetup.facts import Missing

    if not isinstance(probe.torch, Missing):
        b = probe.torch
        return (
            f"{_v(probe.version)}, CUDA {_v(b.cuda)}, cuDNN {_v(b.cudnn)}, "
            f"cuda available {_v(b.cuda_available)}, devices {_v(b.device_count)}, "
            f"MPS {_v(b.mps_available)}; arch {' '.join(b.arch_list) or '-'}"
        )
    if not isinstance(probe.tensorflow, Missing):
        t = probe.tensorflow
        gpus = _v(t.gpus) if isinstance(t.gpus, Missing) else str(len(t.gpus))
        return (
            f"{_v(probe.version)}, CUDA build {_v(t.is_cuda_build)}, CUDA "
            f"{_v(t.cuda_version)}, cuDNN {_v(t.cudnn_version)}, GPUs {gpus}"
        )
    return None


def _summary(report: DoctorReport, *, strict: bool) -> str:
    """The closing line: counts per severity, the time taken, ``--strict`` and what was skipped."""
    summary = (
        f"{report.count('error')} error(s), {report.count('warning')} warning(s), "
        f"{report.count('info')} info; {report.elapsed_s:.1f} s"
    )
    if strict:
        summary += " (--strict: warnings count as errors)"
    if report.skipped:
        summary += f" (skipped: {', '.join(report.skipped)})"
    return summary


#: Below this many columns the findings are listed one block each instead of as a table, whose
#: four columns would leave the problem and fix texts a few words per line.
TABLE_MIN_WIDTH = 100


def render_findings(console: Console, report: DoctorReport) -> None:
    """The findings (a table, or one block each on a narrow console), then each fix command.

    A command inside a table cell would be wrapped at the column width (a newline in the middle
    of a shell command breaks it when pasted), so the fix text refers to it by number and the
    commands follow, each printed on a line of its own without any wrapping: the terminal may
    fold a long one visually, but it stays one line when copied or piped.
    """
    from rich.table import Table
    from rich.text import Text

    styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    commands: list[tuple[int, str, str]] = []
    rows: list[tuple[str, str, str, str, str]] = []
    for f in report.findings:
        fix = f.fix
        if f.command:
            number = len(commands) + 1
            commands.append((number, f.id, f.command))
            ref = f"command {number} below"
            fix = fix.replace(f.command, ref, 1) if f.command in fix else f"{fix} Run {ref}."
        rows.append((f.severity, f.id, f.title, f.message, fix.replace("  ", " ")))
    if console.width >= TABLE_MIN_WIDTH:
        table = Table(title="Findings", title_justify="left", show_lines=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("check", no_wrap=True)  # ids are searched for: never split one
        table.add_column("problem", ratio=1)
        table.add_column("fix", ratio=1)
        for severity, check_id, title, message, fix in rows:
            table.add_row(
                Text(severity, style=styles[severity]),
                Text(check_id),
                Text(title, style="bold") + Text(f"\n{message}"),
                Text(fix),
            )
        console.print(table)
    else:
        console.print("Findings", style="bold")
        for severity, check_id, title, message, fix in rows:
            console.print()
            head = Text(severity.upper(), style=styles[severity])
            console.print(head + Text(f"  {check_id}"))
            console.print(Text(title, style="bold"), Text(message), Text(f"Fix: {fix}"), sep="\n")
    if commands:
        console.print()
        console.print("Commands to run (each is one line; copy it whole):", style="bold")
        for number, check_id, command in commands:
            console.print(Text(f"{number}. for {check_id}:"))
            console.print(Text(f"   {command}", style="green"), soft_wrap=True)
    console.print()


__all__ = ["doctor", "render", "render_findings", "report_data"]
