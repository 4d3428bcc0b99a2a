"""Issue 22 items 3-4 end to end on the venv backend: a mirror configured for pip or uv is used by
``dlsetup lock --backend venv``, named with its origin in the lock's header, and when PyTorch's
index is out of reach torch comes from it, said so; where nothing is left, the lock stops in
seconds naming every source tried.

PyTorch's own index is put out of reach the way a blocked network does it: ``https_proxy`` names
a closed port on 127.0.0.1, so the probe of ``https://download.pytorch.org/whl/cpu`` is refused at
once (no DNS, no network). The mirrors are the local PyTorch-shaped index and small PyPI of
:mod:`tests.support.torch_index`, reached through ``file://`` URLs written into the user's
``pip.conf`` or ``uv.toml``, or through ``PIP_*`` / ``UV_*`` variables; the real uv resolves.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dlsetup.cli import cli
from tests.support.http_server import basic_auth, basic_auth_server, closed_port
from tests.support.torch_index import TorchIndex
from tests.support.user_config import block_network, own_home

#: the time the issue allows to stop when nothing is within reach
STOP_S = 15.0


@pytest.fixture
def blocked_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of the test's own, this machine's pip/uv settings out of the way, and every HTTPS
    request sent to a proxy at a closed port (PyTorch's index out of reach at once)."""
    home = own_home(tmp_path, monkeypatch)
    block_network(monkeypatch)
    return home


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def lock(out: Path, *extra: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["lock", "pytorch", "--backend", "venv", "--variant", "cpu", "--platform", "linux-64",
         "--python-version", "3.11", "--output", str(out), *extra],
    )  # fmt: skip


def header(out: Path) -> str:
    (path,) = out.glob("pylock.*.toml")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("setting", ["pip.conf", "uv.toml", "PIP_env", "UV_env"])
