"""``dlsetup doctor --json`` end to end: a fresh process, the real pynvml against the fake driver
library, stand-in frameworks on PYTHONPATH, output validated against the shipped JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dlsetup.output import load_schema
from tests.doctor.standins import (
    crashing_standin,
    failing_standin,
    hanging_standin,
    tensorflow_standin,
    torch_standin,
)
from tests.support.fake_nvml import (
    OMIT_SCENARIOS,
    SCENARIOS,
    no_library_env,
    nvml_env,
    subprocess_env,
    system_has_nvml,
)
from tests.support.proc import run_cli
from tests.support.signals import SIGNALLED

SCHEMA = load_schema("dlsetup.doctor")
PY = sys.executable


def doctor(
    env: dict[str, str], *args: str, timeout: float = 120
) -> tuple[int, dict[str, Any], str]:
    """Run ``dlsetup doctor --json ARGS`` with ``env``; validate and return (exit, data, stderr)."""
    proc = run_cli("doctor", "--json", *args, env=subprocess_env(env), timeout=timeout)
    assert proc.stdout, proc.stderr
    document = json.loads(proc.stdout)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    return proc.returncode, document["data"], proc.stderr


def ids(data: dict[str, Any]) -> list[str]:
    return [f["id"] for f in data["findings"]]


def finding(data: dict[str, Any], check_id: str) -> dict[str, Any]:
    matches = [f for f in data["findings"] if f["id"] == check_id]
    assert matches, f"{check_id} not in {ids(data)}"
    return matches[0]


def standins(tmp_path: Path, **torch_kw: Any) -> str:
    """PYTHONPATH with a CUDA 12.4 torch stand-in and a TF stand-in with no GPU problems."""
    torch_standin(tmp_path, **torch_kw)
    tensorflow_standin(tmp_path, version="2.17.0", cuda_version="12.3", gpus=1)
    return str(tmp_path)


def nv(libdir: Path, name: str, **overrides: str) -> dict[str, str]:
    return nvml_env(libdir, **{**SCENARIOS[name], **overrides})


# ------------------------------------------------------------------------------ NVML states ----


@pytest.mark.skipif(system_has_nvml(), reason="a real NVIDIA driver is installed here")
def test_no_driver_library_is_info_and_exit_0(tmp_path: Path) -> None:
    code, data, _ = doctor(no_library_env(tmp_path / "empty"), "--no-frameworks")
    assert code == 0
    assert data["nvidia"]["status"] == "no_library"
    assert finding(data, "nvml.no_library")["severity"] == "info"
    assert data["frameworks"]["torch"] == {"reason": "skipped", "detail": ""}


def test_driver_not_loaded_is_an_error(fake_nvml_dir: Path) -> None:
    code, data, _ = doctor(nv(fake_nvml_dir, "driver_not_loaded"), "--no-frameworks")
    assert code == 1
    f = finding(data, "nvml.driver_not_loaded")
    assert f["title"] == "The NVIDIA kernel driver is not loaded (NVML error 9)"
    assert f["fix"].startswith("Load it with sudo modprobe nvidia (or reboot)")
    assert data["summary"]["error"] == 1


def test_library_driver_mismatch_is_an_error(fake_nvml_dir: Path) -> None:
    code, data, _ = doctor(nv(fake_nvml_dir, "driver_mismatch"), "--no-frameworks")
    assert code == 1
    f = finding(data, "nvml.driver_mismatch")
    assert f["details"]["nvml_error_code"] == 18
    assert f["fix"].startswith("Reboot so the new kernel module loads")


def test_driver_535_one_h100_with_cuda_12_1_torch_is_healthy(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    env = {
        **nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"),
        "PYTHONPATH": standins(tmp_path, version="2.4.1+cu121", cuda="12.1"),
    }
    code, data, _ = doctor(env)
    assert code == 0, data["findings"]
    assert data["summary"]["error"] == 0
    assert data["nvidia"]["driver_version"] == "535.104.05"
    assert data["nvidia"]["cuda_driver_version"] == "12.2"
    assert [g["name"] for g in data["nvidia"]["gpus"]] == ["NVIDIA H100 80GB HBM3"]
    torch = data["frameworks"]["torch"]
    assert torch["status"] == "ok"
    assert torch["version"] == "2.4.1+cu121"
    assert torch["torch"]["cuda"] == "12.1"
    tf = data["frameworks"]["tensorflow"]["tensorflow"]
    assert tf["gpus"] == ["/physical_device:GPU:0"]
    assert "driver.too_old_for_build" not in ids(data)
    assert "gpu.arch_not_in_build" not in ids(data)
    assert "torch.cpu_build_on_gpu_machine" not in ids(data)


def test_eight_gpus_are_all_reported(fake_nvml_dir: Path) -> None:
    code, data, _ = doctor(nv(fake_nvml_dir, "eight_gpus"), "--no-frameworks")
    assert code == 0
    assert [g["index"] for g in data["nvidia"]["gpus"]] == list(range(8))
    assert {g["name"] for g in data["nvidia"]["gpus"]} == {"NVIDIA A100-SXM4-80GB"}
    assert data["nvidia"]["gpus"][7]["compute_capability"] == [8, 0]


def test_driver_470_cuda_11_4_with_cuda_12_4_torch_is_an_error_with_the_fix(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    env = {
        **nv(fake_nvml_dir, "driver_470_cuda_11_4"),
        "PYTHONPATH": standins(tmp_path, version="2.6.0+cu124", cuda="12.4"),
    }
    code, data, _ = doctor(env)
    assert code == 1
    f = next(
        x
        for x in data["findings"]
        if x["id"] == "driver.too_old_for_build" and x["details"]["framework"] == "torch"
    )
    assert f["severity"] == "error"
    assert f["message"] == (
        "torch 2.6.0+cu124 was built for CUDA 12.4, but the NVIDIA driver 470.82.01 supports "
        "CUDA 11.4 at most: the driver supports CUDA 11.4, older than the CUDA 12.4 the build "
        "needs. torch will not see the GPU."
    )
    assert f["fix"] == (
        "Update the NVIDIA driver to 550.54.14 or newer (any driver >= 525.60.13 runs CUDA 12.x "
        "builds through minor-version compatibility), or install a build this driver runs: "
        f"{PY} -m pip install 'torch==2.7.*' --index-url https://download.pytorch.org/whl/cu118."
    )
    # TensorFlow's CUDA 12.3 build is too old for this driver as well.
    assert any(
        x["id"] == "driver.too_old_for_build" and x["details"]["framework"] == "tensorflow"
        for x in data["findings"]
    )


def test_cc_12_0_gpu_with_arch_list_up_to_sm_90_is_an_error(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    env = {
        **nv(fake_nvml_dir, "cc_12_0_rtx_5090"),
        "PYTHONPATH": standins(tmp_path, version="2.6.0+cu124", cuda="12.4"),
    }
    code, data, _ = doctor(env)
    assert code == 1
    f = next(
        x
        for x in data["findings"]
        if x["id"] == "gpu.arch_not_in_build" and x["details"]["framework"] == "torch"
    )
    assert f["title"] == "torch 2.6.0+cu124 has no kernels for GPU 0 (compute capability 12.0)"
    assert f["message"].startswith(
        "the build ships kernels up to sm_90 and no PTX the driver could compile for compute "
        "capability 12.0"
    )
    assert f["fix"].startswith(
        f"{PY} -m pip install 'torch==2.11.*' --index-url https://download.pytorch.org/whl/cu128"
    )


def test_mig_on_is_a_warning_that_strict_turns_into_exit_1(fake_nvml_dir: Path) -> None:
    code, data, _ = doctor(nv(fake_nvml_dir, "mig_on"), "--no-frameworks")
    assert code == 0
    assert finding(data, "gpu.mig_enabled")["severity"] == "warning"
    assert "gpu.mig_pending_reset" not in ids(data)
    strict_code, strict_data, _ = doctor(nv(fake_nvml_dir, "mig_on"), "--no-frameworks", "--strict")
    assert strict_code == 1
    assert strict_data["exit_code"] == 1 and strict_data["strict"] is True


def test_pending_mig_change_needs_a_reset(fake_nvml_dir: Path) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "mig_pending"), "--no-frameworks")
    f = finding(data, "gpu.mig_pending_reset")
    assert f["fix"] == "Stop the GPU's processes, then sudo nvidia-smi -i 0 -r (or reboot)."


def test_memory_held_by_another_process_names_it(fake_nvml_dir: Path) -> None:
    _, data, _ = doctor(nv(fake_nvml_dir, "memory_held_by_other_process"), "--no-frameworks")
    f = finding(data, "gpu.memory_held")
    assert f["title"] == "GPU 0: 40962 MiB of 81559 MiB held by other processes"
    assert "pid 4242 (/usr/bin/python3, 40960 MiB)" in f["message"]
    assert f["fix"].startswith("Stop them if they are yours (kill 4242)")


def test_a_function_the_driver_lacks_degrades_and_the_report_ends(
    fake_nvml_builder: Callable[..., Path],
) -> None:
    libdir = fake_nvml_builder(omit=OMIT_SCENARIOS["driver_without_mig_api"])
    code, data, _ = doctor(nv(libdir, "driver_535_cuda_12_2_one_h100"), "--no-frameworks")
    assert code == 0
    gpu = data["nvidia"]["gpus"][0]
    assert gpu["mig_mode_current"]["reason"] == "function_not_found"
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert finding(data, "nvml.function_not_found")["severity"] == "info"


def test_lost_gpu_is_an_error_and_the_other_gpu_is_still_read(fake_nvml_dir: Path) -> None:
    code, data, _ = doctor(nv(fake_nvml_dir, "two_gpus_second_lost"), "--no-frameworks")
    assert code == 1
    assert finding(data, "gpu.lost")["details"]["gpus"] == [1]
    assert data["nvidia"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"


# ------------------------------------------------------------------- CUDA_VISIBLE_DEVICES ----


def test_empty_cuda_visible_devices_hides_every_gpu(fake_nvml_dir: Path) -> None:
    env = {**nv(fake_nvml_dir, "eight_gpus"), "CUDA_VISIBLE_DEVICES": ""}
    _, data, _ = doctor(env, "--no-frameworks")
    f = finding(data, "cuda_visible_devices.hides_all")
    assert f["message"].startswith("CUDA_VISIBLE_DEVICES='' makes all 8 GPU(s) invisible")


def test_cuda_visible_devices_naming_a_missing_gpu_is_an_error(fake_nvml_dir: Path) -> None:
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "CUDA_VISIBLE_DEVICES": "3"}
    code, data, _ = doctor(env, "--no-frameworks")
    assert code == 1
    f = finding(data, "cuda_visible_devices.unknown_device")
    assert f["title"] == "CUDA_VISIBLE_DEVICES names a GPU that does not exist: 3"
    assert f["fix"].startswith("export CUDA_VISIBLE_DEVICES=0 ")


def test_missing_gpu_in_cuda_visible_devices_hides_the_gpus_listed_after_it(
    fake_nvml_dir: Path,
) -> None:
    env = {**nv(fake_nvml_dir, "eight_gpus", gpu_count="2"), "CUDA_VISIBLE_DEVICES": "0,7,1"}
    code, data, _ = doctor(env, "--no-frameworks")
    f = finding(data, "cuda_visible_devices.unknown_device")
    assert (code, f["severity"]) == (0, "warning")
    assert f["title"] == "CUDA_VISIBLE_DEVICES names a GPU that does not exist: 7"
    assert f["message"] == (
        "CUDA_VISIBLE_DEVICES='0,7,1': GPU 7 does not exist (this machine has GPUs 0 and 1). "
        "CUDA stops reading the list at the first entry it cannot use, so GPU 1 listed after "
        "it is hidden too. CUDA sees GPU 0 only."
    )
    assert f["fix"] == (
        "export CUDA_VISIBLE_DEVICES=0,1 (indices or UUIDs from nvidia-smi -L), or unset "
        "CUDA_VISIBLE_DEVICES."
    )
    assert (f["details"]["visible_gpus"], f["details"]["hidden_gpus"]) == ([0], [1])


@pytest.mark.parametrize("value", ["-1", "none"])
def test_minus_one_or_none_hides_every_gpu(fake_nvml_dir: Path, value: str) -> None:
    env = {**nv(fake_nvml_dir, "eight_gpus", gpu_count="2"), "CUDA_VISIBLE_DEVICES": value}
    code, data, _ = doctor(env, "--no-frameworks")
    assert code == 0
    assert [i for i in ids(data) if i.startswith("cuda_visible_devices.")] == [
        "cuda_visible_devices.hides_all"
    ]
    assert finding(data, "cuda_visible_devices.hides_all")["message"] == (
        f"CUDA_VISIBLE_DEVICES={value!r} makes all 2 GPU(s) invisible to CUDA: frameworks run "
        "on the CPU."
    )


def test_uuid_prefix_matching_no_gpu_is_an_error(fake_nvml_dir: Path) -> None:
    uuids = "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6,GPU-1d6b5c3e-0000-4000-8000-000000000002"
    env = {
        **nv(fake_nvml_dir, "eight_gpus", gpu_count="2", uuids=uuids),
        "CUDA_VISIBLE_DEVICES": "GPU-1d6b,GPU-8933",
    }
    code, data, _ = doctor(env, "--no-frameworks")
    assert [g["uuid"] for g in data["nvidia"]["gpus"]] == uuids.split(",")
    f = finding(data, "cuda_visible_devices.unknown_device")
    assert (code, f["severity"]) == (0, "warning")
    assert f["message"] == (
        "CUDA_VISIBLE_DEVICES='GPU-1d6b,GPU-8933': no GPU's UUID starts with GPU-8933 "
        "(nvidia-smi -L lists them). CUDA stops reading the list at the first entry it cannot "
        "use. CUDA sees GPU 1 only."
    )
    env["CUDA_VISIBLE_DEVICES"] = "GPU-1d6b,GPU-8932"
    _, data, _ = doctor(env, "--no-frameworks")
    assert not [i for i in ids(data) if i.startswith("cuda_visible_devices.")]


def test_mig_uuid_needs_a_gpu_in_mig_mode(fake_nvml_dir: Path) -> None:
    mig = "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"
    env = {**nv(fake_nvml_dir, "mig_on", mig="0,0"), "CUDA_VISIBLE_DEVICES": mig}
    code, data, _ = doctor(env, "--no-frameworks")
    f = finding(data, "cuda_visible_devices.unknown_device")
    assert (code, f["severity"]) == (1, "error")
    assert f["message"] == (
        f"CUDA_VISIBLE_DEVICES={mig!r}: {mig} names a MIG instance, but MIG mode is off on the "
        "GPU(s). CUDA stops reading the list at the first entry it cannot use. CUDA sees no "
        "GPU: frameworks run on the CPU."
    )
    _, data, _ = doctor(
        {**nv(fake_nvml_dir, "mig_on"), "CUDA_VISIBLE_DEVICES": mig}, "--no-frameworks"
    )
    assert not [i for i in ids(data) if i.startswith("cuda_visible_devices.")]
    assert "gpu.mig_enabled" in ids(data)


def test_skip_leaves_out_an_accepted_warning_under_strict(fake_nvml_dir: Path) -> None:
    env = nv(fake_nvml_dir, "memory_held_by_other_process")
    code, data, _ = doctor(env, "--no-frameworks", "--strict")
    assert (code, ids(data)) == (1, ["gpu.memory_held"])
    code, data, _ = doctor(env, "--no-frameworks", "--strict", "--skip", "gpu.memory_held")
    assert (code, ids(data), data["skipped_checks"]) == (0, [], ["gpu.memory_held"])
    proc = run_cli(
        "doctor",
        "--no-frameworks",
        "--strict",
        "--skip",
        "gpu.memory_held",
        env=subprocess_env(env),
    )
    assert proc.stdout.splitlines()[-1].endswith("(skipped: gpu.memory_held)")


def test_skip_with_an_unknown_check_id_is_a_usage_error(fake_nvml_dir: Path) -> None:
    env = nv(fake_nvml_dir, "memory_held_by_other_process")
    proc = run_cli("doctor", "--json", "--skip", "gpu.memory_hold", env=subprocess_env(env))
    assert proc.returncode == 2
    assert proc.stderr == (
        "Error: --skip gpu.memory_hold: no such check id\n"
        "Fix: use one of the ids in docs/doctor.md, e.g. --skip gpu.memory_held\n"
    )
    error = json.loads(proc.stdout)["data"]["error"]  # --json: the error as a document too
    assert (error["type"], error["exit_code"]) == ("InputError", 2)
    assert error["message"] == "--skip gpu.memory_hold: no such check id"


def test_valid_cuda_visible_devices_is_silent(fake_nvml_dir: Path) -> None:
    env = {**nv(fake_nvml_dir, "eight_gpus"), "CUDA_VISIBLE_DEVICES": "0,7"}
    _, data, _ = doctor(env, "--no-frameworks")
    assert not [i for i in ids(data) if i.startswith("cuda_visible_devices.")]


# ---------------------------------------------------------------------- framework probes ----


def test_cpu_torch_on_a_gpu_machine_gets_the_install_command(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    env = {
        **nv(fake_nvml_dir, "cc_12_0_rtx_5090"),
        "PYTHONPATH": standins(tmp_path, version="2.13.0+cpu", cuda=None),
    }
    code, data, _ = doctor(env)
    assert code == 1
    f = finding(data, "torch.cpu_build_on_gpu_machine")
    assert f["message"] == (
        "torch 2.13.0+cpu has no CUDA support, so it cannot use GPU 0 (NVIDIA GeForce RTX 5090, "
        "CC 12.0)."
    )
    assert f["fix"] == (
        f"{PY} -m pip install 'torch==2.11.*' --index-url https://download.pytorch.org/whl/cu128  "
        "(PyTorch 2.11 built for CUDA 12.8)"
    )


def test_import_that_aborts_the_interpreter_is_a_finding(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    crashing_standin(tmp_path, "torch")
    tensorflow_standin(tmp_path)
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "PYTHONPATH": str(tmp_path)}
    code, data, _ = doctor(env)
    assert code == 1
    f = finding(data, "framework.import_crashed")
    assert f["title"] == "import torch crashed the Python interpreter"
    assert f["message"].startswith(
        "the interpreter died while importing torch (killed by signal SIGABRT (6))"
    )
    assert data["frameworks"]["torch"]["status"] == "crashed"
    assert data["frameworks"]["tensorflow"]["status"] == "ok"


def test_import_that_hangs_times_out_and_doctor_still_ends(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    hanging_standin(tmp_path, "tensorflow")
    torch_standin(tmp_path, version="2.4.1+cu121", cuda="12.1")
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "PYTHONPATH": str(tmp_path)}
    start = time.perf_counter()
    code, data, _ = doctor(env, "--timeout", "3")
    assert time.perf_counter() - start < 30
    assert code == 1
    f = finding(data, "framework.import_timeout")
    assert f["message"].startswith(
        "importing tensorflow did not finish within 3 s; the probe was killed"
    )
    assert data["frameworks"]["torch"]["status"] == "ok"


def test_cuda_libraries_the_framework_failed_to_load_are_named(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    torch_standin(tmp_path, version="2.4.1+cu121", cuda="12.1")
    tensorflow_standin(
        tmp_path,
        stderr=(
            "W tensorflow/tsl/platform/default/dso_loader.cc:66] Could not load dynamic library "
            "'libcudnn.so.8'; dlerror: libcudnn.so.8: cannot open shared object file\n"
            "W tensorflow/core/common_runtime/gpu/gpu_device.cc:1960] Cannot dlopen some GPU "
            "libraries. Please make sure the missing libraries mentioned above are installed"
        ),
    )
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "PYTHONPATH": str(tmp_path)}
    code, data, _ = doctor(env)
    assert code == 1
    f = finding(data, "framework.cuda_libs_failed")
    assert f["title"] == "tensorflow could not load libcudnn.so.8"
    assert f["severity"] == "error"
    version = data["frameworks"]["tensorflow"]["version"]
    assert f["command"] == f"{PY} -m pip install 'tensorflow[and-cuda]=={version}'"
    assert data["frameworks"]["tensorflow"]["failed_libraries"] == ["libcudnn.so.8"]


def test_import_error_from_a_missing_library_is_import_failed(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    failing_standin(
        tmp_path, "torch", "libcudnn.so.9: cannot open shared object file: No such file"
    )
    tensorflow_standin(tmp_path)
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "PYTHONPATH": str(tmp_path)}
    _, data, _ = doctor(env)
    assert finding(data, "framework.import_failed")["message"].startswith(
        "Importing torch raised OSError: libcudnn.so.9"
    )
    assert data["frameworks"]["torch"]["failed_libraries"] == ["libcudnn.so.9"]
    assert "framework.cuda_libs_failed" in ids(data)


def test_python_flag_selects_the_interpreter_and_a_missing_one_is_exit_3(tmp_path: Path) -> None:
    proc = run_cli("doctor", "--json", "--python", str(tmp_path / "nope" / "python"))
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"Error: no Python interpreter at {tmp_path / 'nope' / 'python'}")
    assert "Fix: pass --python" in proc.stderr


def test_python_flag_probes_that_interpreter(fake_nvml_dir: Path, tmp_path: Path) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    env = {
        **nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"),
        "PYTHONPATH": standins(tmp_path, version="2.4.1+cu121", cuda="12.1"),
    }
    _, data, _ = doctor(env, "--python", base)
    assert data["frameworks"]["python_executable"] == base
    assert data["frameworks"]["torch"]["version"] == "2.4.1+cu121"


def test_human_report_is_plain_when_piped(fake_nvml_dir: Path, tmp_path: Path) -> None:
    env = {
        **nv(fake_nvml_dir, "driver_470_cuda_11_4"),
        "PYTHONPATH": standins(tmp_path, version="2.6.0+cu124", cuda="12.4"),
    }
    proc = run_cli("doctor", env=subprocess_env(env))
    assert proc.returncode == 1
    out = proc.stdout
    assert "\x1b[" not in out
    for section in ("System", "NVIDIA", "CUDA libraries", "Environment managers", "Frameworks"):
        assert f"\n{section}" in "\n" + out
    assert "driver.too_old_for_build" in out
    assert "Tesla V100-SXM2-16GB" in out
    assert "error(s)" in out.splitlines()[-1]


def test_piped_report_prints_each_fix_command_whole_on_one_line(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    env = {
        **nv(fake_nvml_dir, "eight_gpus", gpu_count="2"),
        "CUDA_VISIBLE_DEVICES": "0,7,1",
        "PYTHONPATH": standins(tmp_path, version="2.13.0+cpu", cuda=None),
    }
    _, data, _ = doctor(env)
    commands = {f["id"]: f["command"] for f in data["findings"] if f["command"]}
    assert commands["cuda_visible_devices.unknown_device"] == "export CUDA_VISIBLE_DEVICES=0,1"
    install = commands["torch.cpu_build_on_gpu_machine"]
    assert install.endswith(
        " -m pip install 'torch==2.14.*' --index-url https://download.pytorch.org/whl/cu126"
    )
    assert len(install) > 100  # longer than a column of the 120-wide piped table
    proc = run_cli("doctor", env=subprocess_env(env))
    lines = [line.strip() for line in proc.stdout.splitlines()]
    for command in commands.values():
        assert command in lines, (command, proc.stdout)
    assert "1. for torch.cpu_build_on_gpu_machine:" in lines
    assert "CUDA_VISIBLE_DEVICES  '0,7,1' (CUDA sees GPU 0)" in lines


@pytest.mark.slow
def test_real_torch_cpu_and_tensorflow_cpu_are_probed(fake_nvml_dir: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    env = nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100")
    env.pop("PYTHONPATH", None)
    code, data, _ = doctor(env, "--timeout", "300", timeout=400)
    torch = data["frameworks"]["torch"]
    tf = data["frameworks"]["tensorflow"]
    assert torch["status"] == "ok", torch
    assert torch["version"].startswith("2.13.0")
    assert torch["torch"]["cuda"]["reason"] == "cpu_build"
    assert torch["torch"]["arch_list"] == []
    assert torch["torch"]["cuda_available"] is False
    assert tf["status"] == "ok", tf
    assert tf["tensorflow"]["is_cuda_build"] is False
    assert tf["tensorflow"]["gpus"] == []
    assert tf["imported"] == "tensorflow.python.pywrap_tfe"  # the native cores answered
    assert torch["imported"] == "torch._C"
    assert code == 1
    assert "torch.cpu_build_on_gpu_machine" in ids(data)
    assert "tensorflow.cpu_build_on_gpu_machine" in ids(data)


def test_doctor_never_leaves_a_worker_running(fake_nvml_dir: Path, tmp_path: Path) -> None:
    hanging_standin(tmp_path, "torch")
    hanging_standin(tmp_path, "tensorflow")
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "PYTHONPATH": str(tmp_path)}
    doctor(env, "--timeout", "1")
    assert _workers_with(str(tmp_path)) == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a process is POSIX")
def test_ctrl_c_while_imports_hang_ends_doctor_and_its_workers_at_once(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    import os
    import signal

    from tests.support.proc import REPO

    hanging_standin(tmp_path, "torch")
    hanging_standin(tmp_path, "tensorflow")
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlsetup", "doctor", "--json", "--timeout", "120"],
        env=subprocess_env(env),
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_workers_with(str(tmp_path))) < 2:
            assert time.monotonic() < deadline, "the framework workers did not start"
            time.sleep(0.1)
        time.sleep(1.0)  # let doctor reach the wait for the workers
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)  # not the 120 s probe timeout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = _workers_with(str(tmp_path))
        for pid in left:  # a regression must not leave hung workers behind
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert err.strip().endswith("Interrupted.")
    assert left == []


def _workers_with(pythonpath: str) -> list[int]:
    """Pids of framework workers still running with ``pythonpath`` in their environment."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            is_worker = any("framework_worker.py" in part for part in cmdline)
            if is_worker and proc.environ().get("PYTHONPATH") == pythonpath:
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.slow
def test_full_import_of_real_tensorflow_gives_the_same_facts() -> None:
    pytest.importorskip("tensorflow")
    _, core, _ = doctor({}, "--timeout", "300", timeout=400)
    _, full, _ = doctor({}, "--timeout", "300", "--full-import", timeout=400)
    core_tf = core["frameworks"]["tensorflow"]
    full_tf = full["frameworks"]["tensorflow"]
    assert full_tf["imported"] == "tensorflow"
    assert full_tf["version"] == core_tf["version"]
    assert full_tf["tensorflow"] == core_tf["tensorflow"]


