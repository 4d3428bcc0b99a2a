"""Fixtures shared by every test suite: the fake NVML driver library, compiled once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.fake_nvml import build_fake_nvml
from tests.support.shared import shared_dir


@pytest.fixture(scope="session")
def fake_nvml_builder(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``builder(omit=(...))`` -> directory holding a fake ``libnvidia-ml.so.1`` variant."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the fake libnvidia-ml.so.1 cannot be compiled")
    dest = shared_dir(tmp_path_factory, "fake-nvml")  # one build per variant for the whole run

    def builder(omit: tuple[str, ...] = ()) -> Path:
        return build_fake_nvml(dest, omit=omit)

    return builder


@pytest.fixture(scope="session")
def fake_nvml_dir(fake_nvml_builder: Callable[..., Path]) -> Path:
    """Directory holding the full fake ``libnvidia-ml.so.1``; pass it to ``nvml_env``."""
    return fake_nvml_builder()


@pytest.fixture(autouse=True)
def forget_channel_secrets() -> None:
    """One dlsetup process runs one command, so the credential values it filled in (and masks in
    every message) live as long as the process. Tests run many commands in one process: start
    each with none remembered, or a test's short password masks words in later tests' paths."""
    from dlsetup.envs import credentials

    credentials._SECRETS.clear()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): two workers per CPU this process may use, at most 8.
    Many tests spend their time waiting on child processes (dlsetup, uv, framework workers,
    signal and timeout tests), so on the 2-CPU machines 4 workers beat 2 (docs/testing.md)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(2, min(2 * (cpus or 1), 8))
