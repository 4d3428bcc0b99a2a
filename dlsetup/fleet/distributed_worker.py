"""The distributed smoke worker: one per rank, run inside the target interpreter.

Started by ``dlsetup smoke --distributed`` on every rank (which torchrun or srun started), with the
rendezvous in the environment: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` (dlsetup fills them from Slurm's variables under srun). Imports
only the standard library, NumPy and torch (and, for the seed's grid, the smoke worker's modules
beside it, loaded by path).

What it checks, in order; each phase is a :func:`Run.phase`, and a failed or hung collective is
diagnosed (a monitored barrier on a separate gloo group, the ranks' heartbeats in the store) so the
dead or hung rank is named instead of waiting out a 30-minute default:

1. rendezvous and ``init_process_group`` (time; ranks that never join are named);
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
    from dlsetup.fleet.distributed_checks import PHASES, PREFIX, PhaseFailed
else:  # run as a script: load the sibling module by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from distributed_checks import PHASES, PREFIX, PhaseFailed

HEARTBEAT_S = 0.5
#: A rank whose heartbeat is older than this is reported dead.
DEAD_AFTER_S = 3.0
#: After a failure, ranks other than 0 wait this long before exiting (see :func:`_finish`).
LINGER_S = 3.0
EXIT_OK, EXIT_FAILED, EXIT_MISSING, EXIT_SETUP = 0, 1, 3, 4


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
        self.host = socket.gethostname()
        self.rank_nodes: list[str] = json.loads(os.environ.get("DLSETUP_RANK_NODES", "[]"))
        self.t_start = time.perf_counter()
        self.store: Any = None
        self.hb_store: Any = None
        self.monitor: Any = None
        self.current_phase = "start"
        self.phase_started: float | None = None
        self.results: dict[str, Any] = {}
        self.checks: list[dict[str, Any]] = []
        self.failure: dict[str, Any] | None = None
        self.row: dict[str, Any] = {
            "rank": self.rank,
            "local_rank": self.local_rank,
            "node_rank": self.node_rank,
            "host": self.host,
            "pid": os.getpid(),
        }
        self._stop = threading.Event()

    # -- the store -------------------------------------------------------------------------

    def _connect(self, is_master: bool) -> Any:
        import torch

        dist: Any = torch.distributed

        timeout = datetime.timedelta(seconds=self.timeout)
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
        thread.join(self.timeout + 1.0)
        if "error" in box:
            raise box["error"]
        if "store" not in box:
            raise TimeoutError(f"no answer from a store within {self.timeout:g} s")
        return box["store"]

    def rendezvous(self) -> None:
        """Connect to (rank 0 without torchrun: host) the store; wait until every rank joined."""
        t0 = time.perf_counter()
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
                f"{self.timeout:g} s ({type(exc).__name__}: {text}); is rank 0 running there, "
                "and is the port free of other programs?"
            ) from exc
        self.hb_store = self._connect(is_master=False) if self.rank != 0 else self.store
        self._start_heartbeat()
        self.store.set(f"{PREFIX}join/{self.rank}", json.dumps(self.row))
        deadline = time.monotonic() + self.timeout
        missing = list(range(self.world))
        while missing and time.monotonic() < deadline:
            missing = [r for r in missing if not self.store.check([f"{PREFIX}join/{r}"])]
            if missing:
                time.sleep(0.05)
        self.results["rendezvous_s"] = time.perf_counter() - t0
        if missing:
            self.failure = {
                "phase": "rendezvous",
                "error": f"{len(missing)} of {self.world} rank(s) did not join within "
                f"{self.timeout:g} s",
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

    def _start_heartbeat(self) -> None:
        store = self.hb_store

        def beat() -> None:
            while not self._stop.is_set():
                try:
                    store.set(f"{PREFIX}hb/{self.rank}", f"{time.time():.3f} {self.current_phase}")
                except Exception:  # the store is gone (rank 0 ended): nothing left to tell
                    return
                self._stop.wait(HEARTBEAT_S)

        threading.Thread(target=beat, name="dlsetup-heartbeat", daemon=True).start()

    # -- process groups and phases ---------------------------------------------------------

    def init_process_group(self, backend: str) -> None:
        import torch.distributed as dist

        timeout = datetime.timedelta(seconds=self.timeout)
        t0 = time.perf_counter()
        dist.init_process_group(
            backend, store=self.store, rank=self.rank, world_size=self.world, timeout=timeout
        )
        # a gloo group of its own for the monitored barrier (NCCL has none; and after a failed
        # collective, the main group's connections may be unusable)
        self.monitor = dist.new_group(backend="gloo", timeout=timeout)
        self.row["init_s"] = time.perf_counter() - t0

    def phase(self, name: str, fn: Callable[[], None]) -> None:
        """Run one phase; a failure (exception) is diagnosed and stops the run."""
        self.current_phase = name
        self.store.set(f"{PREFIX}phase/{self.rank}", name)
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
        """End this rank when a phase's body runs past ``2 x timeout + diagnose + 5`` seconds.

        A collective that times out raises, and :meth:`diagnose` names the culprit; this catches
        what never raises (a rank stuck outside a collective, a backend whose timeout aborts
        instead of raising): the rank reports itself hung in its phase (rank 0 writes the report
        first) and exits 1, so the job ends instead of waiting.
        """
        limit = 2 * self.timeout + self.args.diagnose_timeout + 5.0
        skip = ("grid", "tools")  # local work with bounds of its own

        def watch() -> None:
            while not self._stop.wait(0.5):
                started = self.phase_started
                if started is None or self.current_phase in skip:
                    continue
                stuck = time.monotonic() - started
                if stuck <= limit:
                    continue
                self.failure = {
                    "phase": self.current_phase,
                    "error": f"rank {self.rank} stuck in phase {self.current_phase} for "
                    f"{stuck:.0f} s (watchdog, limit {limit:g} s)",
                    "ranks": [{
                        "rank": self.rank, "state": "hung",
                        "detail": f"its own phase {self.current_phase} did not end in "
                        f"{limit:g} s (the watchdog ended it)",
                    }],
                }  # fmt: skip
                _say(self.rank, f"{_failure_line(self.failure)}: {self.failure['error']}")
                code = EXIT_FAILED
                with contextlib.suppress(Exception):
                    code = finish() or EXIT_FAILED
                sys.stderr.flush()
                os._exit(code)

        threading.Thread(target=watch, name="dlsetup-watchdog", daemon=True).start()

    def diagnose(self, phase: str, exc: BaseException) -> dict[str, Any]:
        """Name the ranks that broke a collective: dead (no heartbeat) or hung (no answer)."""
        import torch.distributed as dist

        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        failed_at = time.time()
        failed: set[int] = set()
        barrier_error = ""
        try:
            dist.monitored_barrier(
                group=self.monitor,
                timeout=datetime.timedelta(seconds=self.args.diagnose_timeout),
                wait_all_ranks=True,
            )
        except Exception as barrier_exc:
            barrier_error = str(barrier_exc).strip().splitlines()[0] if str(barrier_exc) else ""
            m = re.search(r"Ranks? ([\d, ]+) failed to pass", str(barrier_exc))
            if m:
                failed = {int(r) for r in m.group(1).replace(" ", "").split(",") if r}
        ranks: list[dict[str, Any]] = []
        # a rank that died just now still has a fresh heartbeat: give it time to go stale
        time.sleep(max(0.0, failed_at + DEAD_AFTER_S + HEARTBEAT_S - time.time()))
        now = time.time()
        for r in range(self.world):
            beat = self._read(f"{PREFIX}hb/{r}")
            age = None
            last_phase = "?"
            if beat:
                stamp, _, last_phase = beat.partition(" ")
                age = now - float(stamp)
            if age is None or age > DEAD_AFTER_S:
                detail = (
                    "no heartbeat at all"
                    if age is None
                    else f"no heartbeat for {age:.1f} s (last in phase {last_phase})"
                )
                ranks.append({
                    "rank": r, "state": "dead", "detail": f"{detail}: exited or killed",
                    "heartbeat_age_s": age,
                })  # fmt: skip
            elif r in failed:
                ranks.append({
                    "rank": r,
                    "state": "hung",
                    "detail": f"alive (heartbeat {age:.1f} s ago, in phase {last_phase}) but no "
                    f"answer to the monitored barrier in {self.args.diagnose_timeout:g} s",
                    "heartbeat_age_s": age,
                })  # fmt: skip
        ranks.sort(key=lambda x: -float(x.get("heartbeat_age_s") or 0.0))  # longest silent first
        return {"phase": phase, "error": error, "barrier": barrier_error, "ranks": ranks}

    def _read(self, key: str) -> str | None:
        try:
            if not self.store.check([key]):
                return None
            return bytes(self.store.get(key)).decode()
        except Exception:
            return None

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append({"name": name, "passed": passed, "detail": detail})


def _gather_rows(run: Run, skip: Collection[int]) -> list[dict[str, Any]]:
    """Every rank's row, through the store (works after a failed collective too); the ranks in
    ``skip`` (dead, hung) are not waited for."""
    run.store.set(f"{PREFIX}row/{run.rank}", json.dumps(run.row))
    rows = []
    deadline = time.monotonic() + (run.args.diagnose_timeout if run.failure else run.timeout)
    for r in range(run.world):
        key = f"{PREFIX}row/{r}"
        while r not in skip and not run.store.check([key]) and time.monotonic() < deadline:
            time.sleep(0.05)
        text = run._read(key)
        if text:
            rows.append(json.loads(text))
            continue
        joined = run._read(f"{PREFIX}join/{r}")
        row = json.loads(joined) if joined else {"rank": r}
        row["status"] = "no row"
        rows.append(row)
    return rows


def _finish(run: Run, backend: str, device: str) -> int:
    """Rank 0: gather the rows, write the report, publish the verdict; others: wait for it."""
    states = {r["rank"]: r["state"] for r in (run.failure or {}).get("ranks", [])}
    passed = run.failure is None and all(c["passed"] for c in run.checks)
    if run.rank != 0:
        if run.store is not None:
            run.store.set(f"{PREFIX}row/{run.rank}", json.dumps(run.row))
            verdict = _wait_verdict(run)
            with contextlib.suppress(Exception):  # rank 0 may host the store: say we read it
                run.store.set(f"{PREFIX}ack/{run.rank}", "1")
            if verdict is not None:
                passed = passed and verdict == "pass"
                run.results["verdict"] = verdict
            if not passed:
                # torchrun ends a node's other ranks when one fails: linger, so that rank 0 on
                # this node prints its report before then
                time.sleep(LINGER_S)
        return EXIT_OK if passed else EXIT_FAILED
    rows = _gather_rows(run, states) if run.store is not None else [run.row]
    for row in rows:
        row.setdefault("status", "ok")
        if row["rank"] in states:
            row["status"] = states[row["rank"]]
    matmul = run.results.get("matmul", {})
    for row in rows:
        row["straggler"] = row["rank"] in matmul.get("stragglers", [])
    report = {
        "launcher": os.environ.get("DLSETUP_LAUNCHER", "env"),
        "backend": backend,
        "device_kind": "cuda" if device.startswith("cuda") else "cpu",
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
    if run.store is not None:
        message = "pass" if passed else "fail"
        if run.failure:
            message = _failure_line(run.failure)
        with contextlib.suppress(Exception):  # the store's host (a torchrun agent) is gone
            run.store.set(f"{PREFIX}verdict", message)
            # without torchrun, the store lives in this process: let the others read the verdict
            deadline = time.monotonic() + min(run.timeout, 5.0)
            waiting = [r for r in range(1, run.world) if r not in states]
            while waiting and time.monotonic() < deadline:
                waiting = [r for r in waiting if not run.store.check([f"{PREFIX}ack/{r}"])]
                time.sleep(0.05)
    return report["exit_code"]  # type: ignore[no-any-return]


def _failure_line(failure: dict[str, Any]) -> str:
    named = "; ".join(f"rank {x['rank']} {x['state']} ({x['detail']})" for x in failure["ranks"])
    return f"FAIL in {failure['phase']}: {named or failure['error']}"


def _wait_verdict(run: Run) -> str | None:
    deadline = time.monotonic() + run.timeout + run.args.diagnose_timeout
    while time.monotonic() < deadline:
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
    args = parser.parse_args(argv)
    if args.diagnose_timeout is None:
        args.diagnose_timeout = min(args.timeout, 10.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run = Run(args)
    except (SetupFailed, ValueError) as exc:
        _say(os.environ.get("RANK", "?"), f"FAIL: {exc}")
        return EXIT_SETUP
    try:
        import torch
        import torch.distributed as dist
    except ImportError as exc:
        _say(run.rank, f"FAIL: torch is not installed in {sys.executable}: {exc}")
        return EXIT_MISSING
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    backend = args.backend if args.backend != "auto" else ("nccl" if cuda else "gloo")
    device = "cpu"
    if backend == "nccl":
        device = f"cuda:{run.local_rank % max(torch.cuda.device_count(), 1)}"
        torch.cuda.set_device(device)
    run.row["device"] = device
    if args.sizes is None:
        args.sizes = (
            [2**k for k in (10, 16, 20, 22)]
            if device == "cpu"
            else [2**k for k in (20, 24, 26, 28)]
        )
    if args.matmul_n is None:
        args.matmul_n = 256 if device == "cpu" else 4096
    if device == "cpu":  # ranks share the node's cores: one thread each, as torchrun sets
        torch.set_num_threads(1)
    try:
        run.rendezvous()
        try:
            run.init_process_group(backend)
        except Exception as exc:
            run.failure = run_init_failure(run, exc)
            raise PhaseFailed(run.failure["error"]) from exc
        run.start_watchdog(lambda: _finish(run, backend, device))
        for name, fn in PHASES:
            if name == "grid" and args.no_grid:
                continue
            run.phase(name, lambda fn=fn: fn(run, torch, dist, device))  # type: ignore[misc]
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
    code = _finish(run, backend, device)
    run._stop.set()
    verdict = run.results.get("verdict")
    if isinstance(verdict, str) and verdict.startswith("FAIL"):
        _say(run.rank, f"{verdict} (rank 0's diagnosis)")
    elif run.failure is not None:
        _say(run.rank, _failure_line(run.failure))
    elif code:
        failed = [c for c in run.checks if not c["passed"]]
        _say(run.rank, "FAIL: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed))
    if run.failure is None:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    # a failed collective can leave gloo's threads blocked: do not wait for them at exit
    os._exit(code)


def run_init_failure(run: Run, exc: BaseException) -> dict[str, Any]:
    return {
        "phase": "init_process_group",
        "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}",
        "ranks": [],
    }


if __name__ == "__main__":
    sys.exit(main())
