"""``dlsetup smoke --distributed`` on loopback: a rank that is alive but not where it should be.

Two fates that silence or gloo's error alone used to misname (``distributed_fate``): a rank alive
and beating that never arrives at ``init_process_group`` (named by its missing arrival mark, not
by gloo's store key), and a rank stopped alone on its host, where no other rank can read its
process (named stopped by its own ``dlsetup`` process, not dead from its silence). Faults come
from ``tests/fleet/faults/sitecustomize.py``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from dlsetup.output import load_schema
from tests.fleet.launch import Ended, free_port, own_pid_namespace, srun_like
from tests.support.shared import shared_dir

pytest.importorskip("torch")

#: From the fault to the end of the run, and from the launch (as tests/fleet/test_distributed.py).
FAULT_DEADLINE_S = 30.0
LAUNCH_DEADLINE_S = 60.0


@pytest.fixture(autouse=True)
def one_cluster_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One loopback cluster at a time under pytest-xdist (the lock test_distributed.py takes)."""
    from filelock import FileLock

    with FileLock(str(shared_dir(tmp_path_factory, "locks") / "torchrun.lock")):
        yield


def _ended_right(ended: list[Ended], wall: float) -> dict[str, Any]:
    """Within the bounds, every launched process failed, nothing left behind: rank 0's report."""
    since = ended[0].since_fault_s
    print(f"launch to end {wall:.1f} s, fault to end {since} s")
    assert wall < LAUNCH_DEADLINE_S, f"took {wall:.1f} s from the launch"
    assert since is None or since < FAULT_DEADLINE_S, f"took {since:.1f} s from the fault"
    assert all(e.returncode != 0 for e in ended), [e.returncode for e in ended]
    assert not [e.left for e in ended if e.left], "a process outlived its launcher"
    document = json.loads(ended[0].stdout)
    jsonschema.validate(document, load_schema("dlsetup.smoke-distributed"))
    data: dict[str, Any] = document["data"]
    assert not data["passed"]
    return data


@pytest.mark.slow
@pytest.mark.torch
def test_a_rank_alive_that_never_reaches_init_process_group_is_named_and_no_other() -> None:
    """Rank 1 of 3 (srun, one per node) is alive and beating but stuck before init_process_group
    (its arrival mark never written): the others time out inside init with gloo's error, and the
    missing mark names rank 1 hung, on its node, with where to look; rank 2, which arrived and
    failed in init like rank 0, is not named. Before the mark, the report named no rank."""
    ended, wall = srun_like(
        ["--json", "--timeout", "5", "--steps", "20"], port=free_port(), nodes="n[1-3]",
        tasks_per_node="1(x3)", ranks=[0, 1, 2], world=3, fault="stallinit@1",
        kill_on_bad_exit=True,
    )  # fmt: skip
    data = _ended_right(ended, wall)
    failure = data["failure"]
    print(failure)
    assert failure["phase"] == "init_process_group" and failure["barrier"] == "", failure
    causes = [r for r in failure["ranks"] if r["state"] != "ended"]
    assert [(r["rank"], r["state"], r["node"]) for r in causes] == [(1, "hung", "node 1 (n2)")]
    detail = causes[0]["detail"]
    assert detail.startswith("alive (heartbeat "), detail
    assert "in phase rendezvous) on node 1 (n2) but it never reached init_process_group" in detail
    assert "py-spy dump --pid " in detail
    assert [r["status"] for r in data["ranks"]][:3] == ["ok", "hung", "ok"]
    assert "FAIL in init_process_group: rank 1 hung (alive (heartbeat" in ended[0].stderr


@pytest.mark.slow
@pytest.mark.torch
def test_a_rank_stopped_alone_on_its_host_is_named_stopped_not_dead() -> None:
    """Rank 1 in a pid namespace of its own (alone on its host: rank 0 cannot read its process)
    is SIGSTOPped inside all_reduce: its own dlsetup process sees the stop and publishes it, so
    rank 0 names it stopped, with the fix, instead of dead from its silent heartbeat."""
    unshare = own_pid_namespace()
    if unshare is None:
        pytest.skip("unprivileged user and pid namespaces are not allowed here (unshare -rp)")
    ended, wall = srun_like(
        ["--json", "--timeout", "5", "--steps", "20"], port=free_port(), nodes="n[1-2]",
        tasks_per_node="1(x2)", ranks=[0, 1], world=2, fault="stop@1", prefix={1: unshare},
        kill_on_bad_exit=True,
    )  # fmt: skip
    data = _ended_right(ended, wall)
    failure = data["failure"]
    print(failure)
    first = failure["ranks"][0]
    assert (first["rank"], first["state"], first["node"]) == (1, "stopped", "node 1 (n2)"), failure
    assert "its process is stopped (state T: SIGSTOP or a debugger)" in first["detail"]
    assert (
        "seen by its own dlsetup process on node 1 (n2); not dead: kill -CONT " in (first["detail"])
    )
    assert "rank 1 stopped (hung) in phase all_reduce" in ended[0].stderr


