"""The user's uv settings that are not sources reach every uv dlsetup runs (uv runs with
``--no-config``, so they reach it only through dlsetup: :mod:`dlsetup.envs.uv_settings`).

Real uv throughout: ``dlsetup lock --backend venv`` over the local indexes of
:mod:`tests.support.torch_index` (a uv.toml ``cache-dir`` fills that directory; ``keyring-provider``
lets uv take a password from the real ``keyring`` command, answered by a file backend of the
tests), and :func:`dlsetup.envs.pypi.install.run_uv_step` (the runner of every uv child of the venv
backend) against an HTTPS index whose certificate comes from a CA the test makes
(``allow-insecure-host`` in uv.toml, ``cert`` in pip.conf), and with uv's ``--show-settings``
(what uv understood, with no network). Each fails on the code that dropped the user's uv.toml
whole.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dlsetup.cli import cli
from tests.support.http_server import PASSWORD, USER, basic_auth, basic_auth_server
from tests.support.https_server import TlsFiles, make_tls_files, serve_https
from tests.support.torch_index import TorchIndex
from tests.support.user_config import own_home

#: variables that set what these tests set through files, and this machine's certificates
SETTING_VARS = (
    "UV_CACHE_DIR", "UV_NO_CACHE", "UV_SYSTEM_CERTS", "UV_NATIVE_TLS", "UV_OFFLINE",
    "UV_INSECURE_HOST", "UV_KEYRING_PROVIDER", "UV_CONCURRENT_DOWNLOADS", "UV_HTTP_TIMEOUT",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "SSL_CLIENT_CERT", "PIP_CERT", "PIP_CLIENT_CERT",
    "PIP_TRUSTED_HOST", "PIP_TIMEOUT", "PIP_DEFAULT_TIMEOUT", "PIP_KEYRING_PROVIDER",
    "UV_RESOLUTION",
)  # fmt: skip


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of the test's own and ``XDG_CONFIG_HOME`` in it (``uv/uv.toml``, ``pip/pip.conf``
    go there), none of this machine's settings or certificates in the environment."""
    home = own_home(tmp_path, monkeypatch)
    for var in SETTING_VARS:
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "xdg-config"
    config.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    return config


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def lock(out: Path, index: str, torch: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["lock", "pytorch", "--backend", "venv", "--variant", "cpu", "--platform", "linux-64",
         "--python-version", "3.11", "--output", str(out), "--index-url", index,
         "--torch-index-url", torch],
    )  # fmt: skip


def test_a_uv_toml_cache_dir_fills_and_each_setting_is_said_with_where_it_was_set(
    config_home: Path, torch_index: TorchIndex, tmp_path: Path
) -> None:
    """cache-dir reaches uv (the directory fills); lock says each setting: forwarded (with the
    variable), left out because it changes what resolves (resolution = "lowest" is not applied:
    numpy is the newest), or unknown to dlsetup (one line, no error)."""
    cache = tmp_path / "uv-cache"
    uv_toml = write(
        config_home / "uv/uv.toml",
        f'cache-dir = "{cache}"\nnative-tls = true\nresolution = "lowest"\nfrobnicate = 1\n',
    )
    out = tmp_path / "out"
    result = lock(out, torch_index.pypi_url, torch_index.torch_url)
    assert result.exit_code == 0, result.output
    assert cache.is_dir() and any(cache.iterdir()), "uv did not use the uv.toml cache-dir"
    origin = f"uv config {uv_toml}"
    for line in (
        f"uv setting: cache-dir = {cache} ({origin}) forwarded as UV_CACHE_DIR",
        f"uv setting: native-tls = true ({origin}) forwarded as UV_SYSTEM_CERTS",
        f"uv setting: resolution ({origin}) not forwarded: it changes what uv resolves",
        f"uv setting: frobnicate ({origin}) not forwarded: not a setting dlsetup knows",
    ):
        assert line in result.output, result.output
    (path,) = out.glob("pylock.*.toml")
    assert 'name = "numpy"\nversion = "2.3.4"' in path.read_text(encoding="utf-8")
    as_json = CliRunner().invoke(
        cli,
        ["lock", "pytorch", "--backend", "venv", "--variant", "cpu", "--platform", "linux-64",
         "--python-version", "3.11", "--output", str(out), "--force", "--json", "--index-url",
         torch_index.pypi_url, "--torch-index-url", torch_index.torch_url],
    )  # fmt: skip
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)["data"]
    assert any("forwarded as UV_CACHE_DIR" in line for line in data["uv_settings"])


