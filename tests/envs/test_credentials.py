"""Channel credentials stay out of every file and message ``dlsetup lock`` writes, and ``${VAR}``
placeholders are filled in from the environment for the solve.

The test channel is served over HTTP on 127.0.0.1 by a small server that demands basic auth
(rattler sends a URL's user-info as basic auth), so the solves below really authenticate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dlsetup.cli import cli
from dlsetup.envs.credentials import (
    canonical,
    expand_auth,
    has_literal_auth,
    placeholders,
    redact,
    strip_auth,
)
from dlsetup.errors import InputError
from tests.support.http_server import (
    AUTHORIZATION,
    PASSWORD,
    USER,
    basic_auth_server,
    closed_port,
)


@pytest.fixture
def auth_server(channel_dir: Path) -> Iterator[tuple[str, list[str | None]]]:
    """``(http://127.0.0.1:PORT/, the Authorization headers received)``."""
    with basic_auth_server(channel_dir, USER, PASSWORD, realm="channel") as (url, seen):
        yield f"{url}/", seen


def lock(channel: str, output: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        ["lock", "pytorch", "--variant", "cpu", "--platform", "linux-64", "--channel", channel,
         "--output", str(output), *extra],
        env=env,
    )  # fmt: skip


def everything_written(output: Path, result: Result) -> dict[str, str]:
    texts = {str(p): p.read_text(encoding="utf-8") for p in output.rglob("*") if p.is_file()}
    texts["stdout"] = result.stdout
    texts["stderr"] = result.stderr
    return texts


def assert_no_secret(texts: dict[str, str]) -> None:
    for where, text in texts.items():
        assert PASSWORD not in text, where
        assert f"{USER}:" not in text, where


def test_literal_credentials_reach_no_file_and_no_message(
    auth_server: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    base, seen = auth_server
    channel = base.replace("http://", f"http://{USER}:{PASSWORD}@")
    out = tmp_path / "out"
    result = lock(channel, out)
    assert result.exit_code == 0, result.output
    assert AUTHORIZATION in seen  # the solve really authenticated
    texts = everything_written(out, result)
    assert sorted(Path(k).name for k in texts if k.startswith(str(out))) == [
        "pytorch-cpu.conda-lock.yml",
        "pytorch-cpu.environment.yml",
        "pytorch-cpu.virtual-packages.yml",
    ]
    assert_no_secret(texts)
    lock_text = (out / "pytorch-cpu.conda-lock.yml").read_text(encoding="utf-8")
    assert f"  url: {base}linux-64/pytorch-2.13.0-cpu_mkl_py312h0_100.tar.bz2\n" in lock_text
    assert f"  - {base}\n" in (out / "pytorch-cpu.environment.yml").read_text(encoding="utf-8")
    # the JSON document too
    again = lock(channel, tmp_path / "json", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["data"]["channels"] == [base]
    assert_no_secret(everything_written(tmp_path / "json", again))


@pytest.mark.parametrize("why", ["unreachable", "wrong password"])
def test_a_failing_private_channel_is_reported_without_its_password(
    why: str, auth_server: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    base, _ = auth_server
    if why == "unreachable":
        channel = f"http://{USER}:{PASSWORD}@127.0.0.1:{closed_port()}/"
    else:
        channel = base.replace("http://", f"http://{USER}:wrong-{PASSWORD}@")
    out = tmp_path / "out"
    result = lock(channel, out)
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("Error: could not solve linux-64 from http://127.0.0.1:")
    assert "Traceback" not in result.output
    assert_no_secret({"stdout": result.stdout, "stderr": result.stderr})
    assert not out.exists()
    as_json = lock(channel, out, "--json")
    assert as_json.exit_code == 4
    assert_no_secret({"stdout": as_json.stdout, "stderr": as_json.stderr})


def test_a_var_channel_is_expanded_for_the_solve_and_kept_as_placeholders(
    auth_server: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    import rattler
    from conda_lock.lockfile import parse_conda_lock_file

    base, seen = auth_server
    placeholder_base = base.replace("http://", "http://${CHANNEL_USER}:${CHANNEL_PASSWORD}@")
    out = tmp_path / "out"
    env = {"CHANNEL_USER": USER, "CHANNEL_PASSWORD": PASSWORD}
    result = lock(placeholder_base, out, env=env)
    assert result.exit_code == 0, result.output
    assert AUTHORIZATION in seen
    assert_no_secret(everything_written(out, result))
    lock_path = out / "pytorch-cpu.conda-lock.yml"
    parsed = parse_conda_lock_file(lock_path)
    assert [(c.url, sorted(c.used_env_vars)) for c in parsed.metadata.channels] == [
        (placeholder_base, ["CHANNEL_PASSWORD", "CHANNEL_USER"])
    ]
    assert all(p.url.startswith(placeholder_base) for p in parsed.package)
    environment = (out / "pytorch-cpu.environment.yml").read_text(encoding="utf-8")
    assert f"  - {placeholder_base}\n" in environment
    # rattler reads it back (it percent-encodes the braces of package URLs; canonical() undoes it)
    environment_ = rattler.LockFile.from_path(lock_path).default_environment()
    assert environment_ is not None
    records = environment_.conda_repodata_records()
    urls = [canonical(r.url) for r in records["linux-64"]]
    assert all(u.startswith(placeholder_base) for u in urls)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert expand_auth(urls[0]).startswith(f"http://{USER}:{PASSWORD}@127.0.0.1:")


def test_an_unset_variable_is_a_usage_error_naming_it(
    auth_server: tuple[str, list[str | None]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen = auth_server
    monkeypatch.delenv("CHANNEL_PASSWORD", raising=False)
    channel = base.replace("http://", "http://${CHANNEL_USER}:${CHANNEL_PASSWORD}@")
    out = tmp_path / "out"
    result = lock(channel, out, env={"CHANNEL_USER": USER})
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: channel {channel} needs the environment variable CHANNEL_PASSWORD, which is not "
        "set\nFix: export CHANNEL_PASSWORD=... (the channel's user name, password or token) and "
        "rerun; see 'Private channels' in docs/environments.md\n"
    )
    assert seen == []
    assert not out.exists()


def test_a_malformed_channel_entry_is_reported_without_its_password(tmp_path: Path) -> None:
    source = tmp_path / "mine.yml"
    source.write_text(
        f'name: mine\nchannels:\n  - "https://{USER}:{PASSWORD}@host/ch\\n"\n'
        "dependencies:\n  - numpy\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["lock", str(source), "--variant", "cpu"])
    assert result.exit_code == 2, result.output
    assert "contains a control character" in result.stderr
    assert "https://***@host/ch" in result.stderr
    assert_no_secret({"stdout": result.stdout, "stderr": result.stderr})


def test_credentials_in_an_environment_file_are_stripped_too(
    auth_server: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    base, _ = auth_server
    channel = base.replace("http://", f"http://{USER}:{PASSWORD}@")
    source = tmp_path / "mine.yml"
    source.write_text(
        f"name: mine\nchannels:\n  - {channel}\ndependencies:\n  - python 3.12.*\n  - numpy\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["lock", str(source), "--variant", "cpu", "--platform", "linux-64", "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert_no_secret(everything_written(out, result))


# --- the functions ------------------------------------------------------------------------------


def test_strip_auth_removes_literal_credentials_and_keeps_placeholders() -> None:
    assert strip_auth("https://alice:pw@host/ch") == "https://host/ch"
    assert strip_auth("https://token-only@host/ch") == "https://host/ch"
    assert strip_auth("https://u:p@ss@host/ch") == "https://host/ch"
    assert strip_auth("https://${U}:${P}@host/ch") == "https://${U}:${P}@host/ch"
    assert strip_auth("https://$U:$P@host/ch") == "https://$U:$P@host/ch"
    assert strip_auth("https://${U}:literal@host/ch") == "https://host/ch"
    assert strip_auth("https://host/t/tk-123/ch") == "https://host/ch"
    assert strip_auth("https://host/t/${TOKEN}/ch") == "https://host/t/${TOKEN}/ch"
    assert strip_auth("conda-forge") == "conda-forge"
    assert strip_auth("file:///srv/channel") == "file:///srv/channel"


def test_secret_query_parameters_are_stripped_masked_and_kept_as_placeholders() -> None:
    """Artifact servers and signed URLs carry the secret in the query (``?token=``)."""
    assert strip_auth("https://host/ch?token=tk-9911") == "https://host/ch"
    assert strip_auth("https://host/ch?x=1&access_token=tk-9911&y=2#f") == (
        "https://host/ch?x=1&y=2#f"
    )
    assert strip_auth("https://s3/b?X-Amz-Signature=abcd1234&X-Amz-Date=1") == (
        "https://s3/b?X-Amz-Date=1"
    )
    assert strip_auth("https://host/ch?token=${TOKEN}") == "https://host/ch?token=${TOKEN}"
    assert strip_auth("https://host/ch?page=2") == "https://host/ch?page=2"
    assert redact("GET https://host/ch?api_key=k-5150&x=1 failed") == (
        "GET https://host/ch?api_key=***&x=1 failed"
    )
    assert redact("https://host/ch?token=${TOKEN}") == "https://host/ch?token=${TOKEN}"
    assert has_literal_auth("https://host/ch?password=hunter22")
    assert not has_literal_auth("https://host/ch?token=${TOKEN}&page=2")
    # once seen in a URL, the value is masked wherever a server echoes it
    assert redact("server said: bad token tk-9911") == "server said: bad token ***"


def test_a_query_token_reaches_no_file_and_no_message(tmp_path: Path) -> None:
    secret = "qtok-5f1e-77aa"
    channel = f"http://127.0.0.1:{closed_port()}/ch?token={secret}"
    out = tmp_path / "out"
    for extra in ((), ("--json",)):
        result = lock(channel, out, *extra)
        assert result.exit_code == 4, result.output
        assert "Traceback" not in result.output
        assert secret not in result.stdout + result.stderr, result.output
        assert not out.exists()


def test_redact_masks_every_url_user_info_token_and_expanded_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert redact("GET https://alice:pw@host/ch/x failed") == "GET https://***@host/ch/x failed"
    assert redact("see https://host/t/tk-123/ch.") == "see https://host/t/***/ch."
    assert redact("https://${U}:${P}@host/") == "https://${U}:${P}@host/"
    monkeypatch.setenv("DLSETUP_TEST_TOKEN", "v3ry-secret/value")
    expanded = expand_auth("https://host/t/${DLSETUP_TEST_TOKEN}/ch")
    assert expanded == "https://host/t/v3ry-secret%2Fvalue/ch"
    # a server echoing the value outside any URL is masked too
    assert redact("server said: bad token v3ry-secret/value") == "server said: bad token ***"


def test_expand_auth_fills_every_placeholder_form_and_encodes_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("U", "alice")
    monkeypatch.setenv("P", "p@ss:w/rd")
    want = "http://alice:p%40ss%3Aw%2Frd@host/ch"
    assert expand_auth("http://${U}:${P}@host/ch") == want
    assert expand_auth("http://$U:$P@host/ch") == want
    assert expand_auth("http://$%7BU%7D:$%7bP%7d@host/ch") == want
    assert expand_auth("conda-forge") == "conda-forge"
    monkeypatch.setenv("EMPTY", "")
    with pytest.raises(InputError, match="needs the environment variable EMPTY, which is empty"):
        expand_auth("http://${EMPTY}@host/ch")
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(InputError) as caught:
        expand_auth("http://${U}:${NOPE}@host/ch")
    assert "NOPE, which is not set" in str(caught.value)
    assert "alice" not in str(caught.value)


def test_placeholders_and_literal_detection() -> None:
    assert placeholders("http://${A}:$B@host/t/$%7BC%7D/x") == ("A", "B", "C")
    assert has_literal_auth("http://a:b@host/")
    assert has_literal_auth("http://host/t/abc/x")
    assert not has_literal_auth("http://${A}:${B}@host/t/${C}/x")
    assert not has_literal_auth("http://host/ch")


def test_create_from_a_var_lock_reads_credentials_from_the_environment_and_keeps_none(
    auth_server: tuple[str, list[str | None]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path: lock with placeholders, then build from the lock over the auth server."""
    base, seen = auth_server
    placeholder_base = base.replace("http://", "http://${CHANNEL_USER}:${CHANNEL_PASSWORD}@")
    env = {"CHANNEL_USER": USER, "CHANNEL_PASSWORD": PASSWORD}
    out = tmp_path / "out"
    assert lock(placeholder_base, out, env=env).exit_code == 0
    seen.clear()
    prefix = tmp_path / "env"
    args = ["create", "--from-lock", str(out / "pytorch-cpu.conda-lock.yml"), "--prefix",
            str(prefix), "--no-smoke", "--no-jupyter", "--json"]  # fmt: skip
    monkeypatch.delenv("CHANNEL_PASSWORD", raising=False)
    refused = CliRunner().invoke(cli, args, env={"CHANNEL_USER": USER})
    assert refused.exit_code == 2, refused.output  # no password in the environment: named
    assert "CHANNEL_PASSWORD" in json.loads(refused.stdout)["data"]["error"]["message"]
    assert not prefix.exists()
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert seen and all(h == AUTHORIZATION for h in seen)  # every download authenticated
    texts = {str(p): p.read_text("utf-8", "replace") for p in prefix.rglob("*") if p.is_file()}
    texts.update(stdout=result.stdout, stderr=result.stderr)
    assert_no_secret(texts)
    meta = json.loads(next((prefix / "conda-meta").glob("numpy-*.json")).read_text())
    assert meta["url"].startswith(placeholder_base.replace("${", "$%7B").replace("}", "%7D")) or (
        meta["url"].startswith(placeholder_base)
    )
