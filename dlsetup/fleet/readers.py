"""Read one fact of a node's ``dlsetup doctor --json`` data as a short string.

Every reader takes the document's ``data`` object (already checked against the doctor schema by
:mod:`dlsetup.fleet.intake`) and returns one string, so that the fleet view can count equal values:
``not reported`` when an older document lacks the field, ``n/a (reason)`` when the node could not
read it (a Missing object), else the value (``8 x NVIDIA H100``, ``Gen5 x16``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Data = Mapping[str, Any]

NOT_REPORTED = "not reported"
#: Values that say the node reported nothing on purpose or could not look (``--no-frameworks``,
#: a kernel log readable only by root): not a difference from the nodes that did report.
NO_VALUE_REASONS = ("skipped", "not_readable", "not_probed")

#: NVML clock event reasons that hold a GPU's clocks down (hardware slowdown, thermal, power
#: brake): the same bits as doctor's ``gpu.clocks_slowdown`` check.
SLOWDOWN_REASONS = {0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal", 0x80: "power_brake"}


class MalformedError(Exception):
    """A field of a document has the wrong type (turned into an InputError naming the file)."""


def is_no_value(value: str) -> bool:
    """True for a value that says nothing about the node (not reported, skipped, not readable)."""
    return value == NOT_REPORTED or any(value == f"n/a ({r})" for r in NO_VALUE_REASONS)


def get(data: Data, *keys: str) -> Any:
    """``data[k1][k2]...``; ``None`` when a key is absent (an older or partial document)."""
    value: Any = data
    walked: list[str] = []
    for key in keys:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise MalformedError(f"{'.'.join(walked) or 'data'} is not an object")
        if "reason" in value and key not in value:  # a Missing section: its reason is the value's
            return value
        value = value.get(key)
        walked.append(key)
    return value


def text(value: Any) -> str:
    """One fact value as a short string: a Missing object says why (``n/a (no_driver)``)."""
    if value is None:
        return NOT_REPORTED
    if isinstance(value, Mapping) and "reason" in value:
        return f"n/a ({value['reason']})"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedError(f"expected a value, got {type(value).__name__}")


def gpus(data: Data) -> list[Data]:
    """The GPUs NVML listed (``[]`` when it listed none or the document has no GPU list)."""
    found = get(data, "nvidia", "gpus")
    if found is None or (isinstance(found, Mapping) and "reason" in found):
        return []
    if not isinstance(found, list):  # each item's type: checked against the schema on reading
        raise MalformedError("nvidia.gpus is not a list")
    return list(found)


def collapse(values: Sequence[str]) -> str:
    """Per-GPU values as one string: ``NVIDIA H100`` when every GPU has it (the GPU count is a
    fact of its own: a node with one GPU fewer differs there, not on every per-GPU row), or
    ``A100 x 1 + V100 x 1`` when mixed."""
    if not values:
        return "no GPU"
    counts = Counter(values)
    if len(counts) == 1:
        return values[0]
    return " + ".join(f"{v} x {n}" for v, n in sorted(counts.items()))


def gpu_index(gpu: Data, position: int) -> str:
    index = gpu.get("index")
    return str(index if isinstance(index, int) else position)


def per_gpu_mode(field: str) -> Callable[[Data], str]:
    """``off``, ``on``, or ``mixed: on GPU 0,3`` for a boolean per-GPU mode (MIG, ECC)."""

    def read(data: Data) -> str:
        listed = gpus(data)
        if not listed:
            return "no GPU"
        values = [text(g.get(field)) for g in listed]
        if len(set(values)) == 1:
            return values[0]
        on = [
            gpu_index(g, i)
            for i, (g, v) in enumerate(zip(listed, values, strict=True))
            if v == "on"
        ]
        return f"mixed: on GPU {','.join(on)}" if on else "mixed: " + ",".join(values)

    return read


def gpu_count(data: Data) -> str:
    """``nvidia.gpu_count``; a document without it (older, or NVML could not count) counts its GPU
    list when NVML answered, as the GPU model row does."""
    count = get(data, "nvidia", "gpu_count")
    listed = get(data, "nvidia", "gpus")
    if (
        not isinstance(count, int)
        and get(data, "nvidia", "status") == "ok"
        and isinstance(listed, list)
        and (count is None or listed)
    ):
        return str(len(listed))
    return text(count)


def gpu_model(data: Data) -> str:
    return collapse([text(g.get("name")) for g in gpus(data)])


def gpu_memory(data: Data) -> str:
    values = []
    for g in gpus(data):
        total = g.get("memory_total_bytes")
        values.append(f"{total // 2**20} MiB" if isinstance(total, int) else text(total))
    return collapse(values)


def ecc_errors(data: Data) -> str:
    listed = gpus(data)
    if not listed:
        return "no GPU"
    bad = [
        f"GPU {gpu_index(g, i)}: {g['ecc_errors_uncorrected']}"
        for i, g in enumerate(listed)
        if isinstance(g.get("ecc_errors_uncorrected"), int) and g["ecc_errors_uncorrected"] > 0
    ]
    return "; ".join(bad) if bad else "0"


def pcie_link(data: Data) -> str:
    """Per GPU ``Gen<max> x<current width>``: the generation the link can reach (the current one
    drops at idle to save power) and the width it trained at (a degraded link shows here)."""
    values = []
    for g in gpus(data):
        gen, width = g.get("pcie_gen_max"), g.get("pcie_width_current")
        if gen is None and width is None:
            values.append(NOT_REPORTED)
        elif isinstance(gen, int) and isinstance(width, int):
            values.append(f"Gen{gen} x{width}")
        else:
            values.append(text(width if isinstance(gen, int) else gen))
    return NOT_REPORTED if values and set(values) == {NOT_REPORTED} else collapse(values)


def memory_repair(data: Data) -> str:
    """Row remapping and page retirement: ``ok`` or the GPUs with a failed or pending repair."""
    listed = gpus(data)
    words = {
        "remapped_rows_failed": "row remap failed",
        "remapped_rows_pending": "row remap pending",
        "retired_pages_pending": "page retirement pending",
    }
    if not listed:
        return "no GPU"
    if all(g.get(f) is None for g in listed for f in words):
        return NOT_REPORTED
    bad = []
    for i, g in enumerate(listed):
        what = [name for field, name in words.items() if g.get(field) is True]
        uncorrectable = g.get("remapped_rows_uncorrectable")
        if isinstance(uncorrectable, int) and uncorrectable > 0:
            what.append(f"{uncorrectable} rows remapped (uncorrectable)")
        if what:
            bad.append(f"GPU {gpu_index(g, i)}: {', '.join(what)}")
    return "; ".join(bad) if bad else "ok"


def clocks_slowdown(data: Data) -> str:
    """The GPUs whose clocks a slowdown holds down (thermal, hardware, power brake), or ``none``."""
    listed = gpus(data)
    if not listed:
        return "no GPU"
    masks = [g.get("clocks_event_reasons") for g in listed]
    if all(m is None for m in masks):
        return NOT_REPORTED
    bad = []
    for i, (g, mask) in enumerate(zip(listed, masks, strict=True)):
        if isinstance(mask, int) and mask & sum(SLOWDOWN_REASONS):
            names = [n for bit, n in SLOWDOWN_REASONS.items() if mask & bit]
            bad.append(f"GPU {gpu_index(g, i)}: {','.join(names)}")
    return "; ".join(bad) if bad else "none"


def _links(gpu: Data) -> str:
    up = gpu.get("nvlink_up")
    if isinstance(up, list):
        return f"{sum(1 for u in up if u is True)}/{len(up)} up" if up else "no NVLink"
    switches = gpu.get("nvswitch_links")
    if isinstance(switches, list):
        return f"{len(switches)} to NVSwitch" if switches else "peer GPUs"
    for value in (up, switches):
        if isinstance(value, Mapping) and "reason" in value:
            return "no NVLink" if value["reason"] == "not_supported" else text(value)
    if up is not None or switches is not None:
        raise MalformedError("nvidia.gpus[].nvswitch_links is not a list")
    return NOT_REPORTED


def nvlink(data: Data) -> str:
    """Per GPU the NVLinks NVML lists: ``<up>/<links> up`` where the link state is reported, else
    how many reach an NVSwitch (a GPU with a link down has fewer); ``no NVLink`` on PCIe boards."""
    values = [_links(g) for g in gpus(data)]
    if values and set(values) == {NOT_REPORTED}:
        return NOT_REPORTED
    return collapse(values)


def xid_errors(data: Data) -> str:
    """XID errors in the node's kernel log: ``none`` or ``79 on 0000:3b:00 (x2)``."""
    log = get(data, "health", "kernel_log")
    if log is None or "reason" in log:
        return text(log)
    events = log.get("xids")
    if not isinstance(events, list):
        raise MalformedError("health.kernel_log.xids is not a list")
    parts = [f"{e.get('xid')} on {e.get('pci_bus_id')} (x{e.get('count')})" for e in events]
    return "; ".join(parts) if parts else "none"


