"""Every rank's fate from one place: what each source saw, reconciled into one verdict per rank.

Runs inside a rank's worker (standard library only; loaded by :mod:`distributed_worker` as a
sibling module). The sources, strongest first:

1. the rank's process itself, read in ``/proc/<pid>/stat`` by a rank on the same host (the
   diagnosing rank, or a node-mate that published what it saw in the store), or, for a rank
   alone on its host, by its own ``dlsetup`` process, which publishes its worker stopped: state
   ``T`` or ``t`` is a *stopped* process (SIGSTOP, a debugger), a process that is gone (or a
   zombie) is *dead*; the pid is checked against the process's start time, so a reused pid is
   not mistaken for it;
2. the rank's own last word: a rank whose launcher ends it (torchrun's agent sends SIGTERM to a
   node's other ranks once one of them failed) writes so into the store as it ends: *ended*;
3. the launcher's view: the ``dlsetup`` process torchrun started for a rank leaves in torchrun's
   error file how its worker ended (a signal), which a node-mate reads: *dead*;
4. its heartbeat (time, phase, collective) twice a second: silent for more than
   :data:`DEAD_AFTER_S` with no process to look at is *dead*;
5. the monitored barrier: alive but no answer is *hung*;
6. inside ``init_process_group`` (no monitored barrier yet): every rank marks in the store that it
   arrived, just before it calls it; a rank alive (its heartbeat fresh, or its process seen) but
   without the mark never reached gloo's mesh: *hung*. gloo's own error names the store key it
   waited for (``/0//cpu//0/3``, torch's layout): read only as a hint (:func:`gloo_waited_for`).

A stopped rank is told from a dead one by its process state, never by its silence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: A rank whose heartbeat is older than this, with no process to look at, is reported dead.
DEAD_AFTER_S = 3.0
#: Process states (``/proc/<pid>/stat``) of a process that is gone for good.
GONE = ("gone", "Z", "X")
#: Process states of a stopped process (SIGSTOP, SIGTSTP, a debugger).
STOPPED = ("T", "t")
#: Seconds after a rank's last heartbeat that its own ``dlsetup`` process has to publish its worker
#: stopped (it sees the stop within a second, then starts the target interpreter to reach the
#: store: a torch import, seconds on a loaded node), before silence alone names the rank dead.
WITNESS_S = 12.0
#: The ``by`` of a record published by a rank's own ``dlsetup`` process (not another rank).
BY_DLSETUP = "dlsetup"
#: Set to ``1`` in a worker's environment by the ``dlsetup`` process that watches it for a stop.
WATCHED_ENV = "DLSETUP_WATCHED"
#: Verdicts that name a cause, shown before ``ended`` (a rank its launcher ended afterwards).
CAUSES = ("stopped", "dead", "hung", "wrong", "missing")


def proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time in clock ticks)`` of ``pid`` from ``/proc``, or ``None`` if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and ')'
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


def own_start() -> str | None:
    """This process's start time (clock ticks since boot), to tell its pid from a reused one."""
    import os

    stat = proc_stat(os.getpid())
    return stat[1] if stat else None


def proc_namespace() -> str | None:
    """Where this process's pids mean something: the kernel's boot id and the pid namespace.

    Two ranks can read each other's ``/proc`` only when both are equal (one machine, one
    container); a host name is not enough (containers, nodes that all call themselves
    ``localhost``).
    """
    import os

    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None


def proc_state(pid: Any, start: Any) -> str | None:
    """The state letter of a rank's process, ``"gone"``, or ``None`` when it cannot be read here
    (no ``/proc``, or no pid known)."""
    import os

    if not isinstance(pid, int) or not os.path.isdir("/proc/self"):
        return None
    stat = proc_stat(pid)
    if stat is None or (start is not None and stat[1] != str(start)):
        return "gone"
    return stat[0]


def node_of(row: dict[str, Any]) -> str:
    """``node 1 (gpu07)``: the node rank and host of a rank's row, where known."""
    node, host = row.get("node_rank"), row.get("host")
    if node is None:
        return f"host {host}" if host else "node ?"
    return f"node {node} ({host})" if host else f"node {node}"


