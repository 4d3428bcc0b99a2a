"""Node health facts the kernel shows without NVML: XID errors, InfiniBand ports, GPUs on the bus.

* **XID errors** from the kernel log (``/dev/kmsg``, what ``dmesg`` reads): the NVIDIA driver logs
  ``NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen off the bus.``; counted per GPU and
  code. Where the kernel lets only root read its log (``kernel.dmesg_restrict=1``), the fact is
  ``Missing("not_readable")`` and nothing fails.
* **InfiniBand ports** from ``/sys/class/infiniband/<device>/ports/<n>/``: ``state``
  (``4: ACTIVE``), ``phys_state`` (``5: LinkUp``), ``rate`` (``400 Gb/sec (4X NDR)``) and
  ``link_layer``: what ``ibstat`` prints, read without it.
* **NVIDIA GPUs on the PCI bus** from ``/sys/bus/pci/devices/*/{vendor,class,device}`` and the
  driver bound to each: a GPU that fell off the bus is absent here, a GPU the driver failed to
  start is here with no driver or one NVML does not list.

Every reader takes the root directory (``/`` in production) so tests point it at a fake tree.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dlsetup.facts import Maybe, Missing

#: PCI vendor id of NVIDIA.
NVIDIA_VENDOR = "0x10de"
#: PCI classes of a GPU: VGA controller (0x0300) and 3D controller (0x0302).
GPU_CLASSES = ("0x0300", "0x0302")
#: The kernel log is a ring buffer of a few MiB; more than this is not read.
MAX_KERNEL_LOG_BYTES = 64 * 2**20
#: One /dev/kmsg record is at most this long (the kernel refuses a smaller read buffer: EINVAL).
KMSG_READ_BYTES = 16384

_XID = re.compile(r"NVRM: Xid \((?:PCI:)?([0-9A-Fa-f:.]+)\): (\d+),?\s*(.*)")


@dataclass(frozen=True)
class XidEvent:
    """One XID code on one GPU: how often the kernel log has it and its last message.

    Attributes:
        pci_bus_id: the GPU's PCI address as the driver logs it (``0000:3b:00``).
        xid: the XID code (79: fallen off the bus, 48: double-bit ECC, 63/64: row remapping ...).
        count: how many times it was logged since boot (as far as the ring buffer goes back).
        message: the text after the code in its last occurrence.
    """

    pci_bus_id: str
    xid: int
    count: int
    message: str


@dataclass(frozen=True)
class KernelLog:
    """What the kernel log says about the GPUs.

    Attributes:
        source: the file read (``/dev/kmsg``).
        xids: one per (GPU, code), sorted.
    """

    source: str
    xids: tuple[XidEvent, ...]


@dataclass(frozen=True)
class IbPort:
    """One InfiniBand (or RoCE) port as sysfs shows it."""

    device: str
    port: int
    state: str
    phys_state: Maybe[str]
    rate: Maybe[str]
    link_layer: Maybe[str]


@dataclass(frozen=True)
class PciGpu:
    """One NVIDIA GPU on the PCI bus.

    Attributes:
        bus_id: its PCI address (``0000:3b:00.0``).
        device_id: its PCI device id (``0x2330``).
        driver: the kernel driver bound to it (``nvidia``), or ``Missing("no_driver")``.
    """

    bus_id: str
    device_id: str
    driver: Maybe[str]


@dataclass(frozen=True)
class HealthFacts:
    """The node health facts read from the kernel (no NVML, no root)."""

    kernel_log: Maybe[KernelLog]
    infiniband: Maybe[tuple[IbPort, ...]]
    pci_gpus: Maybe[tuple[PciGpu, ...]]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def parse_xids(text: str) -> tuple[XidEvent, ...]:
    """The XID events in kernel log text (``/dev/kmsg`` records or ``dmesg`` lines)."""
    seen: dict[tuple[str, int], tuple[int, str]] = {}
    for line in text.splitlines():
        match = _XID.search(line)
        if match is None:
            continue
        key = (match.group(1).lower(), int(match.group(2)))
        count = seen.get(key, (0, ""))[0]
        seen[key] = (count + 1, match.group(3).strip())
    return tuple(
        XidEvent(bus, xid, count, message) for (bus, xid), (count, message) in sorted(seen.items())
    )


def _read_log(path: Path) -> bytes:
    """Every record of ``/dev/kmsg`` (non-blocking, to the end of the ring), or a file's bytes."""
    chunks: list[bytes] = []
    total = 0
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while total < MAX_KERNEL_LOG_BYTES:
            try:
                chunk = os.read(fd, KMSG_READ_BYTES)
            except BlockingIOError:  # /dev/kmsg: no record left
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten while reading: go on
                    continue
                raise
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def probe_kernel_log(root: Path = Path("/")) -> Maybe[KernelLog]:
    """XID errors from ``<root>/dev/kmsg``; ``Missing("not_readable")`` where it cannot be read."""
    path = root / "dev" / "kmsg"
    try:
        raw = _read_log(path)
    except PermissionError as exc:
        return Missing(
            "not_readable",
            f"{path}: {exc.strerror} (kernel.dmesg_restrict=1 lets only root read the kernel log)",
        )
    except OSError as exc:
        return Missing("not_readable", f"{path}: {exc.strerror or exc}")
    return KernelLog(str(path), parse_xids(raw.decode("utf-8", errors="replace")))


