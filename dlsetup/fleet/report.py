"""Merge per-node ``dlsetup doctor --json`` documents into one fleet view.

Each node's document (gathered by the user's launcher: ``srun --output=doctor-%N.json dlsetup
doctor --json``, pdsh, Ansible) is read and checked by :mod:`dlsetup.fleet.intake` into a
:class:`NodeFacts`: one short string per fact of :data:`FACTS`. For each fact, :func:`merge` finds
the majority value and names the nodes that differ (a node that reported nothing for a fact, such
as the framework rows of ``doctor --no-frameworks``, is listed as not reporting, not as differing;
a tie is named a tie). It groups the findings by check id, gives every node a verdict with its
reasons (the facts where it is the odd one out, its error findings, the GPUs it lacks by index,
UUID and PCI bus id where the documents tell), lists the nodes to drain as ``scontrol`` lines, and
the nodes that were expected (``--hosts`` or a Slurm node list) but sent no document. Only the
expected nodes can fail the report when a list of them is given.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlsetup.errors import ExitCode, InputError
from dlsetup.fleet import readers as r
from dlsetup.fleet.intake import DOCTOR_SCHEMA, FIX, collect_paths, read_node_document

SEVERITIES = ("error", "warning", "info")
#: A Slurm drain reason longer than this is cut (``scontrol show node`` prints it on one line).
DRAIN_REASON_CHARS = 200

Data = Mapping[str, Any]


def _findings(data: Data) -> list[Data]:
    findings = r.get(data, "findings")
    if findings is None:
        return []
    if not isinstance(findings, list):
        raise r.MalformedError("findings is not a list")
    return list(findings)


def _findings_fact(data: Data) -> str:
    ids = sorted({f["id"] for f in _findings(data) if f["severity"] in ("error", "warning")})
    return ", ".join(ids) if ids else "none"


@dataclass(frozen=True)
class Fact:
    """One fact compared across nodes (the one table: report, table, schema and docs read it).

    Attributes:
        name: the fact's id (``--allow`` takes it).
        label: its name for people.
        group: ``setup`` (versions, modes) or ``health`` (links, errors, slowdowns).
        read: the document's ``data`` -> the fact's value as a short string.
        problems: for a health fact, what is wrong on the node whatever the majority says
            (an XID, a port down): each a short reason that fails the node.
    """

    name: str
    label: str
    group: str
    read: Callable[[Data], str]
    problems: Callable[[Data], list[str]] | None = None


#: Every fact compared, in the order the tables show them.
FACTS: tuple[Fact, ...] = (
    Fact("driver", "NVIDIA driver", "setup", r.simple("nvidia", "driver_version")),
    Fact(
        "cuda_driver", "CUDA (driver's newest)", "setup", r.simple("nvidia", "cuda_driver_version")
    ),
    Fact("gpu_count", "GPU count", "setup", r.gpu_count),
    Fact("gpu_model", "GPU model", "setup", r.gpu_model),
    Fact("gpu_memory", "GPU memory", "setup", r.gpu_memory),
    Fact("mig", "MIG mode", "setup", r.per_gpu_mode("mig_mode_current")),
    Fact("ecc", "ECC mode", "setup", r.per_gpu_mode("ecc_mode_current")),
    Fact("torch", "PyTorch", "setup", r.framework_version("torch")),
    Fact("torch_cuda", "PyTorch's CUDA", "setup", r.simple("frameworks", "torch", "torch", "cuda")),
    Fact("nccl", "NCCL (PyTorch's)", "setup", r.nccl),
    Fact("tensorflow", "TensorFlow", "setup", r.framework_version("tensorflow")),
    Fact(
        "tensorflow_cuda",
        "TensorFlow's CUDA",
        "setup",
        r.simple("frameworks", "tensorflow", "tensorflow", "cuda_version"),
    ),
    Fact("cudnn", "cuDNN library", "setup", r.simple("cuda_libs", "cudnn", "version")),
    Fact("python", "Python", "setup", r.simple("system", "python_version")),
    Fact("os", "OS", "setup", r.simple("system", "distribution")),
    Fact("kernel", "kernel", "setup", r.simple("system", "kernel")),
    Fact("glibc", "glibc", "setup", r.simple("system", "glibc")),
    Fact("findings", "error/warning findings", "setup", _findings_fact),
    Fact("pci_gpus", "NVIDIA GPUs on the PCI bus", "health", r.pci_gpus, r.pci_problems),
    Fact("pcie_link", "PCIe link (max gen, width)", "health", r.pcie_link, r.pcie_problems),
    Fact("persistence", "persistence mode", "health", r.per_gpu_mode("persistence_mode")),
    Fact("ecc_errors", "uncorrected ECC errors", "health", r.ecc_errors, r.ecc_problems),
    Fact(
        "memory_repair",
        "row remapping / page retirement",
        "health",
        r.memory_repair,
        r.memory_repair_problems,
    ),
    Fact("clocks_slowdown", "clocks slowdown", "health", r.clocks_slowdown, r.clocks_problems),
    Fact("xid", "XID errors (kernel log)", "health", r.xid_errors, r.xid_problems),
    Fact("nvlink", "NVLink", "health", r.nvlink, r.nvlink_problems),
    Fact("infiniband", "InfiniBand ports", "health", r.infiniband, r.infiniband_problems),
)
FACT_NAMES: tuple[str, ...] = tuple(f.name for f in FACTS)


@dataclass(frozen=True)
class NodeFinding:
    """One finding of one node (the fields the fleet view groups by)."""

    id: str
    severity: str
    title: str


@dataclass(frozen=True)
class GpuSlot:
    """A GPU a node reported: its NVML index, UUID and PCI bus id (``None`` where not known)."""

    index: int | None
    uuid: str | None
    pci_bus_id: str | None
    lost: bool


@dataclass(frozen=True)
class NodeFacts:
    """One node's document, read.

    Attributes:
        node: the node's name (from its file's name).
        hostname: the host name the document reports (``None`` when it has none).
        source: the file it came from.
        facts: fact name -> value (a short string; ``n/a (reason)`` when not read).
        findings: the node's findings.
        exit_code: the exit code doctor reported for the node.
        gpus: the GPUs NVML listed.
        pci_bus_ids: the NVIDIA GPUs' bus ids on the PCI bus (``None``: not reported).
        health: health fact name -> what is wrong on the node (only facts with a problem).
    """

    node: str
    source: str
    facts: Mapping[str, str]
    findings: tuple[NodeFinding, ...]
    exit_code: int | None
    hostname: str | None = None
    gpus: tuple[GpuSlot, ...] = ()
    pci_bus_ids: tuple[str, ...] | None = None
    health: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class NodeValue:
    """A node and its value of a fact."""

    node: str
    value: str


@dataclass(frozen=True)
class FactSummary:
    """One fact across the fleet.

    Attributes:
        fact: the fact's name (:data:`FACT_NAMES`).
        label: its name for people.
        group: ``setup`` or ``health``.
        majority: the value most nodes have; on a tie, the tied values joined by `` | ``.
        majority_nodes: how many nodes have it (each tied value's count on a tie).
        tie: two or more values are held by as many nodes: no node is called the odd one.
        differing: the nodes whose value is not the majority (every node with a value on a tie),
            sorted by node.
        not_reported: the nodes that reported nothing for it (an older document,
            ``--no-frameworks``, a log only root may read): not counted as differing.
        drifted: an expected node differs (or, on a tie, the values are split).
        allowed: the drift was accepted with ``--allow``.
        faulty: the nodes with a health fault in this fact (an XID, a port down), whatever the
            majority says.
    """

    fact: str
    label: str
    group: str
    majority: str
    majority_nodes: int
    tie: bool
    differing: tuple[NodeValue, ...]
    not_reported: tuple[str, ...]
    drifted: bool
    allowed: bool
    faulty: tuple[str, ...] = ()


@dataclass(frozen=True)
class FindingGroup:
    """One check id across the fleet: the nodes that reported it."""

    id: str
    severity: str
    title: str
    node_count: int
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class MissingGpu:
    """A GPU a node lacks, as far as the documents tell.

    Attributes:
        index: its NVML index (on the node, or where the majority of nodes has it).
        uuid: its UUID (known only when NVML still lists it, lost).
        pci_bus_id: its PCI bus id.
        state: ``lost`` (NVML lists it, cannot reach it), ``not on the PCI bus``, ``on the PCI bus,
            not listed by NVML``, or ``not identified`` (the document has no PCI bus ids).
    """

    index: int | None
    uuid: str | None
    pci_bus_id: str | None
    state: str


@dataclass(frozen=True)
class NodeVerdict:
    """One node's verdict.

    Attributes:
        node: the node's name.
        hostname: the host name its document reports.
        expected: the node is in ``--hosts``/``--nodelist`` (always true without them).
        passed: no reason below.
        reasons: why it fails, one short line each.
        missing_gpus: the GPUs it lacks.
    """

    node: str
    hostname: str | None
    expected: bool
    passed: bool
    reasons: tuple[str, ...]
    missing_gpus: tuple[MissingGpu, ...]


@dataclass(frozen=True)
class FleetReport:
    """The merged view; ``exit_code`` is 1 on unaccepted drift, error findings or missing nodes
    (of the expected nodes when a list of them was given)."""

    node_count: int
    nodes: tuple[str, ...]
    sources: Mapping[str, str]
    expected: tuple[str, ...] | None
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    facts: tuple[FactSummary, ...]
    findings: tuple[FindingGroup, ...]
    verdicts: tuple[NodeVerdict, ...]
    drain: tuple[str, ...]
    allowed: tuple[str, ...]
    problems: tuple[str, ...]
    passed: bool
    exit_code: int


def _gpu_slots(data: Data) -> tuple[GpuSlot, ...]:
    slots = []
    for i, g in enumerate(r.gpus(data)):
        index, uuid, bus = g.get("index"), g.get("uuid"), g.get("pci_bus_id")
        slots.append(
            GpuSlot(
                index=index if isinstance(index, int) else i,
                uuid=uuid if isinstance(uuid, str) else None,
                pci_bus_id=bus if isinstance(bus, str) else None,
                lost=g.get("lost") is True,
            )
        )
    return tuple(slots)


def read_document(path: Path) -> NodeFacts:
    """Read one node's ``dlsetup doctor --json`` document (checked against its schema).

    Raises:
        InputError: the file cannot be read, is not JSON, is not a ``dlsetup.doctor`` document of
            a version this dlsetup reads, or has a field of the wrong type; the message names
            the file.
    """
    document = read_node_document(path)
    data = document.data
    try:
        facts = {fact.name: fact.read(data) for fact in FACTS}
        findings = tuple(
            NodeFinding(str(f["id"]), str(f["severity"]), str(f.get("title", "")))
            for f in _findings(data)
        )
        gpus = _gpu_slots(data)
        bus_ids = r.pci_bus_ids(data)
        health = {
            fact.name: tuple(found)
            for fact in FACTS
            if fact.problems is not None and (found := fact.problems(data))
        }
    except r.MalformedError as exc:
        raise InputError(f"{path}: malformed {DOCTOR_SCHEMA} document: {exc}", fix=FIX) from exc
    exit_code = data.get("exit_code")
    return NodeFacts(
        node=document.node,
        hostname=document.hostname,
        source=document.source,
        facts=facts,
        findings=findings,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        gpus=gpus,
        pci_bus_ids=tuple(bus_ids) if bus_ids is not None else None,
        health=health,
    )


def _short(name: str) -> str:
    return name.split(".", 1)[0]


def _summarise(
    fact: Fact, values: Mapping[str, str], scope: set[str], allowed: Sequence[str]
) -> FactSummary:
    """One fact: majority over the expected nodes that reported a value."""
    reported = {n: v for n, v in values.items() if not r.is_no_value(v)}
    not_reported = tuple(n for n in values if n not in reported)
    counted = Counter(v for n, v in reported.items() if n in scope)
    if not counted:  # nobody in scope reported it: show what all nodes say, nothing to compare
        everyone = Counter(values[n] for n in scope) or Counter(values.values())
        value = sorted(everyone, key=lambda v: (-everyone[v], v))[0]
        return FactSummary(
            fact.name, fact.label, fact.group, value, everyone[value], False, (), (), False, False
        )
    top = max(counted.values())
    leaders = sorted(v for v, n in counted.items() if n == top)
    tie = len(leaders) > 1
    majority = " | ".join(leaders)
    differing = tuple(NodeValue(n, v) for n, v in reported.items() if tie or v != leaders[0])
    drifted = tie or any(d.node in scope for d in differing)
    return FactSummary(
        fact=fact.name,
        label=fact.label,
        group=fact.group,
        majority=majority,
        majority_nodes=top,
        tie=tie,
        differing=differing,
        not_reported=not_reported,
        drifted=drifted,
        allowed=drifted and fact.name in allowed,
    )


def _finding_groups(by_name: Mapping[str, NodeFacts]) -> list[FindingGroup]:
    groups: dict[str, list[tuple[str, NodeFinding]]] = {}
    for name in sorted(by_name):
        for finding in dict.fromkeys(by_name[name].findings):
            groups.setdefault(finding.id, []).append((name, finding))
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(
        (
            FindingGroup(
                id=check_id,
                severity=min((f.severity for _, f in items), key=rank.__getitem__),
                title=items[0][1].title,
                node_count=len({n for n, _ in items}),
                nodes=tuple(sorted({n for n, _ in items})),
            )
            for check_id, items in groups.items()
        ),
        key=lambda g: (rank[g.severity], -g.node_count, g.id),
    )


def _reference_bus_ids(nodes: Iterable[NodeFacts]) -> list[str]:
    """The GPU bus ids most nodes have (each held by more than half the nodes that report them)."""
    reporting = [n.pci_bus_ids for n in nodes if n.pci_bus_ids is not None]
    counts = Counter(b for ids in reporting for b in set(ids))
    return sorted(b for b, c in counts.items() if c * 2 > len(reporting))


def missing_gpus(node: NodeFacts, fleet_count: str, reference: Sequence[str]) -> list[MissingGpu]:
    """The GPUs ``node`` lacks: lost ones, ones off the PCI bus, ones the driver does not list."""
    # NVML numbers GPUs in PCI bus order: a lost GPU's bus id is its index's in the reference
    in_order = len(node.gpus) == len(reference)
    found = [
        MissingGpu(
            g.index,
            g.uuid,
            g.pci_bus_id or (reference[g.index] if in_order and g.index is not None else None),
            "lost",
        )
        for g in node.gpus
        if g.lost
    ]
    listed = {g.pci_bus_id for g in node.gpus if g.pci_bus_id is not None}
    if node.pci_bus_ids is not None:
        on_bus = set(node.pci_bus_ids)
        found += [
            MissingGpu(reference.index(b), None, b, "not on the PCI bus")
            for b in reference
            if b not in on_bus
        ]
        if listed:
            found += [
                MissingGpu(
                    reference.index(b) if b in reference else None,
                    None,
                    b,
                    "on the PCI bus, not listed by NVML",
                )
                for b in sorted(on_bus - listed)
            ]
        else:  # which of them NVML lacks is not known without NVML's bus ids
            found += [MissingGpu(None, None, None, "on the PCI bus, not listed by NVML")] * max(
                0, len(on_bus) - len(node.gpus)
            )
    count = node.facts["gpu_count"]
    fewer = count.isdigit() and fleet_count.isdigit() and int(count) < int(fleet_count)
    if fewer and len(found) < int(fleet_count) - int(count):
        found.append(MissingGpu(None, None, None, "not identified"))
    return found


def _gpu_words(gpu: MissingGpu) -> str:
    if gpu.state == "not identified":
        return "which one is not known (the document has no PCI bus ids)"
    parts = [f"GPU {gpu.index}" if gpu.index is not None else "a GPU"]
    ids = [
        f"UUID {gpu.uuid}" if gpu.uuid else "",
        f"PCI {gpu.pci_bus_id}" if gpu.pci_bus_id else "",
    ]
    inner = ", ".join(p for p in ids if p)
    return f"{parts[0]} ({inner}{', ' if inner else ''}{gpu.state})"


def _verdict(
    node: NodeFacts,
    summaries: Sequence[FactSummary],
    expected: bool,
    reference: Sequence[str],
) -> NodeVerdict:
    gpu_count = next(s for s in summaries if s.fact == "gpu_count")
    lacking = missing_gpus(node, "" if gpu_count.tie else gpu_count.majority, reference)
    reasons = ["missing " + _gpu_words(g) for g in lacking]
    health = node.health or {}
    reasons += [reason for s in summaries if not s.allowed for reason in health.get(s.fact, ())]
    reasons += [f"error finding {f.id}" for f in node.findings if f.severity == "error"]
    for s in summaries:
        value = node.facts[s.fact]
        if s.tie or s.allowed or s.fact in health or r.is_no_value(value) or value == s.majority:
            continue
        reasons.append(f"{s.fact} {value} (fleet: {s.majority})")
    return NodeVerdict(
        node=node.node,
        hostname=node.hostname,
        expected=expected,
        passed=not reasons,
        reasons=tuple(dict.fromkeys(reasons)),
        missing_gpus=tuple(lacking),
    )


def drain_line(verdict: NodeVerdict) -> str:
    """The ``scontrol update`` line that drains a failed node (printed for the admin, never run)."""
    reason = "dlsetup: " + "; ".join(verdict.reasons)
    if len(reason) > DRAIN_REASON_CHARS:
        reason = reason[: DRAIN_REASON_CHARS - 3] + "..."
    return (
        f"scontrol update nodename={shlex.quote(verdict.node)} state=drain "
        f"reason={shlex.quote(reason)}"
    )


def _scope(
    names: Sequence[str], expected: Sequence[str] | None
) -> tuple[set[str], tuple[str, ...], tuple[str, ...]]:
    """(the nodes that count, the expected nodes without a document, the unexpected nodes)."""
    if expected is None:
        return set(names), (), ()
    present = set(names) | {_short(n) for n in names}
    missing = tuple(
        h for h in dict.fromkeys(expected) if h not in present and _short(h) not in present
    )
    wanted = set(expected) | {_short(h) for h in expected}
    unexpected = tuple(n for n in names if n not in wanted and _short(n) not in wanted)
    return set(names) - set(unexpected), missing, unexpected


def _index(nodes: Sequence[NodeFacts]) -> dict[str, NodeFacts]:
    by_name: dict[str, NodeFacts] = {}
    for node in nodes:
        if node.node in by_name:
            raise InputError(
                f"two documents for node {node.node}: {by_name[node.node].source} and "
                f"{node.source}",
                fix="give one document per node",
            )
        by_name[node.node] = node
    return by_name


def _copied(by_name: Mapping[str, NodeFacts]) -> list[str]:
    """Problems for one host's document found under two node names (a copied file)."""
    hosts: dict[str, list[str]] = {}
    for name, node in sorted(by_name.items()):
        if node.hostname:
            hosts.setdefault(node.hostname, []).append(name)
    return [
        f"one host ({host}) wrote the documents of {len(names)} nodes: {', '.join(names)} "
        "(a document copied under another node's name?)"
        for host, names in hosts.items()
        if len(names) > 1
    ]


def _problems(
    summaries: Sequence[FactSummary],
    findings: Sequence[FindingGroup],
    scope: set[str],
    missing: Sequence[str],
    total: int,
) -> list[str]:
    problems = []
    for s in summaries:
        if not s.drifted or s.allowed:
            continue
        if s.tie:
            split = "; ".join(
                f"{v} on {', '.join(d.node for d in s.differing if d.value == v)}"
                for v in s.majority.split(" | ")
            )
            problems.append(f"{s.fact}: no majority, a tie between {s.majority_nodes} node(s) "
                            f"each: {split}")  # fmt: skip
            continue
        odd = [d for d in s.differing if d.node in scope]
        problems.append(
            f"{s.fact} drifts: {len(odd)} of {total} node(s) differ from {s.majority!r}: "
            + ", ".join(f"{d.node}={d.value}" for d in odd)
        )
    for g in findings:
        nodes = [n for n in g.nodes if n in scope]
        if g.severity == "error" and nodes:
            problems.append(f"error finding {g.id} on {len(nodes)} node(s): {', '.join(nodes)}")
    if missing:
        problems.append(f"{len(missing)} expected node(s) sent no document: {', '.join(missing)}")
    return problems


def merge(
    nodes: Sequence[NodeFacts],
    *,
    expected: Sequence[str] | None = None,
    allow: Iterable[str] = (),
) -> FleetReport:
    """Merge nodes' facts: per fact the majority and the nodes that differ; a verdict per node.

    Args:
        nodes: one per node (:func:`read_document`).
        expected: the node names that should be there (``--hosts``, an expanded node list);
            a document whose name or short name (before the first dot) matches counts. When
            given, only these nodes set the majority and can fail the report; the others are
            listed as unexpected with their differences.
        allow: fact names whose drift is accepted (shown, not failed).

    Raises:
        InputError: no node, two documents for the same node, or an unknown fact in ``allow``.
    """
    allowed = tuple(dict.fromkeys(allow))
    unknown = [a for a in allowed if a not in FACT_NAMES]
    if unknown:
        raise InputError(
            f"--allow {unknown[0]}: no such fact", fix=f"facts: {', '.join(FACT_NAMES)}"
        )
    if not nodes:
        raise InputError("no node document given", fix="give one doctor --json file per node")
    by_name = _index(nodes)
    names = tuple(sorted(by_name))
    scope, missing, unexpected = _scope(names, expected)
    summaries = tuple(
        dataclasses.replace(
            _summarise(fact, {n: by_name[n].facts[fact.name] for n in names}, scope, allowed),
            faulty=tuple(n for n in names if fact.name in (by_name[n].health or {})),
        )
        for fact in FACTS
    )
    findings = _finding_groups(by_name)
    reference = _reference_bus_ids(by_name[n] for n in sorted(scope))
    verdicts = tuple(_verdict(by_name[n], summaries, n in scope, reference) for n in names)
    problems = _problems(summaries, findings, scope, missing, len(scope))
    problems += [f"node {v.node} has {len(v.missing_gpus)} GPU(s) missing: "
                 + "; ".join(_gpu_words(g) for g in v.missing_gpus)
                 for v in verdicts if v.expected and v.missing_gpus]  # fmt: skip
    problems += [
        f"node {n} health: " + "; ".join(p for s in summaries if not s.allowed
                                         for p in (by_name[n].health or {}).get(s.fact, ()))
        for n in sorted(scope)
        if any(not s.allowed and s.fact in (by_name[n].health or {}) for s in summaries)
    ]  # fmt: skip
    problems += _copied(by_name)
    passed = not problems
    return FleetReport(
        node_count=len(names),
        nodes=names,
        sources={n: by_name[n].source for n in names},
        expected=tuple(expected) if expected is not None else None,
        missing=missing,
        unexpected=unexpected,
        facts=summaries,
        findings=tuple(findings),
        verdicts=verdicts,
        drain=tuple(drain_line(v) for v in verdicts if v.expected and not v.passed),
        allowed=allowed,
        problems=tuple(problems),
        passed=passed,
        exit_code=int(ExitCode.OK if passed else ExitCode.FINDINGS),
    )


def fleet_report(
    inputs: Iterable[Path],
    *,
    hosts: Sequence[str] | None = None,
    nodelist: str | None = None,
    allow: Iterable[str] = (),
) -> FleetReport:
    """Read the documents (files or directories of ``*.json``) and merge them.

    Args:
        inputs: files, or directories standing for their ``*.json`` files.
        hosts: the expected node names.
        nodelist: the expected nodes as a Slurm node list (``gpu[01-04]``); joined with ``hosts``.
        allow: facts whose drift is accepted.

    Raises:
        InputError: a malformed document (named), a malformed node list, an unknown fact.
    """
    expected: list[str] | None = None
    if hosts is not None or nodelist is not None:
        from dlsetup.fleet.nodelist import expand_nodelist

        expected = list(hosts or ())
        if nodelist is not None:
            expected += expand_nodelist(nodelist)
    nodes = [read_document(p) for p in collect_paths(inputs)]
    return merge(nodes, expected=expected, allow=allow)