@pytest.fixture
def keyring_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real ``keyring`` command first on PATH, answering from :mod:`tests.support.keyring_file`
    with :data:`PASSWORD` for :data:`USER` at 127.0.0.1. Returns the file of its lookups."""
    from tests.support.keyring_file import FILE_VAR

    command = Path(sys.executable).parent / "keyring"
    if not command.is_file():
        pytest.skip("the keyring command is not installed beside this Python")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "keyring").symlink_to(command)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    store = write(tmp_path / "keyring.json", json.dumps({"127.0.0.1": {USER: PASSWORD}}))
    monkeypatch.setenv(FILE_VAR, str(store))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.support.keyring_file.FileKeyring")
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    return Path(f"{store}.log")


@pytest.fixture
def auth_mirror(torch_index: TorchIndex) -> Iterator[tuple[str, list[str | None]]]:
    with basic_auth_server(torch_index.root, USER, PASSWORD, realm="mirror") as served:
        yield served


@pytest.mark.parametrize("where", ["top", "[pip]"])
def test_a_uv_toml_keyring_provider_lets_uv_take_the_password_from_keyring(
    where: str,
    config_home: Path,
    keyring_command: Path,
    auth_mirror: tuple[str, list[str | None]],
    tmp_path: Path,
) -> None:
    """An index named with its user only (the password in the user's keyring): uv asks the
    keyring command for it because the uv.toml says keyring-provider = "subprocess", and the
    mirror sees the password; no file or message holds it."""
    base, seen = auth_mirror
    table = "[pip]\n" if where == "[pip]" else ""
    write(config_home / "uv/uv.toml", f'{table}keyring-provider = "subprocess"\n')
    named = base.replace("http://", f"http://{USER}@")
    out = tmp_path / "out"
    result = lock(out, f"{named}/pypi/simple", f"{named}/whl/{{variant}}/simple")
    assert result.exit_code == 0, result.output
    assert basic_auth(USER, PASSWORD) in seen
    assert keyring_command.is_file() and USER in keyring_command.read_text(encoding="utf-8")
    assert "forwarded as UV_KEYRING_PROVIDER" in result.output
    (path,) = out.glob("pylock.*.toml")
    assert PASSWORD not in path.read_text(encoding="utf-8") + result.output


@pytest.fixture
def https_index(tmp_path: Path) -> Iterator[tuple[str, TlsFiles]]:
    """A one-package index over HTTPS, its certificate from a CA of the test's own."""
    from tests.support.wheels import Wheel, build_index

    build_index(tmp_path / "index", [Wheel("tinypkg", "1.0")])
    pytest.importorskip("cryptography", reason="makes the test CA (comes with keyring on Linux)")
    tls = make_tls_files(tmp_path / "tls")
    with serve_https(tmp_path / "index", tls) as url:
        yield url, tls


def compile_from(index: str, tmp_path: Path) -> str:
    """``uv pip compile tinypkg`` from ``index`` as the venv backend runs every uv."""
    from dlsetup.envs.pypi.install import run_uv_step

    reqs = write(tmp_path / "reqs.in", "tinypkg\n")
    return run_uv_step(
        ["pip", "compile", str(reqs), "--default-index", f"{index}/simple", "--quiet",
         "--no-header", "--cache-dir", str(tmp_path / "cache")],
        "resolve",
    )  # fmt: skip


@pytest.mark.parametrize(
    "setting", ["uv.toml allow-insecure-host", "pip.conf trusted-host", "pip.conf cert"]
)
def test_a_company_index_with_its_own_ca_is_reached_through_the_users_setting(
    setting: str, config_home: Path, https_index: tuple[str, TlsFiles], tmp_path: Path
) -> None:
    url, tls = https_index
    host = url.removeprefix("https://")
    if setting == "uv.toml allow-insecure-host":
        write(config_home / "uv/uv.toml", f'allow-insecure-host = ["{host}"]\n')
    elif setting == "pip.conf trusted-host":
        write(config_home / "pip/pip.conf", f"[global]\ntrusted-host = {host}\n")
    else:
        write(config_home / "pip/pip.conf", f"[global]\ncert = {tls.ca}\n")
    assert "tinypkg==1.0" in compile_from(url, tmp_path)


def test_without_a_setting_the_company_index_is_refused(
    config_home: Path, https_index: tuple[str, TlsFiles], tmp_path: Path
) -> None:
    """The negative twin: nothing says to trust the CA, and uv refuses the certificate."""
    from dlsetup.errors import SolveError

    url, _ = https_index
    with pytest.raises(SolveError):
        compile_from(url, tmp_path)


def test_uv_understands_each_forwarded_setting_and_a_variable_the_user_set_wins(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv's own reading of its settings (``--show-settings``, no network): the uv.toml values,
    except where the user's variable for the same setting is set (uv takes a variable over a
    file), and nothing of the uv.toml's resolution or index settings."""
    from dlsetup.envs.pypi.install import run_uv_step

    write(
        config_home / "uv/uv.toml",
        "native-tls = true\noffline = true\nconcurrent-downloads = 3\nkeyring-provider = "
        '"subprocess"\nallow-insecure-host = ["mirror.example:8443"]\nresolution = "lowest"\n'
        'index-url = "https://mirror.example/simple"\n',
    )
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "7")
    monkeypatch.setenv("UV_CONCURRENT_DOWNLOADS", "5")
    reqs = write(tmp_path / "reqs.in", "tinypkg\n")
    shown = run_uv_step(["pip", "compile", str(reqs), "--show-settings"], "resolve")
    for fact in (
        "system_certs: true",
        "connectivity: Offline",
        "downloads: 5,",
        "keyring_provider: Subprocess",
        '"mirror.example"',
        "read_timeout: 7s",
        "resolution: Highest",
    ):
        assert fact in shown, fact
    assert "https://mirror.example/simple" not in shown