def infiniband(data: Data) -> str:
    """InfiniBand ports: ``4 x ACTIVE 400 Gb/sec (4X NDR)``, ``no port`` when none."""
    ports = get(data, "health", "infiniband")
    if ports is None or isinstance(ports, Mapping):
        return text(ports)
    if not isinstance(ports, list):
        raise MalformedError("health.infiniband is not a list")
    values = [f"{p.get('state')} {text(p.get('rate'))}" for p in ports]
    if not values:
        return "no port"
    counts = Counter(values)
    return " + ".join(f"{n} x {v}" for v, n in sorted(counts.items()))


def pci_gpus(data: Data) -> str:
    """How many NVIDIA GPUs the PCI bus shows (read from sysfs, whatever the driver sees)."""
    listed = get(data, "health", "pci_gpus")
    if listed is None or isinstance(listed, Mapping):
        return text(listed)
    if not isinstance(listed, list):
        raise MalformedError("health.pci_gpus is not a list")
    return str(len(listed))


def pci_bus_ids(data: Data) -> list[str] | None:
    """The bus ids of the NVIDIA GPUs on the PCI bus, sorted (``None``: not reported)."""
    listed = get(data, "health", "pci_gpus")
    if not isinstance(listed, list):
        return None
    return sorted(str(p.get("bus_id")) for p in listed if isinstance(p, Mapping))


