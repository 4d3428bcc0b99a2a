"""GPU arch rules, framework release facts and the PyTorch wheel picker."""

from __future__ import annotations

from dlsetup.compat import load_data
from dlsetup.compat.arch import gpu_runs_build, parse_arch_list
from dlsetup.compat.frameworks import (
    python_support,
    release_key,
    tf_has_native_windows_gpu,
    torch_index_url,
    torch_variants,
    variant_cuda,
)
from dlsetup.compat.recommend import recommend_tensorflow, recommend_torch


def test_arch_list_forms_parse_alike() -> None:
    torch_form = parse_arch_list(["sm_75", "sm_80", "sm_120", "compute_120"])
    script_form = parse_arch_list("7.5;8.0;12.0+PTX")
    assert torch_form == script_form
    assert (12, 0) in torch_form.ptx


def test_sass_runs_on_same_major_newer_minor_only() -> None:
    arch = parse_arch_list(["sm_80"])
    assert gpu_runs_build((8, 9), arch).how == "sass"
    assert gpu_runs_build((8, 6), arch).runs
    assert not gpu_runs_build((9, 0), arch).runs
    assert not gpu_runs_build((7, 5), arch).runs


def test_ptx_is_jit_compiled_for_newer_gpus() -> None:
    arch = parse_arch_list(["sm_80", "compute_80"])
    verdict = gpu_runs_build((9, 0), arch)
    assert verdict.runs and verdict.how == "ptx_jit"


def test_cc_12_0_cannot_run_an_arch_list_stopping_at_sm_90() -> None:
    verdict = gpu_runs_build((12, 0), parse_arch_list("5.0;6.0;7.0;7.5;8.0;8.6;9.0"))
    assert not verdict.runs
    assert verdict.reason == (
        "the build ships kernels up to sm_90 and no PTX the driver could compile for compute "
        "capability 12.0"
    )


def test_release_keys_are_strings_not_floats() -> None:
    assert release_key("2.10.0+cu128") == "2.10"
    assert release_key("2.1.2") == "2.1"
    assert python_support("torch", "2.10.0").minimum == "3.10"  # type: ignore[union-attr]
    assert python_support("torch", "2.1.0").minimum == "3.8"  # type: ignore[union-attr]
    assert python_support("torch", "9.9") is None


def test_python_ranges_with_experimental_versions() -> None:
    support = python_support("torch", "2.2.2")
    assert support is not None
    assert support.supports("3.11.7") and support.supports("3.12.1")
    assert not support.supports("3.13.0")
    tf = python_support("tensorflow", "2.21.0")
    assert tf is not None and not tf.supports("3.9.18") and tf.supports("3.13.0")


def test_tf_native_windows_gpu_ends_at_2_10() -> None:
    assert tf_has_native_windows_gpu("2.10.1")
    assert not tf_has_native_windows_gpu("2.11.0")
    assert not tf_has_native_windows_gpu("2.21.0")


def test_unverified_arch_lists_are_left_out() -> None:
    assert torch_variants("2.6") == {"cu118": None, "cu124": None, "cu126": None}
    assert torch_variants("2.13")["cu129"] is None


def test_variant_names_and_index_urls() -> None:
    assert variant_cuda("cu118") == "11.8"
    assert variant_cuda("cu130") == "13.0"
    assert torch_index_url("cu126") == "https://download.pytorch.org/whl/cu126"


def test_every_fact_names_a_source() -> None:
    data = load_data()
    for release in data["pytorch"]["releases"].values():
        assert release["source"]
    for release in data["tensorflow"]["releases"].values():
        assert release["source"]
    for family in data["minor_version_compatibility"]["families"].values():
        assert family["source"]
    assert data["cuda_toolkit_drivers"]["source"] in data["sources"]
    assert all(s in data["sources"] for s in data["tensorflow"]["and_cuda_first_source"])


def test_recommend_for_rtx_5090_on_a_12_8_driver() -> None:
    pick = recommend_torch("12.8", [(12, 0)], "3.11")
    assert pick is not None
    assert (pick.release, pick.variant, pick.support) == ("2.11", "cu128", "full")
    assert pick.command == (
        "pip install torch==2.11.* --index-url https://download.pytorch.org/whl/cu128"
    )


def test_recommend_for_driver_470_uses_minor_version_compat_of_cuda_11() -> None:
    pick = recommend_torch("11.4", [(7, 0)], "3.11", "470.82.01")
    assert pick is not None
    assert (pick.release, pick.variant, pick.support) == ("2.7", "cu118", "minor_version_compat")
    assert "a driver >= 520.61.05 gives full CUDA 11.8 support" in pick.note


def test_recommend_respects_python() -> None:
    pick = recommend_torch("13.0", [(9, 0)], "3.14")
    assert pick is not None and pick.release == "2.14"
    old_python = recommend_torch("13.0", [(9, 0)], "3.8")
    assert old_python is not None and old_python.release == "2.4"


def test_no_wheel_for_a_cuda_10_driver() -> None:
    assert recommend_torch("10.2", [(7, 5)], "3.11") is None


def test_recommend_prefers_a_newer_release_under_minor_version_compat() -> None:
    pick = recommend_torch("12.2", [(9, 0)], "3.11", "535.104.05")
    assert pick is not None
    assert (pick.release, pick.variant, pick.support) == ("2.14", "cu126", "minor_version_compat")


def test_recommend_needs_full_support_when_a_gpu_relies_on_ptx() -> None:
    # A CC 13.0 GPU has no SASS in any wheel; only 12.0+PTX builds reach it, and PTX newer than
    # the driver cannot be JIT-compiled under minor-version compatibility.
    assert recommend_torch("12.6", [(13, 0)], "3.11") is None
    pick = recommend_torch("12.8", [(13, 0)], "3.11")
    assert pick is not None
    assert (pick.release, pick.variant, pick.support) == ("2.7", "cu128", "full")


def test_recommend_tensorflow_prefers_the_newest_release_with_full_driver_support() -> None:
    pick = recommend_tensorflow("12.4", "3.11", "550.54.15")
    assert pick is not None
    assert (pick.release, pick.requirement) == ("2.17", "tensorflow[and-cuda]==2.17.*")
    assert pick.support == "full"  # 2.18-2.21 (CUDA 12.5) would need minor-version compat
    newest = recommend_tensorflow("12.8", "3.11")
    assert newest is not None and newest.release == "2.21"


def test_recommend_tensorflow_for_driver_470_is_2_14_the_first_with_and_cuda() -> None:
    pick = recommend_tensorflow("11.4", "3.11", "470.82.01")
    assert pick is not None
    assert (pick.release, pick.support) == ("2.14", "minor_version_compat")
    assert recommend_tensorflow("11.4", "3.12", "470.82.01") is None  # 2.14 stops at 3.11


def test_recommend_tensorflow_respects_python() -> None:
    pick = recommend_tensorflow("12.8", "3.9")
    assert pick is not None and pick.release == "2.20"  # 2.21 needs Python >= 3.10


def test_no_tensorflow_for_a_cuda_10_driver() -> None:
    assert recommend_tensorflow("10.2", "3.11") is None
