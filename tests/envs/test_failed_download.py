"""A failed download ends in exit 4 and one error message, every time, under load (issue 20).

When a fetch failed during ``create --from-lock``, the downloads still in flight reported back
from rattler's tokio threads into an asyncio loop already closed ("RuntimeError: Event loop is
closed" and a traceback on stderr) or into an interpreter already finalizing ("Fatal Python
error: PyGILState_Release ...", SIGABRT or SIGSEGV instead of exit 4): about 1 create in 20-50
under load. Here the real console script runs a conda-lock file whose channel is a closed port
on 127.0.0.1 (every download fails at once, so several fail together), :data:`RUNS` times,
:data:`PARALLEL` at a time, beside :data:`BURNERS` busy-loop processes (they stop on their own
after :data:`LOAD_SECONDS` should this test die, and are killed at its end). Each create runs
with ``tests/support/late_report`` on ``PYTHONPATH``: a thread other than the main one reaches
the event loop 0-30 ms late, as when the OS preempts a tokio thread at the worst moment — so the
old code went wrong in most runs instead of once in a while (measured before the fix: 44 of 50,
34 of them killed by SIGABRT or SIGSEGV, the rest "Event loop is closed" tracebacks).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.envs.lock_builders import PLATFORM, temporaries
from tests.support.http_server import closed_port
from tests.support.proc import REPO

#: creates run, and how many at once
RUNS = 50
PARALLEL = 4
#: conda packages in the lock: all fetched at once (create fetches up to 8 together)
PACKAGES = 6
#: busy-loop processes beside the creates: one per two CPUs (the creates load the rest), at most 4
BURNERS = min(max(1, (os.cpu_count() or 2) // 2), 4)
#: the longest the load processes run, should nothing kill them
LOAD_SECONDS = 300
#: what stderr must never hold
CRASH_SIGNS = ("Traceback", "Fatal Python error", "Event loop is closed", "panicked")
#: the sitecustomize that makes rattler's threads report late (see the module docstring)
LATE_REPORT_DIR = REPO / "tests" / "support" / "late_report"
#: the console script, as a user runs it (its ``main`` decides how the process exits)
DLSETUP = Path(sys.executable).parent / "dlsetup"

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not DLSETUP.is_file(),
    reason="linux-64 locks and the venv's dlsetup console script",
)


def unreachable_lock(path: Path) -> Path:
    """A conda-lock v1 file (conda-lock's own writer, as :mod:`tests.envs.lock_builders`) of
    :data:`PACKAGES` packages with hashes, in a channel at a closed port: every fetch fails with
    "connection refused" (nothing else is read: no channel needs building)."""
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile
    from conda_lock.models.channel import Channel

    channel = f"http://127.0.0.1:{closed_port()}"
    packages = [
        LockedDependency(
            name=f"unreachable{i}",
            version="1.0",
            manager="conda",
            platform=PLATFORM,
            dependencies={},
            url=f"{channel}/{PLATFORM}/unreachable{i}-1.0-h0_0.conda",
            hash=HashModel(
                md5=hashlib.md5(bytes([i]), usedforsecurity=False).hexdigest(),
                sha256=hashlib.sha256(bytes([i])).hexdigest(),
            ),
            categories={"main"},
            build="h0_0",
        )
        for i in range(PACKAGES)
    ]
    lockfile = Lockfile(
        package=packages,
        metadata=LockMeta(
            content_hash={PLATFORM: "0" * 64},
            channels=[Channel.from_string(channel)],
            platforms=[PLATFORM],
            sources=["environment.yml"],
        ),
    )
    write_conda_lock_file(lockfile, path, metadata_choices=set())
    return path


def _create(lock: Path, prefix: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DLSETUP), "create", "--from-lock", str(lock), "--prefix", str(prefix),
         "--no-smoke", "--no-jupyter"],
        env=env, cwd=str(REPO), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _fault(run: int, proc: subprocess.CompletedProcess[str]) -> str | None:
    """What went wrong in one run, or ``None``."""
    signs = [sign for sign in CRASH_SIGNS if sign in proc.stderr]
    if proc.returncode == 4 and not signs and "Error: could not fetch" in proc.stderr:
        return None
    how = (
        f"killed by {signal.Signals(-proc.returncode).name}"
        if proc.returncode < 0
        else f"exit {proc.returncode}"
    )
    return f"run {run}: {how}, {signs or 'no fetch error'}:\n{proc.stderr[-1200:]}"


@pytest.mark.slow
def test_failed_download_exits_4_without_a_crash_under_load(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    lock = unreachable_lock(tmp_path / "unreachable.conda-lock.yml")
    python_path = os.pathsep.join(
        p for p in (str(LATE_REPORT_DIR), str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env = {**os.environ, **isolated_dirs, "PYTHONPATH": python_path}
    burn = (
        f"import time\nend = time.monotonic() + {LOAD_SECONDS}\nwhile time.monotonic() < end: pass"
    )
    load = [
        subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.DEVNULL)
        for _ in range(BURNERS)
    ]
    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            procs = list(pool.map(lambda i: _create(lock, tmp_path / f"env{i}", env), range(RUNS)))
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
    faults = [fault for i, proc in enumerate(procs) if (fault := _fault(i, proc)) is not None]
    assert not faults, f"{len(faults)} of {RUNS} runs went wrong:\n" + "\n".join(faults)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("env")]
    assert temporaries(tmp_path) == []
