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
            "debugger), heartbeat 9.0 s old, seen by rank 2 on node 1 (gpu02)",
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