@pytest.mark.slow
@pytest.mark.torch
def test_a_rank_that_arrived_but_never_joined_glos_mesh_is_only_hinted_from_glos_key() -> None:
    """Rank 1 arrives at init_process_group (its mark is there, its heartbeat fresh) but never
    connects gloo's mesh, as behind a firewall: no evidence names it, so the failure names no
    rank, and gloo's store key is read into a hint in the error, said to be one."""
    ended, wall = srun_like(
        ["--json", "--timeout", "5", "--steps", "20"], port=free_port(), nodes="n[1-3]",
        tasks_per_node="1(x3)", ranks=[0, 1, 2], world=3, fault="stallmesh@1",
        kill_on_bad_exit=True,
    )  # fmt: skip
    data = _ended_right(ended, wall)
    failure = data["failure"]
    print(failure)
    assert failure["phase"] == "init_process_group", failure
    assert [r for r in failure["ranks"] if r["state"] != "ended"] == [], failure
    assert failure["error"].startswith("DistStoreError: wait timeout after 5000ms, keys: ")
    assert failure["error"].endswith(
        " (by torch's key layout, gloo waited for rank(s) 1: a hint only, as no rank was seen "
        "gone, stopped, silent or short of init_process_group)"
    ), failure


@pytest.mark.slow
@pytest.mark.torch
def test_a_rank_whose_process_is_there_but_silent_is_named_hung_not_dead() -> None:
    """Rank 1 stuck in a C call that holds the interpreter's lock: no thread of it runs, its
    heartbeat included, but rank 0 reads its process (same host), sleeping: hung, with where to
    look, not dead from its silence."""
    ended, wall = srun_like(
        ["--json", "--timeout", "5", "--steps", "20"], port=free_port(), nodes="n[1-2]",
        tasks_per_node="1(x2)", ranks=[0, 1], world=2, fault="gilhang@1", kill_on_bad_exit=True,
    )  # fmt: skip
    data = _ended_right(ended, wall)
    failure = data["failure"]
    print(failure)
    first = failure["ranks"][0]
    assert (first["rank"], first["state"], first["node"]) == (1, "hung", "node 1 (n2)"), failure
    assert first["detail"].startswith("its process is there (state S), seen by rank 0 on node 1 "
                                      "(n2), but its heartbeat stopped (heartbeat ")  # fmt: skip
    assert (
        "not dead, stuck in a call that never returns and holds the interpreter's lock"
        in (first["detail"])
    )
    assert "rank 1 hung (its process is there" in ended[0].stderr


@pytest.mark.slow
@pytest.mark.torch
def test_rank_0_stuck_before_init_process_group_names_itself_hung_and_ends() -> None:
    """Rank 0 (the reporter) alive and beating but stuck before init_process_group, under srun
    with no --kill-on-bad-exit (nothing ends it from outside): rank 1 times out inside init, and
    rank 0's own watchdog (timeout + diagnose = 10 s after the rendezvous's wait) names rank 0
    hung, with where to look, writes the report and ends the run. Before, its watchdog started
    only after init: rank 0 hung until the launcher's deadline, and no report came."""
    ended, wall = srun_like(
        ["--json", "--timeout", "5", "--steps", "20"], port=free_port(), nodes="n[1-2]",
        tasks_per_node="1(x2)", ranks=[0, 1], world=2, fault="stallinit@0",
        deadline_s=LAUNCH_DEADLINE_S + 10,
    )  # fmt: skip
    data = _ended_right(ended, wall)
    failure = data["failure"]
    print(failure)
    assert failure["phase"] == "rendezvous", failure
    assert failure["error"].startswith("rank 0 stuck for "), failure
    assert failure["error"].endswith(
        " s between the rendezvous and init_process_group (watchdog, limit 10 s)"
    ), failure
    causes = [r for r in failure["ranks"] if r["state"] != "ended"]
    assert [(r["rank"], r["state"], r["node"]) for r in causes] == [(0, "hung", "node 0 (n1)")]
    detail = causes[0]["detail"]
    assert detail.startswith("alive on node 0 (n1) but stuck for "), detail
    assert "before it reached init_process_group (no arrival mark in the store)" in detail
    assert "py-spy dump --pid " in detail
    assert [r["status"] for r in data["ranks"]] == ["hung", "ok"]
    # its stacks at that moment, on its stderr: the stalled store read of the fault
    assert 'sitecustomize.py", line' in ended[0].stderr, ended[0].stderr[-3000:]
    assert "FAIL in rendezvous: rank 0 hung (alive on node 0 (n1)" in ended[1].stderr
    assert "(rank 0's diagnosis)" in ended[1].stderr
