"""The kernel's health facts (XID errors, InfiniBand ports, GPUs on the PCI bus) read from a fake
root laid out as the kernel lays out /dev/kmsg and sysfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlsetup.facts import Missing
from dlsetup.probes.health_sysfs import (
    IbPort,
    PciGpu,
    XidEvent,
    parse_xids,
    probe_health,
    probe_infiniband,
    probe_kernel_log,
    probe_pci_gpus,
)

#: /dev/kmsg records as the kernel writes them: "<prio>,<seq>,<usec>,<flags>;<text>", with
#: continuation lines (" KEY=value") after some.
KMSG = """\
6,1021,4017012,-;nvidia-nvlink: Nvlink Core is being initialized, major device number 508
4,1544,98123451,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=2211, name=python, GPU has fallen off the bus.
 SUBSYSTEM=pci
 DEVICE=+pci:0000:3b:00.0
3,1545,98123499,-;NVRM: GPU 0000:3b:00.0: GPU has fallen off the bus.
4,1801,99012001,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=2302, name=python, GPU has fallen off the bus.
4,1802,99012101,-;NVRM: Xid (PCI:0000:5D:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 0, subpartition 0.
4,1900,99100000,-;NVRM: Xid (0000:18:00): 13, Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def _ib_port(root: Path, device: str, port: int, state: str, rate: str) -> None:
    base = root / "sys/class/infiniband" / device / "ports" / str(port)
    _write(base / "state", state)
    _write(base / "phys_state", "5: LinkUp" if "ACTIVE" in state else "3: Disabled")
    _write(base / "rate", rate)
    _write(base / "link_layer", "InfiniBand")


def _pci(root: Path, bus: str, vendor: str, klass: str, driver: str | None) -> None:
    base = root / "sys/bus/pci/devices" / bus
    _write(base / "vendor", vendor)
    _write(base / "class", klass)
    _write(base / "device", "0x2330")
    if driver is not None:
        target = root / "sys/bus/pci/drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        os.symlink(target, base / "driver")


def test_xids_are_counted_per_gpu_and_code_from_kmsg_records(tmp_path: Path) -> None:
    _write(tmp_path / "dev/kmsg", KMSG)
    log = probe_kernel_log(tmp_path)
    assert not isinstance(log, Missing)
    assert log.source == str(tmp_path / "dev/kmsg")
    assert log.xids == (
        XidEvent(
            "0000:18:00",
            13,
            1,
            "Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address",
        ),
        XidEvent("0000:3b:00", 79, 2, "pid=2302, name=python, GPU has fallen off the bus."),
        XidEvent(
            "0000:5d:00",
            48,
            1,
            "pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been "
            "detected on GPU in the framebuffer at partition 0, subpartition 0.",
        ),
    )
    assert parse_xids("6,1,1,-;usb 1-1: new device\n") == ()


def test_an_unreadable_kernel_log_is_said_and_nothing_fails(tmp_path: Path) -> None:
    missing = probe_kernel_log(tmp_path)  # no dev/kmsg at all
    assert isinstance(missing, Missing) and missing.reason == "not_readable"
    assert str(tmp_path / "dev/kmsg") in missing.detail
    (tmp_path / "dev/kmsg").mkdir(parents=True)  # a read error other than "absent"
    assert probe_kernel_log(tmp_path) == Missing(
        "not_readable", f"{tmp_path / 'dev/kmsg'}: Is a directory"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_kernel_log_only_root_may_read_is_not_readable(tmp_path: Path) -> None:
    _write(tmp_path / "dev/kmsg", KMSG)
    (tmp_path / "dev/kmsg").chmod(0)
    missing = probe_kernel_log(tmp_path)
    assert isinstance(missing, Missing) and missing.reason == "not_readable"
    assert "dmesg_restrict" in missing.detail


def test_the_real_kernel_log_is_read_or_said_unreadable() -> None:
    log = probe_kernel_log()
    assert (isinstance(log, Missing) and log.reason == "not_readable") or not isinstance(
        log, Missing
    )


def test_infiniband_ports_state_and_rate(tmp_path: Path) -> None:
    _ib_port(tmp_path, "mlx5_0", 1, "4: ACTIVE", "400 Gb/sec (4X NDR)")
    _ib_port(tmp_path, "mlx5_1", 1, "1: DOWN", "10 Gb/sec (4X SDR)")
    assert probe_infiniband(tmp_path) == (
        IbPort("mlx5_0", 1, "ACTIVE", "LinkUp", "400 Gb/sec (4X NDR)", "InfiniBand"),
        IbPort("mlx5_1", 1, "DOWN", "Disabled", "10 Gb/sec (4X SDR)", "InfiniBand"),
    )
    assert probe_infiniband(tmp_path / "none") == ()  # no InfiniBand driver: no port


def test_nvidia_gpus_on_the_pci_bus_with_their_driver(tmp_path: Path) -> None:
    _pci(tmp_path, "0000:18:00.0", "0x10de", "0x030200", "nvidia")
    _pci(tmp_path, "0000:3b:00.0", "0x10de", "0x030200", None)  # the driver failed to bind
    _pci(tmp_path, "0000:00:1f.0", "0x8086", "0x060100", None)  # an Intel bridge
    _pci(tmp_path, "0000:c0:00.0", "0x10de", "0x068000", "nvidia-nvswitch")  # an NVSwitch
    assert probe_pci_gpus(tmp_path) == (
        PciGpu("0000:18:00.0", "0x2330", "nvidia"),
        PciGpu("0000:3b:00.0", "0x2330", Missing("no_driver")),
    )
    missing = probe_pci_gpus(tmp_path / "none")
    assert isinstance(missing, Missing) and missing.reason == "not_found"


def test_probe_health_reads_each_fact_on_its_own(tmp_path: Path) -> None:
    _ib_port(tmp_path, "mlx5_0", 1, "4: ACTIVE", "400 Gb/sec (4X NDR)")
    facts = probe_health(tmp_path)
    assert isinstance(facts.kernel_log, Missing)  # absent here, the other two still read
    assert len(facts.infiniband) == 1 and isinstance(facts.pci_gpus, Missing)  # type: ignore[arg-type]
