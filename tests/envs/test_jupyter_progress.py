"""Where kernelspecs go, and progress as plain lines when not on a terminal."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from dlsetup.envs.jupyter import jupyter_data_dir, kernel_name
from dlsetup.envs.progress import Progress


def test_jupyter_data_dir_honours_jupyter_data_dir() -> None:
    assert jupyter_data_dir() == Path(os.environ["JUPYTER_DATA_DIR"])


def test_jupyter_data_dir_falls_back_to_xdg_data_home_on_linux(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("JUPYTER_DATA_DIR")
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert jupyter_data_dir() == tmp_path / "share" / "jupyter"


def test_kernel_name_is_a_valid_kernelspec_name() -> None:
    assert kernel_name("PyTorch CUDA+12") == "dlsetup-pytorch-cuda-12"


def test_progress_off_a_terminal_prints_plain_lines() -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream)
    progress.start("verify", 2)
    progress.advance("verify", "a.tar.bz2")
    progress.advance("verify", "b.tar.bz2")
    progress.finish("verify")
    progress.close()
    assert (
        stream.getvalue()
        == "Verifying package hashes: 2 ...\nVerifying package hashes: done (2/2)\n"
    )


def test_progress_on_a_terminal_draws_a_rich_bar() -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream, rich=True)
    progress.start("link", 3)
    for _ in range(3):
        progress.advance("link", "")
    progress.finish("link")
    progress.close()
    assert "Installing packages" in stream.getvalue()
    assert "3/3" in stream.getvalue()
