"""``dlsetup smoke --distributed``: one rank's side, run by torchrun or srun on every rank.

:func:`resolve_launch` reads the rank's place from the launcher's environment (torchrun's
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``, or Slurm's
``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``/``SLURM_STEP_NODELIST``/...);
:func:`run_distributed` starts :mod:`dlsetup.fleet.distributed_worker` in the target interpreter
with that environment, and on rank 0 reads back the report the worker wrote. dlsetup opens no
connection of its own: the rendezvous is torch.distributed's, between the ranks the launcher
started.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlsetup import children
from dlsetup.errors import InputError, MissingToolError, SmokeError, Terminated
from dlsetup.fleet.distributed_fate import (
    GONE,
    STOPPED,
    WATCHED_ENV,
    line,
    proc_stat,
    proc_state,
)

WORKER = Path(__file__).with_name("distributed_worker.py")
#: MASTER_PORT under srun when the job script sets none: 20000 + job id mod 20000 (one per job).
SLURM_PORT_BASE = 20000

#: How often a rank's dlsetup process reads its worker's process state (seconds).
WATCH_S = 0.25
#: Seconds the one-shot publisher of a stopped worker (a torch import, a store connection) may take.
WITNESS_TIMEOUT_S = 30.0

#: Linux refuses one environment string over 128 KiB: a larger rank -> node map is left out.
_MAX_ENV_BYTES = 64 * 1024

START_HINT = (
    "start it on every rank with torchrun (torchrun --nnodes N --nproc-per-node G ... "
    "--no-python dlsetup smoke --distributed) or srun (srun --ntasks-per-node G dlsetup smoke "
    "--distributed); see docs/fleet.md"
)


@dataclass(frozen=True)
class Launch:
    """Where this rank stands, from the launcher's environment.

    Attributes:
        launcher: ``torchrun``, ``srun`` or ``env`` (RANK etc. set by hand or a Kubernetes job).
        rank: global rank.
        world_size: number of ranks.
        local_rank: rank on this node.
        local_world_size: ranks on this node.
        master_addr: the rendezvous host (rank 0's).
        master_port: the rendezvous port.
        rank_nodes: the node each rank runs on, where the launcher says (Slurm); else empty.
    """

    launcher: str
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    rank_nodes: tuple[str, ...] = field(default=())

    def environment(self) -> dict[str, str]:
        """The variables the worker reads."""
        nodes = json.dumps(list(self.rank_nodes))
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.local_world_size),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
            "DLSETUP_LAUNCHER": self.launcher,
            "DLSETUP_RANK_NODES": nodes if len(nodes) <= _MAX_ENV_BYTES else "[]",
        }


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except (KeyError, ValueError):
        raise InputError(
            f"{name}={env.get(name)!r} is not a whole number", fix=START_HINT
        ) from None


def _slurm(env: Mapping[str, str]) -> Launch:
    from dlsetup.fleet.nodelist import expand_nodelist, expand_tasks_per_node

    rank = _int(env, "SLURM_PROCID")
    world = _int(env, "SLURM_NTASKS")
    local_rank = _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0
    nodelist = next(
        (
            env[k]
            for k in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
            if env.get(k)
        ),
        None,
    )
    tasks_text = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    nodes = expand_nodelist(nodelist) if nodelist else []
    tasks = expand_tasks_per_node(tasks_text) if tasks_text else []
    node_id = _int(env, "SLURM_NODEID") if "SLURM_NODEID" in env else 0
    local_world = tasks[node_id] if node_id < len(tasks) else 1
    rank_nodes: tuple[str, ...] = ()
    if nodes and len(tasks) == len(nodes) and sum(tasks) == world:  # block distribution
        rank_nodes = tuple(n for n, c in zip(nodes, tasks, strict=True) for _ in range(c))
    addr = env.get("MASTER_ADDR") or (nodes[0] if nodes else "")
    if not addr:
        raise InputError(
            "under srun, neither MASTER_ADDR nor SLURM_STEP_NODELIST names rank 0's host",
            fix="export MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1)",
        )
    if env.get("MASTER_PORT"):
        port = _int(env, "MASTER_PORT")
    elif env.get("SLURM_JOB_ID"):
        port = SLURM_PORT_BASE + _int(env, "SLURM_JOB_ID") % 20000
    else:
        raise InputError("under srun, MASTER_PORT is not set", fix="export MASTER_PORT=29500")
    return Launch("srun", rank, world, local_rank, local_world, addr, port, rank_nodes)


def resolve_launch(env: Mapping[str, str]) -> Launch:
    """This rank's place, from torchrun's variables (first) or Slurm's.

    Raises:
        InputError: neither launcher's variables are set, or they are inconsistent.
    """
    if "RANK" in env and "WORLD_SIZE" in env:
        launcher = "torchrun" if "TORCHELASTIC_RUN_ID" in env else "env"
        rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
        local_rank = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0
        local_world = _int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else 1
        if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
            raise InputError("RANK is set but MASTER_ADDR or MASTER_PORT is not", fix=START_HINT)
        launch = Launch(
            launcher, rank, world, local_rank, local_world, env["MASTER_ADDR"],
            _int(env, "MASTER_PORT"),
        )  # fmt: skip
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        launch = _slurm(env)
    else:
        raise InputError(
            "--distributed runs one rank of a job, and this process is not one: neither "
            "torchrun's RANK/WORLD_SIZE nor Slurm's SLURM_PROCID/SLURM_NTASKS is set",
            fix=START_HINT,
        )
    if launch.world_size < 1 or not 0 <= launch.rank < launch.world_size:
        raise InputError(
            f"rank {launch.rank} is outside a world of {launch.world_size} rank(s)",
            fix=START_HINT,
        )
    if not 0 < launch.master_port < 65536:
        raise InputError(f"MASTER_PORT {launch.master_port} is not a port", fix=START_HINT)
    return launch


@dataclass(frozen=True)
class DistributedOptions:
    """What ``dlsetup smoke --distributed`` passes to the worker.

    Attributes:
        python: the target interpreter.
        timeout_s: seconds a rendezvous or one collective may take before the rank that holds
            it up is named.
        seed: seed of the grid and the DDP step.
        steps: training steps of the grid.
        extra_args: further worker arguments (sizes, straggler factor; tests and experts).
    """

    python: Path
    timeout_s: float
    seed: int = 0
    steps: int = 200
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class DistributedOutcome:
    """One rank's result: the worker's exit code; on rank 0 the report (``None`` elsewhere, or
    when the worker ended before writing it)."""

    launch: Launch
    exit_code: int
    report: dict[str, Any] | None


def _signal_name(code: int) -> str:
    import signal

    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _ended_by_signal(rank: int, pid: int, code: int) -> str:
    """What a rank whose worker a signal ended says (its launcher's view of it)."""
    name = _signal_name(code)
    why = {
        "SIGKILL": "kill -9, or the kernel's OOM killer: see dmesg on this node",
        "SIGSEGV": "a crash in torch or a library it loaded",
        "SIGBUS": "a crash in torch or a library it loaded",
        "SIGABRT": "an abort in torch or a library it loaded (NCCL's watchdog, an assertion)",
    }.get(name, "sent by another program")
    return f"rank {rank}: its worker (pid {pid}) was killed by {name} ({why})"


def _tell_torchrun(message: str) -> None:
    """Leave ``message`` in torchrun's error file, so the agent's "Root Cause" block says why
    (without it, the block is empty: dlsetup is not a Python script torchrun decorated)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path or os.path.exists(path):
        return
    import time

    with contextlib.suppress(OSError):
        Path(path).write_text(
            json.dumps({"message": message, "timestamp": int(time.time())}), encoding="utf-8"
        )


def _failure_message(report: dict[str, Any]) -> str:
    failure = report.get("failure")
    if isinstance(failure, dict):
        named = "; ".join(line(x) for x in failure.get("ranks") or [])
        return f"dlsetup smoke --distributed: FAIL in {failure.get('phase')}: " + (
            named or str(failure.get("error"))
        )
    failed = [c for c in report.get("checks") or [] if not c.get("passed")]
    return "dlsetup smoke --distributed: FAIL: " + "; ".join(
        f"{c.get('name')}: {c.get('detail')}" for c in failed
    )


def _run_worker(
    argv: list[str], environ: dict[str, str], launch: Launch, report_path: Path
) -> tuple[int | None, int]:
    """Start the worker and wait for it: ``(exit status, pid)``; status ``None`` when its
    launcher stopped this rank after rank 0's report was written (the report's verdict stands)."""
    # The worker ends itself when a phase runs past its limit (2 x timeout + diagnose + 5 s,
    # its watchdog), so the wait has no deadline of its own; Ctrl-C or SIGTERM (Terminated)
    # is passed on to it (it leaves its last word: rank 0 writes the report it has), it gets
    # 5 s, then its group is killed and the interrupt goes on.
    watching = os.path.isdir("/proc/self")
    if watching:
        environ = {**environ, WATCHED_ENV: "1"}
    done = threading.Event()
    with children.start(argv, env=environ, stdout="inherit", stderr="inherit") as proc:
        pid = proc.pid
        if watching:
            watch = threading.Thread(
                target=watch_worker,
                args=(pid, argv, environ, done),
                name="dlsetup-watch",
                daemon=True,
            )
            watch.start()
        try:
            code, _ = proc.finish(None, grace=5.0)
        except KeyboardInterrupt:
            # torchrun ends a node's ranks as soon as one of them exits with a failure: when
            # rank 0's worker had written its report by then, the report is the answer
            if launch.rank != 0 or not report_path.exists():
                raise
            Terminated.handled()
            return None, pid
        finally:
            done.set()
    return code, pid


def watch_worker(pid: int, argv: list[str], environ: dict[str, str], done: threading.Event) -> None:
    """Publish the worker stopped (and resumed) for the ranks that cannot read its ``/proc``.

    A rank alone on its host has no node-mate to look at its process: silence alone would name
    it dead. Its ``dlsetup`` process, on the same host, reads its state every :data:`WATCH_S`;
    a change into or out of a stop, seen twice in a row (not a passing ptrace stop), starts the
    worker once more with ``--witness STATE``, which writes it into the store as a node-mate
    would (``seen/<rank>``). Nothing runs in the target interpreter unless the worker stops.
    """
    stat = proc_stat(pid)
    if stat is None:
        return
    published, last = "R", ""
    while not done.wait(WATCH_S):
        state = proc_state(pid, stat[1])
        if state is None or state in GONE:
            return
        if (state in STOPPED) != (published in STOPPED) and state == last:
            published = state
            with contextlib.suppress(OSError):
                children.run(
                    [*argv, "--witness", state], timeout=WITNESS_TIMEOUT_S, env=environ,
                    output="capture",
                )  # fmt: skip
        last = state


def run_distributed(
    options: DistributedOptions, env: Mapping[str, str] | None = None
) -> DistributedOutcome:
    """Run this rank's worker to its end.

    Under torchrun, this process ends with its agent (a parent-death signal), and its worker
    with it: nothing outlives the launcher.

    Raises:
        InputError: not started by torchrun or srun.
        MissingToolError: the interpreter does not exist, or has no torch (exit 3).
        SmokeError: the rendezvous could not be set up (the worker's message names the rank),
            or rank 0's worker ended without a report (the message says how).
    """
    environ = dict(os.environ if env is None else env)
    launch = resolve_launch(environ)
    if not options.python.exists():
        raise MissingToolError(
            f"the interpreter {options.python} does not exist", fix="give --python an existing one"
        )
    if launch.launcher == "torchrun" and env is None:
        children.end_with_parent()
    with tempfile.TemporaryDirectory(prefix="dlsetup-dist-") as tmp:
        report_path = Path(tmp) / "report.json"
        argv = [
            str(options.python), str(WORKER), "--timeout", f"{options.timeout_s:g}",
            "--seed", str(options.seed), "--steps", str(options.steps), *options.extra_args,
        ]  # fmt: skip
        if launch.rank == 0:
            argv += ["--report", str(report_path)]
        environ.update(launch.environment())
        code, pid = _run_worker(argv, environ, launch, report_path)
        report = None
        if launch.rank == 0 and report_path.exists():
            report = json.loads(report_path.read_text(encoding="utf-8"))
        if code is None:  # stopped after the report: its verdict stands
            code = int(report.get("exit_code", 1)) if isinstance(report, dict) else 1
    return _outcome(launch, code, pid, report, options)


def _outcome(
    launch: Launch, code: int, pid: int, report: dict[str, Any] | None, options: DistributedOptions
) -> DistributedOutcome:
    """The rank's outcome from its worker's exit; a failure is also left for torchrun."""
    if code == 3:
        raise MissingToolError(
            f"torch is not installed in {options.python}",
            fix="install PyTorch in the environment every rank runs, or pass --python",
        )
    if report is not None and code != 0:
        _tell_torchrun(_failure_message(report))
    if code < 0:  # a signal: say so on every rank, the launcher's view of this rank
        said = _ended_by_signal(launch.rank, pid, code)
        _tell_torchrun(f"dlsetup smoke --distributed: {said}")
        if report is None and launch.rank == 0:
            raise SmokeError(
                f"{said}, before it wrote the report",
                fix="the other ranks' lines (in their nodes' logs) say what they saw of it",
            )
        if report is None:
            sys.stderr.write(f"dlsetup smoke --distributed: {said}\n")
            sys.stderr.flush()
    elif code not in (0, 1, 4) and report is None and launch.rank != 0:
        said = f"rank {launch.rank}: its worker (pid {pid}) exited {code} without a verdict"
        _tell_torchrun(f"dlsetup smoke --distributed: {said}")
        sys.stderr.write(f"dlsetup smoke --distributed: {said}\n")
        sys.stderr.flush()
    elif code == 4 or (code not in (0, 1) and report is None and launch.rank == 0):
        raise SmokeError(
            f"rank {launch.rank}: the distributed smoke could not run (its worker exited "
            f"{code}; its message above says why)",
            fix="check MASTER_ADDR/MASTER_PORT and that every rank was started",
        )
    return DistributedOutcome(launch=launch, exit_code=code if code in (0, 1) else 1, report=report)
