"""Merge per-node ``dlsetup doctor --json`` documents into one fleet view.

Each node's document (gathered by the user's launcher: ``srun --output=doctor-%N.json dlsetup
doctor --json``, pdsh, Ansible) is read into a :class:`NodeFacts`: one short string per fact of
:data:`FACTS`. For each fact, :func:`merge` finds the majority value and names the nodes that
differ; it groups the findings by check id with the nodes that have them, and lists the nodes that
were expected (``--hosts`` or a Slurm node list) but sent no document.

A node is named by ``data.system.hostname`` when the document has one, else by its file's name
without ``.json`` (``doctor-gpu01.json`` -> ``gpu01``: a leading ``doctor-`` is dropped).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlsetup.errors import ExitCode, InputError

DOCTOR_SCHEMA = "dlsetup.doctor"
SEVERITIES = ("error", "warning", "info")

Data = Mapping[str, Any]

#: A node's ``doctor --json`` document is a few dozen KiB; a larger file is not one.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


class _Malformed(Exception):
    """A field of a document has the wrong type (turned into an InputError naming the file)."""


def _get(data: Data, *keys: str) -> Any:
    """``data[k1][k2]...``; ``None`` when a key is absent (an older or partial document)."""
    value: Any = data
    walked: list[str] = []
    for key in keys:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise _Malformed(f"{'.'.join(walked) or 'data'} is not an object")
        if "reason" in value and key not in value:  # a Missing section: its reason is the value's
            return value
        value = value.get(key)
        walked.append(key)
    return value


def _text(value: Any) -> str:
    """One fact value as a short string: a Missing object says why (``n/a (no_driver)``)."""
    if value is None:
        return "not reported"
    if isinstance(value, Mapping) and "reason" in value:
        return f"n/a ({value['reason']})"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise _Malformed(f"expected a value, got {type(value).__name__}")


def _gpus(data: Data) -> list[Data]:
    gpus = _get(data, "nvidia", "gpus")
    if gpus is None:
        return []
    if not isinstance(gpus, list) or not all(isinstance(g, Mapping) for g in gpus):
        raise _Malformed("nvidia.gpus is not a list of objects")
    return list(gpus)


def _collapse(values: Sequence[str]) -> str:
    """Per-GPU values as one string: ``8 x NVIDIA H100``, or ``A100 x 1 + V100 x 1`` when mixed."""
    if not values:
        return "no GPU"
    counts = Counter(values)
    if len(counts) == 1:
        return f"{len(values)} x {values[0]}"
    return " + ".join(f"{v} x {n}" for v, n in sorted(counts.items()))


def _per_gpu_mode(data: Data, field: str) -> str:
    """``off``, ``on``, or ``on: GPU 0,3`` (mixed) for a boolean per-GPU mode (MIG, ECC)."""
    gpus = _gpus(data)
    if not gpus:
        return "no GPU"
    values = [_text(g.get(field)) for g in gpus]
    if len(set(values)) == 1:
        return values[0]
    on = [
        str(g.get("index", i))
        for i, (g, v) in enumerate(zip(gpus, values, strict=True))
        if v == "on"
    ]
    return f"mixed: on GPU {','.join(on)}" if on else "mixed: " + ",".join(values)


def _gpu_memory(data: Data) -> str:
    values = []
    for g in _gpus(data):
        total = g.get("memory_total_bytes")
        values.append(f"{total // 2**20} MiB" if isinstance(total, int) else _text(total))
    return _collapse(values)


def _ecc_errors(data: Data) -> str:
    gpus = _gpus(data)
    if not gpus:
        return "no GPU"
    bad = [
        f"GPU {g.get('index', i)}: {g['ecc_errors_uncorrected']}"
        for i, g in enumerate(gpus)
        if isinstance(g.get("ecc_errors_uncorrected"), int) and g["ecc_errors_uncorrected"] > 0
    ]
    return "; ".join(bad) if bad else "0"


def _framework_version(name: str) -> Callable[[Data], str]:
    def read(data: Data) -> str:
        probe = _get(data, "frameworks", name)
        if isinstance(probe, Mapping) and "reason" in probe:
            return _text(probe)
        if isinstance(probe, Mapping) and probe.get("status") not in (None, "ok"):
            return f"n/a ({probe.get('status')})"
        return _text(_get(data, "frameworks", name, "version"))

    return read


def _nccl(data: Data) -> str:
    """NCCL of the torch build: ``frameworks.torch.torch.nccl`` where the probe reports it."""
    build = _get(data, "frameworks", "torch", "torch")
    if not isinstance(build, Mapping) or "reason" in build:
        return _text(build) if build is not None else "not reported"
    for key in ("nccl", "nccl_version"):
        if key in build:
            return _text(build[key])
    return "not reported"


def _findings_fact(data: Data) -> str:
    ids = sorted({f["id"] for f in _findings(data) if f["severity"] in ("error", "warning")})
    return ", ".join(ids) if ids else "none"


def _findings(data: Data) -> list[Data]:
    findings = _get(data, "findings")
    if findings is None:
        return []
    if not isinstance(findings, list):
        raise _Malformed("findings is not a list")
    for f in findings:
        if not (
            isinstance(f, Mapping)
            and isinstance(f.get("id"), str)
            and f.get("severity") in SEVERITIES
        ):
            raise _Malformed("a finding lacks a string id or a severity of error/warning/info")
    return list(findings)


def _simple(*keys: str) -> Callable[[Data], str]:
    return lambda data: _text(_get(data, *keys))


@dataclass(frozen=True)
class Fact:
    """One fact compared across nodes (the one table: report, table, schema and docs read it)."""

    name: str
    label: str
    read: Callable[[Data], str]


#: Every fact compared, in the order the table shows them.
FACTS: tuple[Fact, ...] = (
    Fact("driver", "NVIDIA driver", _simple("nvidia", "driver_version")),
    Fact("cuda_driver", "CUDA (driver's newest)", _simple("nvidia", "cuda_driver_version")),
    Fact("gpu_count", "GPU count", _simple("nvidia", "gpu_count")),
    Fact("gpu_model", "GPU model", lambda d: _collapse([_text(g.get("name")) for g in _gpus(d)])),
    Fact("gpu_memory", "GPU memory", _gpu_memory),
    Fact("mig", "MIG mode", lambda d: _per_gpu_mode(d, "mig_mode_current")),
    Fact("ecc", "ECC mode", lambda d: _per_gpu_mode(d, "ecc_mode_current")),
    Fact("ecc_errors", "uncorrected ECC errors", _ecc_errors),
    Fact("torch", "PyTorch", _framework_version("torch")),
    Fact("torch_cuda", "PyTorch's CUDA", _simple("frameworks", "torch", "torch", "cuda")),
    Fact("nccl", "NCCL (PyTorch's)", _nccl),
    Fact("tensorflow", "TensorFlow", _framework_version("tensorflow")),
    Fact(
        "tensorflow_cuda",
        "TensorFlow's CUDA",
        _simple("frameworks", "tensorflow", "tensorflow", "cuda_version"),
    ),
    Fact("cudnn", "cuDNN library", _simple("cuda_libs", "cudnn", "version")),
    Fact("python", "Python", _simple("system", "python_version")),
    Fact("os", "OS", _simple("system", "distribution")),
    Fact("kernel", "kernel", _simple("system", "kernel")),
    Fact("glibc", "glibc", _simple("system", "glibc")),
    Fact("findings", "error/warning findings", _findings_fact),
)
FACT_NAMES: tuple[str, ...] = tuple(f.name for f in FACTS)


@dataclass(frozen=True)
class NodeFinding:
    """One finding of one node (the fields the fleet view groups by)."""

    id: str
    severity: str
    title: str


@dataclass(frozen=True)
class NodeFacts:
    """One node's document, read.

    Attributes:
        node: the node's name (hostname, or the file's name).
        source: the file it came from.
        facts: fact name -> value (a short string; ``n/a (reason)`` when not read).
        findings: the node's findings.
        exit_code: the exit code doctor reported for the node.
    """

    node: str
    source: str
    facts: Mapping[str, str]
    findings: tuple[NodeFinding, ...]
    exit_code: int | None


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
        majority: the value most nodes have (a tie goes to the value of the first node by name).
        majority_nodes: how many nodes have it.
        tie: another value is held by as many nodes.
        differing: the nodes whose value is not the majority, with their value, sorted by node.
        drifted: some node differs.
        allowed: the drift was accepted with ``--allow``.
    """

    fact: str
    label: str
    majority: str
    majority_nodes: int
    tie: bool
    differing: tuple[NodeValue, ...]
    drifted: bool
    allowed: bool


