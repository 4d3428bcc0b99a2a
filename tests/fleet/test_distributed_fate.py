"""One verdict per rank from every source (``dlsetup/fleet/distributed_fate.py``), without a
cluster: a real process stopped and killed, torchrun's error-file layout, the precedence."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlsetup.fleet import distributed_fate as fate
from tests.support.signals import SIGNALLED

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def _state_becomes(pid: int, start: str | None, want: str, within_s: float = 5.0) -> str | None:
    deadline = time.monotonic() + within_s
    state = fate.proc_state(pid, start)
    while state != want and time.monotonic() < deadline:
        time.sleep(0.02)
        state = fate.proc_state(pid, start)
    return state


def test_a_process_is_seen_running_then_stopped_then_gone_and_a_reused_pid_is_not_it() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], **SIGNALLED)
    try:
        stat = fate.proc_stat(child.pid)
        assert stat is not None
        start = stat[1]
        assert fate.proc_state(child.pid, start) in ("S", "R")
        base = fate.Evidence(rank=3, node="node 1 (gpu02)", heartbeat_age_s=0.2, phase="ddp")
        running = fate.Evidence(**{**base.__dict__, "proc": fate.proc_state(child.pid, start)})
        assert fate.verdict(running) is None  # alive and beating: nothing to name
        child.send_signal(signal.SIGSTOP)
        assert _state_becomes(child.pid, start, "T") == "T"
        # a stopped process stops beating too: its silence must not make it "dead"
        stopped = fate.Evidence(**{
            **base.__dict__, "heartbeat_age_s": 9.0, "op": "all_reduce",
            "proc": fate.proc_state(child.pid, start), "seen_by": 2,
        })  # fmt: skip
        assert fate.verdict(stopped) == (
            "stopped",
            "in phase ddp, collective all_reduce: its process is stopped (state T: SIGSTOP or a "
            "debugger), heartbeat 9.0 s old, seen by rank 2 on node 1 (gpu02); not dead: kill "
            "-CONT PID there resumes it, or find what stopped it (a debugger: TracerPid in "
            "/proc/PID/status)",
        )
        assert fate.proc_state(child.pid, str(int(start) + 1)) == "gone"  # another process's pid
        child.send_signal(signal.SIGCONT)
        assert _state_becomes(child.pid, start, "S") in ("S", "R")
    finally:
        child.kill()
        child.wait()
    assert fate.proc_state(child.pid, start) == "gone"
    gone = fate.Evidence(**{**base.__dict__, "heartbeat_age_s": 1.0, "proc": "gone", "seen_by": 0,
                            "wrapper_gone": True})  # fmt: skip
    state, detail = fate.verdict(gone) or ("", "")
    assert state == "dead" and "its process is gone and so is its dlsetup process" in detail


def test_each_source_decides_in_order_and_the_causes_come_before_the_ranks_ended_after() -> None:
    def e(rank: int, **kw: object) -> fate.Evidence:
        return fate.Evidence(rank=rank, node=f"node {rank // 2} (vm)", **kw)  # type: ignore[arg-type]

    evidence = [
        e(0, heartbeat_age_s=0.0),  # the diagnosing rank itself
        e(1, heartbeat_age_s=0.3, no_answer=True),  # alive, no answer: hung
        e(2, heartbeat_age_s=0.4, ended_by="SIGTERM", phase="all_reduce"),  # ended after
        e(3, heartbeat_age_s=None, launcher="its worker (pid 7) was killed by SIGKILL (x)"),
        e(4, heartbeat_age_s=6.0, phase="versions", op="all_gather_object"),  # silent, no one saw
        e(5, heartbeat_age_s=1.0, phase="ddp"),  # fresh, answered: fine
    ]
    named = fate.name_ranks(evidence)
    assert [(x["rank"], x["state"]) for x in named] == [
        (4, "dead"), (1, "hung"), (3, "dead"), (2, "ended"),
    ]  # fmt: skip
    assert named[0]["detail"] == (
        "no heartbeat for 6.0 s (last in phase versions, collective all_gather_object) on node 2 "
        "(vm): exited or killed (no rank on its host could look at its process)"
    )
    assert named[2]["detail"] == (
        "its worker (pid 7) was killed by SIGKILL (x) (torchrun's error file for it on node 1 (vm))"
    )
    assert fate.line(named[3]).startswith("rank 2 ended (SIGTERM in phase all_reduce, on node 1")
    stopped = {"rank": 3, "state": "stopped", "detail": "in phase all_reduce: ..."}
    assert fate.line(stopped) == "rank 3 stopped (hung) in phase all_reduce: ..."


def test_a_heartbeat_is_read_with_or_without_its_collective() -> None:
    assert fate.parse_beat("100.0 ddp", 103.0) == (3.0, "ddp", "")
    assert fate.parse_beat("100.0 all_reduce all_gather", 100.5) == (
        0.5,
        "all_reduce",
        "all_gather",
    )
    assert fate.parse_beat(None, 1.0) == (None, "?", "")
    assert fate.parse_beat("garbage", 1.0) == (None, "?", "")


def test_torchruns_error_files_of_the_node_mates_are_read_by_global_rank(tmp_path: Path) -> None:
    attempt = tmp_path / "torchelastic_x" / "none_y" / "attempt_0"
    for local in range(4):
        (attempt / str(local)).mkdir(parents=True)
    mine = attempt / "1" / "error.json"  # this rank: global 5, local 1 of 4 (node 1)
    (attempt / "0" / "error.json").write_text(json.dumps({
        "message": "dlsetup smoke --distributed: rank 4: its worker (pid 9) was killed by SIGKILL",
        "timestamp": 1,
    }), encoding="utf-8")  # fmt: skip
    (attempt / "2" / "error.json").write_text(
        json.dumps({"message": {"message": "Traceback ...", "extraInfo": {"timestamp": "1"}}}),
        encoding="utf-8",
    )
    (attempt / "3" / "error.json").write_text("{not json", encoding="utf-8")
    assert fate.launcher_says(str(mine), rank=5, local_rank=1, local_world=4) == {
        4: "its worker (pid 9) was killed by SIGKILL",
        6: "Traceback ...",
    }
    assert fate.launcher_says(None, rank=5, local_rank=1, local_world=4) == {}


def test_ranks_look_at_each_others_processes_only_where_their_pids_mean_the_same() -> None:
    """The same machine and pid namespace (not the same host name, which containers and nodes
    called 'localhost' share): a child sees the namespace its parent sees."""
    mine = fate.proc_namespace()
    assert mine is not None and ":" in mine
    child = subprocess.run(
        [sys.executable, "-c", "from dlsetup.fleet import distributed_fate as f; "
         "print(f.proc_namespace())"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert child.stdout.strip() == mine


def test_a_rank_alive_but_without_its_arrival_at_init_is_named_hung_and_only_that_rank() -> None:
    """Inside init_process_group (no monitored barrier yet), the arrival mark is the evidence: a
    rank alive (fresh heartbeat, or its process seen running) without it is hung, with where to
    look; a rank gone or silent without it stays dead; a rank with it is not named."""

    def e(rank: int, **kw: object) -> fate.Evidence:
        base: dict[str, object] = {"rank": rank, "node": "node 0 (vm)", "heartbeat_age_s": 0.3,
                                   "phase": "init_process_group", "pid": 4000 + rank}  # fmt: skip
        return fate.Evidence(**{**base, **kw})  # type: ignore[arg-type]

    stuck = e(1, phase="rendezvous", reached_init=False)
    assert fate.verdict(stuck) == (
        "hung",
        "alive (heartbeat 0.3 s ago, in phase rendezvous) on node 0 (vm) but it never reached "
        "init_process_group (no arrival mark in the store), so gloo's mesh waited for it: stuck "
        "before it (its own code, or its store connection); py-spy dump --pid 4001 on that node "
        "shows where",
    )
    assert fate.verdict(e(1, phase="rendezvous")) is None  # the same rank, arrived: not named
    # its heartbeat silent but its process seen running: alive all the same
    running = e(2, heartbeat_age_s=8.0, proc="S", seen_by=0, reached_init=False)
    state, detail = fate.verdict(running) or ("", "")
    assert state == "hung" and detail.startswith(
        "alive (its process running (state S), seen by rank 0, heartbeat 8.0 s old, in phase"
    )
    gone = e(3, proc="gone", seen_by=0, reached_init=False)
    assert (fate.verdict(gone) or ("",))[0] == "dead"  # died before it: dead, not hung
    silent = e(3, heartbeat_age_s=9.0, reached_init=False)  # no one could look
    assert (fate.verdict(silent) or ("",))[0] == "dead"
    named = fate.name_ranks([e(0), stuck, e(2), e(3)])
    assert [(x["rank"], x["state"]) for x in named] == [(1, "hung")]


def test_gloos_store_key_is_read_as_a_hint_of_the_rank_it_waited_for() -> None:
    """torch 2.13's gloo, rank 2 never calling init_process_group (seen on this machine):
    ``DistStoreError: wait timeout after 4000ms, keys: /0//cpu//0/2``."""
    assert fate.gloo_waited_for("wait timeout after 4000ms, keys: /0//cpu//0/2") == [2]
    assert fate.gloo_waited_for("wait timeout after 5000ms, keys: /0//cpu//0/3, /1//cpu//0/1") == [
        1,
        3,
    ]
    assert fate.gloo_waited_for("Connection closed by peer [127.0.0.1]:1234") == []
    assert fate.gloo_waited_for("keys: /default_pg/x") == []


