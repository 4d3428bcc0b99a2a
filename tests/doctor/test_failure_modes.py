"""The failure modes doctor used to miss, end to end: ``dlsetup doctor --json`` in a fresh process,
the real pynvml against the fake driver library, stand-in frameworks (and their wheels'
``dist-info``) on PYTHONPATH, each fault staged the way real machines show it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from dlsetup.checks import environment_faults
from dlsetup.probes.cuda_libs import probe_gpu_access, probe_ld_library_path
from dlsetup.probes.cuda_wheels import parse_pins, probe_cuda_wheels
from tests.doctor.health_cases import (
    CUBLAS_SHADOWED,
    ERROR_802,
    TF_2_19_0_CUDNN,
    TORCH_2_3_1_CUDNN,
    TORCH_2_5_1_CUDNN,
    container_case,
)
from tests.doctor.standins import _write, failing_standin, tensorflow_standin, torch_standin
from tests.doctor.test_cuda_libs import NVCC_11_8, NVCC_12_4, printing_tool
from tests.doctor.test_doctor_cli import doctor, finding, ids, nv
from tests.support.fake_nvml import no_library_env, nvml_env, system_has_nvml

FAULT_IDS = set(environment_faults.CHECK_IDS)

#: Requires-Dist lines exactly as the real wheels' METADATA has them (PyPI, linux x86_64, cp311).
TORCH_2_5_1_REQUIRES = (
    'Requires-Dist: nvidia-cudnn-cu12 (==9.1.0.70) ; platform_system == "Linux" and '
    'platform_machine == "x86_64"\n'
    'Requires-Dist: nvidia-cublas-cu12 (==12.4.5.8) ; platform_system == "Linux" and '
    'platform_machine == "x86_64"\n'
)
TORCH_2_3_1_REQUIRES = (
    'Requires-Dist: nvidia-cudnn-cu12 (==8.9.2.26) ; platform_system == "Linux" and '
    'platform_machine == "x86_64"\n'
    'Requires-Dist: nvidia-cublas-cu12 (==12.1.3.1) ; platform_system == "Linux" and '
    'platform_machine == "x86_64"\n'
)
TF_2_19_0_REQUIRES = (
    "Requires-Dist: nvidia-cublas-cu12 ==12.5.3.2 ; extra == 'and-cuda'\n"
    "Requires-Dist: nvidia-cudnn-cu12 ==9.3.0.75 ; extra == 'and-cuda'\n"
)
LINUX_X86 = sys.platform == "linux" and os.uname().machine == "x86_64"


def dist_info(root: Path, name: str, version: str, requires: str = "") -> None:
    """A ``NAME-VERSION.dist-info`` with a METADATA file, as pip leaves it."""
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}\n", encoding="utf-8"
    )


def cpu_tf(root: Path) -> None:
    tensorflow_standin(root, version="2.21.0", cuda_version=None, gpus=0)


def torch_warning_on_cuda_init(root: Path, warning: str) -> Path:
    """A CUDA 12.4 torch whose ``cuda.is_available()`` warns and says False, as real torch does
    when ``cudaGetDeviceCount`` fails."""
    return _write(
        root,
        "torch",
        f"""
        import warnings
        from types import SimpleNamespace
        __version__ = "2.6.0+cu124"
        version = SimpleNamespace(cuda="12.4", hip=None)
        def _is_available():
            warnings.warn({warning!r}, UserWarning)
            return False
        cuda = SimpleNamespace(get_arch_list=lambda: ["sm_80", "sm_90"],
                               is_available=_is_available, device_count=lambda: 0)
        backends = SimpleNamespace(
            cudnn=SimpleNamespace(version=lambda: 90100),
            mps=SimpleNamespace(is_built=lambda: False, is_available=lambda: False),
        )
        """,
    )


# --------------------------------------------------------------------- LD_LIBRARY_PATH ----


def test_old_cuda_dir_on_ld_library_path_is_named_and_removed_by_the_fix(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    failing_standin(site, "torch", CUBLAS_SHADOWED.removeprefix("OSError: "))
    cpu_tf(site)
    old = tmp_path / "cuda-12.0" / "lib64"
    old.mkdir(parents=True)
    for name in ("libcublas.so.12", "libcublasLt.so.12", "libcudart.so.12"):
        (old / name).write_bytes(b"\x7fELF")
    env = nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100")
    env["LD_LIBRARY_PATH"] = f"{env['LD_LIBRARY_PATH']}:{old}"
    env["PYTHONPATH"] = str(site)
    _, data, _ = doctor(env)
    f = finding(data, "ld_library_path.shadows_framework_libs")
    assert f["details"]["shadowing_directories"] == [str(old)]
    assert f["details"]["library"] == "libcublasLt"
    assert f["command"] == f"export LD_LIBRARY_PATH={fake_nvml_dir}"
    assert "Reinstalling torch does not help" in f["message"]
    # The generic import finding is kept for its facts but no longer says "reinstall".
    generic = finding(data, "framework.import_failed")
    assert generic["severity"] == "info"
    assert generic["details"]["superseded_by"] == "ld_library_path.shadows_framework_libs"
    assert generic["command"] == ""
    assert "--force-reinstall" not in generic["fix"]


def test_import_failure_with_a_clean_ld_library_path_is_not_blamed_on_it(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    failing_standin(site, "torch", CUBLAS_SHADOWED.removeprefix("OSError: "))
    cpu_tf(site)
    env = {**nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100"), "PYTHONPATH": str(site)}
    _, data, _ = doctor(env)
    assert "ld_library_path.shadows_framework_libs" not in ids(data)
    generic = finding(data, "framework.import_failed")
    assert generic["severity"] == "error"
    assert "superseded_by" not in generic["details"]
    assert "--force-reinstall torch" in generic["command"]


def test_ld_library_path_probe_lists_only_cuda_libraries(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("libcudnn.so.8", "libcudnn_ops_infer.so.8", "libnvJitLink.so.12", "libz.so.1"):
        (lib / name).write_bytes(b"")
    entries = probe_ld_library_path({"LD_LIBRARY_PATH": f"{lib}::{tmp_path / 'gone'}"})
    assert [(e.directory, e.libraries) for e in entries] == [
        (str(lib), ("libcudnn.so.8", "libcudnn_ops_infer.so.8", "libnvJitLink.so.12")),
        (str(tmp_path / "gone"), ()),
    ]


# ------------------------------------------------------------------ NVSwitch / Fabric Manager ----


def test_nvswitch_gpus_waiting_for_fabric_manager_and_error_802(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    torch_warning_on_cuda_init(tmp_path, ERROR_802.removeprefix("UserWarning: "))
    cpu_tf(tmp_path)
    env = {**nv(fake_nvml_dir, "nvswitch_fabric_not_started"), "PYTHONPATH": str(tmp_path)}
    code, data, _ = doctor(env)
    assert code == 1
    f = finding(data, "fabric.manager_not_running")
    assert f["details"]["fabric_states"] == {str(i): "not_started" for i in range(8)}
    assert "Error 802: system not yet initialized" in f["details"]["error_802"][0]
    assert f["command"] == "sudo systemctl start nvidia-fabricmanager"


def test_nvswitch_gpus_registered_by_fabric_manager_raise_nothing(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    torch_standin(tmp_path, version="2.6.0+cu124", cuda="12.4")
    cpu_tf(tmp_path)
    env = {**nv(fake_nvml_dir, "nvswitch_fabric_completed"), "PYTHONPATH": str(tmp_path)}
    _, data, _ = doctor(env)
    assert not set(ids(data)) & FAULT_IDS, ids(data)


def _sysfs_device(root: Path, slot: str, vendor: str, cls: str) -> None:
    device = root / "sys/bus/pci/devices" / slot
    device.mkdir(parents=True)
    (device / "vendor").write_text(vendor + "\n")
    (device / "class").write_text(cls + "\n")


def _process(root: Path, pid: int, comm: str) -> None:
    (root / "proc" / str(pid)).mkdir(parents=True)
    (root / "proc" / str(pid) / "comm").write_text(comm + "\n")


def test_gpu_access_probe_counts_nvswitches_and_finds_fabric_manager(tmp_path: Path) -> None:
    for n in range(4):  # an HGX A100 board: 6 NVSwitches; 4 here is enough
        _sysfs_device(tmp_path, f"0000:0{n}:00.0", "0x10de", "0x068000")
    _sysfs_device(tmp_path, "0000:10:00.0", "0x10de", "0x030200")  # a GPU (3D controller)
    _sysfs_device(tmp_path, "0000:11:00.0", "0x8086", "0x068000")  # someone else's bridge
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "nvidiactl").write_text("")
    _process(tmp_path, 1, "systemd")
    without = probe_gpu_access({}, tmp_path)
    assert without.nvswitch_count == 4
    assert without.fabric_manager_running is False
    assert without.dev_nodes == ("nvidiactl",)
    _process(tmp_path, 4242, "nv-fabricmanage")  # comm is cut to 15 characters
    assert probe_gpu_access({}, tmp_path).fabric_manager_running is True


def test_no_nvswitch_means_fabric_manager_is_not_looked_for(tmp_path: Path) -> None:
    facts = probe_gpu_access({"NVIDIA_VISIBLE_DEVICES": "all"}, tmp_path)
    assert facts.nvswitch_count == 0
    assert facts.fabric_manager_running.reason == "not_checked"  # type: ignore[union-attr]
    assert facts.nvidia_visible_devices == "all"


# ------------------------------------------------------------------------------ nvcc ----


def test_nvcc_11_8_with_a_cuda_12_4_torch_names_the_matching_cuda_nvcc(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    printing_tool(tmp_path / "bin", "nvcc", NVCC_11_8)
    torch_standin(tmp_path / "site", version="2.6.0+cu124", cuda="12.4")
    cpu_tf(tmp_path / "site")
    env = {
        **nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100", driver="550.54.15", cuda="12040"),
        "PYTHONPATH": str(tmp_path / "site"),
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    _, data, _ = doctor(env)
    f = finding(data, "nvcc.older_than_framework")
    # a venv: no conda to run there (issue 22 item 5); NVIDIA's toolkit of the framework's CUDA
    assert f["command"] == ""
    assert "CUDA Toolkit 12.4 from NVIDIA" in f["fix"] and "conda" not in f["fix"]
    assert f["details"]["nvcc_release"] == "11.8"
    # The same machine with the matching compiler: silent.
    printing_tool(tmp_path / "bin", "nvcc", NVCC_12_4)
    _, data, _ = doctor(env)
    assert "nvcc.older_than_framework" not in ids(data)


# ------------------------------------------------------------------- cuDNN / cuBLAS pins ----


def test_real_metadata_lines_parse_into_pins() -> None:
    torch_pins = parse_pins("torch", "2.5.1", TORCH_2_5_1_REQUIRES)
    tf_pins = parse_pins("tensorflow", "2.19.0", TF_2_19_0_REQUIRES)
    assert {(p.package, p.version) for p in tf_pins} == {
        ("nvidia-cudnn-cu12", TF_2_19_0_CUDNN),
        ("nvidia-cublas-cu12", "12.5.3.2"),
    }
    expected = (
        {("nvidia-cudnn-cu12", TORCH_2_5_1_CUDNN), ("nvidia-cublas-cu12", "12.4.5.8")}
        if LINUX_X86
        else set()  # torch's pins carry a Linux x86-64 marker
    )
    assert {(p.package, p.version) for p in torch_pins} == expected


def _two_frameworks(site: Path, torch_requires: str, cudnn: str, cublas: str) -> None:
    torch_standin(site, version="2.5.1", cuda="12.4")
    tensorflow_standin(site, version="2.19.0", cuda_version="12.5.1", cudnn_version="9")
    dist_info(site, "torch", "2.5.1", torch_requires)
    dist_info(site, "tensorflow", "2.19.0", TF_2_19_0_REQUIRES)
    dist_info(site, "nvidia_cudnn_cu12", cudnn)
    dist_info(site, "nvidia_cublas_cu12", cublas)


@pytest.mark.skipif(not LINUX_X86, reason="torch pins the CUDA wheels only on Linux x86-64")
def test_torch_installed_after_tensorflow_downgrades_cudnn_below_tensorflows_pin(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    # pip install 'tensorflow[and-cuda]==2.19.0'; pip install torch==2.5.1: pip puts cuDNN back
    # to torch's 9.1.0.70 and cuBLAS to 12.4.5.8, below TensorFlow's 9.3.0.75 / 12.5.3.2.
    _two_frameworks(tmp_path, TORCH_2_5_1_REQUIRES, TORCH_2_5_1_CUDNN, "12.4.5.8")
    env = {
        **nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100", cuda="12080"),
        "PYTHONPATH": str(tmp_path),
    }
    _, data, _ = doctor(env)
    found = [f for f in data["findings"] if f["id"] == "cuda_wheels.pin_conflict"]
    assert {f["details"]["package"] for f in found} == {"nvidia-cudnn-cu12", "nvidia-cublas-cu12"}
    cudnn = next(f for f in found if f["details"]["package"] == "nvidia-cudnn-cu12")
    assert cudnn["details"]["broken"] == ["tensorflow"]
    assert cudnn["command"].endswith("-m pip install nvidia-cudnn-cu12==9.3.0.75")
    assert data["cuda_libs"]["wheels"]["installed"]["nvidia-cudnn-cu12"] == TORCH_2_5_1_CUDNN


@pytest.mark.skipif(not LINUX_X86, reason="torch pins the CUDA wheels only on Linux x86-64")
def test_tensorflow_installed_last_keeps_both_loading(fake_nvml_dir: Path, tmp_path: Path) -> None:
    # The other order: TF's newer 9.3 / 12.5 wins; torch (built with 9.1 / 12.4) loads them.
    _two_frameworks(tmp_path, TORCH_2_5_1_REQUIRES, TF_2_19_0_CUDNN, "12.5.3.2")
    env = {
        **nv(fake_nvml_dir, "driver_535_cuda_12_2_one_h100", cuda="12080"),
        "PYTHONPATH": str(tmp_path),
    }
    _, data, _ = doctor(env)
    assert "cuda_wheels.pin_conflict" not in ids(data)


@pytest.mark.skipif(not LINUX_X86, reason="torch pins the CUDA wheels only on Linux x86-64")
def test_cudnn_8_against_cudnn_9_cannot_share_one_environment(tmp_path: Path) -> None:
    from dlsetup.checks.environment_faults import check_wheel_pins
    from tests.doctor.health_cases import with_libs
    from tests.doctor.test_checks import facts

    site = tmp_path / "site"
    dist_info(site, "torch", "2.3.1", TORCH_2_3_1_REQUIRES)
    dist_info(site, "tensorflow", "2.19.0", TF_2_19_0_REQUIRES)
    dist_info(site, "nvidia_cudnn_cu12", TF_2_19_0_CUDNN)
    saved = list(sys.path)
    try:
        sys.path[:] = [str(site)]
        wheels = probe_cuda_wheels()
    finally:
        sys.path[:] = saved
    found = check_wheel_pins(facts(cuda_libs=with_libs(wheels=wheels)))
    assert [f.details["broken"] for f in found] == [["torch"]]
    assert found[0].details["pins"][0]["version"] == TORCH_2_3_1_CUDNN
    assert found[0].command == ""  # no one version fits: separate environments
    assert "dlsetup create pytorch" in found[0].fix


# ------------------------------------------------------------------------- containers ----

IN_CONTAINER = Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()
HAS_DEV_NVIDIA = any(Path("/dev").glob("nvidia*"))


@pytest.mark.skipif(
    not IN_CONTAINER or HAS_DEV_NVIDIA or system_has_nvml(),
    reason="needs a container without GPU access (as this test machine is)",
)
def test_container_without_gpus_says_pass_them_in_not_install_a_driver(tmp_path: Path) -> None:
    env = {**no_library_env(tmp_path / "empty"), "NVIDIA_VISIBLE_DEVICES": "all"}
    code, data, _ = doctor(env, "--no-frameworks")
    assert code == 1
    f = finding(data, "container.no_gpu_access")
    assert "--gpus all" in f["fix"] and "--runtime=nvidia" in f["fix"]
    assert "nvml.no_library" not in ids(data)  # its "install the driver" is wrong here
    assert f["details"]["nvidia_visible_devices"] == "all"
    # The same container that never asked for a GPU: the plain no-driver note, no error.
    code, data, _ = doctor(no_library_env(tmp_path / "empty"), "--no-frameworks")
    assert "container.no_gpu_access" not in ids(data)
    assert "nvml.no_library" in ids(data)


@pytest.mark.parametrize(
    ("visible", "severity"),
    [("all", "error"), (None, "warning")],
    ids=["asked-for-gpus", "cuda-build-only"],
)
def test_a_cuda_build_alone_in_a_gpu_less_container_warns_and_says_a_cpu_host_is_fine(
    visible: str | None, severity: str
) -> None:
    """PyPI's Linux torch is a CUDA build on any machine (the quickstart takes it where no CPU
    build is reachable): alone, it does not prove the container was meant to see a GPU, so it
    warns and says a CPU-only host is fine; NVIDIA_VISIBLE_DEVICES, which the image's maker
    sets for GPUs, keeps the error."""
    from dlsetup.checks.environment_faults import check_container_gpu_access

    (found,) = check_container_gpu_access(container_case(visible, torch_cuda="13.0"))
    assert found.severity == severity
    assert "torch (CUDA 13.0)" in found.message
    cpu_note = "on a host without a GPU nothing is wrong" in found.message
    assert cpu_note == (severity == "warning")


# ----------------------------------------------------------------------------- Kepler ----

KEPLER = {
    "driver": "470.82.01",
    "cuda": "11040",
    "gpu_names": "Tesla K80",
    "cc": "3.7",
    "pcie_gen": "3,3",
    "power_limit_w": "149",
}


def test_no_fix_asks_a_kepler_gpu_for_a_driver_past_r470(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    # torch 2.6 for CUDA 12.4 on a Tesla K80: the usual fix would be "update the driver to 550".
    torch_standin(tmp_path, version="2.6.0+cu124", cuda="12.4")
    cpu_tf(tmp_path)
    env = {**nvml_env(fake_nvml_dir, **KEPLER), "PYTHONPATH": str(tmp_path)}
    _, data, _ = doctor(env)
    assert data["findings"]
    for f in data["findings"]:
        for branch in re.findall(r"\b(\d{3})\.\d+(?:\.\d+)?\b", f["fix"] + " " + f["command"]):
            assert int(branch) <= 470, (f["id"], f["fix"])
        assert "R5" not in f["fix"], f["id"]