def framework_version(name: str) -> Callable[[Data], str]:
    def read(data: Data) -> str:
        probe = get(data, "frameworks", name)
        if isinstance(probe, Mapping) and "reason" in probe:
            return text(probe)
        if isinstance(probe, Mapping) and probe.get("status") not in (None, "ok"):
            return f"n/a ({probe.get('status')})"
        return text(get(data, "frameworks", name, "version"))

    return read


def nccl(data: Data) -> str:
    """NCCL of the torch build: ``frameworks.torch.torch.nccl`` where the probe reports it."""
    build = get(data, "frameworks", "torch", "torch")
    if not isinstance(build, Mapping) or "reason" in build:
        return text(build)
    for key in ("nccl", "nccl_version"):
        if key in build:
            return text(build[key])
    return NOT_REPORTED


def simple(*keys: str) -> Callable[[Data], str]:
    return lambda data: text(get(data, *keys))


# Health problems: what is wrong with a node whatever the other nodes say (a fleet where every
# node logs XID 79 is not healthy because it agrees with itself). Each returns short reasons.


def xid_problems(data: Data) -> list[str]:
    log = get(data, "health", "kernel_log")
    if not isinstance(log, Mapping) or not isinstance(log.get("xids"), list):
        return []
    return [f"XID {e.get('xid')} on {e.get('pci_bus_id')} (x{e.get('count')})" for e in log["xids"]]


def ecc_problems(data: Data) -> list[str]:
    value = ecc_errors(data)
    return [] if value in ("0", "no GPU") else [f"uncorrected ECC errors {value}"]


def memory_repair_problems(data: Data) -> list[str]:
    value = memory_repair(data)
    return [] if value in ("ok", "no GPU", NOT_REPORTED) else [value]


def clocks_problems(data: Data) -> list[str]:
    value = clocks_slowdown(data)
    return [] if value in ("none", "no GPU", NOT_REPORTED) else [f"clocks held down: {value}"]


def pcie_problems(data: Data) -> list[str]:
    """A GPU whose link trained narrower than the slot allows (x8 in an x16 slot)."""
    out = []
    for i, g in enumerate(gpus(data)):
        width, widest = g.get("pcie_width_current"), g.get("pcie_width_max")
        if isinstance(width, int) and isinstance(widest, int) and width < widest:
            out.append(f"GPU {gpu_index(g, i)} PCIe x{width} of x{widest}")
    return out


def nvlink_problems(data: Data) -> list[str]:
    out = []
    for i, g in enumerate(gpus(data)):
        up = g.get("nvlink_up")
        if isinstance(up, list):
            down = [str(k) for k, u in enumerate(up) if u is not True]
            if down:
                out.append(f"GPU {gpu_index(g, i)} NVLink {','.join(down)} down")
    return out


def infiniband_problems(data: Data) -> list[str]:
    ports = get(data, "health", "infiniband")
    if not isinstance(ports, list):
        return []
    return [
        f"InfiniBand {p.get('device')}/{p.get('port')} {p.get('state')}"
        for p in ports
        if isinstance(p, Mapping) and p.get("state") != "ACTIVE"
    ]


def pci_problems(data: Data) -> list[str]:
    listed = get(data, "health", "pci_gpus")
    if not isinstance(listed, list):
        return []
    return [
        f"PCI {p.get('bus_id')}: no driver bound"
        for p in listed
        if isinstance(p, Mapping) and isinstance(p.get("driver"), Mapping)
    ]
