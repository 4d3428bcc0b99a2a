"""Fixtures for the security tests: every cache, data and envs directory in ``tmp_path``, and a
private index on 127.0.0.1 that demands basic auth on every request and a query token on its
PEP 503 pages (the shape of an artifact server), serving the local PyTorch-shaped index, its small
PyPI and the tiny wheels of the conda ``pip:`` tests, all built at test time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.envs.lock_builders import WHEELS as CONDA_PIP_WHEELS
from tests.support.http_server import AUTHORIZATION, PASSWORD, USER, BasicAuthHandler, serve
from tests.support.isolation import isolate_dirs
from tests.support.torch_index import build_torch_index
from tests.support.wheels import build_index

#: the query token the private index demands on its index pages
TOKEN = "tk-Q7x9-private-2207"
#: what must never be written or shown: the password and the token
SECRETS = (PASSWORD, TOKEN)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every cache and data directory dlsetup, rattler and uv use, inside ``tmp_path``.

    ``UV_CACHE_DIR`` is set too: a user who set it must not find a secret in it either.
    Returns the variables, for tests that start a subprocess.
    """
    return isolate_dirs(tmp_path, monkeypatch, UV_CACHE_DIR=str(tmp_path / "uv-cache"))


class _TokenAuthHandler(BasicAuthHandler):
    """Basic auth on every request (the parent's check), and ``?token=TOKEN`` on index pages."""

    def do_GET(self) -> None:
        if "/simple" in self.path and f"token={TOKEN}" not in self.path.partition("?")[2]:
            self.seen.append(f"no token: {self.path}")
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()  # the query is dropped when the path is mapped to a file


@dataclass(frozen=True)
class PrivateIndex:
    """The private index served on 127.0.0.1.

    Attributes:
        host: ``127.0.0.1:PORT``.
        root: the directory served: ``whl/<variant>/simple`` and ``pypi/simple`` (the
            PyTorch-shaped index and its PyPI), ``wheels/simple`` (the conda ``pip:`` wheels).
        seen: the ``Authorization`` headers received (and ``no token: PATH`` entries).
    """

    host: str
    root: Path
    seen: list[str | None]

    def url(self, path: str, *, literal: bool = False) -> str:
        """``http://USER:PASS@HOST/PATH?token=TOKEN``: placeholders, or the values themselves."""
        if literal:
            return f"http://{USER}:{PASSWORD}@{self.host}/{path}?token={TOKEN}"
        return f"http://${{IDX_USER}}:${{IDX_PASSWORD}}@{self.host}/{path}?token=${{IDX_TOKEN}}"

    @property
    def environment(self) -> dict[str, str]:
        """The variables the placeholders name."""
        return {"IDX_USER": USER, "IDX_PASSWORD": PASSWORD, "IDX_TOKEN": TOKEN}


@pytest.fixture(scope="session")
def private_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("private-index")
    build_torch_index(root)
    build_index(root / "wheels", CONDA_PIP_WHEELS)
    return root


@pytest.fixture
def private_index(private_root: Path) -> Iterator[PrivateIndex]:
    seen: list[str | None] = []
    attributes = {"expected": AUTHORIZATION, "realm": "channel", "seen": seen}
    with serve(private_root, _TokenAuthHandler, **attributes) as (url, _):
        yield PrivateIndex(url.removeprefix("http://"), private_root, seen)


def files_with_a_secret(*roots: Path) -> list[str]:
    """Every file under ``roots`` whose bytes hold a secret (as written or percent-encoded)."""
    from urllib.parse import quote

    needles = {s.encode() for s in SECRETS} | {quote(s, safe="").encode() for s in SECRETS}
    found = []
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if any(n in data for n in needles):
                    found.append(str(path))
    return found


def texts_with_a_secret(texts: dict[str, str]) -> list[str]:
    """The names of the texts that hold a secret."""
    return [name for name, text in texts.items() if any(s in text for s in SECRETS)]
