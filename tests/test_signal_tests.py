"""The signal tests mean the same whether pytest runs in a terminal or as a background job.

A background job (``cmd &`` in a script, ``nohup``, some CI runners) starts with SIGINT ignored
and every child inherits that: Python then installs no KeyboardInterrupt handler and dlsetup
honours the ignore, as Python does. So a test that sends a signal starts its child with the
default actions (``tests.support.signals``), and these tests hold that.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.proc import REPO
from tests.support.signals import SIGNALLED

posix_only = pytest.mark.skipif(
    os.name != "posix", reason="inherited signal dispositions are POSIX"
)

#: a call that sends a signal to a process; SIGKILL (which nothing can ignore) is left out below
SENDS = re.compile(r"(?:send_signal|os\.kill|os\.killpg)\(([^()]*)\)")

#: one signal test, re-run below by a pytest that inherits SIGINT ignored
SIGINT_TEST = (
    "tests/test_cli_contract.py::"
    "test_a_signal_under_json_gives_an_error_envelope_and_its_exit_code[sigint]"
)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_every_test_that_sends_a_signal_starts_its_child_with_the_default_actions() -> None:
    missing = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        sends = [m.group(1) for m in SENDS.finditer(text) if "SIGKILL" not in m.group(1)]
        if sends and "SIGNALLED" not in text and "default_signal_actions" not in text:
            missing.append(str(path.relative_to(REPO)))
    assert missing == [], "these send signals to children started without tests.support.signals"


@posix_only
@pytest.mark.slow
def test_a_sigint_test_passes_when_the_run_inherits_sigint_ignored() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            SIGINT_TEST,
        ],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_ignore_sigint,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


@posix_only
@pytest.mark.slow
def test_dlsetup_honours_an_inherited_sigint_ignore(tmp_path: Path) -> None:
    """As Python does: started with SIGINT ignored, doctor goes on through a SIGINT (the helper
    exists because of this), and SIGTERM still ends it."""
    pkg = tmp_path / "site" / "torch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import time\ntime.sleep(120)\n", encoding="utf-8")
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(tmp_path / "site"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlsetup", "doctor", "--json", "--timeout", "100"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        preexec_fn=_ignore_sigint,
    )
    try:
        time.sleep(3)  # doctor is waiting for the hanging probe
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
        assert proc.poll() is None, "an inherited SIGINT ignore was not honoured"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err


def test_the_helper_restores_the_default_actions_in_the_child() -> None:
    script = (
        "import signal; print(signal.getsignal(signal.SIGINT) == signal.default_int_handler, "
        "signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)"
    )

    def ignore_both() -> None:
        _ignore_sigint()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def ignore_then_default() -> None:
        ignore_both()
        SIGNALLED["preexec_fn"]()

    plain = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, preexec_fn=ignore_both
    )
    helped = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        preexec_fn=ignore_then_default,
    )
    assert plain.stdout.split() == ["False", "False"]
    assert helped.stdout.split() == ["True", "True"]