def test_schema_rejects_output_that_drifts(fake_nvml_dir: Path) -> None:
    proc = run_cli(
        "doctor",
        "--json",
        "--no-frameworks",
        env=subprocess_env(nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100")),
    )
    document = json.loads(proc.stdout)
    document["data"]["nvidia"]["gpus"][0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_json_without_frameworks_imports_nothing_heavy(fake_nvml_dir: Path) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from dlsetup.cli import cli\n"
        "r = CliRunner().invoke(cli, ['doctor', '--no-frameworks', '--json'])\n"
        "assert r.exit_code in (0, 1), r.output\n"
        "heavy = {'torch', 'tensorflow', 'rattler', 'conda_lock', 'numpy', 'rich', 'yaml'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    env = subprocess_env(nv(fake_nvml_dir, "memory_held_by_other_process"))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_help_teaches_checks_exit_codes_and_examples() -> None:
    proc = run_cli("doctor", "--help")
    assert proc.returncode == 0
    assert "  1  at least one error finding (or a warning with --strict)" in proc.stdout
    assert "dlsetup doctor --json | jq .data.findings" in proc.stdout
    assert "dlsetup doctor --strict --skip gpu.memory_held" in proc.stdout
    for option in ("--json", "--strict", "--no-frameworks", "--python", "--timeout"):
        assert option in proc.stdout


def test_bad_timeout_is_a_usage_error() -> None:
    proc = run_cli("doctor", "--timeout", "0")
    assert proc.returncode == 2
    assert "Invalid value for '--timeout'" in proc.stderr


def test_tensorflow_core_that_does_not_load_alone_falls_back_to_the_full_import(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    torch_standin(tmp_path, version="2.4.1+cu121", cuda="12.1")
    tensorflow_standin(tmp_path)
    python = tmp_path / "tensorflow" / "python"
    (python / "platform").mkdir(parents=True)
    (python / "__init__.py").write_text("")
    (python / "platform" / "__init__.py").write_text("")
    (python / "platform" / "build_info.py").write_text("build_info = {'is_cuda_build': False}\n")
    (python / "pywrap_tfe.py").write_text("raise ImportError('needs tensorflow/__init__ first')\n")
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "PYTHONPATH": str(tmp_path)}
    _, data, _ = doctor(env)
    tf = data["frameworks"]["tensorflow"]
    assert tf["status"] == "ok"
    assert tf["imported"] == "tensorflow"
    assert tf["messages"] == [
        "TensorFlow's core alone did not answer (ImportError: needs tensorflow/__init__ first); "
        "the full import was used"
    ]
    assert tf["tensorflow"]["gpus"] == ["/physical_device:GPU:0"]
