"""The distributed smoke worker: one per rank, run inside the target interpreter.

Started by ``dlsetup smoke --distributed`` on every rank (which torchrun or srun started), with the
rendezvous in the environment: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` (dlsetup fills them from Slurm's variables under srun). Imports
only the standard library, NumPy and torch (and, for the seed's grid, the smoke worker's modules
beside it, loaded by path).

What it checks, in order; each phase is a :func:`Run.phase`, and a failed or hung collective is
diagnosed (a monitored barrier on a separate gloo group, the ranks' heartbeats in the store) so the
dead or hung rank is named instead of waiting out a 30-minute default:

1. rendezvous and ``init_process_group`` (time; ranks that never join are named, and a rank that
   dies or stops inside ``init_process_group`` is diagnosed as in a failed collective);
2. all-reduce of rank-dependent values, every rank's result checked exactly;
3. all-gather of every rank's versions (torch, CUDA, NCCL, Python, NumPy, GPU): live drift;
4. bus-bandwidth sweep (nccl-tests' definition: busbw = algbw x 2(n-1)/n, the slowest rank's time);
5. per-rank matmul timing, stragglers against the median;
6. one DDP step: identical gradients on every rank, equal to the mean of the ranks' own gradients;
7. the seed's activation x loss grid on each rank's device (the smoke worker's code, as a library);
8. ``all_reduce_perf`` (nccl-tests) and ``dcgmi diag -r 1`` where installed, one run per node.

Rank 0 writes the report (``--report``): one JSON object, the ``data`` of a
``dlsetup.smoke-distributed`` document. Exit status: 0 every check passed, 1 a check failed or a
rank was named dead, hung, missing or wrong, 3 torch is not installed, 4 the rendezvous could not be
set up (the port is taken, the store is unreachable).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlsetup.fleet import distributed_fate as fate
    from dlsetup.fleet.distributed_checks import PHASES, PREFIX, PhaseFailed
else:  # run as a script: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import distributed_fate as fate
    from distributed_checks import PHASES, PREFIX, PhaseFailed

HEARTBEAT_S = 0.5
#: A rank whose heartbeat is older than this (and whose process no rank could look at) is dead.
DEAD_AFTER_S = fate.DEAD_AFTER_S
#: torch.distributed's collectives whose name a heartbeat carries while a rank is inside one.
COLLECTIVES = frozenset({
    "all_reduce", "all_gather", "all_gather_object", "broadcast", "barrier", "reduce_scatter",
    "all_to_all", "gather", "scatter", "send", "recv", "monitored_barrier",
})  # fmt: skip
#: After a failure, ranks other than 0 wait this long before exiting (see :func:`_finish`).
LINGER_S = 3.0
EXIT_OK, EXIT_FAILED, EXIT_MISSING, EXIT_SETUP = 0, 1, 3, 4
#: The least time the rendezvous waits for every rank to join (seconds).
RENDEZVOUS_MIN_S = 10.0
#: The key a rank sets just before it calls ``init_process_group`` (its arrival there).
INIT_KEY = "init/"


class SetupFailed(Exception):
    """The rendezvous could not be set up; exit 4."""


def _say(rank: int | str, text: str) -> None:
    sys.stderr.write(f"dlsetup smoke --distributed: rank {rank}: {text}\n")
    sys.stderr.flush()


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        if default is None:
            raise SetupFailed(f"{name} is not set (start the command with torchrun or srun)")
        return default
    return int(value)


class Run:
    """One rank's run: the store, the process groups, the rows gathered, the verdict."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rank = _env_int("RANK")
        self.world = _env_int("WORLD_SIZE")
        self.local_rank = _env_int("LOCAL_RANK", 0)
        self.local_world = _env_int("LOCAL_WORLD_SIZE", 1)
        self.node_rank = _env_int("GROUP_RANK", self.rank // max(self.local_world, 1))
        self.addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
        self.port = _env_int("MASTER_PORT")
        self.timeout = float(args.timeout)
        #: ranks start at different times (each imports torch first): the rendezvous waits
        #: for them at least RENDEZVOUS_MIN_S, whatever the per-collective timeout
        self.join_timeout = max(self.timeout, RENDEZVOUS_MIN_S)
        self.host = socket.gethostname()
        self.rank_nodes: list[str] = json.loads(os.environ.get("DLSETUP_RANK_NODES", "[]"))
        self.t_start = time.perf_counter()
        self.store: Any = None
        self.hb_store: Any = None
        self.monitor: Any = None
        self.current_phase = "start"
        self.op = ""  # the collective this rank is in (COLLECTIVES), for its heartbeat
        self.peers: dict[int, dict[str, Any]] = {}  # every rank's join row (pid, host, ...)
        self.seen: dict[int, str] = {}  # what this rank last published about a node-mate
        self.store_lost = False
        self.ending: str | None = None  # the signal with which its launcher is ending it
        self.finish_lock = threading.Lock()
        self.reported = False
        self.backend = "gloo"
        self.device = "cpu"
        self.wakeup: tuple[socket.socket, socket.socket] | None = None
        self.phase_started: float | None = None
        #: the stretch the watchdog holds: "phase" (a phase's body) or "before_init" (from the
        #: end of the rendezvous's wait to init_process_group, where a rank waits for nobody)
        self.watched_stretch = "phase"
        self.results: dict[str, Any] = {}
        self.checks: list[dict[str, Any]] = []
        self.failure: dict[str, Any] | None = None
        self.row: dict[str, Any] = {
            "rank": self.rank,
            "local_rank": self.local_rank,
            "node_rank": self.node_rank,
            "host": self.host,
            "pid": os.getpid(),
            "ppid": os.getppid(),  # the dlsetup process its launcher started
            "start": fate.own_start(),
            "procs": fate.proc_namespace(),  # whose /proc can read this pid
            # its dlsetup process watches it and publishes a stop (distributed.py)
            "watched": os.environ.get(fate.WATCHED_ENV) == "1",
        }
        self._stop = threading.Event()

    # -- the store -------------------------------------------------------------------------

    def _connect(self, is_master: bool) -> Any:
        import torch

        dist: Any = torch.distributed

        timeout = datetime.timedelta(seconds=self.join_timeout)
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":  # torchrun's agent hosts it
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            client = dist.TCPStore(self.addr, self.port, None, False, timeout)
            return dist.PrefixStore(f"/worker/attempt_{attempt}", client)
        return dist.TCPStore(
            self.addr, self.port, self.world, is_master, timeout, wait_for_workers=False
        )

    def _connect_within(self, is_master: bool) -> Any:
        """:meth:`_connect`, given up after the timeout (a client's handshake with a program
        that is not a store, on the port, never ends)."""
        box: dict[str, Any] = {}

        def connect() -> None:
            try:
                box["store"] = self._connect(is_master)
            except Exception as exc:
                box["error"] = exc

        thread = threading.Thread(target=connect, name="dlsetup-connect", daemon=True)
        thread.start()
        thread.join(self.join_timeout + 1.0)
        if "error" in box:
            raise box["error"]
        if "store" not in box:
            raise TimeoutError(f"no answer from a store within {self.join_timeout:g} s")
        return box["store"]

    def rendezvous(self) -> None:
        """Connect to (rank 0 without torchrun: host) the store; wait until every rank joined."""
        t0 = time.perf_counter()
        self.current_phase = "rendezvous"
        where = f"{self.addr}:{self.port}"
        try:
            self.store = self._connect_within(is_master=self.rank == 0)
        except Exception as exc:  # torch raises DistNetworkError/DistStoreError/RuntimeError
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "EADDRINUSE" in text or "address already in use" in text.lower():
                raise SetupFailed(
                    f"rank {self.rank} could not listen on {where}: the port is already in use "
                    "(another job, or a previous run that has not ended); pick another "
                    "MASTER_PORT"
                ) from exc
            raise SetupFailed(
                f"rank {self.rank} could not reach the rendezvous store at {where} within "
                f"{self.join_timeout:g} s ({type(exc).__name__}: {text}); is rank 0 running there, "
                "and is the port free of other programs?"
            ) from exc
        self.hb_store = self._connect(is_master=False) if self.rank != 0 else self.store
        self._start_heartbeat()
        self.store.set(f"{PREFIX}join/{self.rank}", json.dumps(self.row))
        deadline = time.monotonic() + self.join_timeout
        missing = list(range(self.world))
        while missing and time.monotonic() < deadline:
            missing = [r for r in missing if not self.store.check([f"{PREFIX}join/{r}"])]
            if missing:
                time.sleep(0.05)
        self.results["rendezvous_s"] = time.perf_counter() - t0
        # from here to init_process_group this rank waits for nobody: the watchdog holds it to
        # timeout + diagnose (the others time out inside init meanwhile and name it)
        self.watched_stretch = "before_init"
        self.phase_started = time.monotonic()
        for r in range(self.world):
            joined = self._read(f"{PREFIX}join/{r}")
            if joined:
                self.peers[r] = json.loads(joined)
        if missing:
            self.phase_started = None
            self.failure = {
                "phase": "rendezvous",
                "error": f"{len(missing)} of {self.world} rank(s) did not join within "
                f"{self.join_timeout:g} s",
                "ranks": [
                    {"rank": r, "state": "missing", "detail": self._where(r)} for r in missing
                ],
            }
            raise PhaseFailed(self.failure["error"])

    def _where(self, rank: int) -> str:
        if rank < len(self.rank_nodes):
            return f"expected on node {self.rank_nodes[rank]}"
        node = rank // max(self.local_world, 1)
        return f"expected on node rank {node} ({self.local_world} rank(s) per node)"

    def beat(self, store: Any) -> None:
        """One heartbeat: ``"<time> <phase> [<collective>]"`` (raises when the store is gone)."""
        store.set(
            f"{PREFIX}hb/{self.rank}", f"{time.time():.3f} {self.current_phase} {self.op}".rstrip()
        )

    def _start_heartbeat(self) -> None:
        store = self.hb_store

        def beat() -> None:
            while not self._stop.is_set():
                try:
                    self.beat(store)
                    self.witness(store)
                except Exception:  # the store is gone (rank 0 ended): nothing left to tell
                    return
                self._stop.wait(HEARTBEAT_S)

        threading.Thread(target=beat, name="dlsetup-heartbeat", daemon=True).start()

    def witness(self, store: Any) -> None:
        """Publish what this rank sees of its node-mates' processes (``seen/<rank>``), when it
        changes: a rank on another host cannot read their ``/proc``."""
        for r, row in self.peers.items():
            if r == self.rank or not self._can_look(row):
                continue
            state = fate.proc_state(row.get("pid"), row.get("start"))
            if state is None or state == self.seen.get(r, "R"):
                continue
            if state not in fate.GONE and state not in fate.STOPPED and r not in self.seen:
                continue  # running or sleeping, as it should: nothing to publish
            wrapper_gone = fate.proc_state(row.get("ppid"), None) in fate.GONE
            store.set(
                f"{PREFIX}seen/{r}",
                fate.witness_record(self.rank, state, time.time(), wrapper_gone),
            )
            self.seen[r] = state

    def _can_look(self, row: dict[str, Any]) -> bool:
        """Whether the rank of ``row`` runs where this rank can read its ``/proc`` entry."""
        mine = self.row.get("procs")
        return mine is not None and row.get("procs") == mine

    def _expected_row(self, rank: int) -> dict[str, Any]:
        """Where a rank that never joined should run: this node for a node-mate, else its node
        rank (torchrun and Slurm's block distribution number a node's ranks contiguously)."""
        first = self.rank - self.local_rank
        if first <= rank < first + self.local_world:
            return {"rank": rank, "node_rank": self.node_rank, "host": self.host}
        row: dict[str, Any] = {"rank": rank, "node_rank": rank // max(self.local_world, 1)}
        if rank < len(self.rank_nodes):
            row["host"] = self.rank_nodes[rank]
        return row

    def evidence(
        self, no_answer: set[int], *, in_init: bool = False, only: Collection[int] | None = None
    ) -> list[Any]:
        """What this rank can see of every rank: heartbeat, last word, process (fate.Evidence);
        ``in_init``: this rank failed inside ``init_process_group``, so whether each rank
        marked its arrival there is evidence too; ``only``: these ranks alone (a pass reads
        several store keys per rank: 26 ms for 512 ranks on loopback, more over a network)."""
        now = time.time()
        out = []
        said = fate.launcher_says(
            os.environ.get("TORCHELASTIC_ERROR_FILE"), self.rank, self.local_rank, self.local_world
        )
        for r in range(self.world) if only is None else sorted(only):
            row = self.peers.get(r) or self._expected_row(r)
            age, phase, op = fate.parse_beat(self._read(f"{PREFIX}hb/{r}"), now)
            last = json.loads(self._read(f"{PREFIX}fate/{r}") or "{}")
            proc, seen_by, wrapper_gone = None, None, False
            if r != self.rank and self._can_look(row):  # this rank can look itself
                proc, seen_by = fate.proc_state(row.get("pid"), row.get("start")), self.rank
                wrapper_gone = fate.proc_state(row.get("ppid"), None) in fate.GONE
            if proc is None:
                seen = json.loads(self._read(f"{PREFIX}seen/{r}") or "{}")
                proc, seen_by = seen.get("state"), seen.get("by")
                wrapper_gone = bool(seen.get("wrapper_gone"))
            if r == self.rank:
                age, phase, op = 0.0, self.current_phase, self.op
            if r < len(self.rank_nodes):  # Slurm names the node
                row = {**row, "host": self.rank_nodes[r]}
            arrived = True
            if in_init and r != self.rank:  # a store that is gone tells nothing either way
                mark = self._read(f"{PREFIX}{INIT_KEY}{r}")
                arrived = mark is not None or self.store_lost
            out.append(fate.Evidence(
                rank=r, node=fate.node_of(row), heartbeat_age_s=age,
                phase=last.get("phase", phase), op=last.get("op", op), proc=proc,
                seen_by=seen_by, wrapper_gone=wrapper_gone,
                ended_by=self.ending if r == self.rank else last.get("signal"),
                no_answer=r in no_answer, launcher=said.get(r),
                pid=row.get("pid") if isinstance(row.get("pid"), int) else None,
                reached_init=arrived, watched=bool(row.get("watched")),
            ))  # fmt: skip
        if self.store is None or self.store_lost:  # only what this rank saw itself
            out = [
                dataclasses.replace(e, reached_init=True)
                for e in out
                if self.rank in (e.rank, e.seen_by) or e.launcher
            ]
        return out

    # -- process groups and phases ---------------------------------------------------------

    def init_process_group(self, backend: str) -> None:
        import torch.distributed as dist

        timeout = datetime.timedelta(seconds=self.timeout)
        t0 = time.perf_counter()
        # its arrival, before the phase changes: a rank alive without it when init fails never
        # reached gloo's mesh (the others name it, not gloo's store key)
        self.store.set(f"{PREFIX}{INIT_KEY}{self.rank}", f"{time.time():.3f}")
        self.phase_started = None  # arrived: gloo's timeout bounds init_process_group
        self.current_phase = "init_process_group"
        with contextlib.suppress(Exception):  # say so now: a rank that dies in it beats no more
            self.beat(self.hb_store)
        dist.init_process_group(
            backend, store=self.store, rank=self.rank, world_size=self.world, timeout=timeout
        )
        # a gloo group of its own for the monitored barrier (NCCL has none; and after a failed
        # collective, the main group's connections may be unusable)
        self.monitor = dist.new_group(backend="gloo", timeout=timeout)
        self.row["init_s"] = time.perf_counter() - t0

    def phase(self, name: str, fn: Callable[[], None]) -> None:
        """Run one phase; a failure (exception) is diagnosed and stops the run."""
        self.current_phase = name  # the heartbeat carries it
        self.watched_stretch = "phase"
        self.phase_started = time.monotonic()
        try:
            fn()
        except PhaseFailed:
            raise
        except Exception as exc:
            self.phase_started = None
            self.failure = self.diagnose(name, exc)
            raise PhaseFailed(self.failure["error"]) from exc
        finally:
            self.phase_started = None

    def start_watchdog(self, finish: Callable[[], int]) -> None:
        """End this rank when it is stuck where no timeout fires.

        Two stretches are held: a phase's body, to ``2 x timeout + diagnose + 5`` seconds (a
        collective that times out raises, and :meth:`diagnose` names the culprit; this catches
        what never raises: a rank stuck outside a collective, a backend whose timeout aborts
        instead of raising), and the stretch from the end of the rendezvous's wait to
        ``init_process_group``, to ``timeout + diagnose`` (the rank waits for nobody there; the
        others time out inside ``init_process_group`` meanwhile and wait for rank 0's verdict
        for ``timeout + diagnose``). The rank reports itself hung (rank 0 writes the report
        first, its own stacks go to stderr) and exits 1, so the job ends instead of waiting.
        """
        limits = {
            "phase": 2 * self.timeout + self.args.diagnose_timeout + 5.0,
            "before_init": self.timeout + self.args.diagnose_timeout,
        }
        skip = ("grid", "tools")  # local work with bounds of its own

        def watch() -> None:
            while not self._stop.wait(0.5):
                started, stretch = self.phase_started, self.watched_stretch
                if started is None or self.current_phase in skip:
                    continue
                stuck = time.monotonic() - started
                if stuck <= limits[stretch] or self.phase_started is None:
                    continue
                self.failure = self._stuck(stretch, stuck, limits[stretch])
                _say(self.rank, f"{_failure_line(self.failure)}: {self.failure['error']}")
                with contextlib.suppress(Exception):  # where it is stuck, for its own log
                    import faulthandler

                    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                code = EXIT_FAILED
                with contextlib.suppress(Exception):
                    code = finish() or EXIT_FAILED
                sys.stderr.flush()
                os._exit(code)

        threading.Thread(target=watch, name="dlsetup-watchdog", daemon=True).start()

    def _stuck(self, stretch: str, stuck: float, limit: float) -> dict[str, Any]:
        """The failure the watchdog reports: this rank hung (and, before ``init_process_group``,
        what the others' evidence names besides)."""
        if stretch == "phase":
            return {
                "phase": self.current_phase,
                "error": f"rank {self.rank} stuck in phase {self.current_phase} for "
                f"{stuck:.0f} s (watchdog, limit {limit:g} s)",
                "ranks": [{
                    "rank": self.rank, "state": "hung",
                    "detail": f"its own phase {self.current_phase} did not end in "
                    f"{limit:g} s (the watchdog ended it)",
                }],
            }  # fmt: skip
        row = dict(self.row)
        if self.rank < len(self.rank_nodes):  # Slurm names the node
            row["host"] = self.rank_nodes[self.rank]
        me = fate.Evidence(
            rank=self.rank, node=fate.node_of(row), heartbeat_age_s=0.0,
            phase=self.current_phase, op=self.op, pid=os.getpid(),
        )  # fmt: skip
        named = [{
            "rank": self.rank, "state": "hung", "detail": fate.stuck_before_init(me, stuck, limit),
            "heartbeat_age_s": 0.0, "node": me.node,
        }]  # fmt: skip
        with contextlib.suppress(Exception):  # the others' fates, as far as the store tells
            named += [x for x in self.named(set(), in_init=True) if x["rank"] != self.rank]
        return {
            "phase": self.current_phase,
            "error": f"rank {self.rank} stuck for {stuck:.0f} s between the rendezvous and "
            f"init_process_group (watchdog, limit {limit:g} s)",
            "ranks": named,
        }

    def diagnose(self, phase: str, exc: BaseException) -> dict[str, Any]:
        """Name the ranks that broke a collective, each with one verdict (``distributed_fate``).

        When a rank's process is already seen stopped or gone, or its heartbeat is silent, that
        is the answer; otherwise a monitored barrier (``diagnose_timeout``) names the ranks that
        are alive but do not answer (hung).
        """
        import torch.distributed as dist

        failed_at = time.time()
        failed: set[int] = set()
        barrier_error = ""
        named = self.named(set())
        if not any(x["state"] in fate.CAUSES for x in named):
            # no process seen stopped or gone, no heartbeat silent: ask who still answers
            try:
                dist.monitored_barrier(
                    group=self.monitor,
                    timeout=datetime.timedelta(seconds=self.args.diagnose_timeout),
                    wait_all_ranks=True,
                )
            except Exception as barrier_exc:
                text = str(barrier_exc).strip()
                barrier_error = text.splitlines()[0] if text else ""
                m = re.search(r"Ranks? ([\d, ]+) failed to pass", text)
                if m:
                    failed = {int(r) for r in m.group(1).replace(" ", "").split(",") if r}
            named = self._named_after(failed_at, failed)
        return self._failure(phase, exc, barrier_error, named)

    def diagnose_init(self, exc: BaseException) -> dict[str, Any]:
        """Name the ranks that broke ``init_process_group``, as :meth:`diagnose` does a
        collective's.

        gloo connects its full mesh through the store: a rank that dies, is killed or stops
        meanwhile fails the others inside ``init_process_group`` with gloo's own error (a store
        key that never comes, a connection closed). The same evidence names it: its process seen
        stopped or gone, its last word, torchrun's error file, its heartbeat (beating since the
        rendezvous). No monitored barrier: its group is made by ``init_process_group``, so an
        alive rank that does not answer is not named (the failure keeps gloo's error).
        """
        failed_at = time.time()
        named = self.named(set(), in_init=True)
        if not any(x["state"] in fate.CAUSES for x in named):
            named = self._named_after(failed_at, set(), in_init=True)
        failure = self._failure("init_process_group", exc, "", named)
        waited = fate.gloo_waited_for(str(exc))
        if waited and not any(x["state"] in fate.CAUSES for x in named):
            failure["error"] += (
                f" (by torch's key layout, gloo waited for rank(s) {', '.join(map(str, waited))}: "
                "a hint only, as no rank was seen gone, stopped, silent or short of "
                "init_process_group)"
            )
        return failure

    def named(self, no_answer: set[int], *, in_init: bool = False) -> list[dict[str, Any]]:
        """:func:`fate.name_ranks` of :meth:`evidence`, once a silent rank's own ``dlsetup``
        process has had time to publish its worker stopped (:data:`fate.WITNESS_S` after its
        last heartbeat at most): silence is the weakest evidence of death."""
        evidence = self.evidence(no_answer, in_init=in_init)
        deadline = time.monotonic() + fate.WITNESS_S
        every = True  # this pass read every rank
        while time.monotonic() < deadline and not self.store_lost:
            waiting = {e.rank for e in evidence if fate.awaits_witness(e)}
            if not waiting and every:
                break
            if not waiting:  # the wait is over: every rank once more, as it is now
                evidence, every = self.evidence(no_answer, in_init=in_init), True
                continue
            time.sleep(0.25)
            # only a waiting rank can end the wait: read it alone (a world of 512 ranks is
            # thousands of store reads a pass), every rank again once the wait is over
            again = {e.rank: e for e in self.evidence(no_answer, in_init=in_init, only=waiting)}
            evidence, every = [again.get(e.rank, e) for e in evidence], False
        if not every:
            evidence = self.evidence(no_answer, in_init=in_init)
        return fate.name_ranks(evidence)

    def _named_after(
        self, failed_at: float, failed: set[int], *, in_init: bool = False
    ) -> list[dict[str, Any]]:
        """The verdicts once a rank that died just now has had time to be seen: its heartbeat
        to go stale, or its node-mates to see its process gone."""
        time.sleep(max(0.0, failed_at + DEAD_AFTER_S + HEARTBEAT_S - time.time()))
        return self.named(failed, in_init=in_init)

    def _failure(
        self, phase: str, exc: BaseException, barrier: str, named: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The report's ``failure``: the phase, the backend's error, the ranks named."""
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        failure: dict[str, Any] = {
            "phase": phase, "error": error, "barrier": barrier, "ranks": named,
        }  # fmt: skip
        if self.store_lost:
            failure["error"] += (
                "; the rendezvous store is gone (the process that held it ended: rank 0, or "
                "torchrun's agent on node 0): only the ranks on this host could be looked at"
            )
        return failure

    def _read(self, key: str) -> str | None:
        if self.store is None or self.store_lost:
            return None
        try:
            if not self.store.check([key]):
                return None
            return bytes(self.store.get(key)).decode()
        except Exception:  # the store's host ended (rank 0, or torchrun's agent of node 0)
            self.store_lost = True
            return None

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append({"name": name, "passed": passed, "detail": detail})


def _gather_rows(run: Run, skip: Collection[int], wait_s: float) -> list[dict[str, Any]]:
    """Every rank's row, through the store (works after a failed collective too); the ranks in
    ``skip`` (dead, hung) are not waited for, the others for ``wait_s`` at most."""
    with contextlib.suppress(Exception):
        run.store.set(f"{PREFIX}row/{run.rank}", json.dumps(run.row))
    rows = []
    deadline = time.monotonic() + wait_s
    for r in range(run.world):
        key = f"{PREFIX}row/{r}"
        while r not in skip and time.monotonic() < deadline and run._read(key) is None:
            if run.store_lost:
                break
            time.sleep(0.05)
        text = run._read(key) if r != run.rank else json.dumps(run.row)
        if text:
            rows.append(json.loads(text))
            continue
        row = dict(run.peers.get(r, {"rank": r}))
        row["status"] = "no row"
        rows.append(row)
    return rows


def _tell_verdict(run: Run, message: str, states: Collection[int]) -> None:
    """Rank 0: publish the verdict, and (the store may live in this process) wait a little for
    the others to read it."""
    with contextlib.suppress(Exception):  # the store's host (a torchrun agent) is gone
        run.store.set(f"{PREFIX}verdict", message)
        deadline = time.monotonic() + min(run.timeout, 5.0)
        waiting = [r for r in range(1, run.world) if r not in states]
        while waiting and time.monotonic() < deadline:
            waiting = [r for r in waiting if not run.store.check([f"{PREFIX}ack/{r}"])]
            time.sleep(0.05)


def _finish_other(run: Run, passed: bool) -> int:
    """A rank other than 0: hand in the row, wait for rank 0's verdict."""
    if run.store is None:
        return EXIT_OK if passed else EXIT_FAILED
    try:
        run.store.set(f"{PREFIX}row/{run.rank}", json.dumps(run.row))
    except Exception:
        run.store_lost = True
    verdict = _wait_verdict(run)
    with contextlib.suppress(Exception):  # rank 0 may host the store: say we read it
        run.store.set(f"{PREFIX}ack/{run.rank}", "1")
    if verdict is not None:
        passed = passed and verdict == "pass"
        run.results["verdict"] = verdict
    else:
        passed = False
    if not passed and run.rank < run.local_world:
        # torchrun ends a node's other ranks when one fails: on rank 0's node, linger, so that
        # rank 0 prints its report before then
        time.sleep(LINGER_S)
    return EXIT_OK if passed else EXIT_FAILED


def _finish(run: Run, *, quick: bool = False) -> int:
    """Rank 0: gather the rows, write the report, publish the verdict; others: wait for it.

    ``quick``: its launcher is ending this rank (its last word): wait for nobody.
    """
    passed = run.failure is None and all(c["passed"] for c in run.checks)
    if run.rank != 0:
        return _finish_other(run, passed)
    with run.finish_lock:
        if run.reported:
            return EXIT_OK if passed else EXIT_FAILED
        return _report(run, passed, quick)


def _report(run: Run, passed: bool, quick: bool) -> int:
    """Rank 0's report: one row per rank, each rank's status from the failure's named ranks."""
    states = {r["rank"]: r["state"] for r in (run.failure or {}).get("ranks", [])}
    wait_s = 0.5 if quick else (run.args.diagnose_timeout if run.failure else run.timeout)
    if run.store is not None:
        rows = _gather_rows(run, states, wait_s)
    else:  # ended before it reached the store: the others' rows are not known
        rows = [run.row] + [{"rank": r, "status": "no row"} for r in range(1, run.world)]
    matmul = run.results.get("matmul") or {}
    for row in rows:
        row.setdefault("status", "ok")
        if row["rank"] in states:
            row["status"] = states[row["rank"]]
        row["straggler"] = row["rank"] in matmul.get("stragglers", [])
    report = {
        "launcher": os.environ.get("DLSETUP_LAUNCHER", "env"),
        "backend": run.backend,
        "device_kind": "cuda" if run.device.startswith("cuda") else "cpu",
        "world_size": run.world,
        "local_world_size": run.local_world,
        "master": f"{run.addr}:{run.port}",
        "timeout_s": run.timeout,
        "rendezvous_s": run.results.get("rendezvous_s"),
        "init_s_max": max((r.get("init_s") or 0.0 for r in rows), default=None),
        "ranks": sorted(rows, key=lambda r: r["rank"]),
        "checks": run.checks,
        "failure": run.failure,
        "allreduce": run.results.get("allreduce"),
        "versions": run.results.get("versions"),
        "bandwidth": run.results.get("bandwidth"),
        "matmul": run.results.get("matmul"),
        "ddp": run.results.get("ddp"),
        "tools": run.results.get("tools", []),
        "wall_s": time.perf_counter() - run.t_start,
        "passed": passed,
        "exit_code": EXIT_OK if passed else EXIT_FAILED,
    }
    if run.args.report:
        tmp = run.args.report + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(report, fh, allow_nan=False, default=str)
        os.replace(tmp, run.args.report)
    run.reported = True
    if run.store is not None and not quick:
        message = "pass" if passed else "fail"
        if run.failure:
            message = _failure_line(run.failure)
        _tell_verdict(run, message, states)
    return EXIT_OK if passed else EXIT_FAILED


def _failure_line(failure: dict[str, Any]) -> str:
    named = "; ".join(fate.line(x) for x in failure["ranks"])
    return f"FAIL in {failure['phase']}: {named or failure['error']}"


def _wait_verdict(run: Run) -> str | None:
    deadline = time.monotonic() + run.timeout + run.args.diagnose_timeout
    while time.monotonic() < deadline and not run.store_lost:
        text = run._read(f"{PREFIX}verdict")
        if text is not None:
            return text
        time.sleep(0.1)
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="dlsetup distributed smoke worker (one rank)")
    parser.add_argument("--report", default="", help="rank 0 writes the report JSON here")
    parser.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per collective")
    parser.add_argument("--diagnose-timeout", type=float, default=None)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None, help="bytes"
    )
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--matmul-n", type=int, default=None)
    parser.add_argument("--matmul-reps", type=int, default=5)
    parser.add_argument("--straggler-factor", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--no-grid", action="store_true")
    parser.add_argument("--tool-timeout", type=float, default=300.0)
    parser.add_argument(
        "--witness", default="", help="publish this rank's worker in this state, and exit "
        "(its dlsetup process, which sees it stopped where no other rank can look)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.diagnose_timeout is None:
        args.diagnose_timeout = min(args.timeout, 10.0)
    return args


class Traced:
    """``torch.distributed`` as the phases see it: a collective's name is in the rank's heartbeat
    while the rank is inside it (what a stopped or hung rank was doing)."""

    def __init__(self, dist: Any, run: Run) -> None:
        self._dist = dist
        self._run = run

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._dist, name)
        if name not in COLLECTIVES or not callable(value):
            return value
        run = self._run

        def traced(*args: Any, **kwargs: Any) -> Any:
            run.op = name
            try:
                return value(*args, **kwargs)
            finally:
                run.op = ""

        return traced


def listen_for_the_end(run: Run) -> None:
    """On SIGTERM or SIGINT (its launcher ending it), leave a last word, then exit.

    The rank says in the store that its launcher ended it and what it saw of its node-mates'
    processes; rank 0 also writes the report it has (the others' fates as far as known). A
    thread does it: the main thread may be inside a collective, where no Python handler runs,
    so the signal only wakes the thread (``signal.set_wakeup_fd``).
    """
    import signal

    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    names = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}
    for signum in names:
        signal.signal(signum, lambda *_: None)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    run.wakeup = (wake_r, wake_w)  # keep both ends open for the life of the process

    def wait() -> None:
        data = wake_r.recv(1)
        signum = data[0] if data else signal.SIGTERM
        run.ending = names.get(signal.Signals(signum), f"signal {signum}")
        code = 128 + signum
        with contextlib.suppress(Exception):
            code = last_word(run, code)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    threading.Thread(target=wait, name="dlsetup-last-word", daemon=True).start()


def last_word(run: Run, code: int) -> int:
    """What a rank its launcher is ending leaves behind; rank 0: the report. Returns the exit
    status (rank 0: the report's)."""
    store = run.hb_store if run.hb_store is not None else run.store
    if store is not None:
        with contextlib.suppress(Exception):
            run.witness(store)
        note = {"signal": run.ending, "phase": run.current_phase, "op": run.op, "t": time.time()}
        with contextlib.suppress(Exception):
            store.set(f"{PREFIX}fate/{run.rank}", json.dumps(note))
    if run.rank != 0 or not run.finish_lock.acquire(timeout=3.0):
        return code
    try:
        if run.reported:
            return EXIT_FAILED if run.failure else code
        if run.failure is None:
            run.failure = {
                "phase": run.current_phase,
                "error": f"rank 0 was ended ({run.ending}) in phase {run.current_phase}: by "
                "its launcher, after another rank of its node failed, or by another program",
                "ranks": fate.name_ranks(run.evidence(set())),
            }
        _say(0, _failure_line(run.failure))
    finally:
        run.finish_lock.release()
    return _finish(run, quick=True)


def _device(run: Run, args: argparse.Namespace, torch: Any, dist: Any) -> None:
    """The rank's backend and device, and the sizes that fit it."""
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    run.backend = args.backend if args.backend != "auto" else ("nccl" if cuda else "gloo")
    if run.backend == "nccl":
        run.device = f"cuda:{run.local_rank % max(torch.cuda.device_count(), 1)}"
        torch.cuda.set_device(run.device)
    run.row["device"] = run.device
    if args.sizes is None:
        args.sizes = (
            [2**k for k in (10, 16, 20, 22)]
            if run.device == "cpu"
            else [2**k for k in (20, 24, 26, 28)]
        )
    if args.matmul_n is None:
        args.matmul_n = 256 if run.device == "cpu" else 4096
    if run.device == "cpu":  # ranks share the node's cores: one thread each, as torchrun sets
        torch.set_num_threads(1)


def _run_phases(run: Run, torch: Any, dist: Any) -> None:
    try:
        run.start_watchdog(lambda: _finish(run))
        run.rendezvous()
        try:
            run.init_process_group(run.backend)
        except Exception as exc:
            run.failure = run.diagnose_init(exc)
            raise PhaseFailed(run.failure["error"]) from exc
        traced = Traced(dist, run)
        for name, fn in PHASES:
            if name == "grid" and run.args.no_grid:
                continue
            run.phase(name, lambda fn=fn: fn(run, torch, traced, run.device))  # type: ignore[misc]
    except SetupFailed as exc:
        _say(run.rank, f"FAIL: {exc}")
        sys.stdout.flush()
        os._exit(EXIT_SETUP)  # a connect thread may still be blocked in torch
    except PhaseFailed:
        pass
    except Exception as exc:  # a bug in this worker: say where
        _say(run.rank, f"FAIL: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")
        run.failure = {"phase": run.current_phase, "error": f"{type(exc).__name__}: {exc}",
                       "ranks": []}  # fmt: skip


def _speak(run: Run, code: int) -> None:
    """The rank's one line on stderr: rank 0's diagnosis, its own, or the failed checks."""
    verdict = run.results.get("verdict")
    if isinstance(verdict, str) and verdict.startswith("FAIL"):
        _say(run.rank, f"{verdict} (rank 0's diagnosis)")
    elif run.failure is not None:
        _say(run.rank, _failure_line(run.failure))
    elif run.rank != 0 and verdict is None and run.store is not None:
        _say(run.rank, "FAIL: no verdict from rank 0: the rendezvous store is gone (rank 0, or "
                       "torchrun's agent on node 0, ended); rank 0's node says why")  # fmt: skip
    elif code:
        failed = [c for c in run.checks if not c["passed"]]
        _say(run.rank, "FAIL: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed))


def publish_witness(run: Run, state: str) -> int:
    """For the rank's own ``dlsetup`` process, which sees its worker stopped: publish the state
    in the store as a node-mate would (``seen/<rank>``), for a rank alone on its host."""
    try:
        store = run._connect_within(is_master=False)
        record = fate.witness_record(fate.BY_DLSETUP, state, time.time(), False)
        store.set(f"{PREFIX}seen/{run.rank}", record)
    except Exception as exc:  # the store's host is gone or stopped: nothing to tell
        _say(run.rank, f"could not publish its worker's state {state}: {type(exc).__name__}")
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run = Run(args)
    except (SetupFailed, ValueError) as exc:
        _say(os.environ.get("RANK", "?"), f"FAIL: {exc}")
        return EXIT_SETUP
    if args.witness:
        sys.stderr.flush()
        os._exit(publish_witness(run, args.witness))  # a connect thread may still be blocked
    listen_for_the_end(run)
    try:
        import torch
        import torch.distributed as dist
    except ImportError as exc:
        _say(run.rank, f"FAIL: torch is not installed in {sys.executable}: {exc}")
        return EXIT_MISSING
    _device(run, args, torch, dist)
    _run_phases(run, torch, dist)
    code = _finish(run)
    run._stop.set()
    _speak(run, code)
    if run.failure is None:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    # a failed collective can leave gloo's threads blocked: do not wait for them at exit
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
