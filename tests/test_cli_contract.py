"""The command-line contract: exit codes in one table, and errors in the output's language.

A script that runs ``dlsetup ... --json`` and parses stdout must always get a JSON document: the
command's own on success, a ``dlsetup.error`` envelope on any failure (usage errors Click raises,
refused inputs, failed operations, interrupts, bugs), with the exit code inside it equal to the
process's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from dlsetup import cli as cli_mod
from dlsetup.errors import EXIT_CODE_MEANINGS, ExitCode, Terminated
from dlsetup.output import load_schema
from tests.support.proc import REPO, run_cli
from tests.support.signals import SIGNALLED

ERROR_SCHEMA = load_schema("dlsetup.error")


def _error_document(stdout: str, exit_code: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(stdout)
    jsonschema.validate(doc, ERROR_SCHEMA)
    assert doc["data"]["error"]["exit_code"] == exit_code
    return doc


def test_every_exit_code_has_a_meaning_and_help_prints_the_table() -> None:
    assert set(EXIT_CODE_MEANINGS) == set(ExitCode)
    result = CliRunner().invoke(cli_mod.cli, ["--help"])
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert re.search(rf"^\s+{int(code)}\s+{re.escape(meaning)}$", result.output, re.M), code


def test_readme_exit_code_table_is_the_code_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M))
    assert {int(k): v for k, v in rows.items()} == {
        int(code): meaning for code, meaning in EXIT_CODE_MEANINGS.items()
    }


def test_error_schema_lists_every_failing_exit_code() -> None:
    listed = ERROR_SCHEMA["properties"]["data"]["properties"]["error"]["properties"]["exit_code"]
    assert set(listed["enum"]) == {int(c) for c in ExitCode if c != ExitCode.OK}


@pytest.mark.parametrize(
    ("args", "code", "kind"),
    [
        (["frobnicate", "--json"], 2, "UsageError"),
        (["lock", "nonsense", "--json"], 2, "UsageError"),
        (["lock", "pytorch", "--json", "--platform", "beos-64"], 2, "UsageError"),
        (["create", "--json", "--no-smoke"], 2, "InputError"),
        (["smoke", "--json", "--python", "/nonexistent/python"], 3, "MissingToolError"),
        (["doctor", "--json", "--python", "/nonexistent/python"], 3, "MissingToolError"),
    ],
    ids=[
        "unknown-command",
        "bad-target",
        "bad-choice",
        "no-target",
        "smoke-no-python",
        "doctor-no-python",
    ],
)
def test_a_failing_json_command_prints_an_error_envelope_on_stdout(
    args: list[str], code: int, kind: str
) -> None:
    proc = run_cli(*args, timeout=120)
    assert proc.returncode == code, proc.stderr
    doc = _error_document(proc.stdout, code)
    assert doc["data"]["error"]["type"] == kind
    assert doc["data"]["error"]["message"]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: ")  # a person reading the log gets the line too


def test_without_json_a_usage_error_is_plain_text_only() -> None:
    proc = run_cli("lock", "nonsense")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Invalid value for 'TARGET'" in proc.stderr


def test_json_after_double_dash_is_not_an_option() -> None:
    assert cli_mod._asks_for_json(["lock", "--", "--json"]) is False
    assert cli_mod._asks_for_json(["lock", "--json", "--", "x"]) is True


def test_a_bug_is_an_internal_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        cli_mod.COMMANDS, "broken", ("tests.support.broken_command", "broken", "a bug")
    )
    monkeypatch.delenv(cli_mod.DEBUG_ENV, raising=False)
    result = CliRunner().invoke(cli_mod.cli, ["broken", "--json"])
    assert result.exit_code == ExitCode.INTERNAL
    doc = _error_document(result.stdout, int(ExitCode.INTERNAL))
    assert doc["data"]["error"]["type"] == "InternalError"
    assert "ZeroDivisionError" in doc["data"]["error"]["message"]
    assert "Traceback" not in result.stderr
    monkeypatch.setenv(cli_mod.DEBUG_ENV, "1")
    result = CliRunner().invoke(cli_mod.cli, ["broken"])
    assert result.exit_code == ExitCode.INTERNAL
    assert "Traceback" in result.stderr and result.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "kind"),
    [(signal.SIGTERM, 143, "Terminated"), (signal.SIGINT, 130, "Interrupted")],
    ids=["sigterm", "sigint"],
)
def test_a_signal_under_json_gives_an_error_envelope_and_its_exit_code(
    tmp_path: Path, sig: signal.Signals, code: int, kind: str
) -> None:
    """A stand-in torch whose import hangs keeps doctor busy until the signal arrives."""
    pkg = tmp_path / "site" / "torch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import time\ntime.sleep(120)\n", encoding="utf-8")
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(tmp_path / "site"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlsetup", "doctor", "--json", "--timeout", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        **SIGNALLED,
    )
    time.sleep(3)  # doctor is waiting for the hanging probe
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    doc = _error_document(out, code)
    assert doc["data"]["error"]["type"] == kind
    assert "Traceback" not in err


def test_an_internal_error_quoting_a_url_shows_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        cli_mod.COMMANDS, "leaky", ("tests.support.broken_command", "leaky", "a leaky bug")
    )
    result = CliRunner().invoke(cli_mod.cli, ["leaky", "--json"])
    assert result.exit_code == ExitCode.INTERNAL
    assert "s3cret" not in result.stdout + result.stderr
    assert "https://***@host.invalid/ch" in result.stdout


@pytest.mark.parametrize("where", ["finalizer", "callback"])
def test_a_sigterm_python_would_swallow_still_ends_in_exit_143(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """SIGTERM during an import lands in a weakref callback, where Python ignores exceptions.

    In a finalizer dlsetup can spot, the signal is delivered again at once, outside it: the work
    stops (no 5-s sleep). In a callback it cannot spot, the command ends its work, then exits 143
    instead of reporting success.
    """
    monkeypatch.setitem(
        cli_mod.COMMANDS, "swallowed", ("tests.support.broken_command", "swallowed", "a signal")
    )
    previous = signal.getsignal(signal.SIGTERM)
    cli_mod.install_sigterm_handler()
    args = ["swallowed", "--json"] + (["--in-callback"] if where == "callback" else [])
    start = time.monotonic()
    try:
        result = CliRunner().invoke(cli_mod.cli, args)
        time.sleep(0.2)  # a timer that should not exist would fire here
    finally:
        signal.signal(signal.SIGTERM, previous)
        Terminated.handled()  # not monkeypatch: it would restore True
    assert result.exit_code == ExitCode.TERMINATED, result.output
    if where == "finalizer":
        assert "finished" not in result.stdout
        assert time.monotonic() - start < 3
    else:
        assert "finished" in result.stdout
    document = result.stdout.split("finished\n")[-1]
    assert json.loads(document)["data"]["error"]["type"] == "Terminated"


def test_a_sigterm_python_wraps_in_another_error_ends_in_exit_143_not_70(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM while a dataclass field's ``__set_name__`` runs (a module importing): Python 3.11
    raises ``RuntimeError: Error calling __set_name__`` from the handler's Terminated. Seen in the
    fault-injection test as exit 70, "internal error (a bug in dlsetup)"."""
    monkeypatch.setitem(
        cli_mod.COMMANDS, "wrapped", ("tests.support.broken_command", "wrapped", "a signal")
    )
    previous = signal.getsignal(signal.SIGTERM)
    cli_mod.install_sigterm_handler()
    try:
        result = CliRunner().invoke(cli_mod.cli, ["wrapped", "--json"])
    finally:
        signal.signal(signal.SIGTERM, previous)
        Terminated.handled()
    assert result.exit_code == ExitCode.TERMINATED, result.output
    assert "finished" not in result.stdout
    assert json.loads(result.stdout)["data"]["error"]["type"] == "Terminated"
    assert "internal error" not in result.output


def test_sigterm_is_not_raised_inside_importlibs_own_code() -> None:
    """Raised there, it can leave the global import lock held: doctor's probe threads then wait
    forever for it (seen: doctor hung after a SIGTERM in about 1 of 12 tries)."""
    import importlib
    import sys as _sys
    from types import FrameType

    seen: list[FrameType] = []

    def tracer(frame: FrameType, event: str, arg: object) -> None:
        if frame.f_code.co_filename.startswith("<frozen importlib") and not seen:
            seen.append(frame)

    _sys.modules.pop("colorsys", None)
    _sys.setprofile(tracer)
    try:
        importlib.import_module("colorsys")
    finally:
        _sys.setprofile(None)
    assert seen, "no importlib frame was seen"
    assert cli_mod._unsafe_to_raise(seen[0])
    assert not cli_mod._unsafe_to_raise(_sys._getframe())
