"""Launch ``dlsetup smoke --distributed`` the way users do, on loopback: torchrun or srun-like.

``torchrun_nodes`` starts two torchrun agents on 127.0.0.1 (``--nnodes 2 --node-rank 0/1``), two
"nodes" of ``ranks_per_node`` ranks each, gloo on CPU. ``srun_like`` starts the ranks itself with
Slurm's variables set (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, ``SLURM_NODEID``,
``SLURM_STEP_NODELIST``, ``SLURM_STEP_TASKS_PER_NODE``), as srun would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.proc import REPO
from tests.support.signals import SIGNALLED

FAULTS = REPO / "tests" / "fleet" / "faults"
BIN = Path(sys.executable).parent


@dataclass
class Ended:
    """One launched process (a torchrun agent, or one srun-like rank): exit code and output, and
    the processes it started that were still alive 2 s after it ended (``left``: found by parent
    while it ran, or by process group afterwards; killed once listed)."""

    returncode: int
    stdout: str
    stderr: str
    left: list[str] = field(default_factory=list)
    #: seconds from the first breaking fault firing (``tests/fleet/faults``) to the end of the
    #: run; ``None`` when none fired
    since_fault_s: float | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def own_pid_namespace() -> list[str] | None:
    """``unshare`` that starts a command in a pid namespace of its own with a ``/proc`` of its own
    (as on another host: no rank outside can read its processes, and its own ``dlsetup`` process
    reads its worker's pid as on that host), or ``None`` where unprivileged user namespaces are
    not allowed. Without ``--mount-proc`` its ``/proc`` would be the host's, where the
    namespace's pids name other processes (pid 1 is the host's init)."""
    import shutil

    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    argv = [unshare, "--map-root-user", "--pid", "--mount-proc", "--kill-child"]
    # the namespace's own /proc must be there: its first process is pid 1 in it
    probe = subprocess.run(
        [*argv, "sh", "-c", 'test "$(cut -d" " -f1 /proc/self/stat)" -lt 100'],
        capture_output=True, timeout=30,
    )  # fmt: skip
    return argv if probe.returncode == 0 else None


def _fault_log() -> str:
    import tempfile

    fd, path = tempfile.mkstemp(prefix="dlsetup-fault-", suffix=".log")
    os.close(fd)
    return path


def _since_fault(log: str | None) -> float | None:
    """Seconds since the first fault fired, from the log the faults write (then removed)."""
    if log is None:
        return None
    try:
        lines = Path(log).read_text(encoding="utf-8").split()
    finally:
        Path(log).unlink(missing_ok=True)
    return time.time() - float(lines[0]) if lines else None


def _env(
    extra: Mapping[str, str], fault: str | None, fault_log: str | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC"))}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK"):
        env.pop(key, None)
    env.update({"GLOO_SOCKET_IFNAME": "lo", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *([str(FAULTS)] if fault else [])])
    if fault:
        env["DLSETUP_TEST_DIST_FAULT"] = fault
    if fault_log:
        env["DLSETUP_TEST_DIST_FAULT_LOG"] = fault_log
    env.update(extra)
    return env


def _family(proc: subprocess.Popen[str], seen: dict[int, tuple[Any, int]]) -> None:
    """Add ``proc``'s live descendants to ``seen``: pid -> (psutil process, process group)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(proc.pid).children(recursive=True):
            if child.pid not in seen:
                with contextlib.suppress(OSError):
                    seen[child.pid] = (child, os.getpgid(child.pid))