def test_a_configured_mirror_serves_torch_when_pytorchs_index_is_out_of_reach(
    setting: str,
    blocked_home: Path,
    torch_index: TorchIndex,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mirror = torch_index.variant_url("cpu")
    pypi = torch_index.pypi_url
    if setting == "pip.conf":
        write(
            blocked_home / ".config/pip/pip.conf",
            f"[global]\nindex-url = {pypi}\nextra-index-url = {mirror}\n",
        )
        origin = "pip config ~/.config/pip/pip.conf [global] extra-index-url"
    elif setting == "uv.toml":
        write(
            blocked_home / ".config/uv/uv.toml",
            f'[[index]]\nurl = "{pypi}"\ndefault = true\n\n[[index]]\nname = "torch"\n'
            f'url = "{mirror}"\n',
        )
        origin = "uv config ~/.config/uv/uv.toml [[index]] torch"
    elif setting == "PIP_env":
        monkeypatch.setenv("PIP_INDEX_URL", pypi)
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", mirror)
        origin = "PIP_EXTRA_INDEX_URL"
    else:
        monkeypatch.setenv("UV_DEFAULT_INDEX", pypi)
        monkeypatch.setenv("UV_INDEX", f"torch={mirror}")
        origin = "UV_INDEX"
    out = tmp_path / "out"
    result = lock(out)
    assert result.exit_code == 0, result.output
    text = header(out)
    assert (
        "# Source: PyTorch's index https://download.pytorch.org/whl/cpu is out of reach "
        f"(connection refused); torch and its companions come from {mirror} ({origin})"
    ) in text, text
    assert f"# Source: index {mirror} ({origin})." in text
    # the mirror's cpu build, not PyPI's CUDA one (the same release is on the small PyPI)
    assert re.search(r'name = "torch"\nversion = "[0-9.]+\+cpu"', text), text
    assert "download.pytorch.org/whl/cpu/" not in text.split("[[packages]]", 1)[1]


def test_index_url_wins_over_a_configured_mirror(
    blocked_home: Path, torch_index: TorchIndex, tmp_path: Path
) -> None:
    write(blocked_home / ".pip/pip.conf", "[global]\nextra-index-url = file:///nowhere/simple\n")
    out = tmp_path / "out"
    result = lock(
        out, "--torch-index-url", torch_index.torch_url, "--index-url", torch_index.pypi_url
    )
    assert result.exit_code == 0, result.output
    text = header(out)
    assert "/nowhere/" not in text
    assert (
        "# Source: --index-url given: the indexes configured for pip and uv are not used." in text
    )


def test_nothing_within_reach_stops_in_seconds_naming_every_source(
    blocked_home: Path, tmp_path: Path
) -> None:
    gone = f"http://127.0.0.1:{closed_port()}/simple"
    write(blocked_home / ".config/pip/pip.conf", f"[global]\nextra-index-url = {gone}\n")
    start = time.perf_counter()
    result = lock(tmp_path / "out", "--index-url", f"http://127.0.0.1:{closed_port()}/pypi")
    took = time.perf_counter() - start
    assert result.exit_code != 0
    assert result.stderr.startswith("Error: no source of torch is within reach (tried, in order: ")
    assert "https://download.pytorch.org/whl/cpu (PyTorch's index): out of reach" in result.stderr
    assert "(--index-url): out of reach (connection refused)" in result.stderr
    assert "--torch-index-url https://MIRROR/whl/{variant}" in result.stderr
    assert "Traceback" not in result.output
    assert took < STOP_S, took


USER, PASSWORD = "alice", "pw-0c9e-77f1-secret"


@pytest.fixture
def auth_mirror(torch_index: TorchIndex) -> Iterator[tuple[str, list[str | None]]]:
    with basic_auth_server(torch_index.root, USER, PASSWORD, realm="mirror") as served:
        yield served


def test_a_password_in_a_pip_conf_mirror_reaches_uv_and_no_file_or_message(
    blocked_home: Path, auth_mirror: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    base, seen = auth_mirror
    secret = base.replace("http://", f"http://{USER}:{PASSWORD}@")
    write(
        blocked_home / ".config/pip/pip.conf",
        f"[global]\nindex-url = {secret}/pypi/simple\nextra-index-url = {secret}/whl/cpu/simple\n",
    )
    out = tmp_path / "out"
    result = lock(out)
    assert result.exit_code == 0, result.output
    assert basic_auth(USER, PASSWORD) in seen  # the probe and uv really authenticated
    text = header(out)
    assert f"# Source: index http://***@{base.removeprefix('http://')}/whl/cpu/simple (pip " in text
    for where in (text, result.stdout, result.stderr):
        assert PASSWORD not in where
        assert f"{USER}:" not in where


def test_a_url_with_credentials_goes_to_uv_in_a_private_file_not_its_command_line(
    tmp_path: Path,
) -> None:
    from dlsetup.envs.pypi.uv import index_args

    url = f"https://{USER}:{PASSWORD}@mirror.example/simple"
    args = index_args("https://pypi.org/simple", ["", url], ["/opt/wheels"], workdir=tmp_path)
    assert args == ["--config-file", str(tmp_path / "uv.toml")]
    assert (tmp_path / "uv.toml").stat().st_mode & 0o777 == 0o600
    assert PASSWORD in (tmp_path / "uv.toml").read_text(encoding="utf-8")
    plain = index_args("https://pypi.org/simple", ["", "file:///m"], ["/w"], workdir=tmp_path)
    assert plain == [
        "--index", "file:///m", "--find-links", "/w", "--default-index", "https://pypi.org/simple",
    ]  # fmt: skip


def create_cpu_venv(prefix: Path) -> Result:
    """``dlsetup create pytorch --backend venv --variant cpu`` at ``prefix``, in-process."""
    return CliRunner().invoke(
        cli,
        ["create", "pytorch", "--backend", "venv", "--variant", "cpu", "--python-version",
         f"{sys.version_info.major}.{sys.version_info.minor}", "--prefix", str(prefix),
         "--no-jupyter", "--no-smoke"],
    )  # fmt: skip


def test_create_says_the_fallback_before_it_builds_from_the_mirror(
    blocked_home: Path, torch_index: TorchIndex, tmp_path: Path
) -> None:
    mirror = torch_index.variant_url("cpu")
    write(
        blocked_home / ".config/pip/pip.conf",
        f"[global]\nindex-url = {torch_index.pypi_url}\nextra-index-url = {mirror}\n",
    )
    prefix = tmp_path / "envs" / "pt"
    result = create_cpu_venv(prefix)
    assert result.exit_code == 0, result.output
    said = result.output.index("  Source: PyTorch's index https://download.pytorch.org/whl/cpu")
    assert f"torch and its companions come from {mirror} (pip config " in result.output
    assert said < result.output.index(str(prefix))  # before the environment is reported
    assert (prefix / "pyvenv.cfg").is_file()


def test_lock_check_replays_the_configured_sources_and_the_fallback_as_current(
    blocked_home: Path, torch_index: TorchIndex, tmp_path: Path
) -> None:
    """A lock made through a pip.conf mirror with PyTorch's index out of reach is current when
    checked on the same machine; with the mirror's configuration gone, its index differs."""
    conf = blocked_home / ".config/pip/pip.conf"
    write(
        conf,
        f"[global]\nindex-url = {torch_index.pypi_url}\n"
        f"extra-index-url = {torch_index.variant_url('cpu')}\n",
    )
    out = tmp_path / "out"
    assert lock(out).exit_code == 0
    (path,) = out.glob("pylock.*.toml")
    check = CliRunner().invoke(cli, ["lock", "--check", str(path)])
    assert check.exit_code == 0, check.output
    conf.unlink()
    stale = CliRunner().invoke(cli, ["lock", "--check", str(path)])
    assert stale.exit_code == 1, stale.output
    assert f"locked from index {torch_index.pypi_url}, asked for https://pypi.org/simple" in (
        stale.output
    )


def test_a_named_torch_index_out_of_reach_stops_at_once_without_a_fallback(
    blocked_home: Path, torch_index: TorchIndex, tmp_path: Path
) -> None:
    gone = f"http://127.0.0.1:{closed_port()}/whl/{{variant}}"
    start = time.perf_counter()
    result = lock(tmp_path / "out", "--torch-index-url", gone, "--index-url", torch_index.pypi_url)
    took = time.perf_counter() - start
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith(
        f"Error: the PyTorch index {gone.format(variant='cpu')} (--torch-index-url) is out of "
        "reach (connection refused)"
    ), result.stderr
    assert took < STOP_S, took


def test_a_cuda_lock_does_not_fall_back_to_pypis_cuda_build_the_driver_cannot_run(
    blocked_home: Path, torch_index: TorchIndex, tmp_path: Path
) -> None:
    """CUDA 12.4 driver, Ada GPU: PyPI's torch is built for CUDA 13.0, so with PyTorch's index out
    of reach and no mirror configured nothing is left, said with why."""
    result = CliRunner().invoke(
        cli,
        ["lock", "pytorch", "--backend", "venv", "--cuda", "12.4", "--gpu-arch", "8.9",
         "--platform", "linux-64", "--python-version", "3.11", "--index-url",
         torch_index.pypi_url, "--output", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("Error: no source of torch is within reach"), result.stderr
    assert "the default index's torch is not taken: PyPI's torch 2." in result.stderr
    assert "needs a driver for CUDA 13.0 (this driver: CUDA 12.4)" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_configured_default_index_out_of_reach_is_named_when_uv_then_fails(
    blocked_home: Path, torch_index: TorchIndex, tmp_path: Path
) -> None:
    # torch from a mirror that answers; everything else from a default index that does not: the
    # probe saw it before uv spent its retries, and the error names it with its origin
    gone = f"http://127.0.0.1:{closed_port()}/simple"
    write(
        blocked_home / ".config/pip/pip.conf",
        f"[global]\nindex-url = {gone}\nextra-index-url = {torch_index.variant_url('cpu')}\n",
    )
    result = lock(tmp_path / "out")
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("Error: uv could not resolve: "), result.stderr
    assert (
        "The default index was already out of reach when dlsetup probed it: "
        f"{gone} (pip config ~/.config/pip/pip.conf [global] index-url): out of reach "
        "(connection refused)"
    ) in result.stderr, result.stderr
    assert "name another index with --index-url" in result.stderr
    assert "Traceback" not in result.output


#: the numpy release only the index the user did not choose holds (the small PyPI has 2.3.4)
ROGUE_NUMPY = "9.0.0"


@pytest.fixture
def rogue_index(tmp_path: Path) -> Path:
    """An index holding a numpy release no chosen source has, for the Linux x86_64 Pythons."""
    from tests.support.torch_index import LINUX, PYTHONS
    from tests.support.wheels import Wheel, build_index

    wheels = [Wheel("numpy", ROGUE_NUMPY, tag=f"{py}-{py}-{LINUX}") for py in PYTHONS]
    build_index(tmp_path / "rogue", wheels)
    return tmp_path / "rogue"


@pytest.mark.parametrize(
    "setting", ["UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_CONFIG_FILE", "uv.toml"]
)
def test_index_url_given_no_uv_setting_of_the_caller_reaches_uv(
    setting: str,
    blocked_home: Path,
    torch_index: TorchIndex,
    auth_mirror: tuple[str, list[str | None]],
    rogue_index: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--index-url and --torch-index-url name every source; an index set in the caller's uv
    variables or uv.toml, which holds another numpy, is not searched: uv gets exactly the sources
    dlsetup decided. UV_INDEX with an --index-url that has credentials (they reach uv in a
    private config file, and uv took UV_INDEX beside it); a uv.toml with a plain one (uv read the
    user's config where dlsetup wrote none)."""
    base, _ = auth_mirror
    rogue = (rogue_index / "simple").as_uri()
    if setting == "UV_FIND_LINKS":
        monkeypatch.setenv(setting, str(rogue_index / "files"))
    elif setting in ("UV_CONFIG_FILE", "uv.toml"):
        config = (
            tmp_path / "uv.toml"
            if setting == "UV_CONFIG_FILE"
            else (blocked_home / ".config/uv/uv.toml")
        )
        write(config, f'extra-index-url = ["{rogue}"]\n')
        if setting == "UV_CONFIG_FILE":
            monkeypatch.setenv(setting, str(config))
    else:
        monkeypatch.setenv(setting, rogue)
    secret = base.replace("http://", f"http://{USER}:{PASSWORD}@")
    index = f"{secret}/pypi/simple" if setting == "UV_INDEX" else torch_index.pypi_url
    out = tmp_path / "out"
    result = lock(out, "--index-url", index, "--torch-index-url", torch_index.torch_url)
    assert result.exit_code == 0, result.output
    text = header(out)
    assert 'name = "numpy"\nversion = "2.3.4"' in text, text
    assert "rogue" not in text


def test_lock_json_names_each_source_with_its_role_and_origin_credentials_masked(
    blocked_home: Path,
    torch_index: TorchIndex,
    auth_mirror: tuple[str, list[str | None]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    import jsonschema

    from dlsetup.output import load_schema

    base, _ = auth_mirror
    secret = base.replace("http://", f"http://{USER}:{PASSWORD}@")
    write(blocked_home / ".pip/pip.conf", f"[global]\nextra-index-url = {secret}/pypi/simple\n")
    monkeypatch.setenv("UV_DEFAULT_INDEX", torch_index.pypi_url)
    result = lock(tmp_path / "out", "--torch-index-url", torch_index.torch_url, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.venv-lock"))
    masked = f"http://***@{base.removeprefix('http://')}/pypi/simple"
    assert doc["data"]["sources"] == [
        {"role": "torch", "kind": "index", "url": torch_index.variant_url("cpu"),
         "origin": "--torch-index-url", "origin_kind": "option", "variant": "cpu"},
        {"role": "index", "kind": "index", "url": masked,
         "origin": "pip config ~/.pip/pip.conf [global] extra-index-url",
         "origin_kind": "pip-config"},
        {"role": "default", "kind": "index", "url": torch_index.pypi_url,
         "origin": "UV_DEFAULT_INDEX", "origin_kind": "environment"},
    ]  # fmt: skip
    assert (
        f"index {masked} (pip config ~/.pip/pip.conf [global] extra-index-url)"
        in (doc["data"]["source_lines"])
    )
    assert PASSWORD not in result.stdout


@pytest.mark.parametrize(
    ("origin", "kind"),
    [("--index-url", "option"), ("uv config ~/.config/uv/uv.toml [[index]] torch", "uv-config"),
     ("UV_INDEX", "environment"), ("PIP_FIND_LINKS", "environment"),
     ("PyPI, the default index", "default"), ("PyTorch's index", "default")],
)  # fmt: skip
def test_each_origin_is_told_apart_for_json(origin: str, kind: str) -> None:
    from dlsetup.envs.sources import Source

    assert Source("index", "https://x/simple", origin).origin_kind == kind


def test_create_from_a_uv_toml_mirror_with_a_password_authenticates_without_the_users_config(
    blocked_home: Path, auth_mirror: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    """uv runs with --no-config, so a password written in the user's uv.toml reaches ``uv pip
    sync`` only through dlsetup (the configured sources, their credentials in a private config
    file): the venv is built from the mirror, and the lock keeps no password."""
    base, seen = auth_mirror
    secret = base.replace("http://", f"http://{USER}:{PASSWORD}@")
    write(
        blocked_home / ".config/uv/uv.toml",
        f'[[index]]\nurl = "{secret}/pypi/simple"\ndefault = true\n\n[[index]]\nname = "torch"\n'
        f'url = "{secret}/whl/cpu/simple"\n',
    )
    prefix = tmp_path / "envs" / "pt"
    result = create_cpu_venv(prefix)
    assert result.exit_code == 0, result.output
    assert (prefix / "pyvenv.cfg").is_file()
    assert basic_auth(USER, PASSWORD) in seen
    assert PASSWORD not in result.output
    for lock_file in prefix.glob("pylock*.toml"):
        assert PASSWORD not in lock_file.read_text(encoding="utf-8")
