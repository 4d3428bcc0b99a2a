"""choose_cuda_line: the conda-forge CUDA line every GPU of the machine and its driver can run.

Each scenario has a twin that changes one input (the GPU, the driver, the glibc, the platform)
and sees the verdict change, so a test cannot pass for the wrong reason.
"""

from __future__ import annotations

import pytest

from dlsetup.compat.lines import (
    Gpu,
    choose_cuda_line,
    gpus_from_arch,
    last_pypi_torch_for,
    parse_gpu_arch,
)
from dlsetup.errors import InputError, NoFittingBuildError

GTX_1080 = Gpu(0, "NVIDIA GeForce GTX 1080", (6, 1))
RTX_3090 = Gpu(0, "NVIDIA GeForce RTX 3090", (8, 6))
RTX_5090 = Gpu(0, "NVIDIA GeForce RTX 5090", (12, 0))
H100 = Gpu(0, "NVIDIA H100 80GB HBM3", (9, 0))
V100 = Gpu(0, "Tesla V100-SXM2-32GB", (7, 0))
K80 = Gpu(0, "Tesla K80", (3, 7))
ORIN = Gpu(0, "Orin", (8, 7))


def test_pascal_on_a_cuda_13_driver_gets_the_12_9_line_and_the_reason_names_the_gpu() -> None:
    choice = choose_cuda_line("pytorch", "linux-64", "13.0", [GTX_1080])
    assert choice.line == "12.9"
    assert choice.cuda_version_spec == "cuda-version >=12.9,<13"
    assert choice.build_glob == "cuda129_*"
    assert choice.specs == ("pytorch * cuda129_*", "cuda-version >=12.9,<13")
    assert choice.support == "full"
    assert choice.reason == (
        "GPU 0 NVIDIA GeForce GTX 1080 (6.1): CUDA 13.0 builds start at 7.5, so CUDA 12.9"
    )
    assert choice.glibc == "2.17"


def test_twin_a_turing_card_on_the_same_driver_gets_cuda_13() -> None:
    choice = choose_cuda_line("pytorch", "linux-64", "13.0", [Gpu(0, "Tesla T4", (7, 5))])
    assert choice.line == "13.0"
    assert choice.specs == ("pytorch * cuda130_*", "cuda-version >=13.0,<14")
    assert choice.glibc == "2.28"
    assert choice.passed_over == ()
    assert "the newest line conda-forge builds for linux-64" in choice.reason


def test_volta_is_pascal_s_case_too() -> None:
    assert choose_cuda_line("pytorch", "linux-64", "13.0", [V100]).line == "12.9"


def test_two_gpus_get_the_line_both_run() -> None:
    second = Gpu(1, "NVIDIA GeForce GTX 1080", (6, 1))
    choice = choose_cuda_line("pytorch", "linux-64", "13.0", [RTX_3090, second])
    assert choice.line == "12.9"
    assert choice.reason.startswith("GPU 1 NVIDIA GeForce GTX 1080 (6.1):")
    # twin: without the Pascal card the Ampere card alone gets 13.0
    assert choose_cuda_line("pytorch", "linux-64", "13.0", [RTX_3090]).line == "13.0"


def test_blackwell_gets_a_line_with_sm_120() -> None:
    choice = choose_cuda_line("pytorch", "linux-64", "13.0", [RTX_5090])
    assert choice.line == "13.0"
    assert "12.0+PTX" in choice.builds[0].arch
    # twin: a 12.8 driver cannot run the 13.0 line; 12.9 also ships sm_120 and runs through
    # minor-version compatibility because the GPU has SASS in it
    older = choose_cuda_line("pytorch", "linux-64", "12.8", [RTX_5090])
    assert (older.line, older.support) == ("12.9", "minor_version_compat")
    assert "12.0+PTX" in older.builds[0].arch
    assert older.reason.startswith(
        "the driver supports CUDA 12.8, and CUDA 13.0 builds need a CUDA 13 driver, so CUDA 12.9"
    )


def test_a_gpu_reaching_a_line_only_through_ptx_needs_full_driver_support() -> None:
    future = Gpu(0, "a future GPU", (13, 0))  # no SASS anywhere; 12.0 PTX JIT-compiles for it
    assert choose_cuda_line("pytorch", "linux-64", "13.0", [future]).line == "13.0"
    with pytest.raises(NoFittingBuildError, match="cannot JIT-compile"):
        choose_cuda_line("pytorch", "linux-64", "12.8", [future])


