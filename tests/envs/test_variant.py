"""``--variant auto`` and ``--cuda``: the rules, with NVIDIA facts as the NVML probe reports them.

(The end-to-end path through the real pynvml and the fake driver library is in test_lock.py.)"""

from __future__ import annotations

import pytest

from dlsetup.envs.variant import choose_variant
from dlsetup.errors import InputError
from dlsetup.facts import Missing
from dlsetup.probes.nvidia import GpuFacts, NvidiaFacts

GPU_12_4 = NvidiaFacts(
    status="ok", driver_version="550.54.14", cuda_driver_version="12.4", gpus=(GpuFacts(index=0),)
)
NO_LIBRARY = NvidiaFacts(status="no_library", status_detail="NVMLError_LibraryNotFound")


def never() -> NvidiaFacts:
    raise AssertionError("the NVML probe must not run here")


def test_auto_on_a_gpu_machine_is_cuda_at_the_driver_cuda() -> None:
    choice = choose_variant(
        "auto",
        cuda=None,
        platforms=("linux-64",),
        has_variant=lambda v: True,
        probe=lambda: GPU_12_4,
    )
    assert (choice.variant, choice.cuda) == ("cuda", "12.4")
    assert choice.reason == "1 NVIDIA GPU(s); driver 550.54.14 supports CUDA 12.4"


def test_auto_without_an_nvidia_library_is_cpu() -> None:
    choice = choose_variant(
        "auto",
        cuda=None,
        platforms=("linux-64",),
        has_variant=lambda v: True,
        probe=lambda: NO_LIBRARY,
    )
    assert (choice.variant, choice.cuda, choice.reason) == (
        "cpu",
        None,
        "no usable NVIDIA driver (no_library)",
    )


def test_auto_on_osx_arm64_is_mps_without_probing_nvml() -> None:
    choice = choose_variant(
        "auto", cuda=None, platforms=("osx-arm64",), has_variant=lambda v: True, probe=never
    )
    assert choice.variant == "mps"


def test_auto_on_osx_arm64_for_a_target_without_mps_is_cpu() -> None:
    choice = choose_variant(
        "auto", cuda=None, platforms=("osx-arm64",), has_variant=lambda v: v != "mps", probe=never
    )
    assert (choice.variant, choice.reason) == ("cpu", "no CUDA on osx-arm64")


def test_cuda_option_overrides_the_driver_and_needs_no_gpu() -> None:
    choice = choose_variant(
        "auto", cuda="13.0", platforms=("linux-64",), has_variant=lambda v: True, probe=never
    )
    assert (choice.variant, choice.cuda, choice.reason) == (
        "cuda",
        "13.0",
        "--cuda 13.0 was asked for",
    )


def test_cuda_variant_without_a_driver_cuda_asks_for_cuda() -> None:
    facts = NvidiaFacts(
        status="ok", cuda_driver_version=Missing("function_not_found"), gpus=(GpuFacts(index=0),)
    )
    with pytest.raises(InputError) as info:
        choose_variant(
            "cuda",
            cuda=None,
            platforms=("linux-64",),
            has_variant=lambda v: True,
            probe=lambda: facts,
        )
    assert info.value.message == (
        "--variant cuda needs a CUDA version, and NVML could not give one (ok: n/a (function_not_found))"
    )
    assert info.value.fix == (
        "name the CUDA version the target machine's driver supports, e.g. --cuda 12.4 (nvidia-smi shows it as 'CUDA Version')"
    )


def test_cuda_option_with_the_cpu_variant_is_refused() -> None:
    with pytest.raises(InputError) as info:
        choose_variant(
            "cpu", cuda="12.4", platforms=("linux-64",), has_variant=lambda v: True, probe=never
        )
    assert info.value.message == "--cuda 12.4 only applies to --variant cuda (got --variant cpu)"


@pytest.mark.parametrize("bad", ["12", "12.4.1", "twelve", "12.x"])
def test_malformed_cuda_value_is_refused(bad: str) -> None:
    with pytest.raises(InputError) as info:
        choose_variant(
            "cuda", cuda=bad, platforms=("linux-64",), has_variant=lambda v: True, probe=never
        )
    assert info.value.message == f"invalid --cuda {bad!r}: expected MAJOR.MINOR such as 12.4"
