"""Benchmark one pass of the distributed smoke's fate evidence over a large world's store.

When a collective fails, the diagnosing rank reads every rank's evidence from the store (its
heartbeat, its last word, what a node-mate saw of its process, its arrival at
``init_process_group``) and, while a silent rank's own ``dlsetup`` process may still publish its
worker stopped, reads it again every 0.25 s for up to 12 s (``Run.named``). This measures, in one
process against a real ``torch.distributed.TCPStore`` on loopback filled as a WORLD-rank job of 8
ranks per node leaves it (every rank beating and arrived; rank 0 can read its 7 node-mates'
``/proc``):

* one full pass (``Run.evidence``), median and worst of ``--repeat``;
* the whole wait (``Run.named``) when one rank of another node is silent and watched (its own
  ``dlsetup`` process may still publish it) until it is named dead, 12 s after its last beat, side
  by side with the wait as it was (every rank read again each 0.25 s tick): wall time, CPU time
  of the diagnosing thread, store round trips, and the ratios. The other ranks beat meanwhile,
  from a thread of their own.

Usage: ``python benchmarks/bench_fate_evidence.py [--world 512] [--repeat 20]``. Needs torch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class Counting:
    """A store that counts the round trips made through it."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls = 0

    def check(self, keys: list[str]) -> bool:
        self.calls += 1
        return bool(self.store.check(keys))

    def get(self, key: str) -> bytes:
        self.calls += 1
        return bytes(self.store.get(key))

    def set(self, key: str, value: str) -> None:
        self.calls += 1
        self.store.set(key, value)


def _fill(world: int, silent: int | None) -> tuple[Any, Any]:
    """A Run of rank 0 with a store holding every rank's join row, heartbeat and arrival."""
    import torch.distributed as dist

    from dlsetup.fleet import distributed_fate as fate
    from dlsetup.fleet import distributed_worker as worker

    store = dist.TCPStore("127.0.0.1", 0, None, True, datetime.timedelta(seconds=30))
    os.environ.update({
        "RANK": "0", "WORLD_SIZE": str(world), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "8",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port),
    })  # fmt: skip
    run = worker.Run(worker.parse_args(["--timeout", "30"]))
    run.store = Counting(store)
    now = time.time()
    mine = run.row["procs"]
    for r in range(world):
        row = {
            "rank": r, "local_rank": r % 8, "node_rank": r // 8, "host": f"gpu{r // 8:03d}",
            "pid": os.getpid(), "ppid": os.getppid(), "start": fate.own_start(),
            "procs": mine if r < 8 else f"other-{r // 8}", "watched": True,
        }  # fmt: skip
        run.peers[r] = row
        stamp = now - 6.0 if r == silent else now
        store.set(f"dlsetup/hb/{r}", f"{stamp:.3f} all_reduce all_reduce")
        store.set(f"dlsetup/init/{r}", f"{now:.3f}")
        store.set(f"dlsetup/join/{r}", json.dumps(row))
    return run, store


def _beating(port: int, world: int, silent: int, stop: Any) -> None:
    """Every rank but ``silent`` beats twice a second, through a client of its own."""
    import torch.distributed as dist

    client = dist.TCPStore("127.0.0.1", port, None, False, datetime.timedelta(seconds=30))
    while not stop.wait(0.5):
        now = time.time()
        for r in range(world):
            if r != silent:
                client.set(f"dlsetup/hb/{r}", f"{now:.3f} all_reduce all_reduce")


def _every_pass(run: Any) -> list[dict[str, Any]]:
    """The wait as it was: every rank read again each 0.25 s tick."""
    fate = sys.modules[type(run).__module__].fate
    evidence = run.evidence(set())
    deadline = time.monotonic() + fate.WITNESS_S
    while any(fate.awaits_witness(e) for e in evidence) and time.monotonic() < deadline:
        time.sleep(0.25)
        evidence = run.evidence(set())
    named: list[dict[str, Any]] = fate.name_ranks(evidence)
    return named


def _wait(world: int, how: str) -> tuple[float, float, int]:
    """``(wall s, CPU s of this thread, store round trips)`` of the wait for a silent rank 9."""
    import threading

    run, store = _fill(world, silent=9)
    stop = threading.Event()
    beater = threading.Thread(target=_beating, args=(store.port, world, 9, stop))
    beater.start()
    run.store.calls = 0
    t0, cpu0 = time.perf_counter(), time.thread_time()
    named = run.named(set()) if how == "named" else _every_pass(run)
    wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    stop.set()
    beater.join()
    states = [(x["rank"], x["state"]) for x in named]
    assert states == [(9, "dead")], states[:5]
    return wall, cpu, run.store.calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    run, _ = _fill(args.world, silent=None)
    times = []
    for _ in range(args.repeat):
        run.store.calls = 0
        t0 = time.perf_counter()
        evidence = run.evidence(set())
        times.append(time.perf_counter() - t0)
    assert len(evidence) == args.world and not [e for e in evidence if e.heartbeat_age_s is None]
    per_pass = statistics.median(times)
    print(
        f"world {args.world} (8 ranks per node), load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"  one full pass: median {per_pass * 1e3:.1f} ms, worst {max(times) * 1e3:.1f} ms, "
        f"{run.store.calls} store round trips"
    )
    # the wait: one rank of node 1 silent for 6 s and watched, until 12 s after its last beat
    waits = {name: _wait(args.world, how) for name, how in (("before", "every"), ("now", "named"))}
    print("  the witness wait for one silent rank (12 s after its last beat), side by side:")
    for name, (wall, cpu, calls) in waits.items():
        print(
            f"    {name:6} {wall:5.1f} s wall, {cpu * 1e3:7.1f} ms CPU of the diagnosing thread, "
            f"{calls:6d} store round trips"
        )
    (_, cpu_before, calls_before), (_, cpu_now, calls_now) = waits["before"], waits["now"]
    print(
        f"    ratio before/now: {calls_before / calls_now:.1f}x fewer store round trips, "
        f"{cpu_before / max(cpu_now, 1e-9):.1f}x less CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
