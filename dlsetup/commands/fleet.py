"""``dlsetup fleet``: the same checks on every node, merged into one view."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from dlsetup.fleet.report import FleetReport

SCHEMA = "dlsetup.fleet-report"

#: The fact names ``--allow`` takes (kept here so ``--help`` imports no library module).
FACT_CHOICES = (
    "driver", "cuda_driver", "gpu_count", "gpu_model", "gpu_memory", "mig", "ecc", "torch",
    "torch_cuda", "nccl", "tensorflow", "tensorflow_cuda", "cudnn", "python", "os", "kernel",
    "glibc", "findings", "pci_gpus", "pcie_link", "persistence", "ecc_errors", "memory_repair",
    "clocks_slowdown", "xid", "nvlink", "infiniband",
)  # fmt: skip

REPORT_HELP = """Merge per-node `dlsetup doctor --json` documents (files, or directories of *.json)
into one view: for each fact (versions, modes, and health: PCIe link, persistence, ECC and row
remapping, clock slowdowns, XID errors, NVLink, InfiniBand) the majority value and the nodes that
differ, the findings grouped by check id, a verdict per node with its reasons (the GPUs a node
lacks by index, UUID and PCI bus id), and the expected nodes that sent no document.

\b
Gather the documents with your own launcher, one file per node, e.g.:
  srun --ntasks-per-node=1 --output=doctor-%N.json dlsetup doctor --json
  pdsh -w 'gpu[01-04]' 'dlsetup doctor --json > /shared/doctor/$(hostname -s).json'
A node is named by its file (doctor-gpu01.json -> gpu01): the name the launcher gave it, the one
Slurm's scontrol needs, even where the host's own name differs (gpu01.cluster.local).

\b
Exit codes:
  0  every fact the same on every node (or accepted with --allow), no error finding
  1  a fact drifts, a node has an error finding or lacks a GPU, or an expected node is missing
     (with --hosts/--nodelist only the expected nodes count)
  2  a malformed or unreadable document (named), a schema_version this dlsetup does not read,
     a malformed node list, an unknown --allow fact
"""


@click.group("fleet", short_help="Merge per-node doctor reports; find drift between nodes.")
def fleet() -> None:
    """The same checks on every node: merge per-node doctor documents into a drift report.

    The distributed smoke test of a multi-node job is `dlsetup smoke --distributed`, started by
    torchrun or srun on every rank (see docs/fleet.md).
    """


@fleet.command("report", help=REPORT_HELP, short_help="Merge per-node doctor --json documents.")
@click.argument("documents", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--hosts",
    default=None,
    metavar="A,B,...",
    help="The nodes expected (comma-separated); those without a document are reported missing.",
)
@click.option(
    "--nodelist",
    default=None,
    metavar="EXPR",
    help="The nodes expected, as a Slurm node list: 'gpu[01-04,07],cpu1' (or $SLURM_JOB_NODELIST).",
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    type=click.Choice(FACT_CHOICES),
    metavar="FACT",
    help="Accept drift of this fact (repeatable): still shown, no longer exit 1. Facts: "
    + ", ".join(FACT_CHOICES)
    + ".",
)
@click.option(
    "--slurm-drain",
    is_flag=True,
    help="Print only the `scontrol update nodename=... state=drain reason=...` line of each "
    "failed node (never run: review, then pipe to sh). The exit code is the report's.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the dlsetup.fleet-report envelope.")
@click.pass_context
def report(
    ctx: click.Context,
    documents: tuple[Path, ...],
    hosts: str | None,
    nodelist: str | None,
    allow: tuple[str, ...],
    slurm_drain: bool,
    as_json: bool,
) -> None:
    from dlsetup.fleet.report import fleet_report

    if slurm_drain and as_json:
        raise click.UsageError("--slurm-drain and --json: choose one (the JSON has data.drain)")
    host_list = None
    if hosts is not None:
        host_list = [h.strip() for h in hosts.split(",") if h.strip()]
    result = fleet_report(documents, hosts=host_list, nodelist=nodelist, allow=allow)
    if as_json:
        from dlsetup.output import dumps, envelope

        click.echo(dumps(envelope(SCHEMA, result)))
    elif slurm_drain:
        render_drain(result)
    else:
        from dlsetup.output import make_console

        render(make_console(), result)
    if result.exit_code:
        ctx.exit(result.exit_code)


def _nodes(names: tuple[str, ...] | list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def render_drain(result: FleetReport) -> None:
    """``--slurm-drain``: one ``scontrol`` line per failed node; the rest as ``#`` comments."""
    failed = [v for v in result.verdicts if v.expected and not v.passed]
    click.echo(
        f"# dlsetup fleet report: {len(failed)} of {result.node_count - len(result.unexpected)} "
        "node(s) to drain (review, then run these lines; dlsetup runs nothing)"
    )
    for line in result.drain:
        click.echo(line)
    if result.missing:
        click.echo(f"# sent no document (not drained, look at them): {', '.join(result.missing)}")
    for problem in result.problems:
        if problem.startswith(("one host",)) or ": no majority, a tie" in problem:
            click.echo(f"# not decided per node: {problem}")