def _alive(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _left_behind(leader: int, seen: dict[int, tuple[Any, int]]) -> list[str]:
    """The processes of ``leader``'s family still alive: the descendants seen while it ran
    (psutil checks the pid still names the same process), and any process still in the process
    group of ``leader`` or of one of them; each is killed once listed."""
    import psutil

    groups = {leader, *(group for _, group in seen.values())}
    grace = time.monotonic() + 2.0  # a process killed just now may not have been reaped yet
    while True:
        alive = [p for p, _ in seen.values() if _alive(p)]
        for p in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                known = {q.pid for q in alive} | {os.getpid()}
                if os.getpgid(p.pid) in groups and p.pid not in known and _alive(p):
                    alive.append(p)
        if not alive or time.monotonic() > grace:
            break
        time.sleep(0.2)
    out = []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            out.append(f"pid {p.pid} ({p.status()}): {' '.join(p.cmdline())[:160]}")
            p.send_signal(signal.SIGCONT)
            p.kill()
    return out


def _wait(
    procs: list[subprocess.Popen[str]],
    deadline_s: float,
    *,
    kill_on_bad_exit: bool = False,
    fault_log: str | None = None,
) -> list[Ended]:
    """Wait for every launched process; ``kill_on_bad_exit``: once one exits non-zero, the
    others' process groups get SIGCONT and SIGTERM, as Slurm ends every process of a step's
    tasks under ``srun --kill-on-bad-exit=1`` (the group: a prefix such as ``unshare``, which
    forwards no SIGTERM, and the ``dlsetup`` under it)."""
    import threading

    end = time.monotonic() + deadline_s
    outputs: dict[int, tuple[str, str]] = {}
    seen: list[dict[int, tuple[Any, int]]] = [{} for _ in procs]

    def read(i: int, proc: subprocess.Popen[str]) -> None:
        outputs[i] = proc.communicate()

    readers = [threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for reader in readers:
        reader.start()
    ended_step = False
    while any(p.poll() is None for p in procs) and time.monotonic() < end:
        for proc, family in zip(procs, seen, strict=True):
            _family(proc, family)
        if kill_on_bad_exit and not ended_step and any(p.poll() for p in procs):
            ended_step = True
            for proc in procs:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGCONT)
                        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.2)
    killed = []
    for proc in procs:
        if proc.poll() is None:  # its whole session: the rank workers hold the pipes
            killed.append(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    since_fault = _since_fault(fault_log)
    out = []
    for i, proc in enumerate(procs):
        left = _left_behind(proc.pid, seen[i])
        readers[i].join(10.0)
        stdout, stderr = outputs.get(i, ("", "[test: its output was never closed]"))
        if proc.pid in killed:
            stderr += "\n[test: killed at the deadline]"
        out.append(Ended(proc.wait(), stdout, stderr, left, since_fault))
    return out


def torchrun_nodes(
    args: Iterable[str] = (),
    *,
    ranks_per_node: int = 2,
    fault: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    deadline_s: float = 90.0,
    rdzv: str = "static",
    port: int | None = None,
    rdzv_conf: str | None = None,
) -> tuple[list[Ended], float]:
    """Two torchrun agents (node ranks 0 and 1) running ``dlsetup smoke --distributed ARGS``.

    ``rdzv``: ``static`` (``--master-addr/--master-port --node-rank``: agent 0 hosts the store)
    or ``c10d`` (``--rdzv-backend c10d --rdzv-endpoint``: the agents agree on the node ranks,
    with ``join_timeout=20`` as docs/fleet.md says).
    """
    port = free_port() if port is None else port
    log = _fault_log() if fault else None
    env = _env(extra_env or {}, fault, log)
    procs = []
    t0 = time.monotonic()
    for node in (0, 1):
        if rdzv == "c10d":
            where = [
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                "--rdzv-id", f"dlsetup-test-{port}", "--rdzv-conf", rdzv_conf or "join_timeout=20",
            ]  # fmt: skip
        else:
            where = ["--node-rank", str(node), "--master-addr", "127.0.0.1",
                     "--master-port", str(port)]  # fmt: skip
            where += ["--rdzv-conf", rdzv_conf] if rdzv_conf else []
        argv = [
            str(BIN / "torchrun"), "--nnodes", "2", "--nproc-per-node", str(ranks_per_node),
            *where, "--no-python", str(BIN / "dlsetup"), "smoke", "--distributed", *args,
        ]  # fmt: skip
        procs.append(subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True,
                                      **SIGNALLED))  # fmt: skip
    ended = _wait(procs, deadline_s, fault_log=log)
    return ended, time.monotonic() - t0


def srun_like(
    args: Iterable[str] = (),
    *,
    port: int,
    nodes: str,
    tasks_per_node: str,
    ranks: Iterable[int],
    world: int,
    deadline_s: float = 60.0,
    fault: str | None = None,
    kill_on_bad_exit: bool = False,
    prefix: Mapping[int, Iterable[str]] | None = None,
) -> tuple[list[Ended], float]:
    """Start the given ranks of a ``world``-rank srun step (the others never start).

    ``prefix``: a command that starts a rank's ``dlsetup``, by rank (``unshare ...``).
    """
    from dlsetup.fleet.nodelist import expand_tasks_per_node

    counts = expand_tasks_per_node(tasks_per_node)
    node_of = [n for n, c in enumerate(counts) for _ in range(c)]
    procs = []
    log = _fault_log() if fault else None
    t0 = time.monotonic()
    for rank in ranks:
        node = node_of[rank]
        env = _env(
            {
                "SLURM_PROCID": str(rank),
                "SLURM_NTASKS": str(world),
                "SLURM_LOCALID": str(rank - sum(counts[:node])),
                "SLURM_NODEID": str(node),
                "SLURM_STEP_NODELIST": nodes,
                "SLURM_STEP_TASKS_PER_NODE": tasks_per_node,
                "SLURM_JOB_ID": "4242",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            },
            fault,
            log,
        )
        argv = [
            *(prefix or {}).get(rank, ()),
            str(BIN / "dlsetup"),
            "smoke",
            "--distributed",
            *args,
        ]
        procs.append(subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True,
                                      **SIGNALLED))  # fmt: skip
    ended = _wait(procs, deadline_s, kill_on_bad_exit=kill_on_bad_exit, fault_log=log)
    return ended, time.monotonic() - t0
