"""Issue 20: an index's credentials (basic auth and a query token) reach no file, no message, no
JSON document and no cache, after ``lock`` and ``create`` of both backends.

The index is private: served on 127.0.0.1, it demands basic auth on every request and
``?token=`` on its index pages (:mod:`tests.security.conftest`). The venv backend locks PyTorch
from the PyTorch-shaped index and its PyPI; the conda backend locks an environment file whose
``pip:`` section reads the tiny wheels through ``--index-url``. With ``${VAR}`` placeholders both
lock and build (the values are filled in only where uv uses them); with the values written in
the URL, the lock is made and keeps none of them. Real uv, real rattler, the CLI in a subprocess;
``XDG_CACHE_HOME``, ``UV_CACHE_DIR`` and ``RATTLER_CACHE_DIR`` point into the test's directory and
are searched byte by byte afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.conftest import PrivateIndex, files_with_a_secret, texts_with_a_secret
from tests.support.http_server import AUTHORIZATION, PASSWORD, USER
from tests.support.proc import run_cli


def caches(env: dict[str, str]) -> list[Path]:
    return [Path(env[k]) for k in ("XDG_CACHE_HOME", "UV_CACHE_DIR", "RATTLER_CACHE_DIR")]


def venv_lock(index: PrivateIndex, out: Path, env: dict[str, str], *, literal: bool) -> str:
    proc = run_cli(
        "lock", "pytorch", "--backend", "venv", "--variant", "cpu", "--platform", "linux-64",
        "--torch-index-url", index.url("whl/{variant}/simple", literal=literal),
        "--index-url", index.url("pypi/simple", literal=literal),
        "--output", str(out), "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    texts = {"lock stdout (--json)": proc.stdout, "lock stderr": proc.stderr}
    human = run_cli(
        "lock", "pytorch", "--backend", "venv", "--variant", "cpu", "--platform", "linux-64",
        "--torch-index-url", index.url("whl/{variant}/simple", literal=literal),
        "--index-url", index.url("pypi/simple", literal=literal),
        "--output", str(out), "--force", env=env,
    )  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert "PyTorch from http://" in human.stdout
    texts |= {"lock stdout": human.stdout, "lock stderr (text)": human.stderr}
    assert texts_with_a_secret(texts) == []
    return str(next(out.glob("pylock.*.toml")))


def create(lock: str, prefix: Path, env: dict[str, str]) -> dict[str, str]:
    proc = run_cli("create", "--from-lock", lock, "--prefix", str(prefix), "--no-smoke", "--json",
                   env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    return {"create stdout (--json)": proc.stdout, "create stderr": proc.stderr}


def test_a_private_index_for_a_venv_leaves_no_secret_behind(
    private_index: PrivateIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**isolated_dirs, **private_index.environment}
    out = tmp_path / "out"
    lock = venv_lock(private_index, out, env, literal=False)
    text = Path(lock).read_text()
    assert "${IDX_PASSWORD}" in text and "token=${IDX_TOKEN}" in text  # kept as placeholders
    prefix = tmp_path / "env"
    outputs = create(lock, prefix, env)
    assert (prefix / "pyvenv.cfg").is_file()
    assert AUTHORIZATION in private_index.seen  # uv really authenticated
    assert not [s for s in private_index.seen if s and s.startswith("no token")]
    assert texts_with_a_secret(outputs) == []
    assert files_with_a_secret(out, prefix, *caches(isolated_dirs)) == []


def test_literal_credentials_for_a_venv_lock_are_used_and_never_kept(
    private_index: PrivateIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    out = tmp_path / "out"
    venv_lock(private_index, out, dict(isolated_dirs), literal=True)
    assert AUTHORIZATION in private_index.seen
    assert f"{USER}:" not in next(out.glob("pylock.*.toml")).read_text()
    assert files_with_a_secret(out, *caches(isolated_dirs)) == []


def environment_file(path: Path, index_url: str) -> Path:
    lines = [
        "name: mine",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python 3.11.*",
        "  - pip",
        "  - tinyconda",
        "  - pip:",
        f"    - --index-url {index_url}",
        "    - tinyalpha",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("literal", [False, True], ids=["placeholders", "literal"])
def test_a_private_index_in_a_pip_section_leaves_no_secret_behind(
    literal: bool, private_index: PrivateIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    from tests.envs.lock_builders import build_fixture

    fixture = build_fixture(tmp_path / "fixture")
    env = {**isolated_dirs, **({} if literal else private_index.environment)}
    path = environment_file(
        tmp_path / "mine.yml", private_index.url("wheels/simple", literal=literal)
    )
    out = tmp_path / "out"
    proc = run_cli("lock", str(path), "--variant", "cpu", "--channel", fixture.channel_url,
                   "--platform", "linux-64", "--output", str(out), "--json", env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    texts = {"lock stdout (--json)": proc.stdout, "lock stderr": proc.stderr}
    assert AUTHORIZATION in private_index.seen
    prefix = tmp_path / "env"
    if not literal:  # a lock without the credentials cannot be built from the private index
        texts |= create(str(out / "mine.conda-lock.yml"), prefix, env)
        assert (prefix / "conda-meta").is_dir()
    assert PASSWORD not in json.dumps(texts)
    assert texts_with_a_secret(texts) == []
    assert files_with_a_secret(out, prefix, *caches(isolated_dirs)) == []
