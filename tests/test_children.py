"""The one child-process runner (dlsetup.children): groups, deadlines, parent death, output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from dlsetup import children
from tests.support.processes import alive, survivors
from tests.support.signals import SIGNALLED

REPO = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups and signals are POSIX")
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

#: A child that starts a grandchild, writes the grandchild's pid to argv[1], then waits.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""

#: A child that ignores SIGTERM (and SIGINT) and hangs: only SIGKILL ends it.
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
open(sys.argv[1], "w").write("ready")
time.sleep(60)
"""


def _wait_for(path: Path, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


def test_run_returns_exit_status_and_text_output() -> None:
    done = children.run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); exit(3)"],
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr, done.timed_out) == (
        3,
        "out\n",
        "err\n",
        False,
    )
    assert not done.ok


def test_undecodable_output_is_replaced_not_raised() -> None:
    done = children.run(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'a\\xffb')"], timeout=60
    )
    assert done.ok and done.stdout == "a\ufffdb"


def test_env_and_cwd_reach_the_child(tmp_path: Path) -> None:
    code = "import os; print(os.environ['DLSETUP_CHILD_VALUE'], os.getcwd())"
    done = children.run(
        [sys.executable, "-c", code],
        timeout=60,
        env={**os.environ, "DLSETUP_CHILD_VALUE": "given"},
        cwd=tmp_path,
    )
    assert done.stdout.split() == ["given", str(tmp_path.resolve())]


def test_output_to_files(tmp_path: Path) -> None:
    files = children.ToFiles(tmp_path / "out.txt", tmp_path / "err.txt")
    done = children.run(
        [sys.executable, "-c", "import sys; print('to out'); print('to err', file=sys.stderr)"],
        timeout=60,
        output=files,
    )
    assert done.ok and (done.stdout, done.stderr) == ("", "")
    assert files.stdout.read_text() == "to out\n"
    assert files.stderr.read_text() == "to err\n"


def test_a_child_that_cannot_start_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        children.run([str(tmp_path / "no-such-program")], timeout=60)


@posix_only
def test_the_deadline_returns_for_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    start = time.monotonic()
    done = children.run(
        [sys.executable, "-c", STUBBORN, str(ready)], timeout=2, grace=1, output="devnull"
    )
    elapsed = time.monotonic() - start
    assert ready.read_text() == "ready"  # it was running, ignoring SIGTERM, at the deadline
    assert done.timed_out
    assert done.returncode == -signal.SIGKILL  # SIGTERM was ignored: the escalation killed it
    assert 2 <= elapsed < 2 + 1 + 3, elapsed  # deadline + grace, plus a little, never 60 s


@posix_only
def test_past_the_deadline_the_grandchild_goes_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    done = children.run([sys.executable, "-c", PARENT, str(pid_file)], timeout=3, grace=0.5)
    assert done.timed_out
    grandchild = int(pid_file.read_text())
    assert survivors({grandchild}, within_s=10) == [], "the grandchild outlived the deadline"


