"""probe_nvidia() through the real pynvml against the fake libnvidia-ml.so.1, one process each.

pynvml loads the driver library once per process, so every scenario runs the probe in a fresh
``python -c`` with ``LD_LIBRARY_PATH`` pointing at the fake (or at an empty directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.fake_nvml import (
    OMIT_SCENARIOS,
    SCENARIOS,
    SYMBOLS,
    build_fake_nvml,
    no_library_env,
    nvml_env,
    subprocess_env,
    system_has_nvml,
)
from tests.support.proc import REPO

PROBE = (
    "import json\n"
    "from dlsetup.output import to_jsonable\n"
    "from dlsetup.probes.nvidia import probe_nvidia\n"
    "print(json.dumps(to_jsonable(probe_nvidia())))\n"
)

GIB = 1024**3
MIB = 1024**2


def probe(env: Mapping[str, str]) -> dict[str, Any]:
    """Run probe_nvidia() in a fresh interpreter with ``env`` and return its facts as JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=subprocess_env(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    facts: dict[str, Any] = json.loads(proc.stdout)
    return facts


def scenario(libdir: Path, name: str, **overrides: str) -> dict[str, Any]:
    return probe(nvml_env(libdir, **{**SCENARIOS[name], **overrides}))


def missing(reason: str) -> Callable[[object], bool]:
    """A predicate: the JSON value is a Missing with this reason."""
    return lambda value: isinstance(value, dict) and value.get("reason") == reason


# ------------------------------------------------------------------ init failures ----


@pytest.mark.skipif(system_has_nvml(), reason="a real NVML library is installed system-wide")
def test_no_driver_library_reports_no_library_with_code_12(tmp_path: Path) -> None:
    facts = probe(no_library_env(tmp_path / "empty"))
    assert facts["status"] == "no_library"
    assert facts["nvml_error_code"] == 12
    assert facts["status_detail"] == "NVMLError_LibraryNotFound: NVML Shared Library Not Found"
    assert facts["gpus"] == []
    assert missing("no_driver")(facts["driver_version"])
    assert missing("no_driver")(facts["gpu_count"])


def test_driver_not_loaded_reports_code_9(fake_nvml_dir: Path) -> None:
    facts = scenario(fake_nvml_dir, "driver_not_loaded")
    assert facts["status"] == "driver_not_loaded"
    assert facts["nvml_error_code"] == 9
    assert facts["status_detail"] == "NVMLError_DriverNotLoaded: Driver Not Loaded"
    assert facts["gpus"] == []
    assert missing("no_driver")(facts["cuda_driver_version"])


def test_library_driver_mismatch_reports_code_18(fake_nvml_dir: Path) -> None:
    facts = scenario(fake_nvml_dir, "driver_mismatch")
    assert facts["status"] == "driver_mismatch"
    assert facts["nvml_error_code"] == 18
    assert facts["status_detail"] == (
        "NVMLError_LibRmVersionMismatch: RM has detected an NVML/RM version mismatch."
    )
    assert missing("driver_mismatch")(facts["driver_version"])


def test_init_without_permission_reports_no_permission(fake_nvml_dir: Path) -> None:
    facts = scenario(fake_nvml_dir, "no_permission")
    assert facts["status"] == "no_permission"
    assert facts["nvml_error_code"] == 4


def test_unknown_init_error_is_status_error_with_the_code_kept(fake_nvml_dir: Path) -> None:
    facts = probe(nvml_env(fake_nvml_dir, init_error="999"))
    assert facts["status"] == "error"
    assert facts["nvml_error_code"] == 999
    assert facts["status_detail"] == "NVMLError_Unknown: Unknown Error"


# --------------------------------------------------------------------- machines ----


def test_driver_535_cuda_12_2_one_h100_reads_every_field(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    facts = scenario(
        fake_nvml_dir,
        "driver_535_cuda_12_2_one_h100",
        mem_used_mib="1024",
        temp_c="41",
        power_w="118.25",
        pcie_gen="4,5",
        pcie_width="8,16",
        ecc_uncorrected="0",
        call_log=str(log),
    )
    assert facts["status"] == "ok"
    assert facts["status_detail"] == ""
    assert facts["nvml_error_code"] is None
    assert facts["driver_version"] == "535.104.05"
    assert facts["cuda_driver_version"] == "12.2"
    assert facts["nvml_version"] == "12.535.104.05"
    assert facts["gpu_count"] == 1
    assert facts["functions_not_found"] == []
    assert facts["gpus"] == [
        {
            "index": 0,
            "lost": False,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-fa4e0000-0000-4000-8000-000000000000",
            "compute_capability": [9, 0],
            "memory_total_bytes": 81559 * MIB,
            "memory_used_bytes": 1024 * MIB,
            "temperature_c": 41,
            "power_draw_w": 118.25,
            "power_limit_w": 700.0,
            "pcie_gen_current": 4,
            "pcie_gen_max": 5,
            "pcie_width_current": 8,
            "pcie_width_max": 16,
            "mig_mode_current": False,
            "mig_mode_pending": False,
            "ecc_mode_current": True,
            "ecc_errors_uncorrected": 0,
            "persistence_mode": True,
            "processes": [],
            "memory_free_bytes": (81559 - 1024) * MIB,
            "ecc_mode_pending": True,
            "pcie_gen_gpu_max": 5,
            "utilization_gpu_percent": 0,
            "clocks_event_reasons": 1,
            "sm_clock_mhz": 345,
            "sm_clock_max_mhz": 1980,
            "temperature_slowdown_c": 87,
            "power_limit_default_w": 700.0,
            "ecc_errors_uncorrected_aggregate": 0,
            "retired_pages_pending": False,
            "remapped_rows_uncorrectable": 0,
            "remapped_rows_pending": False,
            "remapped_rows_failed": False,
            "fabric_state": "not_supported",
            "fabric_status": 0,
            "handle_error_code": None,
            "nvswitch_links": {
                "reason": "not_supported",
                "detail": "NVMLError_NotSupported: Not Supported",
            },
            "pci_bus_id": "0000:10:00.0",
            "nvlink_up": {
                "reason": "not_supported",
                "detail": "NVMLError_NotSupported: Not Supported",
            },
        }
    ]
    calls = log.read_text().split()
    assert calls[0] == "nvmlInitWithFlags"
    assert calls[-1] == "nvmlShutdown"
    # The newest API of each versioned family answered; no fallback was needed.
    assert "nvmlDeviceGetMemoryInfo_v2" in calls
    assert "nvmlDeviceGetMemoryInfo" not in calls
    assert "nvmlDeviceGetComputeRunningProcesses_v3" in calls


def test_eight_gpus_are_each_reported_with_their_own_index_and_uuid(fake_nvml_dir: Path) -> None:
    facts = scenario(fake_nvml_dir, "eight_gpus")
    assert facts["gpu_count"] == 8
    assert [gpu["index"] for gpu in facts["gpus"]] == list(range(8))
    assert {gpu["name"] for gpu in facts["gpus"]} == {"NVIDIA A100-SXM4-80GB"}
    assert len({gpu["uuid"] for gpu in facts["gpus"]}) == 8
    assert facts["gpus"][7]["uuid"] == "GPU-fa4e0000-0000-4000-8000-000000000007"
    assert all(gpu["compute_capability"] == [8, 0] for gpu in facts["gpus"])
    assert facts["cuda_driver_version"] == "12.4"


def test_mixed_gpus_take_per_gpu_lists_whose_last_item_repeats(fake_nvml_dir: Path) -> None:
    facts = probe(
        nvml_env(
            fake_nvml_dir,
            gpu_count="3",
            gpu_names="NVIDIA H100 80GB HBM3,NVIDIA GeForce RTX 3090",
            cc="9.0,8.6",
            mem_total_mib="81559,24576",
        )
    )
    assert [gpu["name"] for gpu in facts["gpus"]] == [
        "NVIDIA H100 80GB HBM3",
        "NVIDIA GeForce RTX 3090",
        "NVIDIA GeForce RTX 3090",
    ]
    assert [gpu["compute_capability"] for gpu in facts["gpus"]] == [[9, 0], [8, 6], [8, 6]]
    assert [gpu["memory_total_bytes"] for gpu in facts["gpus"]] == [
        81559 * MIB,
        24576 * MIB,
        24576 * MIB,
    ]


def test_zero_gpus_is_ok_with_an_empty_list(fake_nvml_dir: Path) -> None:
    facts = probe(nvml_env(fake_nvml_dir, gpu_count="0"))
    assert facts["status"] == "ok"
    assert facts["gpu_count"] == 0
    assert facts["gpus"] == []


def test_driver_470_cuda_11_4_decodes_cuda_11_4(fake_nvml_dir: Path) -> None:
    facts = scenario(fake_nvml_dir, "driver_470_cuda_11_4")
    assert facts["driver_version"] == "470.82.01"
    assert facts["cuda_driver_version"] == "11.4"
    assert facts["nvml_version"] == "11.470.82.01"
    assert facts["gpus"][0]["name"] == "Tesla V100-SXM2-16GB"
    assert facts["gpus"][0]["compute_capability"] == [7, 0]
    assert facts["gpus"][0]["pcie_gen_max"] == 3


def test_cc_12_0_rtx_5090_has_no_mig_or_ecc_and_the_rest_is_read(fake_nvml_dir: Path) -> None:
    facts = scenario(fake_nvml_dir, "cc_12_0_rtx_5090")
    gpu = facts["gpus"][0]
    assert facts["cuda_driver_version"] == "12.8"
    assert gpu["name"] == "NVIDIA GeForce RTX 5090"
    assert gpu["compute_capability"] == [12, 0]
    assert gpu["memory_total_bytes"] == 32607 * MIB
    for name in ("mig_mode_current", "mig_mode_pending", "ecc_mode_current", "ecc_mode_pending"):
        assert missing("not_supported")(gpu[name]), name
    assert missing("not_supported")(gpu["ecc_errors_uncorrected"])
    assert gpu["persistence_mode"] is False
    assert gpu["power_limit_w"] == 575.0
    assert facts["functions_not_found"] == []


def test_mig_on_reports_current_and_pending_true(fake_nvml_dir: Path) -> None:
    gpu = scenario(fake_nvml_dir, "mig_on")["gpus"][0]
    assert gpu["mig_mode_current"] is True
    assert gpu["mig_mode_pending"] is True


def test_mig_pending_reports_a_mode_change_waiting_for_reset(fake_nvml_dir: Path) -> None:
    gpu = scenario(fake_nvml_dir, "mig_pending")["gpus"][0]
    assert gpu["mig_mode_current"] is False
    assert gpu["mig_mode_pending"] is True


def test_memory_held_by_other_process_reports_pid_name_and_memory(fake_nvml_dir: Path) -> None:
    gpu = scenario(fake_nvml_dir, "memory_held_by_other_process")["gpus"][0]
    assert gpu["processes"] == [
        {"pid": 4242, "name": "/usr/bin/python3", "used_memory_bytes": 40 * GIB}
    ]
    assert gpu["memory_used_bytes"] == 40962 * MIB


def test_processes_on_two_gpus_are_listed_on_their_own_gpu(fake_nvml_dir: Path) -> None:
    facts = probe(
        nvml_env(
            fake_nvml_dir,
            gpu_count="2",
            procs="1:100:trainer:2048;0:101:notebook:512;1:102:eval:-",
        )
    )
    first, second = facts["gpus"]
    assert first["processes"] == [{"pid": 101, "name": "notebook", "used_memory_bytes": 512 * MIB}]
    assert second["processes"][0] == {"pid": 100, "name": "trainer", "used_memory_bytes": 2 * GIB}
    # NVML's "not available" (Windows WDDM) memory degrades that value alone.
    assert second["processes"][1]["name"] == "eval"
    assert missing("not_available")(second["processes"][1]["used_memory_bytes"])


def test_process_name_nvml_cannot_give_comes_from_psutil(fake_nvml_dir: Path) -> None:
    own_pid = os.getpid()  # alive for the whole test, so psutil can name it
    facts = probe(
        nvml_env(
            fake_nvml_dir,
            procs=f"0:{own_pid}:ignored:100;0:999999999:gone:1",
            errors="nvmlSystemGetProcessName:4",
        )
    )
    alive, gone = facts["gpus"][0]["processes"]
    assert alive["name"] == psutil.Process(own_pid).name()
    assert gone["pid"] == 999999999
    assert missing("not_found")(gone["name"])


# ------------------------------------------------------------ per-field degradation ----


def test_power_usage_not_supported_degrades_that_field_alone(fake_nvml_dir: Path) -> None:
    facts = scenario(
        fake_nvml_dir, "driver_535_cuda_12_2_one_h100", not_supported="nvmlDeviceGetPowerUsage"
    )
    gpu = facts["gpus"][0]
    assert gpu["power_draw_w"] == {
        "reason": "not_supported",
        "detail": "NVMLError_NotSupported: Not Supported",
    }
    assert gpu["power_limit_w"] == 700.0
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["processes"] == []
    assert facts["functions_not_found"] == []


def test_memory_info_not_supported_covers_both_versions(fake_nvml_dir: Path) -> None:
    gpu = scenario(
        fake_nvml_dir, "driver_535_cuda_12_2_one_h100", not_supported="nvmlDeviceGetMemoryInfo"
    )["gpus"][0]
    assert missing("not_supported")(gpu["memory_total_bytes"])
    assert missing("not_supported")(gpu["memory_used_bytes"])
    assert gpu["temperature_c"] == 34


def test_enforced_power_limit_not_supported_falls_back_to_management_limit(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    gpu = scenario(
        fake_nvml_dir,
        "driver_535_cuda_12_2_one_h100",
        not_supported="nvmlDeviceGetEnforcedPowerLimit",
        call_log=str(log),
    )["gpus"][0]
    assert gpu["power_limit_w"] == 700.0
    assert "nvmlDeviceGetPowerManagementLimit" in log.read_text().split()


def test_permission_denied_field_says_no_permission(fake_nvml_dir: Path) -> None:
    gpu = scenario(
        fake_nvml_dir, "driver_535_cuda_12_2_one_h100", no_permission="nvmlDeviceGetUUID"
    )["gpus"][0]
    assert missing("no_permission")(gpu["uuid"])
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"


def test_ecc_uncorrected_errors_are_counted(fake_nvml_dir: Path) -> None:
    gpu = scenario(fake_nvml_dir, "ecc_uncorrected_errors")["gpus"][0]
    assert gpu["ecc_errors_uncorrected"] == 3


# ------------------------------------------------------------------- lost GPUs ----


def test_lost_gpu_is_marked_and_the_other_gpu_is_still_reported(fake_nvml_dir: Path) -> None:
    facts = scenario(fake_nvml_dir, "two_gpus_second_lost")
    healthy, lost = facts["gpus"]
    assert healthy["lost"] is False
    assert healthy["name"] == "NVIDIA H100 80GB HBM3"
    assert lost["index"] == 1
    assert lost["lost"] is True
    assert lost["name"] == {"reason": "gpu_lost", "detail": "NVMLError_GpuIsLost: GPU is lost"}
    assert lost["handle_error_code"] is None  # the handle was got; the GPU answered "lost"
    assert all(
        missing("gpu_lost")(value)
        for key, value in lost.items()
        if key not in {"index", "lost", "handle_error_code"}
    )


def test_a_handle_nvml_cannot_open_keeps_its_code_and_the_other_gpus(fake_nvml_dir: Path) -> None:
    facts = scenario(fake_nvml_dir, "four_gpus_one_handle_unknown_error")
    first, broken, *rest = facts["gpus"]
    assert broken["handle_error_code"] == 999
    assert broken["lost"] is False
    assert broken["name"] == {"reason": "error", "detail": "NVMLError_Unknown: Unknown Error"}
    assert first["name"] == "NVIDIA A100-SXM4-80GB" and first["handle_error_code"] is None
    assert [g["index"] for g in rest] == [2, 3]
    assert all(g["handle_error_code"] is None for g in rest)


def test_nvlinks_to_nvswitches_are_read_per_link_with_the_switch_bus(fake_nvml_dir: Path) -> None:
    hgx = scenario(fake_nvml_dir, "a100_hgx_eight_gpus")["gpus"]
    assert hgx[0]["nvswitch_links"][:7] == [f"00000000:{0xC0 + n % 6:02x}" for n in range(7)]
    assert all(len(g["nvswitch_links"]) == 12 for g in hgx)
    direct = scenario(fake_nvml_dir, "a100_four_gpus_direct_nvlink")["gpus"]
    assert all(g["nvswitch_links"] == [] for g in direct)


def test_gpu_lost_midway_keeps_the_fields_read_before(fake_nvml_dir: Path) -> None:
    facts = probe(nvml_env(fake_nvml_dir, gpu_count="3", errors="nvmlDeviceGetMemoryInfo@1:15"))
    first, midway, third = facts["gpus"]
    assert midway["lost"] is True
    assert midway["name"] == "NVIDIA H100 80GB HBM3"
    assert midway["compute_capability"] == [9, 0]
    assert missing("gpu_lost")(midway["memory_total_bytes"])
    assert missing("gpu_lost")(midway["processes"])
    assert first["lost"] is False
    assert third["lost"] is False
    assert third["memory_total_bytes"] == 81559 * MIB


def test_gpu_lost_when_asking_for_its_handle(fake_nvml_dir: Path) -> None:
    facts = probe(
        nvml_env(fake_nvml_dir, gpu_count="2", errors="nvmlDeviceGetHandleByIndex_v2@0:15")
    )
    assert facts["gpus"][0]["lost"] is True
    assert facts["gpus"][1]["lost"] is False
    assert facts["gpus"][1]["uuid"] == "GPU-fa4e0000-0000-4000-8000-000000000001"


def test_handle_error_other_than_lost_degrades_every_field_of_that_gpu(
    fake_nvml_dir: Path,
) -> None:
    facts = probe(
        nvml_env(fake_nvml_dir, gpu_count="2", errors="nvmlDeviceGetHandleByIndex_v2@1:4")
    )
    second = facts["gpus"][1]
    assert second["lost"] is False
    assert missing("no_permission")(second["name"])
    assert missing("no_permission")(second["processes"])
    assert facts["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"


# ----------------------------------------------------- functions the driver lacks ----


def test_driver_without_mig_api_records_function_not_found(
    fake_nvml_builder: Callable[..., Path],
) -> None:
    libdir = fake_nvml_builder(omit=OMIT_SCENARIOS["driver_without_mig_api"])
    facts = probe(
        nvml_env(libdir, **{**SCENARIOS["driver_535_cuda_12_2_one_h100"], "gpu_count": "2"})
    )
    assert facts["functions_not_found"] == ["nvmlDeviceGetMigMode"]  # once, not once per GPU
    for gpu in facts["gpus"]:
        assert gpu["mig_mode_current"] == {
            "reason": "function_not_found",
            "detail": "NVMLError_FunctionNotFound: Function Not Found",
        }
        assert gpu["ecc_mode_current"] is True


def test_driver_without_any_process_list_records_both_versions(
    fake_nvml_builder: Callable[..., Path],
) -> None:
    libdir = fake_nvml_builder(omit=OMIT_SCENARIOS["driver_without_process_list"])
    facts = probe(nvml_env(libdir, **SCENARIOS["memory_held_by_other_process"]))
    assert facts["functions_not_found"] == [
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetComputeRunningProcesses_v2",
    ]
    assert missing("function_not_found")(facts["gpus"][0]["processes"])
    assert facts["gpus"][0]["memory_used_bytes"] == 40962 * MIB


def test_driver_without_process_list_v3_reads_processes_through_v2(
    fake_nvml_builder: Callable[..., Path],
) -> None:
    libdir = fake_nvml_builder(omit=OMIT_SCENARIOS["driver_without_process_list_v3"])
    facts = probe(nvml_env(libdir, **SCENARIOS["memory_held_by_other_process"]))
    assert facts["functions_not_found"] == []
    assert facts["gpus"][0]["processes"] == [
        {"pid": 4242, "name": "/usr/bin/python3", "used_memory_bytes": 40 * GIB}
    ]


def test_driver_without_memory_info_v2_reads_v1_where_reserved_counts_as_used(
    fake_nvml_builder: Callable[..., Path],
) -> None:
    libdir = fake_nvml_builder(omit=("nvmlDeviceGetMemoryInfo_v2",))
    facts = probe(nvml_env(libdir, mem_used_mib="1000", mem_reserved_mib="500"))
    gpu = facts["gpus"][0]
    assert facts["functions_not_found"] == []
    assert gpu["memory_used_bytes"] == 1500 * MIB
    assert gpu["memory_free_bytes"] == (81559 - 1500) * MIB


def test_driver_rejecting_the_memory_v2_struct_version_falls_back_to_v1(
    fake_nvml_dir: Path,
) -> None:
    gpu = probe(
        nvml_env(
            fake_nvml_dir,
            mem_used_mib="1000",
            mem_reserved_mib="500",
            errors="nvmlDeviceGetMemoryInfo_v2:25",
        )
    )["gpus"][0]
    assert gpu["memory_used_bytes"] == 1500 * MIB


def test_memory_info_v2_keeps_reserved_memory_out_of_used(fake_nvml_dir: Path) -> None:
    gpu = probe(nvml_env(fake_nvml_dir, mem_used_mib="1000", mem_reserved_mib="500"))["gpus"][0]
    assert gpu["memory_used_bytes"] == 1000 * MIB
    assert gpu["memory_free_bytes"] == (81559 - 1500) * MIB


def test_old_driver_without_versioned_cuda_and_temperature_calls_uses_the_old_ones(
    fake_nvml_builder: Callable[..., Path],
) -> None:
    libdir = fake_nvml_builder(
        omit=("nvmlSystemGetCudaDriverVersion_v2", "nvmlDeviceGetTemperatureV")
    )
    facts = probe(nvml_env(libdir, **{**SCENARIOS["driver_470_cuda_11_4"], "temp_c": "55"}))
    assert facts["functions_not_found"] == []
    assert facts["cuda_driver_version"] == "11.4"
    assert facts["gpus"][0]["temperature_c"] == 55


# ----------------------------------------------------------------------- hygiene ----


def test_importing_the_probe_module_does_not_import_pynvml() -> None:
    code = "import sys, dlsetup.probes.nvidia; print('pynvml' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip() == "False", proc.stderr


# ------------------------------------------------------------ the fake library itself ----


def exported_symbols(libdir: Path) -> set[str]:
    """The nvml* symbols a built library exports (read in a child: loading the fake here would
    make it this process's libnvidia-ml.so.1 for every later in-process probe)."""
    code = (
        "import ctypes, json, sys\n"
        "from tests.support.fake_nvml import SYMBOLS\n"
        "lib = ctypes.CDLL(sys.argv[1])\n"
        "print(json.dumps([s for s in SYMBOLS if hasattr(lib, s)]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(libdir / "libnvidia-ml.so.1")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(proc.stdout))


def test_fake_library_exports_every_listed_symbol_and_a_variant_omits_only_its_own(
    fake_nvml_dir: Path, fake_nvml_builder: Callable[..., Path]
) -> None:
    assert exported_symbols(fake_nvml_dir) == set(SYMBOLS)
    variant = fake_nvml_builder(omit=("nvmlDeviceGetMigMode", "nvmlDeviceGetUUID"))
    assert variant != fake_nvml_dir
    assert exported_symbols(variant) == set(SYMBOLS) - {"nvmlDeviceGetMigMode", "nvmlDeviceGetUUID"}


def test_fake_library_soname_is_libnvidia_ml_so_1(fake_nvml_dir: Path) -> None:
    header = subprocess.run(
        ["readelf", "-d", str(fake_nvml_dir / "libnvidia-ml.so.1")],
        capture_output=True,
        text=True,
        check=False,
    )
    if header.returncode != 0:
        pytest.skip("readelf is not available")
    assert "Library soname: [libnvidia-ml.so.1]" in header.stdout


def test_building_twice_reuses_the_cached_library(fake_nvml_builder: Callable[..., Path]) -> None:
    first = fake_nvml_builder(omit=("nvmlDeviceGetUUID",))
    mtime = (first / "libnvidia-ml.so.1").stat().st_mtime_ns
    assert fake_nvml_builder(omit=("nvmlDeviceGetUUID",)) == first
    assert (first / "libnvidia-ml.so.1").stat().st_mtime_ns == mtime


def test_unknown_omit_symbol_and_unknown_setting_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a symbol of the fake NVML library: nvmlNoSuchThing"):
        build_fake_nvml(tmp_path, omit=("nvmlNoSuchThing",))
    with pytest.raises(TypeError, match="unknown fake NVML setting\\(s\\): gpu_cuont"):
        nvml_env(tmp_path, gpu_cuont="2")


def test_every_named_scenario_probes_with_the_status_it_is_named_for(
    fake_nvml_dir: Path,
) -> None:
    expected = {"driver_not_loaded": "driver_not_loaded", "driver_mismatch": "driver_mismatch"}
    expected["no_permission"] = "no_permission"
    for name in SCENARIOS:
        facts = scenario(fake_nvml_dir, name)
        assert facts["status"] == expected.get(name, "ok"), name
        if facts["status"] == "ok":
            assert facts["gpu_count"] == int(SCENARIOS[name].get("gpu_count", "1")), name
