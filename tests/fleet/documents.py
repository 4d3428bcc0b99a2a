"""Synthetic per-node ``dlsetup doctor --json`` documents, shaped as doctor writes them.

``node_document(...)`` builds the document of an 8-GPU H100 node; keyword arguments change one
fact at a time, so a test (or the benchmark) can give a few nodes a drift. The template comes from
a real ``dlsetup doctor --json`` on this machine (system, CUDA libraries, env managers) with the
NVIDIA section of a driver-535 machine, and the kernel's health section of an HGX H100 node (eight
GPUs on the PCI bus, four InfiniBand NDR ports up, no XID). Fields doctor added later (the host
name, some GPU health fields) are left out unless asked for, as in an older document: fleet report
reads those as ``not reported``.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from dlsetup.output import load_schema

_MISSING = {"reason": "not_supported", "detail": ""}


def _gpu(
    index: int, name: str, memory_mib: int, mig: bool, ecc: bool, ecc_errors: int
) -> dict[str, Any]:
    total = memory_mib * 2**20
    gpu = {
        "index": index, "lost": False, "name": name, "uuid": f"GPU-{index:08x}-0000",
        "compute_capability": [9, 0], "memory_total_bytes": total, "memory_used_bytes": 2**20,
        "memory_free_bytes": total - 2**20, "temperature_c": 35, "power_draw_w": 70.0,
        "power_limit_w": 700.0, "pcie_gen_current": 5, "pcie_gen_max": 5, "pcie_gen_gpu_max": 5,
        "pcie_width_current": 16, "pcie_width_max": 16, "mig_mode_current": mig,
        "mig_mode_pending": mig, "ecc_mode_current": ecc, "ecc_mode_pending": ecc,
        "ecc_errors_uncorrected": ecc_errors, "persistence_mode": True, "processes": [],
    }  # fmt: skip
    # Fields the doctor schema requires that this template does not set (it grows): not read.
    properties = _gpu_schema()["properties"]
    for key in _gpu_schema()["required"]:
        nullable = "null" in properties.get(key, {}).get("type", [])
        gpu.setdefault(key, None if nullable else dict(_MISSING))
    return gpu


@functools.cache
def _gpu_schema() -> dict[str, Any]:
    gpu: dict[str, Any] = load_schema("dlsetup.doctor")["$defs"]["gpu"]
    return gpu


#: The GPU fields of the first doctor document (schema of commit 9b0d5f0).
_FIRST_GPU_FIELDS = (
    "index", "lost", "name", "uuid", "compute_capability", "memory_total_bytes",
    "memory_used_bytes", "temperature_c", "power_draw_w", "power_limit_w", "pcie_gen_current",
    "pcie_gen_max", "pcie_width_current", "pcie_width_max", "mig_mode_current", "mig_mode_pending",
    "ecc_mode_current", "ecc_errors_uncorrected", "persistence_mode", "processes",
    "memory_free_bytes", "ecc_mode_pending",
)  # fmt: skip


def _finding(check_id: str, severity: str) -> dict[str, Any]:
    return {
        "id": check_id, "severity": severity, "title": f"title of {check_id}",
        "message": f"message of {check_id}", "fix": "", "details": {}, "command": "",
    }  # fmt: skip


_TEMPLATE: dict[str, Any] = {
    "schema": "dlsetup.doctor", "schema_version": 1, "dlsetup_version": "0.1.0",
    "created": "2026-11-27T20:00:00Z",
    "data": {
        "exit_code": 0, "strict": False, "skipped_checks": [], "elapsed_s": 2.0,
        "summary": {"error": 0, "warning": 0, "info": 0}, "findings": [],
        "system": {
            "os_name": "linux", "distribution": "Ubuntu 22.04.4 LTS", "kernel": "5.15.0-105-generic",
            "machine": "x86_64", "glibc": "2.35", "python_version": "3.11.7",
            "python_executable": "/opt/conda/bin/python3", "cpu_model": "AMD EPYC 9654",
            "cpu_physical_cores": 96, "cpu_logical_cores": 192, "cpu_features": ["avx2"],
            "ram_total_bytes": 2**41, "ram_available_bytes": 2**40, "swap_total_bytes": 0,
            "swap_used_bytes": 0, "disk_path": "/root", "disk_free_bytes": 2**40,
            "disk_total_bytes": 2**41, "container": "none", "wsl": "none",
        },
        "nvidia": {
            "status": "ok", "status_detail": "", "nvml_error_code": None,
            "driver_version": "535.104.05", "cuda_driver_version": "12.2", "nvml_version": "12.535.104.05",
            "gpus": [], "functions_not_found": [], "gpu_count": 8,
        },
        "frameworks": {
            "python_executable": "/opt/conda/bin/python3", "python_version": "3.11.7",
            "platform": "linux",
            "torch": {
                "name": "torch", "status": "ok", "detail": "", "version": "2.5.1+cu121",
                "elapsed_s": 2.0, "exit_code": 0, "failed_libraries": [], "messages": [],
                "imported": "torch",
                "torch": {"cuda": "12.1", "cudnn": "90100", "hip": {"reason": "not_rocm", "detail": ""},
                          "arch_list": ["sm_90"], "cuda_available": True, "device_count": 8,
                          "mps_built": False, "mps_available": False,
                          "torchvision": {"reason": "not_installed", "detail": ""},
                          "torchaudio": {"reason": "not_installed", "detail": ""}},
                "tensorflow": {"reason": "not_probed", "detail": ""},
            },
            "tensorflow": {"reason": "not_installed", "detail": "No module named 'tensorflow'"},
            "timeout_s": 60.0,
        },
        "cuda_libs": {"reason": "not_probed", "detail": "synthetic document"},
        "env_managers": {"reason": "not_probed", "detail": "synthetic document"},
        "probe_errors": {},
    },
}  # fmt: skip


def _health(
    bus_ids: tuple[str, ...],
    xids: tuple[tuple[str, int, int], ...],
    ib: tuple[tuple[str, str], ...],
) -> dict[str, Any]:
    """The ``health`` section as doctor writes it (dlsetup.probes.health_sysfs)."""
    return {
        "kernel_log": {
            "source": "/dev/kmsg",
            "xids": [
                {"pci_bus_id": bus, "xid": xid, "count": count, "message": "GPU has fallen off the bus."}
                for bus, xid, count in xids
            ],
        },
        "infiniband": [
            {"device": f"mlx5_{i}", "port": 1, "state": state, "phys_state": "LinkUp",
             "rate": rate, "link_layer": "InfiniBand"}
            for i, (state, rate) in enumerate(ib)
        ],
        "pci_gpus": [
            {"bus_id": bus, "device_id": "0x2330", "driver": "nvidia"} for bus in bus_ids
        ],
    }  # fmt: skip


#: The PCI bus ids of an HGX H100 board's eight GPUs (NVML's index order).
HGX_BUS_IDS = tuple(f"0000:{b}:00.0" for b in ("18", "2a", "3a", "5d", "9a", "ab", "ba", "db"))
IB_NDR = (("ACTIVE", "400 Gb/sec (4X NDR)"),) * 4


def node_document(
    *,
    hostname: str | None = None,
    pci_bus_ids: tuple[str, ...] | None = HGX_BUS_IDS,
    lost: tuple[int, ...] = (),
    xids: tuple[tuple[str, int, int], ...] = (),
    ib: tuple[tuple[str, str], ...] = IB_NDR,
    pcie_width: int = 16,
    persistence: bool = True,
    clock_reasons: int = 0x1,
    row_remap_failed: tuple[int, ...] = (),
    nvml_bus_ids: bool = False,
    no_frameworks: bool = False,
    older: bool = False,
    driver: str = "535.104.05",
    gpus: int = 8,
    gpu_name: str = "NVIDIA H100 80GB HBM3",
    memory_mib: int = 81559,
    mig_on: tuple[int, ...] = (),
    ecc: bool = True,
    ecc_errors: dict[int, int] | None = None,
    torch_version: str = "2.5.1+cu121",
    findings: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """One node's doctor document; each argument changes one fact from the template's."""
    doc = copy.deepcopy(_TEMPLATE)
    data = doc["data"]
    nv = data["nvidia"]
    nv["driver_version"] = driver
    nv["gpu_count"] = gpus
    nv["gpus"] = [
        _gpu(i, gpu_name, memory_mib, i in mig_on, ecc, (ecc_errors or {}).get(i, 0))
        for i in range(gpus)
    ]
    for g in nv["gpus"]:
        g.update(
            pcie_width_current=pcie_width, persistence_mode=persistence,
            clocks_event_reasons=clock_reasons, remapped_rows_failed=g["index"] in row_remap_failed,
            remapped_rows_pending=False, retired_pages_pending=False, remapped_rows_uncorrectable=0,
        )  # fmt: skip
        if nvml_bus_ids and pci_bus_ids is not None and g["index"] < len(pci_bus_ids):
            g["pci_bus_id"] = pci_bus_ids[g["index"]]  # NVML numbers GPUs in bus order
        if g["index"] in lost:
            g.update(lost=True, uuid={"reason": "gpu_lost", "detail": ""})
    if hostname is not None:
        data["system"]["hostname"] = hostname
    if pci_bus_ids is not None:
        data["health"] = _health(pci_bus_ids, xids, ib)
    data["frameworks"]["torch"]["version"] = torch_version
    data["findings"] = [_finding(i, s) for i, s in findings]
    data["summary"] = {
        s: sum(1 for _, x in findings if x == s) for s in ("error", "warning", "info")
    }
    data["exit_code"] = 1 if data["summary"]["error"] else 0
    if no_frameworks:
        data["frameworks"] = {"reason": "skipped", "detail": "--no-frameworks"}
    if older:  # the first doctor's GPU fields, no health section, no hostname; no GPU count
        del nv["gpu_count"]
        data.pop("health", None)
        for g in nv["gpus"]:
            for key in list(g):
                if key not in _FIRST_GPU_FIELDS:
                    del g[key]
    return doc


def write_nodes(directory: Path, docs: dict[str, dict[str, Any]]) -> list[Path]:
    """Write ``doctor-<node>.json`` for each node; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for node, doc in docs.items():
        path = directory / f"doctor-{node}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        paths.append(path)
    return paths


def fleet_with_three_drifts(
    count: int = 64,
) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
    """``count`` nodes ``gpu01..``; three kinds of drift: an older driver on gpu07 and gpu42, a
    different torch wheel on gpu13, MIG switched on for GPU 3 of gpu60 (and an error finding on
    it). Returns the documents and, per fact, the nodes that drift."""
    docs = {}
    for i in range(1, count + 1):
        node = f"gpu{i:02d}"
        kwargs: dict[str, Any] = {}
        if node in ("gpu07", "gpu42"):
            kwargs["driver"] = "525.85.12"
        if node == "gpu13":
            kwargs["torch_version"] = "2.5.1+cu124"
        if node == "gpu60":
            kwargs["mig_on"] = (3,)
            kwargs["findings"] = (("gpu.mig_enabled", "error"),)
        docs[node] = node_document(**kwargs)
    drift = {
        "driver": {"gpu07", "gpu42"},
        "torch": {"gpu13"},
        "mig": {"gpu60"},
        "findings": {"gpu60"},
    }
    return docs, drift
