"""``create`` and ``lock --json`` name the user's uv settings that were forwarded to uv (which
settings, as which variables), never their values: a proxy's URL may hold a password.

Hermetic: the PyTorch-shaped local indexes (:mod:`tests.support.torch_index`), a uv.toml with a
``cache-dir`` and an ``http-proxy`` whose URL has a password (a closed port: only ``file://``
sources are used, which uv does not send through a proxy), the real uv, the CLI in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from dlsetup.output import load_schema
from tests.support.proc import run_cli
from tests.support.torch_index import TorchIndex

SECRET = "pr0xy-Pw-915"
NAMES = ["cache-dir as UV_CACHE_DIR", "http-proxy as HTTP_PROXY"]


def _env(tmp_path: Path, isolated_dirs: dict[str, str]) -> dict[str, str]:
    config = tmp_path / "config"
    (config / "uv").mkdir(parents=True)
    cache = tmp_path / "my-uv-cache"
    (config / "uv" / "uv.toml").write_text(
        f'cache-dir = "{cache}"\nhttp-proxy = "http://alice:{SECRET}@127.0.0.1:9"\n',
        encoding="utf-8",
    )
    env = {**isolated_dirs, "XDG_CONFIG_HOME": str(config), "PIP_CONFIG_FILE": "/dev/null"}
    for name in ("HTTP_PROXY", "http_proxy", "UV_CACHE_DIR"):
        env.pop(name, None)
    return env


def test_lock_json_and_create_name_the_forwarded_settings_without_their_values(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = _env(tmp_path, isolated_dirs)
    out = tmp_path / "out"
    made = run_cli(
        "lock", "pytorch", "--backend", "venv", "--variant", "cpu", "--platform", "linux-64",
        "--python-version", "3.11", "--torch-index-url", torch_index.torch_url, "--index-url",
        torch_index.pypi_url, "--output", str(out), "--json", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.venv-lock"))
    assert doc["data"]["uv_settings_forwarded"] == NAMES
    assert SECRET not in made.stdout + made.stderr
    built = run_cli(
        "create", "--from-lock", str(out / "pylock.pytorch-cpu.toml"), "--prefix",
        str(tmp_path / "env"), "--no-jupyter", "--no-smoke", env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    said = built.stdout + built.stderr
    assert f"uv settings forwarded from your configuration: {', '.join(NAMES)}" in said
    assert SECRET not in said
    assert "my-uv-cache" not in said  # a value, not a name
    assert (tmp_path / "my-uv-cache").is_dir()  # and uv did take it


def test_a_setting_the_users_variable_takes_over_is_not_named(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**_env(tmp_path, isolated_dirs), "UV_CACHE_DIR": str(tmp_path / "theirs")}
    made = run_cli(
        "lock", "pytorch", "--backend", "venv", "--variant", "cpu", "--platform", "linux-64",
        "--python-version", "3.11", "--torch-index-url", torch_index.torch_url, "--index-url",
        torch_index.pypi_url, "--output", str(tmp_path / "out"), "--json", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["data"]["uv_settings_forwarded"] == NAMES[1:]