def _number_and_word(text: str | None) -> Maybe[str]:
    """``"4: ACTIVE"`` -> ``"ACTIVE"``."""
    if text is None:
        return Missing("not_found")
    return text.split(":", 1)[-1].strip() or text


def probe_infiniband(root: Path = Path("/")) -> Maybe[tuple[IbPort, ...]]:
    """Every port under ``<root>/sys/class/infiniband``; ``()`` when there is none."""
    base = root / "sys" / "class" / "infiniband"
    if not base.is_dir():
        return ()
    ports = []
    try:
        devices = sorted(base.iterdir())
        for device in devices:
            port_dir = device / "ports"
            numbers = sorted((p for p in port_dir.iterdir() if p.name.isdigit()),
                             key=lambda p: int(p.name)) if port_dir.is_dir() else []  # fmt: skip
            for port in numbers:
                state = _number_and_word(_read(port / "state"))
                rate = _read(port / "rate")
                layer = _read(port / "link_layer")
                ports.append(
                    IbPort(
                        device=device.name,
                        port=int(port.name),
                        state=state if isinstance(state, str) else "unknown",
                        phys_state=_number_and_word(_read(port / "phys_state")),
                        rate=rate if rate is not None else Missing("not_found"),
                        link_layer=layer if layer is not None else Missing("not_found"),
                    )
                )
    except OSError as exc:
        return Missing("not_readable", f"{base}: {exc.strerror or exc}")
    return tuple(ports)


def probe_pci_gpus(root: Path = Path("/")) -> Maybe[tuple[PciGpu, ...]]:
    """The NVIDIA GPUs under ``<root>/sys/bus/pci/devices``, by bus id."""
    base = root / "sys" / "bus" / "pci" / "devices"
    if not base.is_dir():
        return Missing("not_found", f"{base}: no such directory (not Linux, or no sysfs)")
    gpus = []
    try:
        for device in sorted(base.iterdir()):
            if _read(device / "vendor") != NVIDIA_VENDOR:
                continue
            if not (_read(device / "class") or "").startswith(GPU_CLASSES):
                continue
            driver = device / "driver"
            gpus.append(
                PciGpu(
                    bus_id=device.name,
                    device_id=_read(device / "device") or "",
                    driver=os.path.basename(os.readlink(driver))
                    if driver.is_symlink()
                    else Missing("no_driver"),
                )
            )
    except OSError as exc:
        return Missing("not_readable", f"{base}: {exc.strerror or exc}")
    return tuple(gpus)


def probe_health(root: Path = Path("/")) -> HealthFacts:
    """Every fact of this module, each read on its own (one failing costs only itself)."""
    return HealthFacts(
        kernel_log=probe_kernel_log(root),
        infiniband=probe_infiniband(root),
        pci_gpus=probe_pci_gpus(root),
    )