def test_a_silent_rank_its_dlsetup_process_watches_is_waited_for_not_named_dead_at_once() -> None:
    """Alone on its host, no rank can read a stopped rank's process: its own dlsetup process
    publishes it (seconds: a torch import). Until WITNESS_S after its last beat, silence waits."""
    silent = fate.Evidence(rank=1, node="node 1 (n2)", heartbeat_age_s=4.0, watched=True)
    assert fate.awaits_witness(silent)
    assert not fate.awaits_witness(fate.Evidence(**{**silent.__dict__, "watched": False}))
    assert not fate.awaits_witness(fate.Evidence(**{**silent.__dict__, "heartbeat_age_s": 1.0}))
    assert not fate.awaits_witness(
        fate.Evidence(**{**silent.__dict__, "heartbeat_age_s": fate.WITNESS_S + 0.1})
    )
    assert not fate.awaits_witness(fate.Evidence(**{**silent.__dict__, "proc": "gone"}))
    seen = fate.Evidence(**{**silent.__dict__, "proc": "T", "seen_by": fate.BY_DLSETUP, "pid": 7})
    state, detail = fate.verdict(seen) or ("", "")
    assert state == "stopped"
    assert "seen by its own dlsetup process on node 1 (n2); not dead: kill -CONT 7 there" in detail


