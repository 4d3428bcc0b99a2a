"""``dlsetup smoke --distributed`` on loopback: two torchrun agents on 127.0.0.1 stand in for two
nodes of two ranks each (gloo on CPU); srun-like launches set Slurm's variables. Faults come from
``tests/fleet/faults/sitecustomize.py`` (a patched torch.distributed in one rank). Each fault must
end within 30 s, with the rank named and a non-zero exit."""

from __future__ import annotations

import json
import math
import os
import socket
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.errors import InputError
from dlsetup.fleet.distributed import resolve_launch
from dlsetup.output import load_schema
from tests.fleet.launch import Ended, free_port, own_pid_namespace, srun_like, torchrun_nodes
from tests.support.shared import shared_dir

pytest.importorskip("torch")

#: From the fault to the end of the run (the rank named, every process gone): issue 23's bound.
FAULT_DEADLINE_S = 30.0
#: From the launch: 6 processes import torch first (about 11 s of CPU on a loaded 2-CPU machine).
LAUNCH_DEADLINE_S = 60.0


@pytest.fixture(autouse=True)
def one_cluster_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Under pytest-xdist, one loopback cluster (2 agents, 4 ranks importing torch) at a time:
    four of them at once on 2 CPUs measure the machine, not the 30 s bound."""
    from filelock import FileLock

    with FileLock(str(shared_dir(tmp_path_factory, "locks") / "torchrun.lock")):
        yield


def _reporter(ended: list[Ended]) -> Ended:
    """The launched process that holds rank 0, the only rank that prints (under c10d the agents
    agree on the node ranks, so it may be either agent)."""
    return next((e for e in ended if e.stdout.strip()), ended[0])


def _report(ended: list[Ended]) -> dict[str, Any]:
    document = json.loads(_reporter(ended).stdout)
    jsonschema.validate(document, load_schema("dlsetup.smoke-distributed"))
    data: dict[str, Any] = document["data"]
    return data


def _fake_tools(directory: Path) -> Path:
    """``all_reduce_perf`` and ``dcgmi`` stand-ins printing the real tools' verdict lines."""
    directory.mkdir()
    scripts = {
        "all_reduce_perf": "echo '# Out of bounds values : 0 OK'\necho '# Avg bus bandwidth    : 123.45'\n",
        "dcgmi": "echo '| Deployment | Pass |'\necho '| PCIe | Fail - link width x8 |'\nexit 0\n",
    }  # fmt: skip
    for name, body in scripts.items():
        path = directory / name
        path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return directory