@dataclass(frozen=True)
class Evidence:
    """What was seen of one rank.

    Attributes:
        rank: the rank.
        node: where it runs (:func:`node_of`).
        heartbeat_age_s: seconds since its last heartbeat; ``None``: never beat.
        phase: the phase its last heartbeat named.
        op: the collective its last heartbeat named (``""``: none, or not one of dlsetup's).
        proc: its process's state (``/proc``), ``"gone"``, or ``None`` when no rank on its host
            looked.
        seen_by: the rank that read ``proc``, or :data:`BY_DLSETUP` (the rank's own ``dlsetup``
            process).
        pid: its worker's pid (in its own host's pid namespace), where known.
        wrapper_gone: its ``dlsetup`` process (the launcher's child) is gone too.
        ended_by: the signal with which its launcher ended it, in its own last word.
        no_answer: it did not pass the monitored barrier.
        launcher: what its launcher holds about it (torchrun's error file of a node-mate: how
            its worker ended, as its ``dlsetup`` process saw it).
        reached_init: ``False``: the diagnosing rank failed inside ``init_process_group`` and
            this rank never marked that it arrived there.
        watched: its own ``dlsetup`` process watches it and publishes a stop (it joined through
            ``dlsetup smoke --distributed``).
    """

    rank: int
    node: str
    heartbeat_age_s: float | None
    phase: str = "?"
    op: str = ""
    proc: str | None = None
    seen_by: int | str | None = None
    pid: int | None = None
    wrapper_gone: bool = False
    ended_by: str | None = None
    no_answer: bool = False
    launcher: str | None = None
    reached_init: bool = True
    watched: bool = False


def parse_beat(text: str | None, now: float) -> tuple[float | None, str, str]:
    """``(age s, phase, collective)`` of a heartbeat ``"<time> <phase> [<collective>]"``."""
    if not text:
        return None, "?", ""
    stamp, _, rest = text.partition(" ")
    phase, _, op = rest.partition(" ")
    try:
        return now - float(stamp), phase or "?", op
    except ValueError:
        return None, "?", ""


def _where(e: Evidence) -> str:
    return f"in phase {e.phase}" + (f", collective {e.op}" if e.op else "")


def _beat(e: Evidence) -> str:
    if e.heartbeat_age_s is None:
        return "no heartbeat at all"
    return f"heartbeat {e.heartbeat_age_s:.1f} s old"


def _seen(e: Evidence) -> str:
    if e.seen_by == BY_DLSETUP:
        return "seen by its own dlsetup process"
    return f"seen by rank {e.seen_by}" if e.seen_by is not None else "seen"


def _pid(e: Evidence) -> str:
    return str(e.pid) if e.pid is not None else "PID"


def _alive(e: Evidence) -> bool:
    """Its heartbeat is fresh, or its process was seen there (neither gone nor stopped)."""
    fresh = e.heartbeat_age_s is not None and e.heartbeat_age_s <= DEAD_AFTER_S
    return fresh or (e.proc is not None and e.proc not in GONE and e.proc not in STOPPED)


def _never_arrived(e: Evidence) -> str:
    if e.heartbeat_age_s is not None and e.heartbeat_age_s <= DEAD_AFTER_S:
        alive = f"heartbeat {e.heartbeat_age_s:.1f} s ago"
    else:
        alive = f"its process running (state {e.proc}), {_seen(e)}, {_beat(e)}"
    return (
        f"alive ({alive}, {_where(e)}) on {e.node} but it never reached init_process_group (no "
        "arrival mark in the store), so gloo's mesh waited for it: stuck before it (its own "
        f"code, or its store connection); py-spy dump --pid {_pid(e)} on that node shows where"
    )


def stuck_before_init(e: Evidence, stuck_s: float, limit_s: float) -> str:
    """What a rank's own watchdog says of it, stuck (alive: it looks itself) between the end of
    the rendezvous's wait and ``init_process_group``, as the others would say it
    (:func:`_never_arrived`), with where to look."""
    return (
        f"alive on {e.node} but stuck for {stuck_s:.0f} s {_where(e)}, after the rendezvous's "
        "wait and before it reached init_process_group (no arrival mark in the store), so "
        "gloo's mesh waited for it: stuck in its own code, or its store connection; py-spy "
        f"dump --pid {_pid(e)} on that node shows where while it is stuck (its watchdog ended "
        f"it after {limit_s:g} s: its Python stacks at that moment are on its stderr)"
    )


def _running_but_silent(e: Evidence) -> str:
    why = (
        "a driver or file-system call that does not return"
        if e.proc == "D"
        else "a call that never returns and holds the interpreter's lock"
    )
    return (
        f"its process is there (state {e.proc}), {_seen(e)} on {e.node}, but its heartbeat "
        f"stopped ({_beat(e)}, last {_where(e)}): not dead, stuck in {why}; py-spy dump "
        f"--native --pid {_pid(e)} on that node shows where"
    )


