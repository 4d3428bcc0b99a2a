"""Test-only faults patched into the REAL torch.distributed of one rank of a distributed smoke run.

Put this directory on ``PYTHONPATH`` and set ``DLSETUP_TEST_DIST_FAULT=KIND@RANK[,KIND@RANK...]``;
Python imports this module at start-up in every process (torchrun's agents, dlsetup, the rank
workers), and in the process whose ``RANK`` is RANK it patches ``torch.distributed`` the moment the
worker imports it.
No production module knows about these faults. KIND:

* ``die``: the rank's first ``all_reduce`` exits the process (exit 17), as a crashed rank does;
* ``hang``: its first ``all_reduce`` never returns (sleeps an hour), as a wedged rank does;
* ``stall``: as ``hang``, meant for rank 0 (the reporter): its own watchdog must end it;
* ``wrong``: its first ``all_reduce`` adds 1 to the result, as a broken link or kernel would;
* ``slow``: from its first ``all_reduce`` on, each 2-D ``torch.matmul`` of at least 128 rows
  sleeps 5 ms more (a straggler);
* ``version``: from then on, its ``torch.__version__`` says 2.12.0+cpu (a drifted install);
* ``grad``: after the DDP step's backward, its DDP gradient of the first parameter gets + 1;
* ``grid``: from then on, its ``torch.sigmoid`` returns 1.1 x the value (a broken kernel);
* ``kill``: its first ``all_reduce`` SIGKILLs the worker's own process (a ``kill -9`` of it); the
  other ranks may still be inside ``init_process_group`` (connecting gloo's mesh): they fail
  there and name it all the same (``dieinit`` and ``killinit`` make that window on purpose);
* ``killparent``: its first ``all_reduce`` SIGKILLs the worker's parent, the ``dlsetup`` process
  torchrun or srun started (a ``kill -9`` of that process: the worker must not outlive it);
* ``killearly``: the worker SIGKILLs itself the moment it imports ``torch.distributed``, before
  it joins the rendezvous (a rank killed about 2 s after the start);
* ``killagent``: its first ``all_reduce`` SIGKILLs the torchrun agent (the parent of the worker's
  parent), then waits: nothing the agent started may outlive it;
* ``dieinit``: the rank exits (exit 17) the moment it calls ``init_process_group``, after it
  joined the rendezvous, while the other ranks connect gloo's full mesh through the store;
* ``killinit``: as ``dieinit``, a SIGKILL of the worker's own process;
* ``stopinit``: as ``dieinit``, a SIGSTOP of the worker's own process (it goes on into
  ``init_process_group`` once continued);
* ``stallinit``: the rank, alive and beating, never arrives at ``init_process_group``: once
  every rank has joined the rendezvous, its read of the last rank's join row sleeps an hour
  first (as a rank stuck in its own code would; the same moment with or without an arrival
  mark), while the others connect gloo's mesh and time out;
* ``stallmesh``: the rank arrives at ``init_process_group`` (its arrival mark written) but never
  connects gloo's mesh: the call sleeps an hour first, as a rank whose connections a firewall
  drops would hang there;
* ``gilhang``: its first ``all_reduce`` calls C's ``sleep(3600)`` holding the interpreter's lock
  (``ctypes.PyDLL``): the process is there, sleeping, but no thread of it runs, its heartbeat
  included (a C extension stuck in a call that never releases the lock);
* ``stop``: its first ``all_reduce`` waits 0.7 s (a heartbeat goes out naming the collective),
  then SIGSTOPs the worker's own process (a rank stopped by a debugger or ``kill -STOP``);
* ``hasty``: a failed rank does not linger after reading rank 0's verdict (the worker's 3 s
  ``LINGER_S`` sleep returns at once), so torchrun stops rank 0 of its node the moment it can;
* ``slowexit``: the rank's process waits 2 s before it exits (``os._exit``), after its report
  and verdict are out: with ``hasty`` on another rank of its node, torchrun stops it first.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import signal
import sys
import time
from typing import Any

ENV = "DLSETUP_TEST_DIST_FAULT"
#: A file each fault that breaks a rank appends ``<time.time()> <kind>@<rank>`` to as it fires,
#: so that a test can time the diagnosis from the fault, not from the launch.
LOG_ENV = "DLSETUP_TEST_DIST_FAULT_LOG"
#: The kinds that break their rank (the others skew a result and let the run go on).
BREAKING = {
    "die", "hang", "stall", "wrong", "kill", "killparent", "killagent", "killearly", "stop",
    "dieinit", "killinit", "stopinit", "stallinit", "stallmesh", "gilhang",
}  # fmt: skip


def _fired(kinds: set[str]) -> None:
    path = os.environ.get(LOG_ENV)
    for kind in sorted(kinds & BREAKING):
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{time.time():.3f} {kind}@{os.environ.get('RANK')}\n")


def _faults() -> set[str]:
    """The kinds meant for this process's rank (``KIND@RANK``, comma-separated)."""
    kinds = set()
    for item in filter(None, (p.strip() for p in os.environ.get(ENV, "").split(","))):
        kind, _, rank = item.partition("@")
        if kind and rank and os.environ.get("RANK") == rank:
            kinds.add(kind)
    return kinds