def test_no_forwarded_variable_is_one_dlsetup_keeps_from_uv() -> None:
    """The variables of the forwarded settings are not among the source and resolver variables
    uv never gets, so the user's own values of them reach uv."""
    from dlsetup.envs.pypi.uv import UV_INPUT_VARIABLES
    from dlsetup.envs.uv_settings import SETTING_VARIABLES

    assert not SETTING_VARIABLES & set(UV_INPUT_VARIABLES)


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ("cache-dir = { path = 'x' }", "cache-dir", "a string"),
        ("cache-dir = 5", "cache-dir", "a string"),  # was a cache directory named 5 here
        ('offline = "yes"', "offline", "a boolean"),
        ("concurrent-downloads = true", "concurrent-downloads", "a whole number"),
        ("allow-insecure-host = [1]", "allow-insecure-host", "a list of strings"),
    ],
)
def test_a_setting_of_the_wrong_type_is_an_error_naming_the_file_and_the_fix(
    config_home: Path, line: str, key: str, expected: str
) -> None:
    from dlsetup.envs.uv_settings import uv_settings
    from dlsetup.errors import InputError

    uv_toml = write(config_home / "uv/uv.toml", line + "\n")
    with pytest.raises(InputError) as raised:
        uv_settings()
    assert str(uv_toml) in raised.value.message and key in raised.value.message
    assert expected in raised.value.message
    assert raised.value.fix


