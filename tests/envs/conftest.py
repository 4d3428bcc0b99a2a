"""Fixtures for the environment tests: the local conda channel (built once per session), the
users'-lock fixture, and an isolated cache / Jupyter / envs directory for every test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.envs.channel import build_channel
from tests.support.isolation import isolate_dirs
from tests.support.lock_readback import checking_writer
from tests.support.shared import built_once
from tests.support.torch_index import TorchIndex, build_torch_index

if TYPE_CHECKING:
    from tests.envs.lock_builders import Fixture


@pytest.fixture(scope="session")
def channel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test channel's directory (real archives, indexed with rattler), one for the run."""
    directory, _ = built_once(tmp_path_factory, "conda-channel", build_channel)
    return directory


@pytest.fixture(scope="session")
def channel_url(channel_dir: Path) -> str:
    """``file://`` URL of the test channel."""
    return channel_dir.resolve().as_uri()


@pytest.fixture(scope="session")
def runnable_channel_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``file://`` URL of the runnable variant of the test channel.

    Its ``bin/python`` execs this test interpreter (real torch and tensorflow), so an environment
    built from it has a Python that really runs ``dlsetup smoke``.
    """
    _, url = built_once(
        tmp_path_factory,
        "runnable-channel",
        lambda directory: build_channel(directory, python_exec=sys.executable),
    )
    return url


@pytest.fixture(scope="session")
def torch_index(tmp_path_factory: pytest.TempPathFactory) -> TorchIndex:
    """PyTorch-shaped wheel indexes and a small PyPI (``tests.support.torch_index``), one for the
    run: the venv lock, release and lock-check tests read it, none writes to it."""

    def build(root: Path) -> list[str]:
        index = build_torch_index(root)
        return [index.torch_url, index.pypi_url]

    root, (torch_url, pypi_url) = built_once(tmp_path_factory, "torch-index", build)
    return TorchIndex(root=root, torch_url=torch_url, pypi_url=pypi_url)


@pytest.fixture(scope="session")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    """The small channel and wheels the users'-lock tests write their locks from
    (:func:`tests.envs.lock_builders.build_fixture`), one per worker: the lock-format, lock-source,
    allow-build, read-model and source-table tests read it and none changes it (a test that does
    builds its own). Not shared across workers: locks are written beside it."""
    from tests.envs.lock_builders import build_fixture

    return build_fixture(tmp_path_factory.mktemp("lock-fixture"))


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point every cache and data directory dlsetup and rattler use into ``tmp_path``.

    Returns the variables, for tests that start a subprocess.
    """
    return isolate_dirs(tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def locks_both_parsers_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every lock dlsetup writes in-process is read back by conda-lock's parser and by rattler's
    (issue 21, item 7: :mod:`tests.support.lock_readback`); a refusal fails the test."""
    import conda_lock.lockfile

    problems: list[str] = []
    writer = checking_writer(conda_lock.lockfile.write_conda_lock_file, problems)
    monkeypatch.setattr(conda_lock.lockfile, "write_conda_lock_file", writer)
    yield
    assert not problems, "\n".join(problems)
