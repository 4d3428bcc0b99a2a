"""GPU health checks end to end: ``dlsetup doctor --json --no-frameworks`` in a fresh process, the
real pynvml against the fake driver library scripted as a sick (or healthy-but-alike) GPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dlsetup.checks import health
from tests.doctor.test_doctor_cli import doctor, finding, ids, nv

HEALTH_IDS = set(health.CHECK_IDS)

#: scenario -> the health check ids it must raise (and no other health id).
FIRING: dict[str, set[str]] = {
    "pcie_x8_under_load": {"gpu.pcie_link_degraded"},
    "pcie_gen1_under_load": {"gpu.pcie_link_degraded"},
    "gen5_gpu_in_gen3_slot": {"gpu.pcie_slot_limits_gpu"},
    "hw_power_brake": {"gpu.clocks_slowdown"},
    "hot_near_slowdown": {"gpu.temperature_near_slowdown"},
    "power_limit_lowered": {"gpu.power_limit_below_default"},
    "ecc_aggregate_only": {"gpu.ecc_errors_aggregate"},
    "row_remap_pending": {"gpu.reset_pending"},
    "retired_pages_pending_v100": {"gpu.reset_pending"},
    "row_remap_failed": {"gpu.row_remap_failed"},
    "persistence_off_eight_gpus": {"gpu.persistence_off"},
}

#: Healthy machines, some looking like a fault: no health finding at all.
SILENT = (
    "driver_535_cuda_12_2_one_h100",
    "pcie_gen1_at_idle",  # Gen1 at idle: power saving
    "sw_power_cap_under_load",  # at the power limit under load: normal
    "eight_gpus",
    "cc_12_0_rtx_5090",  # desktop board, persistence off, no row remapping: normal
    "driver_470_cuda_11_4",
    "nvswitch_fabric_completed",
)


@pytest.mark.parametrize("scenario", sorted(FIRING))
def test_sick_gpu_scenario_raises_its_health_finding(fake_nvml_dir: Path, scenario: str) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, scenario), "--no-frameworks")
    assert set(ids(data)) & HEALTH_IDS == FIRING[scenario]
    for check_id in FIRING[scenario]:
        f = finding(data, check_id)
        assert f["severity"] == health.CHECK_IDS[check_id]
        assert f["details"]["gpus"] and f["details"]["gpus"][0]["index"] == 0


@pytest.mark.parametrize("scenario", SILENT)
def test_healthy_gpu_scenario_raises_no_health_finding(fake_nvml_dir: Path, scenario: str) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, scenario), "--no-frameworks")
    assert not set(ids(data)) & HEALTH_IDS, ids(data)


def test_power_brake_names_the_reasons_the_raw_mask_and_the_power_supply(
    fake_nvml_dir: Path,
) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "hw_power_brake"), "--no-frameworks")
    f = finding(data, "gpu.clocks_slowdown")
    assert f["title"] == "GPU 0: clocks held down (hw_slowdown, hw_power_brake_slowdown)"
    raw = f["details"]["gpus"][0]
    assert raw["clocks_event_reasons"] == 0x88
    assert raw["reasons"] == ["hw_slowdown", "hw_power_brake_slowdown"]
    assert "power supply" in f["fix"]
    assert f["command"] == "nvidia-smi -i 0 -q -d PERFORMANCE"


def test_pcie_finding_carries_the_link_facts_that_fired_it(fake_nvml_dir: Path) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "pcie_x8_under_load"), "--no-frameworks")
    f = finding(data, "gpu.pcie_link_degraded")
    assert f["details"]["gpus"][0] == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "pcie_gen_current": 5,
        "pcie_gen_max": 5,
        "pcie_width_current": 8,
        "pcie_width_max": 16,
        "utilization_gpu_percent": 97,
        "clocks_event_reasons": 0,
    }
    assert "Reseat" in f["fix"]


def test_power_limit_fix_restores_the_default(fake_nvml_dir: Path) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "power_limit_lowered"), "--no-frameworks")
    f = finding(data, "gpu.power_limit_below_default")
    assert f["command"] == "sudo nvidia-smi -i 0 -pl 700"
    assert f["details"]["gpus"][0]["power_limit_w"] == 450.0


def test_reset_pending_and_persistence_fixes(fake_nvml_dir: Path) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "row_remap_pending"), "--no-frameworks")
    assert finding(data, "gpu.reset_pending")["command"] == "sudo nvidia-smi -i 0 -r"
    _, data, _ = doctor(nv(fake_nvml_dir, "persistence_off_eight_gpus"), "--no-frameworks")
    f = finding(data, "gpu.persistence_off")
    assert f["command"] == "sudo nvidia-smi -pm 1"
    assert f["title"].startswith("GPU 0, 1, 2, 3, 4, 5, 6, 7:")


def test_fields_a_gpu_does_not_support_degrade_one_by_one_and_fire_nothing(
    fake_nvml_dir: Path,
) -> None:
    unsupported = (
        "nvmlDeviceGetGpuMaxPcieLinkGeneration,nvmlDeviceGetUtilizationRates,"
        "nvmlDeviceGetCurrentClocksEventReasons,nvmlDeviceGetTemperatureThreshold,"
        "nvmlDeviceGetPowerManagementDefaultLimit,nvmlDeviceGetRemappedRows,"
        "nvmlDeviceGetRetiredPagesPendingStatus,nvmlDeviceGetGpuFabricInfo"
    )
    # Sick values everywhere, but NVML answers NotSupported for the fields that would judge them.
    env = nv(
        fake_nvml_dir,
        "hw_power_brake",
        pcie_gen="1,5",
        remapped_rows="0,1,1,1",
        retired_pending="1",
        power_default_limit_w="900",
        not_supported=unsupported,
    )
    _, data, _ = doctor(env, "--no-frameworks")
    assert not set(ids(data)) & HEALTH_IDS, ids(data)
    gpu = data["nvidia"]["gpus"][0]
    for field in (
        "pcie_gen_gpu_max",
        "utilization_gpu_percent",
        "clocks_event_reasons",
        "temperature_slowdown_c",
        "power_limit_default_w",
        "remapped_rows_pending",
        "retired_pages_pending",
        "fabric_state",
    ):
        assert gpu[field]["reason"] == "not_supported", field
    assert gpu["pcie_gen_current"] == 1  # the rest was still read
    assert data["nvidia"]["functions_not_found"] == []


def test_older_driver_without_clock_event_reasons_falls_back_to_throttle_reasons(
    fake_nvml_builder: Callable[..., Path],
) -> None:
    libdir = fake_nvml_builder(omit=("nvmlDeviceGetCurrentClocksEventReasons",))
    _, data, _ = doctor(nv(libdir, "hw_power_brake"), "--no-frameworks")
    assert data["nvidia"]["gpus"][0]["clocks_event_reasons"] == 0x88
    assert data["nvidia"]["functions_not_found"] == []
    assert "gpu.clocks_slowdown" in ids(data)