def verdict(e: Evidence) -> tuple[str, str] | None:
    """``(state, detail)`` for one rank, or ``None`` when nothing is wrong with it."""
    if e.proc in STOPPED:
        return "stopped", (
            f"{_where(e)}: its process is stopped (state {e.proc}: SIGSTOP or a debugger), "
            f"{_beat(e)}, {_seen(e)} on {e.node}; not dead: kill -CONT {_pid(e)} there resumes "
            f"it, or find what stopped it (a debugger: TracerPid in /proc/{_pid(e)}/status)"
        )
    if e.ended_by:
        return "ended", (
            f"{e.ended_by} {_where(e)}, on {e.node}: sent by its launcher after another rank of "
            "its node failed (or the launcher itself was ended), or by another program"
        )
    if e.launcher:
        return "dead", f"{e.launcher} (torchrun's error file for it on {e.node})"
    if e.proc in GONE:
        also = " and so is its dlsetup process" if e.wrapper_gone else ""
        return "dead", (
            f"its process is gone{also} ({_beat(e)}, last {_where(e)}), {_seen(e)} on {e.node}: "
            "exited or killed"
        )
    if not e.reached_init and _alive(e):
        return "hung", _never_arrived(e)
    age = e.heartbeat_age_s
    if (age is None or age > DEAD_AFTER_S) and e.proc is not None:  # seen there, not gone
        return "hung", _running_but_silent(e)
    if age is None or age > DEAD_AFTER_S:
        silent = "no heartbeat at all" if age is None else f"no heartbeat for {age:.1f} s"
        return "dead", (
            f"{silent} (last {_where(e)}) on {e.node}: exited or killed (no rank on its host "
            "could look at its process)"
        )
    if e.no_answer:
        return "hung", (
            f"alive (heartbeat {age:.1f} s ago, {_where(e)}) on {e.node} but no answer to the "
            "monitored barrier"
        )
    return None


def awaits_witness(e: Evidence) -> bool:
    """Whether silence would name this rank dead while its own ``dlsetup`` process may still
    publish its worker stopped: watched, no process state known, heartbeat silent for less than
    :data:`WITNESS_S`."""
    age = e.heartbeat_age_s
    return (
        e.watched and e.proc is None and not e.ended_by and not e.launcher
        and age is not None and DEAD_AFTER_S < age < WITNESS_S
    )  # fmt: skip


def gloo_waited_for(error: str) -> list[int]:
    """The ranks whose store keys gloo's ``wait timeout ... keys: /0//cpu//0/3`` error names (the
    last number of each key: torch's key layout, which may change; a hint, not a verdict)."""
    import re

    found = re.search(r"keys: (.+)", error)
    if not found:
        return []
    ranks = []
    for key in found.group(1).split(","):
        tail = re.search(r"/(\d+)$", key.strip())
        if tail:
            ranks.append(int(tail.group(1)))
    return sorted(set(ranks))


def name_ranks(evidence: list[Evidence]) -> list[dict[str, Any]]:
    """The failure's ``ranks``: every rank with a verdict, causes first (the longest silent
    first), then the ranks their launchers ended afterwards."""
    named = []
    for e in evidence:
        found = verdict(e)
        if found is not None:
            named.append({
                "rank": e.rank, "state": found[0], "detail": found[1],
                "heartbeat_age_s": e.heartbeat_age_s, "node": e.node,
            })  # fmt: skip

    def order(x: dict[str, Any]) -> tuple[int, float]:
        return (x["state"] not in CAUSES, -float(x["heartbeat_age_s"] or 0.0))

    return sorted(named, key=order)


def line(item: dict[str, Any]) -> str:
    """``rank 3 stopped (hung) in phase all_reduce ...``: one named rank, for the logs."""
    if item["state"] == "stopped":
        return f"rank {item['rank']} stopped (hung) {item['detail']}"
    return f"rank {item['rank']} {item['state']} ({item['detail']})"


def witness_record(rank: int | str, state: str, now: float, wrapper_gone: bool) -> str:
    """The store value a node-mate (or the rank's own ``dlsetup`` process, ``by``
    :data:`BY_DLSETUP`) publishes about a rank's process (``seen/<rank>``)."""
    return json.dumps({"by": rank, "state": state, "t": now, "wrapper_gone": wrapper_gone})


def launcher_says(
    error_file: str | None, rank: int, local_rank: int, local_world: int
) -> dict[int, str]:
    """What torchrun's agent holds for this rank's node-mates: the message in each one's error
    file (``<attempt dir>/<local rank>/error.json``, torchrun's layout), by global rank (torchrun
    numbers a node's ranks contiguously)."""
    import os

    if not error_file:
        return {}
    attempt = os.path.dirname(os.path.dirname(error_file))
    said = {}
    for local in range(local_world):
        if local == local_rank:
            continue
        try:
            with open(os.path.join(attempt, str(local), "error.json"), encoding="utf-8") as fh:
                message = json.load(fh).get("message")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(message, dict):
            message = message.get("message")
        if isinstance(message, str) and message:
            text = message.removeprefix("dlsetup smoke --distributed: ")
            said[rank - local_rank + local] = text.removeprefix(
                f"rank {rank - local_rank + local}: "
            )
    return said
