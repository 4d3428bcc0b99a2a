"""Issue 25's held-out failures, end to end: ``dlsetup doctor --json`` in a fresh process, the real
pynvml against the fake driver library scripted as the reported machine (a GPU whose handle NVML
cannot open, an A100 HGX board whose NVML has no fabric state, NVSwitches behind the NVLinks or
none), stand-in frameworks with the reported error texts; and the advice that used to contradict
itself or could not be followed, each beside its healthy twin."""

from __future__ import annotations

from pathlib import Path

from dlsetup.checks import evaluate
from tests.doctor import health_cases as hc
from tests.doctor.health_cases import ERROR_802
from tests.doctor.standins import torch_standin
from tests.doctor.test_doctor_cli import doctor, finding, ids, nv
from tests.doctor.test_failure_modes import cpu_tf, torch_warning_on_cuda_init

# ------------------------------------------------------------ a GPU NVML cannot open (999) ----


def test_gpu_whose_handle_fails_with_error_999_is_named_with_what_the_frameworks_see(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    torch_standin(tmp_path, version="2.6.0+cu124", cuda="12.4", device_count=3)
    cpu_tf(tmp_path)
    env = {**nv(fake_nvml_dir, "four_gpus_one_handle_unknown_error"), "PYTHONPATH": str(tmp_path)}
    code, data, _ = doctor(env)
    assert code == 1
    gpus = data["nvidia"]["gpus"]
    assert [g["handle_error_code"] for g in gpus] == [None, 999, None, None]
    f = finding(data, "gpu.unreachable")
    assert f["severity"] == "error"
    assert f["details"]["gpus"] == [1]
    assert f["details"]["nvml_error_code"] == 999
    assert "NVMLError_Unknown" in f["details"]["nvml_error"]
    assert "at most 3 of the 4 GPUs; torch counts 3 GPUs" in f["message"]
    assert f["command"] == "sudo dmesg | grep -i xid"
    # The other GPUs' findings leave GPU 1 out, and say so through gpu.unreachable.
    persistence = finding(data, "gpu.persistence_off")
    assert [g["index"] for g in persistence["details"]["gpus"]] == [0, 2, 3]
    assert persistence["command"] == "sudo nvidia-smi -i 0,2,3 -pm 1"


def test_every_gpu_answering_raises_no_unreachable_finding(fake_nvml_dir: Path) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "eight_gpus"), "--no-frameworks")
    assert "gpu.unreachable" not in ids(data)
    assert all(g["handle_error_code"] is None for g in data["nvidia"]["gpus"])


def test_a_lost_gpu_stays_gpu_lost_not_unreachable(fake_nvml_dir: Path) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "two_gpus_second_lost"), "--no-frameworks")
    assert "gpu.lost" in ids(data)
    assert "gpu.unreachable" not in ids(data)


# ----------------------------------------------- error 802 on an A100 HGX (no fabric state) ----


