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
from dataclasses import dataclass
from pathlib import Path

from tests.support.proc import REPO

FAULTS = REPO / "tests" / "fleet" / "faults"
BIN = Path(sys.executable).parent


@dataclass
class Ended:
    """One launched process (a torchrun agent, or one srun-like rank): exit code and output."""

    returncode: int
    stdout: str
    stderr: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(extra: Mapping[str, str], fault: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC"))}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK"):
        env.pop(key, None)
    env.update({"GLOO_SOCKET_IFNAME": "lo", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *([str(FAULTS)] if fault else [])])
    if fault:
        env["DLSETUP_TEST_DIST_FAULT"] = fault
    env.update(extra)
    return env


def _wait(procs: list[subprocess.Popen[str]], deadline_s: float) -> list[Ended]:
    end = time.monotonic() + deadline_s
    out = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=max(end - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:  # its whole session: the rank workers hold the pipes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += "\n[test: killed at the deadline]"
        out.append(Ended(proc.returncode, stdout, stderr))
    return out


def torchrun_nodes(
    args: Iterable[str] = (),
    *,
    ranks_per_node: int = 2,
    fault: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    deadline_s: float = 90.0,
) -> tuple[list[Ended], float]:
    """Two torchrun agents (node ranks 0 and 1) running ``dlsetup smoke --distributed ARGS``."""
    port = free_port()
    env = _env(extra_env or {}, fault)
    procs = []
    t0 = time.monotonic()
    for node in (0, 1):
        argv = [
            str(BIN / "torchrun"), "--nnodes", "2", "--nproc-per-node", str(ranks_per_node),
            "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
            "--no-python", str(BIN / "dlsetup"), "smoke", "--distributed", *args,
        ]  # fmt: skip
        procs.append(subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True))  # fmt: skip
    ended = _wait(procs, deadline_s)
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
) -> tuple[list[Ended], float]:
    """Start the given ranks of a ``world``-rank srun step (the others never start)."""
    from dlsetup.fleet.nodelist import expand_tasks_per_node

    counts = expand_tasks_per_node(tasks_per_node)
    node_of = [n for n, c in enumerate(counts) for _ in range(c)]
    procs = []
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
            None,
        )
        argv = [str(BIN / "dlsetup"), "smoke", "--distributed", *args]
        procs.append(subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True))  # fmt: skip
    ended = _wait(procs, deadline_s)
    return ended, time.monotonic() - t0