@pytest.mark.torch
def test_a_stopped_worker_is_published_into_the_store_by_its_own_dlsetup_process() -> None:
    """The watcher a rank's dlsetup process runs, against a real process stopped and continued
    and a real store: nothing runs while the worker runs; once it is stopped the worker script's
    ``--witness`` writes ``seen/<rank>`` (by ``dlsetup``, state T), and S once continued."""
    import datetime
    import os
    import threading

    dist = pytest.importorskip("torch.distributed")
    from dlsetup.fleet import distributed
    from tests.fleet.launch import free_port

    port = free_port()
    store = dist.TCPStore(
        "127.0.0.1", port, 2, True, datetime.timedelta(seconds=30), wait_for_workers=False
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHELASTIC")}
    env.update({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port)})  # fmt: skip
    argv = [sys.executable, str(distributed.WORKER), "--timeout", "10"]
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(90)"], **SIGNALLED)
    done = threading.Event()
    watch = threading.Thread(
        target=distributed.watch_worker, args=(worker.pid, argv, env, done), daemon=True
    )
    key = "dlsetup/seen/1"

    def published(states: tuple[str, ...]) -> dict[str, object]:
        deadline = time.monotonic() + 40.0
        while time.monotonic() < deadline:
            if store.check([key]):
                record: dict[str, object] = json.loads(bytes(store.get(key)).decode())
                if record["state"] in states:
                    return record
            time.sleep(0.1)
        raise AssertionError(f"nothing in {states} published within 40 s")

    try:
        watch.start()
        time.sleep(1.0)
        assert not store.check([key])  # running: nothing published, no interpreter started
        worker.send_signal(signal.SIGSTOP)
        record = published(("T",))
        assert (record["by"], record["wrapper_gone"]) == (fate.BY_DLSETUP, False)
        worker.send_signal(signal.SIGCONT)
        assert published(("S", "R"))["by"] == fate.BY_DLSETUP
    finally:
        done.set()
        worker.kill()
        worker.wait()
    watch.join(35.0)
    assert not watch.is_alive()