@pytest.mark.skipif(sys.platform != "linux", reason="the users'-lock fixture builds Linux envs")
def test_the_conda_paths_uv_install_takes_the_uv_toml_cache_dir(
    config_home: Path, tmp_path: Path
) -> None:
    """create from a conda-lock file with PyPI packages: its ``uv pip install`` (the caller's uv
    variables dropped) gets the uv.toml's cache-dir too."""
    from tests.envs.lock_builders import build_fixture, create_from_lock, write_conda_lock

    cache = tmp_path / "uv-cache"
    write(config_home / "uv/uv.toml", f'cache-dir = "{cache}"\n')
    fx = build_fixture(tmp_path / "fx")
    lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
    code, _, err = create_from_lock(lock, tmp_path / "env")
    assert code == 0, err
    assert cache.is_dir() and any(cache.iterdir()), "uv did not use the uv.toml cache-dir"


@pytest.fixture
def https_mirror(torch_index: TorchIndex, tmp_path: Path) -> Iterator[tuple[str, TlsFiles]]:
    """The PyTorch-shaped indexes and the small PyPI over HTTPS, from a CA of the test's own."""
    pytest.importorskip("cryptography", reason="makes the test CA (comes with keyring on Linux)")
    tls = make_tls_files(tmp_path / "tls")
    with serve_https(torch_index.root, tls) as url:
        yield url, tls


@pytest.mark.parametrize("setting", ["uv.toml allow-insecure-host", "pip.conf cert", "none"])
def test_lock_reaches_a_company_mirror_with_its_own_ca_through_the_users_setting(
    setting: str, config_home: Path, https_mirror: tuple[str, TlsFiles], tmp_path: Path
) -> None:
    """End to end: dlsetup's reachability probe and uv both trust the mirror through the same
    setting, and the lock is made from it; with none, the probe finds it out of reach (its
    certificate is not trusted) and the lock stops naming it."""
    url, tls = https_mirror
    if setting == "uv.toml allow-insecure-host":
        write(config_home / "uv/uv.toml", f'allow-insecure-host = ["{url}"]\n')
    elif setting == "pip.conf cert":
        write(config_home / "pip/pip.conf", f"[global]\ncert = {tls.ca}\n")
    out = tmp_path / "out"
    result = lock(out, f"{url}/pypi/simple", f"{url}/whl/{{variant}}/simple")
    if setting == "none":
        assert result.exit_code != 0
        assert "is out of reach ([SSL: CERTIFICATE_VERIFY_FAILED]" in result.output
        return
    assert result.exit_code == 0, result.output
    (path,) = out.glob("pylock.*.toml")
    assert f"{url}/whl/cpu/" in path.read_text(encoding="utf-8")


def test_which_value_uv_gets_when_uv_toml_pip_conf_and_variables_all_set_it(
    tmp_path: Path,
) -> None:
    """uv's setting before pip's for the same variable; a variable already set (its older name
    too) wins; lists as uv's variables take them; pip's keyring-provider import, which uv does
    not have, is not forwarded."""
    from dlsetup.envs.sources import Places
    from dlsetup.envs.uv_settings import uv_settings

    home = tmp_path / "home"
    write(
        home / ".config/uv/uv.toml",
        'allow-insecure-host = ["a.example", "b.example:8443"]\nno-proxy = ["x.corp", "y.corp"]\n'
        "system-certs = true\n",
    )
    write(
        home / ".config/pip/pip.conf",
        "[global]\ntrusted-host = c.example, d.example\ncert = /etc/company.pem\n"
        "keyring-provider = import\ntimeout = 60\n",
    )
    places = Places(env={"UV_NATIVE_TLS": "0"}, home=home, root=tmp_path / "root")
    settings = uv_settings(places)
    assert settings.variables() == {
        "UV_INSECURE_HOST": "a.example b.example:8443",
        "NO_PROXY": "x.corp,y.corp",
        "SSL_CERT_FILE": "/etc/company.pem",
        "UV_HTTP_TIMEOUT": "60",
    }
    lines = settings.lines()
    assert (
        "system-certs = true (uv config ~/.config/uv/uv.toml) not forwarded: $UV_NATIVE_TLS is "
        "set and uv takes it"
    ) in lines
    assert not any("trusted-host" in line or "keyring" in line for line in lines), lines
