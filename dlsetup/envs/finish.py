"""After an environment is built: how to activate it, and the smoke run inside it."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlsetup import children
from dlsetup.atomic_write import write_text_atomically

#: Seconds the whole smoke run inside a new environment may take.
SMOKE_TIMEOUT_S = 1800
#: Where, inside the environment, the smoke run's ``dlsetup.smoke`` JSON document is kept.
#: (Not under ``conda-meta/``: conda reads every ``conda-meta/*.json`` as a package record.)
SMOKE_RECORD = Path("etc") / "dlsetup" / "smoke.json"


def activation_hint(prefix: Path, name: str) -> str:
    """The command that activates the environment at ``prefix`` (named ``name``).

    ``conda activate NAME`` (or mamba/micromamba) when it lives in that tool's envs directory,
    ``TOOL activate PREFIX`` elsewhere, and a ``PATH`` line when no conda-like tool exists.
    """
    from dlsetup.envs.location import default_envs_dir, find_conda_executable

    if (prefix / "pyvenv.cfg").is_file():  # a venv (--backend venv)
        if sys.platform == "win32":
            return f"{prefix}\\Scripts\\activate"
        return f"source {shlex.quote(str(prefix / 'bin' / 'activate'))}"
    exe = find_conda_executable()
    if exe is not None:
        tool = Path(exe).stem
        if prefix.parent == default_envs_dir():
            return f"{tool} activate {name}"
        return f"{tool} activate {prefix}"
    if sys.platform == "win32":
        return f'set "PATH={prefix};{prefix}\\Scripts;{prefix}\\Library\\bin;%PATH%"'
    return f'export PATH="{prefix}/bin:$PATH"   (or, with micromamba: micromamba activate {prefix})'


def python_runs(python: Path) -> bool:
    """Whether ``python -c 'import sys'`` succeeds within 60 s."""
    try:
        proc = children.run([str(python), "-c", "import sys; sys.exit(0)"], timeout=60, grace=1.0)
    except OSError:
        return False
    return proc.ok


@dataclass(frozen=True)
class SmokeOutcome:
    """What ``dlsetup smoke`` said about a new environment.

    Attributes:
        status: ``passed``, ``failed`` or ``skipped``.
        reason: why it was skipped, or the first failed check; empty when it passed.
        exit_code: the smoke command's exit status (``None`` when it did not run or timed out).
        summary: what ran, e.g. ``torch 2.13.0 on cpu, tensorflow 2.19.1 on cpu``.
        failures: every failed check, one line each (framework and device first).
        record: the smoke run's ``dlsetup.smoke`` document kept in the environment, if any.
        rerun: the command that runs the smoke test again (``None`` when skipped).
        seconds: wall time of the smoke run, seconds (``None`` when it did not run).
    """

    status: str
    reason: str
    exit_code: int | None = None
    summary: str = ""
    failures: tuple[str, ...] = ()
    record: Path | None = None
    rerun: str | None = None
    seconds: float | None = None


def skipped_smoke(reason: str) -> SmokeOutcome:
    """A smoke run that did not happen, and why."""
    return SmokeOutcome(status="skipped", reason=reason)


def _ran(data: dict[str, Any]) -> str:
    versions = {
        str(fw.get("framework")): str(fw.get("version"))
        for fw in data.get("frameworks", [])
        if fw.get("status") == "ok"
    }
    parts = []
    for run in data.get("runs", []):
        framework = str(run["framework"])
        version = versions.get(framework)
        label = f"{framework} {version}" if version else framework
        parts.append(f"{label} on {run['device']}")
    return ", ".join(parts)


def smoke_failures(data: dict[str, Any]) -> tuple[str, ...]:
    """Every failed check of a ``dlsetup.smoke`` document's ``data``, one line each."""
    from dlsetup.smoke.results import Failure, FunctionCheck, KernelCheck

    lines: list[str] = []
    for fw in data.get("frameworks", []):
        if fw.get("status") == "error":
            reason = (str(fw.get("reason") or "").splitlines() or [""])[0]
            lines.append(f"{fw['framework']}: failed to start: {reason}")
    for run in data.get("runs", []):
        where = f"{run['framework']} on {run['device']}"
        if run.get("status") != "ok":
            # first line only: a crashed worker's error carries its whole stderr (in the record)
            error = (str(run.get("error") or "").splitlines() or [""])[0]
            lines.append(f"{where}: {run.get('status')}: {error}")
            continue
        for kernel in run.get("kernel_checks", []):
            if not kernel["passed"]:
                lines.append(f"{where}: {KernelCheck(**kernel).describe()}")
        for check in run.get("function_checks", []):
            if not check["passed"]:
                lines.append(f"{where}: {FunctionCheck(**check).describe()}")
        for combo in run.get("combinations", []):
            for failure in combo.get("failures", []):
                lines.append(
                    f"{where}: {combo['activation']} / {combo['loss']}: "
                    f"{Failure(**failure).describe()}"
                )
    return tuple(lines)