@posix_only
def test_after_a_normal_exit_what_the_child_left_in_its_group_is_ended(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    leaves = PARENT.rsplit("time.sleep(60)", 1)[0]  # the child exits, the grandchild sleeps
    done = children.run([sys.executable, "-c", leaves, str(pid_file)], timeout=60)
    assert done.ok and not done.timed_out
    grandchild = int(pid_file.read_text())
    assert survivors({grandchild}, within_s=10) == [], "a leftover of the child outlived run()"


@posix_only
def test_kill_ends_the_child_and_its_grandchild(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with children.start([sys.executable, "-c", PARENT, str(pid_file)]) as child:
        grandchild = int(_wait_for(pid_file))
        child.kill()
        assert child.wait(10) == -signal.SIGKILL
    assert survivors({grandchild}, within_s=10) == []


def test_kill_and_stop_of_a_child_that_already_ended_are_quiet() -> None:
    child = children.start([sys.executable, "-c", "pass"])
    assert child.wait(30) == 0
    child.kill()
    assert child.stop(grace=1) == 0


@posix_only
def test_stop_without_a_grace_does_not_wait_for_a_stubborn_child(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = children.start([sys.executable, "-c", STUBBORN, str(ready)])
    _wait_for(ready)
    start = time.monotonic()
    assert child.stop() == -signal.SIGKILL
    assert time.monotonic() - start < 3


#: A child that, like ``dlsetup smoke``, starts a worker in a session of its own (out of reach of
#: a signal to the child's group) and ends it itself when asked to stop.
STOPS_ITS_OWN_WORKER = """
import signal, subprocess, sys, time
def stop(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                          start_new_session=True)
open(sys.argv[1], "w").write(str(worker.pid))
try:
    time.sleep(60)
except KeyboardInterrupt:
    worker.kill()
    worker.wait()
    sys.exit(130)
"""


@posix_only
def test_the_grace_lets_the_child_end_workers_in_their_own_sessions(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    start = time.monotonic()
    done = children.run(
        [sys.executable, "-c", STOPS_ITS_OWN_WORKER, str(pid_file)], timeout=3, grace=20
    )
    assert time.monotonic() - start < 15  # it stopped on SIGTERM, not at the end of the grace
    assert (done.timed_out, done.returncode) == (True, 130)
    assert survivors({int(pid_file.read_text())}, within_s=10) == []


#: A worker in a session of its own that its parent does NOT end: killed as a stray, because it
#: was a descendant when the parent was asked to stop.
ABANDONS_ITS_WORKER = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                          start_new_session=True)
open(sys.argv[1], "w").write(str(worker.pid))
time.sleep(60)
"""


@posix_only
def test_a_descendant_that_left_the_group_is_killed_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    done = children.run([sys.executable, "-c", ABANDONS_ITS_WORKER, str(pid_file)], timeout=3)
    assert done.timed_out
    assert survivors({int(pid_file.read_text())}, within_s=10) == []


#: dlsetup's side: runs a child that records which stop signal reached it, under the handlers
#: dlsetup's CLI installs (SIGTERM raises Terminated).
FORWARDS = """
import signal, sys
from dlsetup import children
from dlsetup.errors import Terminated
def terminated(signum, frame):
    raise Terminated
signal.signal(signal.SIGTERM, terminated)
CHILD = '''
import signal, sys, time
def record(signum, frame):
    open(sys.argv[1], "w").write(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGINT, record)
signal.signal(signal.SIGTERM, record)
open(sys.argv[2], "w").write("ready")
time.sleep(60)
'''
try:
    children.run([sys.executable, "-c", CHILD, sys.argv[1], sys.argv[2]], timeout=60, grace=20)
except KeyboardInterrupt as exc:
    sys.exit(143 if isinstance(exc, Terminated) else 130)
sys.exit(0)
"""


@posix_only
@pytest.mark.parametrize(
    ("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupt_is_forwarded_to_the_child(
    tmp_path: Path, sent: signal.Signals, code: int
) -> None:
    got, ready = tmp_path / "got", tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", FORWARDS, str(got), str(ready)], cwd=str(REPO), **SIGNALLED
    )
    try:
        _wait_for(ready)
        proc.send_signal(sent)
        assert proc.wait(timeout=15) == code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert got.read_text() == sent.name


#: A process that starts a child through dlsetup.children, writes its pid, then waits to be killed.
STARTS_AND_WAITS = """
import sys, time
from dlsetup import children
child = children.start([sys.executable, "-c", "import time; time.sleep(60)"],
                       die_with_parent=sys.argv[2] == "1")
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""


@linux_only
@pytest.mark.parametrize("die_with_parent", [True, False])
def test_sigkill_of_dlsetup_ends_its_child(tmp_path: Path, die_with_parent: bool) -> None:
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", STARTS_AND_WAITS, str(pid_file), "1" if die_with_parent else "0"],
        cwd=str(REPO),
    )
    child = 0
    try:
        child = int(_wait_for(pid_file))
        parent.kill()  # SIGKILL: no handler of dlsetup's runs
        parent.wait(timeout=10)
        left = survivors({child}, within_s=5)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child and alive(child):
            os.kill(child, signal.SIGKILL)
    # The control (no parent-death signal) shows the test can see a survivor.
    assert left == ([] if die_with_parent else [child])


def test_child_handle_reports_pid_args_and_status() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stdout.write('line\\n')"]
    with children.start(argv, stdout="pipe") as child:
        assert child.stdout is not None
        assert child.stdout.read() == b"line\n"
        assert child.wait(30) == 0
        assert (child.args, child.returncode) == (tuple(argv), 0)
        assert psutil.pid_exists(child.pid) in (True, False)