@dataclass(frozen=True)
class FindingGroup:
    """One check id across the fleet: the nodes that reported it."""

    id: str
    severity: str
    title: str
    node_count: int
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class FleetReport:
    """The merged view; ``exit_code`` is 1 on unaccepted drift, error findings or missing nodes."""

    node_count: int
    nodes: tuple[str, ...]
    sources: Mapping[str, str]
    expected: tuple[str, ...] | None
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    facts: tuple[FactSummary, ...]
    findings: tuple[FindingGroup, ...]
    allowed: tuple[str, ...]
    problems: tuple[str, ...]
    passed: bool
    exit_code: int


def _node_name(data: Data, path: Path) -> str:
    host = _get(data, "system", "hostname")
    if isinstance(host, str) and host.strip():
        return host.strip()
    stem = path.name.removesuffix(".json")
    return stem.removeprefix("doctor-") or stem


def read_document(path: Path) -> NodeFacts:
    """Read one node's ``dlsetup doctor --json`` document.

    Raises:
        InputError: the file cannot be read, is not JSON, is not a ``dlsetup.doctor`` envelope,
            or has a field of the wrong type; the message names the file.
    """
    from dlsetup.reading import load_json

    fix = "give the output of `dlsetup doctor --json` (one file per node)"
    document = load_json(path, what="fleet document", max_bytes=MAX_DOCUMENT_BYTES, fix=fix)
    if not isinstance(document, dict) or document.get("schema") != DOCTOR_SCHEMA:
        schema = document.get("schema") if isinstance(document, dict) else None
        raise InputError(f"{path}: not a {DOCTOR_SCHEMA} document (schema: {schema!r})", fix=fix)
    data = document.get("data")
    if not isinstance(data, dict):
        raise InputError(f"{path}: its data is not an object", fix=fix)
    try:
        facts = {fact.name: fact.read(data) for fact in FACTS}
        findings = tuple(
            NodeFinding(str(f["id"]), str(f["severity"]), str(f.get("title", "")))
            for f in _findings(data)
        )
    except _Malformed as exc:
        raise InputError(f"{path}: malformed {DOCTOR_SCHEMA} document: {exc}", fix=fix) from exc
    exit_code = data.get("exit_code")
    return NodeFacts(
        node=_node_name(data, path),
        source=str(path),
        facts=facts,
        findings=findings,
        exit_code=exit_code if isinstance(exit_code, int) else None,
    )