def _smoke_report(stdout: str) -> dict[str, Any] | None:
    """The ``data`` of a ``dlsetup.smoke`` document, or ``None`` (an error document, no JSON)."""
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("schema") != "dlsetup.smoke":
        return None
    data = document.get("data")
    return data if isinstance(data, dict) else None


def _smoke_error(proc: children.Completed) -> str:
    """Why ``dlsetup smoke`` made no report: its ``dlsetup.error`` document, else its stderr."""
    try:
        return str(json.loads(proc.stdout)["data"]["error"]["message"])
    except (ValueError, LookupError, TypeError):
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error: ")]
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return (errors[-1].removeprefix("Error: ") if errors else last).strip()


def run_smoke(
    python: Path | None, prefix: Path, *, on_start: Callable[[], None] | None = None
) -> SmokeOutcome:
    """Run ``dlsetup smoke --python PYTHON --json`` for the environment at ``prefix``.

    The smoke document is kept in the environment (:data:`SMOKE_RECORD`), so a later look can
    see how the environment was verified. A failed smoke test leaves the environment installed.

    Args:
        python: the environment's Python executable, or ``None`` when it has none.
        prefix: the environment's directory.
        on_start: called just before the smoke test starts (not when it is skipped).

    Returns:
        the outcome; ``skipped`` when there is no runnable Python or no smoke command.
    """
    if python is None:
        return skipped_smoke("the environment has no Python")
    if importlib.util.find_spec("dlsetup.commands.smoke") is None:
        return skipped_smoke("this dlsetup has no smoke command")
    if not python_runs(python):
        return skipped_smoke(f"{python} does not run")
    rerun = shlex.join(["dlsetup", "smoke", "--python", str(python)])
    if on_start is not None:
        on_start()
    start = time.perf_counter()
    # its own process group: past the timeout, or on Ctrl-C/SIGTERM, smoke is asked to stop (it
    # ends its framework workers), given 15 s, then its group is killed
    proc = children.run(
        [sys.executable, "-m", "dlsetup", "smoke", "--python", str(python), "--json"],
        timeout=SMOKE_TIMEOUT_S,
        grace=15.0,
    )
    if proc.timed_out:
        reason = f"dlsetup smoke did not finish within {SMOKE_TIMEOUT_S} s"
        return SmokeOutcome(
            status="failed",
            reason=reason,
            failures=(reason,),
            rerun=rerun,
            seconds=time.perf_counter() - start,
        )
    seconds = time.perf_counter() - start
    data = _smoke_report(proc.stdout)
    if data is None:  # no report: smoke stopped with an error (e.g. no framework importable)
        reason = _smoke_error(proc)
        return SmokeOutcome(
            status="failed",
            reason=reason,
            exit_code=proc.returncode,
            failures=(reason,),
            rerun=rerun,
            seconds=seconds,
        )
    record = prefix / SMOKE_RECORD
    record.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(record, proc.stdout)
    passed = proc.returncode == 0 and bool(data.get("passed"))
    failures = () if passed else smoke_failures(data)
    if not passed and not failures:
        failures = (f"dlsetup smoke exited with status {proc.returncode}",)
    return SmokeOutcome(
        status="passed" if passed else "failed",
        reason="" if passed else failures[0],
        exit_code=proc.returncode,
        summary=_ran(data),
        failures=failures,
        record=record,
        rerun=rerun,
        seconds=seconds,
    )