@pytest.mark.slow
@pytest.mark.torch
def test_two_nodes_of_two_ranks_report_every_rank_the_formulas_and_the_odd_ones(
    tmp_path: Path,
) -> None:
    import torch

    tools = _fake_tools(tmp_path / "bin")
    # rank 3 slow, rank 2 another torch, rank 1 a skewed DDP gradient, rank 0 a broken sigmoid
    ended, wall = torchrun_nodes(
        ["--json", "--timeout", "10"],
        fault="slow@3,version@2,grad@1,grid@0",
        extra_env={"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"},
    )
    print(f"2 x 2 ranks, whole run to the report: {wall:.1f} s")  # the figure in the notes
    data = _report(ended)
    assert [e.returncode for e in ended] == [1, 1], ended[0].stderr[-3000:]  # dcgmi said Fail
    assert wall < 45.0  # the issue asks < 30 s; 45 leaves room for a loaded shared machine
    assert (data["launcher"], data["backend"], data["world_size"]) == ("torchrun", "gloo", 4)
    rows = data["ranks"]
    assert [(r["rank"], r["node_rank"], r["local_rank"]) for r in rows] == [
        (0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1),
    ]  # fmt: skip
    assert all(r["status"] == "ok" and r["allreduce_ok"] for r in rows)
    assert [r["ddp_ok"] for r in rows] == [True, False, True, True]
    assert [r["grid"]["passed"] for r in rows] == [False, True, True, True]
    assert all(r["grid"]["combinations"] == 48 for r in rows)
    assert "sigmoid" in " ".join(rows[0]["grid"]["failed"])
    assert data["failure"] is None and data["init_s_max"] > 0
    w = 4
    assert data["allreduce"]["expected"] == [1000 * w * (w + 1) / 2 + w * i for i in range(8)] + [w]
    assert data["versions"]["drift"] == [
        {
            "key": "torch",
            "majority": torch.__version__,
            "differing": [{"rank": 2, "value": "2.12.0+cpu"}],
        }
    ]
    for size in data["bandwidth"]["sizes"]:
        assert size["time_s"] == max(size["time_s_per_rank"])
        assert size["slowest_rank"] == size["time_s_per_rank"].index(size["time_s"])
        assert math.isclose(size["algbw_GBps"], size["bytes"] / size["time_s"] / 1e9)
        assert math.isclose(size["busbw_GBps"], size["algbw_GBps"] * 2 * (w - 1) / w)
    matmul = data["matmul"]
    assert matmul["stragglers"] == [3]  # 5 ms more per matmul on rank 3
    assert [r["straggler"] for r in rows] == [False, False, False, True]
    assert data["ddp"]["differing_ranks"] == [1]
    assert math.isclose(data["ddp"]["max_abs_diff_between_ranks"], 1.0, rel_tol=1e-5)  # float32
    tools_seen = sorted((t["tool"], t["verdict"]) for t in data["tools"])
    # one run per node (local rank 0 of each): nccl-tests passes, DCGM reports a Fail line
    assert tools_seen == [("all_reduce_perf", "pass")] * 2 + [("dcgmi diag", "fail")] * 2
    assert "avg bus bandwidth 123.45 GB/s" in data["tools"][0]["detail"]
    failed = {c["name"]: c["detail"] for c in data["checks"] if not c["passed"]}
    assert failed.keys() == {
        "versions identical",
        "DDP gradients identical",
        "seed grid (6 activations x 8 losses) on every rank",
        "dcgmi diag on " + socket.gethostname(),
    }
    assert failed["versions identical"].startswith("torch: rank 2=2.12.0+cpu")
    assert failed["DDP gradients identical"].startswith("rank(s) 1 hold a gradient")
    assert failed["seed grid (6 activations x 8 losses) on every rank"].startswith("rank 0: ok")
    assert "rank 0" not in failed["DDP gradients identical"]


def _within_deadline(ended: list[Ended], wall: float) -> None:
    """Named within 30 s of the fault firing (where it fires at a known moment), and within a
    minute of the launch."""
    since = ended[0].since_fault_s
    print(
        f"launch to end {wall:.1f} s, fault to end {since if since is None else round(since, 1)} s"
    )
    assert wall < LAUNCH_DEADLINE_S, f"took {wall:.1f} s from the launch"
    assert since is None or since < FAULT_DEADLINE_S, f"took {since:.1f} s from the fault"


def _assert_fault(ended: list[Ended], wall: float, rank: int, state: str) -> dict[str, Any]:
    _within_deadline(ended, wall)
    assert all(e.returncode != 0 for e in ended)
    assert not [e.left for e in ended if e.left], "a process outlived its launcher"
    data = _report(ended)
    assert not data["passed"]
    named = {r["rank"]: r["state"] for r in data["failure"]["ranks"]}
    print(f"failed in phase {data['failure']['phase']}: {named}")
    assert named.get(rank) == state, data["failure"]
    assert f"rank {rank} {state}" in _reporter(ended).stderr
    return data


