"""The CUDA/driver half of the knowledge base, against NVIDIA's Table 3 figures."""

from __future__ import annotations

import pytest

from dlsetup.compat.cuda import (
    driver_supports_cuda,
    max_cuda_for_driver,
    min_driver_for_cuda,
    mvc_floor,
    parse_cuda,
)


def test_min_driver_for_cuda_is_the_ga_toolkit_driver() -> None:
    assert min_driver_for_cuda("12.4") == "550.54.14"
    assert min_driver_for_cuda("12.4.1") == "550.54.14"
    assert min_driver_for_cuda("11.8", "windows") == "520.06"
    assert min_driver_for_cuda("13.0") == "580.65.06"


def test_min_driver_for_cuda_is_none_without_a_verified_row() -> None:
    assert min_driver_for_cuda("12.7") is None  # NVIDIA's table has no 12.7
    assert min_driver_for_cuda("13.0", "windows") is None  # N/A from 13.0
    assert min_driver_for_cuda("13.3") is None  # third-party copies only


def test_mvc_floor_per_family() -> None:
    assert mvc_floor(11) == "450.80.02"
    assert mvc_floor(11, "windows") == "452.39"
    assert mvc_floor(12) == "525.60.13"
    assert mvc_floor(13) == "580.65.06"
    assert mvc_floor(10) is None


def test_unknown_os_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown OS 'macos'"):
        mvc_floor(12, "macos")


def test_version_keys_are_not_floats() -> None:
    assert parse_cuda("12.10") == (12, 10)
    assert parse_cuda("12.10") > parse_cuda("12.9")


def test_max_cuda_for_driver() -> None:
    assert max_cuda_for_driver("470.82.01") == "11.4"
    assert max_cuda_for_driver("535.104.05") == "12.2"
    assert max_cuda_for_driver("570.26") == "12.8"
    assert max_cuda_for_driver("440.33") is None


def test_driver_470_cannot_run_a_cuda_12_4_build() -> None:
    verdict = driver_supports_cuda("11.4", "12.4", "470.82.01")
    assert verdict.support == "too_old"
    assert verdict.full_support_driver == "550.54.14"
    assert verdict.mvc_floor_driver == "525.60.13"


def test_same_major_older_minor_is_minor_version_compat() -> None:
    verdict = driver_supports_cuda("12.2", "12.4", "535.104.05")
    assert verdict.support == "minor_version_compat"


def test_driver_below_the_family_floor_is_too_old() -> None:
    verdict = driver_supports_cuda("11.0", "11.8", "450.51.05")
    assert verdict.support == "too_old"
    assert "below 450.80.02" in verdict.reason


def test_newer_driver_runs_older_builds() -> None:
    assert driver_supports_cuda("13.0", "12.6").support == "full"
    assert driver_supports_cuda("12.4", "12.4").support == "full"


def test_unparseable_version_is_unknown() -> None:
    assert driver_supports_cuda("n/a", "12.4").support == "unknown"