def test_kepler_is_refused_with_the_choices() -> None:
    with pytest.raises(NoFittingBuildError) as caught:
        choose_cuda_line("pytorch", "linux-64", "11.4", [K80], driver_version="470.82.01")
    err = caught.value
    assert err.gpu_index == 0
    assert err.message == (
        "no conda-forge pytorch CUDA build for linux-64 runs on GPU 0 Tesla K80 (3.7): CUDA 13.0 "
        "builds start at 7.5; CUDA 12.9 builds start at 5.0; its last NVIDIA driver branch is "
        "R470 (CUDA 11.4)"
    )
    assert err.choices[0] == "--variant cpu (dlsetup lock pytorch --variant cpu)"
    assert err.choices[1] == (
        "PyTorch 2.7 is the newest release whose PyPI wheels run on compute capability 3.7: in "
        "a venv, pip install torch==2.7.* --index-url https://download.pytorch.org/whl/cu118 "
        "with the NVIDIA driver of its last branch, R470 (CUDA 11.4)"
    )
    assert err.exit_code == 2
    # twin: a Maxwell card (5.2) in the same box's place is served by the 12.9 line
    maxwell = Gpu(0, "GeForce GTX 980", (5, 2))
    assert choose_cuda_line("pytorch", "linux-64", "13.0", [maxwell]).line == "12.9"


def test_kepler_refusal_never_offers_a_driver_it_cannot_take() -> None:
    with pytest.raises(NoFittingBuildError) as caught:
        choose_cuda_line("pytorch", "linux-64", "11.4", [K80])
    assert "575" not in str(caught.value) and "525" not in str(caught.value)


def test_gpu_arch_6_1_on_a_cuda_13_driver_gets_the_12_line() -> None:
    gpus = gpus_from_arch(["6.1"])
    choice = choose_cuda_line("pytorch", "linux-64", "13.0", gpus)
    assert choice.line == "12.9"
    assert choice.reason.startswith("GPU 0 --gpu-arch 6.1 (6.1): CUDA 13.0 builds start at 7.5")
    # twin: --gpu-arch 8.6 gets 13.0
    assert choose_cuda_line("pytorch", "linux-64", "13.0", gpus_from_arch(["8.6"])).line == "13.0"


def test_gpu_arch_forms() -> None:
    assert parse_gpu_arch("6.1") == (6, 1)
    assert parse_gpu_arch("sm_61") == (6, 1)
    assert parse_gpu_arch("SM_90a") == (9, 0)
    assert parse_gpu_arch(" 12.0 ") == (12, 0)
    assert parse_gpu_arch("sm_120") == (12, 0)
    assert [g.cc for g in gpus_from_arch(["8.6,6.1", "sm_75"])] == [(8, 6), (6, 1), (7, 5)]
    assert [g.index for g in gpus_from_arch(["8.6,6.1"])] == [0, 1]


@pytest.mark.parametrize("bad", ["61", "6", "six.one", "compute_61", "6.1.2", "sm_", "", "0.5"])
def test_gpu_arch_rejects_what_is_not_a_compute_capability(bad: str) -> None:
    with pytest.raises(InputError, match="--gpu-arch") as caught:
        parse_gpu_arch(bad)
    assert caught.value.fix is not None and "8.6" in caught.value.fix


def test_tensorflow_on_a_cuda_13_driver_gets_12_8_the_only_line_it_builds() -> None:
    choice = choose_cuda_line("tensorflow", "linux-64", "13.0", [H100])
    assert choice.line == "12.8"
    assert choice.specs == ("tensorflow * cuda128*", "cuda-version >=12.8,<13")
    # twin: a CUDA 12.4 driver runs TF's 12.8 line through minor-version compatibility (SASS 9.0)
    older = choose_cuda_line("tensorflow", "linux-64", "12.4", [H100])
    assert (older.line, older.support) == ("12.8", "minor_version_compat")


def test_tensorflow_on_pascal_keeps_12_8_which_ships_sm_60() -> None:
    assert choose_cuda_line("tensorflow", "linux-64", "13.0", [GTX_1080]).line == "12.8"
    with pytest.raises(NoFittingBuildError, match=r"CUDA 12\.8 builds start at 6\.0"):
        choose_cuda_line("tensorflow", "linux-64", "13.0", [Gpu(0, "GeForce GTX 980", (5, 2))])


def test_both_takes_one_cuda_major_for_both_frameworks() -> None:
    choice = choose_cuda_line("both", "linux-64", "13.0", [H100])
    assert choice.line == "12.9"
    assert [(b.framework, b.cuda, b.build_glob) for b in choice.builds] == [
        ("pytorch", "12.9", "cuda129_*"),
        ("tensorflow", "12.8", "cuda128*"),
    ]
    assert choice.specs == (
        "pytorch * cuda129_*",
        "tensorflow * cuda128*",
        "cuda-version >=12.9,<13",
    )
    assert "the newest CUDA line pytorch and tensorflow share on linux-64" in choice.reason