#: The phase rank 0 fails in. A rank that dies at its first all_reduce may find rank 0 still
#: inside init_process_group (gloo's second mesh, the monitored barrier's group, is connected pair
#: by pair): rank 0 then fails there, and names it dead all the same.
_PHASES_OF = {
    "dead": ("all_reduce", "init_process_group"), "hung": ("all_reduce",), "wrong": ("all_reduce",),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize(("fault", "rank", "state", "timeout"), [
    ("die@3", 3, "dead", "5"), ("hang@2", 2, "hung", "5"), ("wrong@1", 1, "wrong", "5"),
    ("stall@0", 0, "hung", "2"),  # the reporter itself stuck: its watchdog ends it (2 x 2 + 2 + 5 s)
])  # fmt: skip
def test_a_broken_rank_is_named_within_30_s(
    fault: str, rank: int, state: str, timeout: str
) -> None:
    ended, wall = torchrun_nodes(["--json", "--timeout", timeout, "--steps", "20"], fault=fault)
    data = _assert_fault(ended, wall, rank, state)
    assert data["failure"]["phase"] in _PHASES_OF[state], data["failure"]
    if state == "dead":  # torchrun's agent of its node ends rank 2 after it: ended, not a cause
        assert data["failure"]["ranks"][0]["rank"] == rank, data["failure"]
        assert {r["state"] for r in data["failure"]["ranks"][1:]} <= {"ended"}, data["failure"]
    if fault == "stall@0":
        assert "(watchdog, limit 11 s)" in data["failure"]["error"]
    elif state == "hung":
        assert (
            data["failure"]["barrier"]
            == "[Rank 0]: Ranks 2 failed to pass monitoredBarrier in 5000 ms"
        )
    if state == "wrong":
        assert data["allreduce"]["wrong_ranks"][0]["rank"] == 1


@pytest.mark.slow
@pytest.mark.torch
def test_rank_0_stopped_by_torchrun_after_its_report_still_gives_the_report() -> None:
    """torchrun ends a node's other ranks once one exits with a failure: a rank 1 that does not
    linger gets rank 0 of its node stopped (SIGTERM) after its report is written and before it
    has exited; the report is the answer, not 'Terminated' (exit 143)."""
    ended, wall = torchrun_nodes(
        ["--json", "--timeout", "5", "--steps", "20"], fault="die@3,hasty@1,slowexit@0"
    )
    data = _assert_fault(ended, wall, 3, "dead")
    assert data["failure"]["phase"] in _PHASES_OF["dead"], data["failure"]
    assert ended[0].returncode == 1, ended[0].stderr


#: Which fault runs under which launcher (each fault once, every launcher at least once; the
#: full product would cost a minute and a half more): docs/fleet.md lists the same matrix.
FATES = [
    # kill -9 of the dlsetup process torchrun started for rank 3: its worker goes with it (the
    # parent-death signal), rank 3 is named, not rank 2 that its agent ended afterwards
    pytest.param("killparent@3", "static", 3, "dead", id="kill-9-of-rank-3s-dlsetup-static"),
    # killed about 2 s after the start, before it joined: rank 0, ended by its agent in the
    # same moment, still writes the report, from torchrun's error file of rank 1
    pytest.param("killearly@1", "c10d", 1, "dead", id="killed-at-start-c10d"),
    # SIGSTOP inside all_reduce: stopped (hung), not dead, and in which collective
    pytest.param("stop@3", "c10d", 3, "stopped", id="sigstop-c10d"),
]


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize(("fault", "rdzv", "rank", "state"), FATES)
def test_each_ranks_fate_names_the_rank_and_its_node_and_nothing_outlives_it(
    fault: str, rdzv: str, rank: int, state: str
) -> None:
    ended, wall = torchrun_nodes(
        ["--json", "--timeout", "5", "--steps", "20"], fault=fault, rdzv=rdzv
    )
    data = _assert_fault(ended, wall, rank, state)
    first = data["failure"]["ranks"][0]  # the cause comes first, the ranks ended after it last
    assert (first["rank"], first["state"]) == (rank, state), data["failure"]
    assert first["node"] == f"node {rank // 2} ({socket.gethostname()})"  # torchrun: 2 per node
    assert {r["state"] for r in data["failure"]["ranks"][1:]} <= {"ended"}, data["failure"]
    assert "the rank's message above says why" not in "".join(e.stderr for e in ended)
    if fault == "killparent@3":
        assert "its process is gone and so is its dlsetup process" in first["detail"]
    if fault == "killearly@1":
        assert "its worker (pid " in first["detail"] and "killed by SIGKILL" in first["detail"]
        assert "torchrun's error file" in first["detail"]
    if state == "stopped":
        line = "rank 3 stopped (hung) in phase all_reduce, collective all_reduce: its process is "
        assert line + "stopped (state T" in _reporter(ended).stderr
        assert [r["status"] for r in data["ranks"]].count("stopped") == 1


@pytest.mark.slow
@pytest.mark.torch
def test_nothing_outlives_a_torchrun_agent_killed_with_sigkill() -> None:
    """kill -9 of node 1's torchrun agent: its dlsetup processes end with it (their
    parent-death signal), their workers with them, and rank 0 names ranks 2 and 3 ended."""
    ended, wall = torchrun_nodes(["--json", "--timeout", "5", "--steps", "20"], fault="killagent@3")
    _within_deadline(ended, wall)
    assert not [e.left for e in ended if e.left], "a process outlived its agent"
    assert ended[1].returncode == -9 and ended[0].returncode == 1
    data = _report(ended)
    named = {r["rank"]: r["state"] for r in data["failure"]["ranks"]}
    assert named == {2: "ended", 3: "ended"}, data["failure"]


@pytest.mark.slow
@pytest.mark.torch
def test_rank_0s_worker_killed_is_said_by_rank_0_and_named_by_the_others() -> None:
    """kill -9 of rank 0's worker: no report can exist; rank 0 says its worker was killed by
    SIGKILL before the report, and the ranks of the other node name rank 0 dead (torchrun's
    agent of node 0 held the store, and it ended with its node)."""
    ended, wall = torchrun_nodes(["--json", "--timeout", "5", "--steps", "20"], fault="kill@0")
    _within_deadline(ended, wall)
    assert not [e.left for e in ended if e.left], "a process outlived its launcher"
    assert all(e.returncode != 0 for e in ended)
    error = json.loads(ended[0].stdout)["data"]["error"]
    assert error["message"].startswith("rank 0: its worker (pid ")
    assert "was killed by SIGKILL (kill -9, or the kernel's OOM killer" in error["message"]
    assert error["message"].endswith("before it wrote the report")
    assert "message above" not in ended[0].stderr
    assert "rank 0 dead (its process is gone" in ended[1].stderr, ended[1].stderr[-3000:]


@pytest.mark.slow
@pytest.mark.torch
def test_a_rank_that_dies_inside_init_process_group_is_named_dead() -> None:
    """Rank 3 exits as it enters init_process_group, after the rendezvous: the others fail inside
    init with gloo's own error, and the same evidence as a failed collective's (its process gone,
    its heartbeat silent; no monitored barrier: its group does not exist yet) names it."""
    ended, wall = torchrun_nodes(["--json", "--timeout", "5", "--steps", "20"], fault="dieinit@3")
    data = _assert_fault(ended, wall, 3, "dead")
    failure = data["failure"]
    assert failure["phase"] == "init_process_group" and failure["barrier"] == "", failure
    assert failure["ranks"][0]["rank"] == 3, failure  # its node-mate, ended by its agent, after
    assert {r["state"] for r in failure["ranks"][1:]} <= {"ended"}, failure
    assert failure["ranks"][0]["node"] == f"node 1 ({socket.gethostname()})"
    assert "FAIL in init_process_group: rank 3 dead (its process is gone" in (
        _reporter(ended).stderr
    )
    assert [r["status"] for r in data["ranks"]][3] == "dead"


@pytest.mark.slow
@pytest.mark.torch
def test_rank_0_killed_inside_init_process_group_is_named_by_the_other_node() -> None:
    """kill -9 of rank 0's worker as it enters init_process_group: node 0's agent (the store's
    host) ends with its node, and node 1's ranks, failing inside init, name rank 0 dead from its
    process (they could look at it), not with gloo's error alone."""
    ended, wall = torchrun_nodes(["--json", "--timeout", "5", "--steps", "20"], fault="killinit@0")
    _within_deadline(ended, wall)
    assert not [e.left for e in ended if e.left], "a process outlived its launcher"
    assert all(e.returncode != 0 for e in ended)
    assert "rank 0 dead (its process is gone" in ended[1].stderr, ended[1].stderr[-3000:]
    assert "FAIL in init_process_group" in ended[1].stderr


@pytest.mark.slow
@pytest.mark.torch
def test_a_stopped_rank_under_srun_is_named_with_its_slurm_node() -> None:
    ended, wall = srun_like(
        ["--json", "--timeout", "5", "--steps", "20"], port=free_port(), nodes="n[1-2]",
        tasks_per_node="1(x2)", ranks=[0, 1], world=2, fault="stop@1", kill_on_bad_exit=True,
    )  # fmt: skip
    data = _assert_fault(ended, wall, 1, "stopped")
    assert data["failure"]["ranks"][0]["node"] == "node 1 (n2)"


@pytest.mark.slow
@pytest.mark.torch
def test_a_rank_stopped_inside_init_process_group_is_named_stopped_not_dead() -> None:
    """SIGSTOP of rank 1 as it enters init_process_group (srun): rank 0 fails inside init, and
    the stopped process (state T), not its silent heartbeat, gives the verdict."""
    ended, wall = srun_like(
        ["--json", "--timeout", "5", "--steps", "20"], port=free_port(), nodes="n[1-2]",
        tasks_per_node="1(x2)", ranks=[0, 1], world=2, fault="stopinit@1", kill_on_bad_exit=True,
    )  # fmt: skip
    data = _assert_fault(ended, wall, 1, "stopped")
    failure = data["failure"]
    assert failure["phase"] == "init_process_group" and failure["barrier"] == "", failure
    assert failure["ranks"][0]["node"] == "node 1 (n2)"
    assert failure["ranks"][0]["detail"].startswith(
        "in phase init_process_group: its process is stopped (state T"
    ), failure


@pytest.mark.slow
@pytest.mark.torch
def test_a_rank_dead_in_init_that_none_can_look_at_is_named_by_its_heartbeat() -> None:
    """Rank 1 in a pid namespace of its own (as on another host, alone on it) exits as it enters
    init_process_group: rank 0 cannot read its process, and its heartbeat, silent since, says
    dead."""
    unshare = own_pid_namespace()
    if unshare is None:
        pytest.skip("unprivileged user and pid namespaces are not allowed here (unshare -rp)")
    ended, wall = srun_like(
        ["--json", "--timeout", "5", "--steps", "20"], port=free_port(), nodes="n[1-2]",
        tasks_per_node="1(x2)", ranks=[0, 1], world=2, fault="dieinit@1", prefix={1: unshare},
    )  # fmt: skip
    data = _assert_fault(ended, wall, 1, "dead")
    failure = data["failure"]
    assert failure["phase"] == "init_process_group", failure
    assert failure["ranks"][0]["detail"].startswith("no heartbeat for "), failure
    assert failure["ranks"][0]["detail"].endswith(
        " s (last in phase init_process_group) on node 1 (n2): exited or killed (no rank on its "
        "host could look at its process)"
    ), failure
    # its own /proc (unshare --mount-proc): the start time rank 1 joined with is its worker's
    # (within a minute of rank 0's), not that of the host's process its namespace pid names
    starts = [int(r["start"]) for r in data["ranks"]]
    assert abs(starts[1] - starts[0]) < 60 * os.sysconf("SC_CLK_TCK"), starts


@pytest.mark.slow
@pytest.mark.torch
def test_a_node_that_never_joins_is_named_with_its_slurm_node() -> None:
    ended, wall = srun_like(
        ["--json", "--timeout", "5"], port=free_port(), nodes="n[1-2]",
        tasks_per_node="2(x2)", ranks=[0, 1], world=4,
    )  # fmt: skip
    data = _assert_fault(ended, wall, 2, "missing")
    assert wall < FAULT_DEADLINE_S  # the fault is there from the launch
    assert data["launcher"] == "srun"
    assert data["failure"]["ranks"] == [
        {"rank": 2, "state": "missing", "detail": "expected on node n2"},
        {"rank": 3, "state": "missing", "detail": "expected on node n2"},
    ]


@pytest.mark.slow
@pytest.mark.torch
def test_a_port_already_in_use_is_named_and_exits_4() -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        ended, wall = srun_like(
            ["--timeout", "5"], port=port, nodes="n[1-2]", tasks_per_node="1(x2)",
            ranks=[0, 1], world=2,
        )  # fmt: skip
    assert wall < FAULT_DEADLINE_S and [e.returncode for e in ended] == [4, 4]
    assert f"rank 0 could not listen on 127.0.0.1:{port}: the port is already in use" in (
        ended[0].stderr
    )
    assert f"rank 1 could not reach the rendezvous store at 127.0.0.1:{port}" in ended[1].stderr


def test_launch_is_read_from_torchruns_or_slurms_variables() -> None:
    torchrun = resolve_launch({
        "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "x",
    })  # fmt: skip
    assert (torchrun.launcher, torchrun.rank, torchrun.local_world_size) == ("torchrun", 3, 2)
    slurm = resolve_launch({
        "SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
        "SLURM_STEP_NODELIST": "gpu[07-09]", "SLURM_STEP_TASKS_PER_NODE": "2(x3)",
        "SLURM_JOB_ID": "123456",
    })  # fmt: skip
    assert slurm.master_addr == "gpu07" and slurm.master_port == 20000 + 123456 % 20000
    assert slurm.rank_nodes == ("gpu07", "gpu07", "gpu08", "gpu08", "gpu09", "gpu09")
    assert slurm.environment()["RANK"] == "5" and slurm.local_world_size == 2
    with pytest.raises(InputError, match="outside a world"):
        resolve_launch({"RANK": "4", "WORLD_SIZE": "4", "MASTER_ADDR": "a", "MASTER_PORT": "1"})


def test_distributed_outside_a_launcher_or_with_other_options_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in list(os.environ):
        if key.startswith("SLURM_") or key in ("RANK", "WORLD_SIZE"):
            monkeypatch.delenv(key)
    result = CliRunner().invoke(cli, ["smoke", "--distributed"])
    assert result.exit_code == 2
    assert "neither torchrun's RANK/WORLD_SIZE nor Slurm's SLURM_PROCID" in result.output
    result = CliRunner().invoke(cli, ["smoke", "--distributed", "--plot", "x.png"])
    assert result.exit_code == 2 and "--plot does not apply with --distributed" in result.output


def test_the_text_report_shows_rows_stragglers_and_the_named_ranks() -> None:
    import io

    from rich.console import Console

    from dlsetup.commands.fleet import render_distributed
    from dlsetup.output import envelope

    rows = [
        {"rank": r, "local_rank": r % 2, "node_rank": r // 2, "host": f"gpu0{r // 2 + 1}",
         "device": f"cuda:{r % 2}", "init_s": 0.5, "allreduce_ok": True, "matmul_ms": 1.0,
         "status": "ok", "straggler": r == 1}
        for r in range(3)
    ] + [{"rank": 3, "status": "hung", "straggler": False}]  # fmt: skip
    report: dict[str, Any] = {
        "launcher": "srun", "backend": "nccl", "device_kind": "cuda", "world_size": 4,
        "local_world_size": 2, "master": "gpu01:29500", "timeout_s": 30.0, "rendezvous_s": 0.2,
        "init_s_max": 0.5, "ranks": rows,
        "checks": [{"name": "all-reduce exact", "passed": True, "detail": "every rank ..."}],
        "failure": {"phase": "versions", "error": "RuntimeError: timed out", "ranks": [
            {"rank": 3, "state": "hung", "detail": "alive but no answer"},
            {"rank": 2, "state": "stopped", "detail": "in phase versions: state T",
             "node": "node 1 (gpu02)"}]},
        "allreduce": None, "versions": None,
        "bandwidth": {"definition": "nccl-tests", "sizes": [{
            "bytes": 2**20, "count": 2**18, "dtype": "float32", "iters": 5,
            "time_s_per_rank": [0.001, 0.002], "time_s": 0.002, "slowest_rank": 1,
            "algbw_GBps": 0.524, "busbw_GBps": 0.786}]},
        "matmul": {"n": 4096, "ms_per_rank": [1.0, 3.0, 1.0], "median_ms": 1.0,
                   "straggler_factor": 1.5, "stragglers": [1]},
        "ddp": None, "tools": [], "wall_s": 12.0, "passed": False, "exit_code": 1,
    }  # fmt: skip
    jsonschema.validate(
        envelope("dlsetup.smoke-distributed", report), load_schema("dlsetup.smoke-distributed")
    )
    out = io.StringIO()
    render_distributed(Console(file=out, width=140, color_system=None), report)
    text = out.getvalue()
    assert "4 rank(s), nccl on cuda, launched by srun, rendezvous gpu01:29500" in text
    assert "ok, STRAGGLER" in text and "STRAGGLER rank(s) 1 (> 1.5 x the median)" in text
    assert "FAIL in phase versions: RuntimeError: timed out" in text
    assert "rank 3: hung — alive but no answer" in text
    assert "rank 2: stopped (hung) — in phase versions: state T" in text
    assert text.rstrip().endswith("Result: FAIL in 12.0 s (rank 0)")


@pytest.mark.slow
def test_an_interpreter_without_torch_exits_3_and_says_so(tmp_path: Path) -> None:
    import shutil
    import subprocess

    bare = shutil.which("python3", path="/usr/bin:/bin")
    if (
        bare is None
        or subprocess.run([bare, "-c", "import torch"], capture_output=True).returncode == 0
    ):
        pytest.skip("no interpreter without torch on this machine")
    ended, _ = srun_like(
        ["--python", bare], port=free_port(), nodes="n1", tasks_per_node="1", ranks=[0], world=1
    )
    assert ended[0].returncode == 3
    assert f"torch is not installed in {bare}" in ended[0].stderr