def collect_paths(inputs: Iterable[Path]) -> list[Path]:
    """Files as given; a directory stands for its ``*.json`` files (sorted, not recursive).

    Raises:
        InputError: a path does not exist, or a directory holds no ``*.json`` file.
    """
    paths: list[Path] = []
    for item in inputs:
        if item.is_dir():
            # not only regular files: a FIFO or a dangling link named *.json is refused by name
            found = sorted(p for p in item.glob("*.json") if not p.is_dir())
            if not found:
                raise InputError(
                    f"{item}: the directory holds no *.json file",
                    fix="write one `dlsetup doctor --json` document per node into it",
                )
            paths.extend(found)
        elif item.exists():
            paths.append(item)
        else:
            raise InputError(f"{item}: no such file or directory", fix="check the path")
    return paths


def _majority(values: Mapping[str, str]) -> tuple[str, int, bool]:
    counts = Counter(values.values())
    top = max(counts.values())
    leaders = {v for v, n in counts.items() if n == top}
    first = next(values[node] for node in sorted(values) if values[node] in leaders)
    return first, top, len(leaders) > 1


def _short(name: str) -> str:
    return name.split(".", 1)[0]


def merge(
    nodes: Sequence[NodeFacts],
    *,
    expected: Sequence[str] | None = None,
    allow: Iterable[str] = (),
) -> FleetReport:
    """Merge nodes' facts: per fact the majority and the nodes that differ; missing nodes.

    Args:
        nodes: one per node (:func:`read_document`).
        expected: the node names that should be there (``--hosts``, an expanded node list);
            a document whose name or short name (before the first dot) matches counts.
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
    by_name: dict[str, NodeFacts] = {}
    for node in nodes:
        if node.node in by_name:
            raise InputError(
                f"two documents for node {node.node}: {by_name[node.node].source} and "
                f"{node.source}",
                fix="give one document per node",
            )
        by_name[node.node] = node
    names = tuple(sorted(by_name))
    summaries = []
    for fact in FACTS:
        values = {n: by_name[n].facts[fact.name] for n in names}
        majority, count, tie = _majority(values)
        differing = tuple(NodeValue(n, v) for n, v in values.items() if v != majority)
        summaries.append(
            FactSummary(
                fact=fact.name,
                label=fact.label,
                majority=majority,
                majority_nodes=count,
                tie=tie,
                differing=differing,
                drifted=bool(differing),
                allowed=bool(differing) and fact.name in allowed,
            )
        )
    groups: dict[str, list[tuple[str, NodeFinding]]] = {}
    for name in names:
        for finding in dict.fromkeys(by_name[name].findings):
            groups.setdefault(finding.id, []).append((name, finding))
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    findings = sorted(
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
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    if expected is not None:
        present = set(names) | {_short(n) for n in names}
        missing = tuple(
            h for h in dict.fromkeys(expected) if h not in present and _short(h) not in present
        )
        wanted = set(expected) | {_short(h) for h in expected}
        unexpected = tuple(n for n in names if n not in wanted and _short(n) not in wanted)
    problems = []
    for s in summaries:
        if s.drifted and not s.allowed:
            problems.append(
                f"{s.fact} drifts: {len(s.differing)} of {len(names)} node(s) differ from "
                f"{s.majority!r}: " + ", ".join(f"{d.node}={d.value}" for d in s.differing)
            )
    for g in findings:
        if g.severity == "error":
            problems.append(f"error finding {g.id} on {g.node_count} node(s): {', '.join(g.nodes)}")
    if missing:
        problems.append(f"{len(missing)} expected node(s) sent no document: {', '.join(missing)}")
    passed = not problems
    return FleetReport(
        node_count=len(names),
        nodes=names,
        sources={n: by_name[n].source for n in names},
        expected=tuple(expected) if expected is not None else None,
        missing=missing,
        unexpected=unexpected,
        facts=tuple(summaries),
        findings=tuple(findings),
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