def _fact_table(result: FleetReport, group: str, title: str) -> Table:
    from rich import box
    from rich.table import Table

    n = result.node_count
    table = Table(title=title, box=box.SIMPLE, title_justify="left")
    for col in ("fact", "majority value", "nodes", "nodes that differ", "status"):
        table.add_column(col, overflow="fold")
    for fact in (f for f in result.facts if f.group == group):
        differ = "; ".join(
            f"{d.node}: {d.value}" + (" (not expected)" if d.node in result.unexpected else "")
            for d in fact.differing[:8]
        )
        if len(fact.differing) > 8:
            differ += f"; and {len(fact.differing) - 8} more"
        if fact.not_reported:
            differ += ("; " if differ else "") + f"not reported by {len(fact.not_reported)}"
        status = "same" if not fact.drifted else ("allowed" if fact.allowed else "DRIFT")
        if fact.tie and fact.drifted and not fact.allowed:
            status = "TIE"
        if fact.faulty and not fact.allowed:
            status = f"FAULT ({len(fact.faulty)})"
        majority = "tie: " + fact.majority if fact.tie else fact.majority
        count = f"{fact.majority_nodes}/{n}" + (" each" if fact.tie else "")
        table.add_row(fact.label, majority, count, differ, status)
    return table


def render(console: Console, result: FleetReport) -> None:
    """The fleet report for people: facts tables, findings, node verdicts, missing nodes."""
    from rich import box
    from rich.table import Table

    n = result.node_count
    console.print(_fact_table(result, "setup", f"{n} node(s): each fact's majority value"))
    console.print(_fact_table(result, "health", "health, per node"))
    if result.findings:
        ftable = Table(title="findings by check id", box=box.SIMPLE, title_justify="left")
        for col in ("check id", "severity", "nodes", "which"):
            ftable.add_column(col, overflow="fold")
        for g in result.findings:
            ftable.add_row(g.id, g.severity, f"{g.node_count}/{n}", _nodes(list(g.nodes)))
        console.print(ftable)
    failed = [v for v in result.verdicts if not v.passed]
    console.print(
        f"Node verdicts: {n - len(failed)} pass, {len(failed)} fail"
        + (" (drain lines: --slurm-drain)" if result.drain else ""),
        soft_wrap=True,
    )
    for v in failed:
        tag = "" if v.expected else " (not expected: does not fail the report)"
        console.print(f"  {v.node}{tag}: {'; '.join(v.reasons)}", soft_wrap=True, markup=False)
    if result.expected is not None:
        console.print(
            f"Expected {len(set(result.expected))} node(s); missing: "
            f"{_nodes(list(result.missing)) if result.missing else 'none'}",
            soft_wrap=True,
        )
        if result.unexpected:
            console.print(f"Not expected but present: {_nodes(list(result.unexpected))}")
    for problem in result.problems:
        console.print(f"FAIL {problem}", soft_wrap=True, markup=False)
    console.print(f"Result: {'PASS' if result.passed else 'FAIL'} ({n} node(s))")


SMOKE_SCHEMA = "dlsetup.smoke-distributed"
#: ``--timeout`` under ``--distributed`` when not given: seconds per collective, not minutes.
DISTRIBUTED_TIMEOUT_S = 30.0
#: smoke's options that mean nothing for one rank of a distributed run.
_NOT_DISTRIBUTED = (
    "frameworks", "devices", "plot", "benchmark", "output", "github_benchmark", "baseline",
    "max_disagreement", "force",
)  # fmt: skip


