"""A home of the test's own, so that this machine's pip, uv and conda settings never reach a test
that reads the user's configured sources, and PyTorch's index out of reach the way a blocked
network puts it: every HTTP(S) request sent to a proxy at a closed port on 127.0.0.1 (refused at
once: no DNS, no network), 127.0.0.1 itself reached directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.http_server import closed_port

#: variables of this machine's pip and uv configuration that must not leak into a test
CONFIG_VARS = (
    "PIP_CONFIG_FILE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX",
    "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
    "UV_CONFIG_FILE", "UV_NO_CONFIG", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "VIRTUAL_ENV",
    "CONDARC",
)  # fmt: skip


def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path/home`` as ``HOME``, with every variable of :data:`CONFIG_VARS` unset."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for var in CONFIG_VARS:
        monkeypatch.delenv(var, raising=False)
    return home


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every HTTP(S) request through a proxy at a closed port; 127.0.0.1 goes direct."""
    proxy = f"http://127.0.0.1:{closed_port()}"
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