def test_a_process_that_is_there_but_silent_is_hung_not_dead() -> None:
    """Silence names a rank dead only where no one could read its process: a real sleeping
    process with a heartbeat 6 s old is hung (state S), a D state says a driver call."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], **SIGNALLED)
    try:
        stat = fate.proc_stat(child.pid)
        assert stat is not None
        state = _state_becomes(child.pid, stat[1], "S")
        silent = fate.Evidence(rank=2, node="node 1 (vm)", heartbeat_age_s=6.0, phase="ddp",
                               proc=state, seen_by=0, pid=child.pid)  # fmt: skip
        assert fate.verdict(silent) == (
            "hung",
            "its process is there (state S), seen by rank 0 on node 1 (vm), but its heartbeat "
            "stopped (heartbeat 6.0 s old, last in phase ddp): not dead, stuck in a call that "
            f"never returns and holds the interpreter's lock; py-spy dump --native --pid "
            f"{child.pid} on that node shows where",
        )
    finally:
        child.kill()
        child.wait()
    in_driver = fate.Evidence(**{**silent.__dict__, "proc": "D"})
    assert "stuck in a driver or file-system call" in (fate.verdict(in_driver) or ("", ""))[1]
    unseen = fate.Evidence(**{**silent.__dict__, "proc": None, "seen_by": None})
    assert (fate.verdict(unseen) or ("",))[0] == "dead"  # no one could look: silence decides


class _Counted:
    """A real store, its round trips counted."""

    def __init__(self, store: object) -> None:
        self.store, self.calls = store, 0

    def check(self, keys: list[str]) -> bool:
        self.calls += 1
        return bool(self.store.check(keys))  # type: ignore[attr-defined]

    def get(self, key: str) -> bytes:
        self.calls += 1
        return bytes(self.store.get(key))  # type: ignore[attr-defined]

    def set(self, key: str, value: str) -> None:
        self.calls += 1
        self.store.set(key, value)  # type: ignore[attr-defined]


@pytest.mark.torch
def test_the_witness_wait_reads_only_the_waiting_rank_again_then_every_rank_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """64 ranks in a real store, rank 9 (another host, watched) silent for 5 s: the diagnosis
    waits for its own dlsetup process, which publishes it stopped 1.5 s later. Each 0.25 s tick
    reads rank 9 alone (a full pass per tick was thousands of store reads at 512 ranks: see
    benchmarks/bench_fate_evidence.py); once the wait is over every rank is read once more, so
    rank 20's last word, written during the wait, is in the verdicts too."""
    import datetime
    import threading

    dist = pytest.importorskip("torch.distributed")
    from dlsetup.fleet import distributed_worker as worker

    store = dist.TCPStore("127.0.0.1", 0, None, True, datetime.timedelta(seconds=30))
    world = 64
    for key, value in {
        "RANK": "0", "WORLD_SIZE": str(world), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "8",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port),
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE", raising=False)
    run = worker.Run(worker.parse_args(["--timeout", "30"]))
    counted = _Counted(store)
    run.store = counted
    now = time.time()
    for r in range(world):  # every rank on a host of its own: none can be looked at
        run.peers[r] = {"rank": r, "node_rank": r // 8, "host": f"n{r // 8}", "pid": 100 + r,
                        "procs": f"other-{r}", "watched": True}  # fmt: skip
        store.set(f"dlsetup/hb/{r}", f"{now - (5.0 if r == 9 else 0.0):.3f} all_reduce")
    full = counted.calls
    run.evidence(set())
    full = counted.calls - full

    def publish() -> None:
        time.sleep(0.7)
        store.set("dlsetup/fate/20", json.dumps({"signal": "SIGTERM", "phase": "all_reduce"}))
        time.sleep(0.8)
        store.set("dlsetup/seen/9", fate.witness_record(fate.BY_DLSETUP, "T", time.time(), False))

    beat = threading.Event()

    def beating() -> None:  # the other ranks stay alive meanwhile
        client = dist.TCPStore("127.0.0.1", store.port, None, False, datetime.timedelta(30))
        while not beat.wait(0.5):
            for r in range(world):
                if r != 9:
                    client.set(f"dlsetup/hb/{r}", f"{time.time():.3f} all_reduce")

    threads = [threading.Thread(target=publish), threading.Thread(target=beating)]
    for thread in threads:
        thread.start()
    counted.calls = 0
    try:
        named = run.named(set())
    finally:
        beat.set()
        for thread in threads:
            thread.join()
    assert [(x["rank"], x["state"]) for x in named] == [(9, "stopped"), (20, "ended")], named
    assert "seen by its own dlsetup process" in named[0]["detail"]
    print(f"a full pass: {full} store round trips; the whole wait: {counted.calls}")
    assert counted.calls < 3 * full, (counted.calls, full)  # a full pass per tick: 7 or more