def smoke_distributed(
    ctx: click.Context, *, python: str | None, as_json: bool, seed: int, steps: int
) -> None:
    """``dlsetup smoke --distributed``: run this rank; rank 0 renders the report."""
    import os
    import sys

    from click.core import ParameterSource

    from dlsetup.errors import InputError, Terminated
    from dlsetup.fleet.distributed import DistributedOptions, resolve_launch, run_distributed

    for name in _NOT_DISTRIBUTED:
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            option = "--" + {"frameworks": "framework", "devices": "device",
                             "baseline": "compare"}.get(name, name).replace("_", "-")  # fmt: skip
            raise InputError(
                f"{option} does not apply with --distributed",
                fix="leave it out; the distributed smoke runs torch on each rank's own device",
            )
    timeout = float(ctx.params["timeout"])
    if ctx.get_parameter_source("timeout") == ParameterSource.DEFAULT:
        timeout = DISTRIBUTED_TIMEOUT_S
    interpreter = Path(python) if python is not None else Path(sys.executable)
    rank = resolve_launch(os.environ).rank
    try:
        outcome = run_distributed(
            DistributedOptions(python=interpreter, timeout_s=timeout, seed=seed, steps=steps)
        )
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: torchrun ends a failed node's ranks
        if rank != 0:  # only rank 0 speaks: no error document from the others on stdout
            sys.stderr.flush()
            os._exit(143 if isinstance(exc, Terminated) else 130)
        raise
    if outcome.report is not None:
        if as_json:
            from dlsetup.output import dumps, envelope

            click.echo(dumps(envelope(SMOKE_SCHEMA, outcome.report)))
        else:
            from dlsetup.output import make_console

            render_distributed(make_console(), outcome.report)
    if outcome.exit_code:
        ctx.exit(outcome.exit_code)


def _ms(value: object) -> str:
    return f"{value * 1000:.1f}" if isinstance(value, (int, float)) else "n/a"


def render_distributed(console: Console, report: dict[str, Any]) -> None:
    """The distributed smoke report: a row per rank, the collectives, the verdicts."""
    from rich import box
    from rich.table import Table

    n = report["world_size"]
    console.print(
        f"Distributed smoke: {n} rank(s), {report['backend']} on {report['device_kind']}, "
        f"launched by {report['launcher']}, rendezvous {report['master']}, timeout "
        f"{report['timeout_s']:g} s per collective"
    )
    table = Table(box=box.SIMPLE, title="one row per rank", title_justify="left")
    for col in ("rank", "node", "local", "device", "init ms", "all-reduce", "matmul ms",
                "DDP", "grid", "status"):  # fmt: skip
        table.add_column(col, justify="right" if col.endswith("ms") else "left")
    for row in report["ranks"]:
        grid = row.get("grid") or {}
        grid_text = f"{grid.get('combinations_passed')}/{grid.get('combinations')}" if grid else "-"
        status = row.get("status", "ok")
        if row.get("straggler"):
            status = f"{status}, STRAGGLER"
        flag = {True: "ok", False: "WRONG", None: "-"}
        table.add_row(
            str(row["rank"]), str(row.get("host", "?")), str(row.get("local_rank", "?")),
            str(row.get("device", "?")), _ms(row.get("init_s")),
            flag[row.get("allreduce_ok")],
            f"{row['matmul_ms']:.2f}" if isinstance(row.get("matmul_ms"), float) else "-",
            {True: "ok", False: "DIFFERS", None: "-"}[row.get("ddp_ok")], grid_text, status,
        )  # fmt: skip
    console.print(table)
    bandwidth = (report.get("bandwidth") or {}).get("sizes") or []
    if bandwidth:
        bw = Table(
            box=box.SIMPLE,
            title="all-reduce bandwidth (nccl-tests: busbw = algbw x 2(n-1)/n; the slowest "
            "rank's time)",
            title_justify="left",
        )
        for col in ("bytes", "time ms (slowest rank)", "slowest rank", "algbw GB/s", "busbw GB/s"):
            bw.add_column(col, justify="right")
        for s in bandwidth:
            bw.add_row(str(s["bytes"]), _ms(s["time_s"]), str(s["slowest_rank"]),
                       f"{s['algbw_GBps']:.3f}", f"{s['busbw_GBps']:.3f}")  # fmt: skip
        console.print(bw)
    matmul = report.get("matmul")
    if matmul:
        stragglers = matmul["stragglers"]
        console.print(
            f"matmul {matmul['n']}x{matmul['n']}: median {matmul['median_ms']:.2f} ms over ranks; "
            + (
                f"STRAGGLER rank(s) {', '.join(map(str, stragglers))} (> "
                f"{matmul['straggler_factor']:g} x the median)"
                if stragglers
                else f"no straggler (none > {matmul['straggler_factor']:g} x the median)"
            ),
            soft_wrap=True,
        )
    for check in report["checks"]:
        mark = "ok  " if check["passed"] else "FAIL"
        console.print(f"{mark} {check['name']}: {check['detail']}", soft_wrap=True, markup=False)
    failure = report.get("failure")
    if failure:
        console.print(
            f"FAIL in phase {failure['phase']}: {failure['error']}", soft_wrap=True, markup=False
        )
        for r in failure["ranks"]:
            state = "stopped (hung)" if r["state"] == "stopped" else r["state"]
            console.print(f"  rank {r['rank']}: {state} — {r['detail']}", soft_wrap=True,
                          markup=False)  # fmt: skip
    console.print(
        f"Result: {'PASS' if report['passed'] else 'FAIL'} in {report['wall_s']:.1f} s (rank 0)"
    )