def test_error_802_on_a100_hgx_is_fabric_manager_through_the_nvswitch_links(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    torch_warning_on_cuda_init(tmp_path, ERROR_802.removeprefix("UserWarning: "))
    cpu_tf(tmp_path)
    env = {**nv(fake_nvml_dir, "a100_hgx_eight_gpus"), "PYTHONPATH": str(tmp_path)}
    code, data, _ = doctor(env)
    assert code == 1
    assert all(g["fabric_state"]["reason"] == "not_supported" for g in data["nvidia"]["gpus"])
    assert all(len(g["nvswitch_links"]) == 12 for g in data["nvidia"]["gpus"])
    f = finding(data, "fabric.manager_not_running")
    assert f["details"]["nvswitch_count"] == 6
    assert "6 NVSwitch devices behind the GPUs' NVLinks" in f["message"]
    assert "nvidia-fabricmanager-550, version 550.54.15" in f["fix"]
    generic = finding(data, "torch.cuda_unavailable")
    assert generic["severity"] == "info"
    assert generic["details"]["superseded_by"] == "fabric.manager_not_running"


def test_error_802_without_nvswitch_stays_the_generic_finding(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    torch_warning_on_cuda_init(tmp_path, ERROR_802.removeprefix("UserWarning: "))
    cpu_tf(tmp_path)
    env = {**nv(fake_nvml_dir, "a100_four_gpus_direct_nvlink"), "PYTHONPATH": str(tmp_path)}
    _, data, _ = doctor(env)
    assert all(g["nvswitch_links"] == [] for g in data["nvidia"]["gpus"])  # links to peer GPUs
    assert "fabric.manager_not_running" not in ids(data)
    assert finding(data, "torch.cuda_unavailable")["severity"] == "error"


def test_a100_hgx_whose_cuda_works_raises_no_fabric_finding(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    torch_standin(tmp_path, version="2.6.0+cu124", cuda="12.4", device_count=8)
    cpu_tf(tmp_path)
    env = {**nv(fake_nvml_dir, "a100_hgx_eight_gpus"), "PYTHONPATH": str(tmp_path)}
    _, data, _ = doctor(env)
    assert "fabric.manager_not_running" not in ids(data)


def test_a_pcie_board_has_no_nvlink_to_read(fake_nvml_dir: Path) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "--no-frameworks")
    assert data["nvidia"]["gpus"][0]["nvswitch_links"]["reason"] == "not_supported"


# ----------------------------------------------------------- advice that must not contradict ----


def test_failed_row_remap_speaks_alone_for_the_gpu_memory(fake_nvml_dir: Path) -> None:
    env = nv(fake_nvml_dir, "row_remap_failed", ecc_uncorrected_aggregate="7", ecc_uncorrected="2")
    _, data, _ = doctor(env, "--no-frameworks")
    assert "gpu.row_remap_failed" in ids(data)
    assert not {"gpu.ecc_errors", "gpu.ecc_errors_aggregate", "gpu.reset_pending"} & set(ids(data))
    gpu = finding(data, "gpu.row_remap_failed")["details"]["gpus"][0]
    assert gpu["ecc_errors_uncorrected_aggregate"] == 7


def test_ecc_errors_on_ampere_point_to_the_row_remapper_with_the_gpu_index(
    fake_nvml_dir: Path,
) -> None:
    _, data, _ = doctor(
        nv(fake_nvml_dir, "mig_on", mig="0,0", ecc_uncorrected="3"), "--no-frameworks"
    )
    f = finding(data, "gpu.ecc_errors")
    assert f["command"] == "sudo nvidia-smi -i 0 -r"
    assert "nvidia-smi -i 0 -q -d ECC,ROW_REMAPPER" in f["fix"]
    assert "PAGE_RETIREMENT" not in f["fix"] and "<index>" not in f["fix"]


def test_ecc_errors_before_ampere_point_to_page_retirement(fake_nvml_dir: Path) -> None:
    env = nv(fake_nvml_dir, "retired_pages_pending_v100", retired_pending="0", ecc_uncorrected="1")
    _, data, _ = doctor(env, "--no-frameworks")
    f = finding(data, "gpu.ecc_errors")
    assert "nvidia-smi -i 0 -q -d ECC,PAGE_RETIREMENT" in f["fix"]
    assert "ROW_REMAPPER" not in f["fix"]


def test_gen5_card_in_a_gen4_server_is_not_told_to_raise_the_bios() -> None:
    found = evaluate(hc.gpus(2, pcie_gen_current=4, pcie_gen_max=4, pcie_gen_gpu_max=5))
    f = next(x for x in found if x.id == "gpu.pcie_slot_limits_gpu")
    assert "cannot raise a slot above the platform's generation" in f.fix
    assert "Move" not in f.fix and "set to Auto" not in f.fix
    assert f.details["faster_slot_gpu"] is None


def test_gen5_card_capped_beside_a_gen5_slot_is_told_to_move_there() -> None:
    tc = hc._tc()
    found = evaluate(
        tc.facts(
            nvidia=tc.nvidia(
                gpus=(
                    tc.gpu(0, pcie_gen_current=3, pcie_gen_max=3, pcie_gen_gpu_max=5),
                    tc.gpu(1, pcie_gen_current=5, pcie_gen_max=5, pcie_gen_gpu_max=5),
                )
            )
        )
    )
    f = next(x for x in found if x.id == "gpu.pcie_slot_limits_gpu")
    assert "GPU 1's slot reaches Gen5" in f.fix and "move GPU 0" in f.fix
    assert f.details["faster_slot_gpu"] == 1


def test_two_geforce_desktop_is_not_a_shared_server() -> None:
    found = evaluate(hc.gpus(2, name="NVIDIA GeForce RTX 4090", persistence_mode=False))
    assert "gpu.persistence_off" not in [f.id for f in found]
    servers = evaluate(hc.gpus(2, persistence_mode=False))
    assert "gpu.persistence_off" in [f.id for f in servers]