def test_win_64_lines_are_12_8_and_13_0() -> None:
    assert choose_cuda_line("pytorch", "win-64", "13.0", [RTX_3090]).line == "13.0"
    pascal = choose_cuda_line("pytorch", "win-64", "13.0", [GTX_1080])
    assert (pascal.line, pascal.build_glob, pascal.glibc) == ("12.8", "cuda128_*", None)
    assert pascal.reason == (
        "GPU 0 NVIDIA GeForce GTX 1080 (6.1): CUDA 13.0 builds start at 7.5, so CUDA 12.8"
    )


def test_tensorflow_has_no_cuda_build_on_windows_or_aarch64() -> None:
    for platform in ("win-64", "linux-aarch64", "osx-arm64"):
        with pytest.raises(InputError, match=f"no CUDA tensorflow for {platform}") as caught:
            choose_cuda_line("tensorflow", platform, "13.0", [H100])
        assert caught.value.fix is not None and "--variant cpu" in caught.value.fix


def test_jetson_orin_on_aarch64() -> None:
    # a JetPack 6 driver (CUDA 12.6): the sbsa 12.9 build does not drive Jetson; the tegra one does
    choice = choose_cuda_line("pytorch", "linux-aarch64", "12.6", [ORIN])
    assert choice.line == "12.9"
    assert choice.specs[-1] == "arm-variant * tegra"
    assert choice.glibc == "2.34"
    # twin: a CUDA 13 driver gets the unified 13.0 build, which adds 8.7
    unified = choose_cuda_line("pytorch", "linux-aarch64", "13.0", [ORIN])
    assert unified.line == "13.0" and "8.7" in unified.builds[0].arch
    assert unified.specs[-1] == "arm-variant * sbsa"


def test_a_discrete_gpu_on_aarch64_never_gets_the_tegra_build() -> None:
    choice = choose_cuda_line("pytorch", "linux-aarch64", "12.6", [H100])
    assert choice.specs[-1] == "arm-variant * sbsa"


def test_glibc_floor_of_cuda_13() -> None:
    choice = choose_cuda_line("pytorch", "linux-64", "13.0", [H100], glibc="2.17")
    assert choice.line == "12.9"
    assert choice.reason == (
        "CUDA 13.0 builds need glibc 2.28 and the target has glibc 2.17, so CUDA 12.9"
    )
    assert choose_cuda_line("pytorch", "linux-64", "13.0", [H100], glibc="2.28").line == "13.0"


def test_a_driver_too_old_for_every_line_names_the_driver_and_the_update() -> None:
    with pytest.raises(NoFittingBuildError) as caught:
        choose_cuda_line("pytorch", "linux-64", "11.4", [V100], driver_version="470.82.01")
    err = caught.value
    assert err.gpu_index is None
    assert (
        "the driver supports CUDA 11.4, and CUDA 12.9 builds need a CUDA 12 driver" in err.message
    )
    assert err.choices[0].startswith("update the NVIDIA driver to 575.51.03 or newer (CUDA 12.9)")
    # twin: a CUDA 12.2 driver runs 12.9 through minor-version compatibility (V100 has sm_70)
    assert choose_cuda_line("pytorch", "linux-64", "12.2", [V100]).support == "minor_version_compat"


def test_no_driver_and_no_gpu_gives_the_newest_line_and_says_so() -> None:
    choice = choose_cuda_line("pytorch", "linux-64", None, [])
    assert (choice.line, choice.support) == ("13.0", "not_checked")
    assert "no GPU compute capability was given" in choice.reason
    assert "no driver CUDA version was given" in choice.reason


def test_python_conda_forge_does_not_build() -> None:
    with pytest.raises(InputError, match=r"tensorflow 2\.19\.1 for Python 3\.10, 3\.11, 3\.12"):
        choose_cuda_line("tensorflow", "linux-64", "13.0", [H100], python="3.13")
    assert choose_cuda_line("tensorflow", "linux-64", "13.0", [H100], python="3.12").line == "12.8"


def test_unknown_target() -> None:
    with pytest.raises(InputError, match="unknown target 'jax'"):
        choose_cuda_line("jax", "linux-64", "13.0", [])


def test_last_pypi_release_for_an_architecture() -> None:
    assert last_pypi_torch_for((3, 7)) == (
        "2.7",
        "cu118",
        "pip install torch==2.7.* --index-url https://download.pytorch.org/whl/cu118",
    )
    assert last_pypi_torch_for((3, 5)) is None  # sm_37 SASS does not run on 3.5