def _patch(dist: Any) -> None:
    kinds = _faults()
    original = dist.all_reduce
    calls = {"n": 0}

    def all_reduce(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        first = calls["n"] == 1
        if first:  # torch is imported by now (its docstrings are set): patch its functions
            torch = sys.modules["torch"]
            for kind, patch in _TORCH_PATCHES.items():
                if kind in kinds:
                    patch(torch)
        if first:
            _fired(kinds - {"killearly", "stop"})
        if first and "die" in kinds:
            sys.stderr.write(f"test fault: rank {os.environ['RANK']} dies\n")
            sys.stderr.flush()
            os._exit(17)
        if first and kinds & {"hang", "stall"}:
            time.sleep(3600)
        if first and "gilhang" in kinds:
            import ctypes

            ctypes.PyDLL(None).sleep(3600)
        if first and "kill" in kinds:
            os.kill(os.getpid(), signal.SIGKILL)
        if first and "killparent" in kinds:
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(3600)  # the parent-death signal ends this process
        if first and "killagent" in kinds:
            with open(f"/proc/{os.getppid()}/stat", encoding="ascii") as fh:
                agent = int(fh.read().rsplit(")", 1)[1].split()[1])
            os.kill(agent, signal.SIGKILL)
            time.sleep(3600)
        if first and "stop" in kinds:
            time.sleep(0.7)
            _fired({"stop"})
            os.kill(os.getpid(), signal.SIGSTOP)
        out = original(tensor, *args, **kwargs)
        if first and "wrong" in kinds:
            tensor.add_(1)
        return out

    dist.all_reduce = all_reduce
    if kinds & {"dieinit", "killinit", "stopinit"}:
        _break_init(dist, kinds)
    if "stallinit" in kinds:
        _stall_before_init(dist)
    if "stallmesh" in kinds:
        _stall_in_init(dist)


def _stall_in_init(dist: Any) -> None:
    """``init_process_group`` never returns, before gloo's mesh hears of the rank."""

    def init_process_group(*args: Any, **kwargs: Any) -> Any:
        _fired({"stallmesh"})
        time.sleep(3600)

    dist.init_process_group = init_process_group


def _stall_before_init(dist: Any) -> None:
    """The rank's read of the last rank's join row (the end of the rendezvous, after every rank
    joined) never returns (every store class takes ``get`` from ``Store``; the heartbeat's
    writes go through)."""
    original = dist.Store.get
    last = f"dlsetup/join/{int(os.environ.get('WORLD_SIZE', '1')) - 1}"

    def get(self: Any, key: str) -> Any:
        if key == last:
            _fired({"stallinit"})
            time.sleep(3600)
        return original(self, key)

    dist.Store.get = get


def _break_init(dist: Any, kinds: set[str]) -> None:
    """The rank ends or stops as it enters ``init_process_group`` (the others are inside it)."""
    original = dist.init_process_group

    def init_process_group(*args: Any, **kwargs: Any) -> Any:
        _fired(kinds & {"dieinit", "killinit", "stopinit"})
        if "stopinit" in kinds:
            os.kill(os.getpid(), signal.SIGSTOP)
            return original(*args, **kwargs)
        if "killinit" in kinds:
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stderr.write(f"test fault: rank {os.environ['RANK']} dies in init_process_group\n")
        sys.stderr.flush()
        os._exit(17)

    dist.init_process_group = init_process_group


def _slow_matmul(torch: Any) -> None:
    matmul = torch.matmul

    def slow_matmul(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        if a.dim() == 2 and a.shape[0] >= 128:
            time.sleep(0.005)
        return matmul(a, b, *args, **kwargs)

    torch.matmul = slow_matmul


def _other_version(torch: Any) -> None:
    torch.__version__ = "2.12.0+cpu"


def _skewed_grad(torch: Any) -> None:
    """After the DDP step's backward, this rank's DDP gradients change (as a lost bucket would)."""
    ddp = torch.nn.parallel.DistributedDataParallel
    init = ddp.__init__
    models: list[Any] = []

    def remember(self: Any, module: Any, *args: Any, **kwargs: Any) -> None:
        init(self, module, *args, **kwargs)
        models.append(module)

    backward = torch.Tensor.backward

    def skewed(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = backward(self, *args, **kwargs)
        if models:
            first = next(models.pop().parameters())
            first.grad.add_(1.0)
        return out

    ddp.__init__ = remember
    torch.Tensor.backward = skewed


def _broken_sigmoid(torch: Any) -> None:
    sigmoid = torch.sigmoid
    torch.sigmoid = lambda x, *a, **k: sigmoid(x, *a, **k) * 1.1


#: Faults applied to torch at the rank's first all-reduce.
_TORCH_PATCHES = {
    "slow": _slow_matmul,
    "version": _other_version,
    "grad": _skewed_grad,
    "grid": _broken_sigmoid,
}


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "torch.distributed":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            if "killearly" in _faults():
                _fired({"killearly"})
                os.kill(os.getpid(), signal.SIGKILL)
            run(module)
            _patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _hasty() -> None:
    sleep = time.sleep

    def no_linger(seconds: float) -> None:
        if seconds != 3.0:  # the worker's LINGER_S
            sleep(seconds)

    time.sleep = no_linger


def _slow_exit() -> None:
    exit_now = os._exit

    def slow_exit(code: int) -> None:
        time.sleep(2.0)
        exit_now(code)

    os._exit = slow_exit  # type: ignore[assignment]


if _faults():
    sys.meta_path.insert(0, _Finder())
    # the rank's worker only, not the dlsetup process that started it (same RANK)
    worker = sys.argv[0].endswith("distributed_worker.py")
    if worker and "hasty" in _faults():
        _hasty()
    if worker and "slowexit" in _faults():
        _slow_exit()
