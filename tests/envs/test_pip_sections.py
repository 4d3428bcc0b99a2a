"""``dlsetup lock`` of an environment file with a ``pip:`` section: the conda part solved by rattler
from the local channel, the PyPI part resolved by the real uv from a PEP 503 index of tiny real
wheels built at test time (``file://``, or served over HTTP with basic auth), written as conda-lock
``manager: pip`` entries that conda-lock's own parser, ``conda-lock render`` and rattler read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from dlsetup.cli import cli
from dlsetup.output import load_schema
from tests.envs.test_lock import read_back, render_explicit
from tests.support.http_server import (
    AUTHORIZATION,
    PASSWORD,
    USER,
    QuietHandler,
    basic_auth_server,
    serve,
)
from tests.support.shared import built_once
from tests.support.wheels import Wheel, build_index

WHEELS = (
    Wheel(
        "tiny-app", "1.0", ("tiny-dep>=1", "numpy>=1", "never-on-linux; sys_platform == 'win32'")
    ),
    Wheel("tiny-app", "0.9", ("tiny-dep>=1",)),
    Wheel("tiny-dep", "1.2"),
    Wheel("tiny-dep", "0.5"),
    Wheel("never-on-linux", "1.0"),
    # PyPI's numpy would be a second numpy next to conda's: the index has one, never chosen
    Wheel("numpy", "2.3.4", tag="cp312-cp312-manylinux_2_17_x86_64"),
    Wheel("linux-only", "1.0", tag="cp312-cp312-manylinux_2_17_x86_64"),
    Wheel("linux-only", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64"),
    Wheel("needs-old-numpy", "1.0", ("numpy<2",)),
)


@pytest.fixture(scope="session")
def wheel_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index's root: ``files/`` (the wheels) and ``simple/`` (PEP 503 pages), one for the run."""
    root, _ = built_once(tmp_path_factory, "wheel-index", lambda root: build_index(root, WHEELS))
    return root


@pytest.fixture(scope="session")
def index_url(wheel_index: Path) -> str:
    return (wheel_index / "simple").resolve().as_uri()


def environment(tmp_path: Path, index: str, pip: list[str], *, deps: tuple[str, ...] = ()) -> Path:
    path = tmp_path / "mine.yml"
    lines = [
        "name: mine",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        "  - python 3.12.*",
        "  - numpy",
        *(f"  - {d}" for d in deps),
        "  - pip:",
        f"    - --index-url {index}",
        *(f"    - {p}" for p in pip),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def lock(path: Path, channel_url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        ["lock", str(path), "--variant", "cpu", "--channel", channel_url,
         "--output", str(path.parent / "out"), *args],
        env=env,
    )  # fmt: skip


def pip_entries(lock_path: Path) -> dict[str, dict[str, Any]]:
    """``{"platform/name": entry}`` of the lock's ``manager: pip`` entries (conda-lock's parser)."""
    from conda_lock.lockfile import parse_conda_lock_file

    return {
        f"{p.platform}/{p.name}": p.model_dump()
        for p in parse_conda_lock_file(lock_path).package
        if p.manager == "pip"
    }


def sha256(wheel_index: Path, name: str) -> str:
    return hashlib.sha256((wheel_index / "files" / name).read_bytes()).hexdigest()


def test_pip_section_with_a_selector_locks_pypi_entries_that_conda_lock_and_rattler_read(
    channel_url: str, index_url: str, wheel_index: Path, tmp_path: Path
) -> None:
    path = environment(
        tmp_path,
        index_url,
        ["tiny-app", "numpy", "linux-only  # [linux64]"],
        deps=("ipykernel  # [osx and arm64]",),
    )
    result = lock(path, channel_url, "--platform", "linux-64", "--platform", "osx-arm64", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.lock"))
    by_platform = {p["platform"]: p for p in doc["data"]["platforms"]}
    assert [p["name"] for p in by_platform["linux-64"]["pypi_packages"]] == [
        "linux-only",
        "tiny-app",
        "tiny-dep",
    ]
    assert [p["name"] for p in by_platform["osx-arm64"]["pypi_packages"]] == [
        "tiny-app",
        "tiny-dep",
    ]
    # numpy is conda's: the pip: requirement is satisfied, not locked a second time
    assert by_platform["linux-64"]["provided_by_conda"] == ["numpy 2.3.4"]
    conda_names = {
        p["platform"]: {c["name"] for c in p["packages"]} for p in doc["data"]["platforms"]
    }
    assert "pip" in conda_names["linux-64"]  # conda-lock's rule: a pip: section brings pip
    assert "ipykernel" in conda_names["osx-arm64"]
    assert "ipykernel" not in conda_names["linux-64"]

    lock_path = path.parent / "out" / "mine.conda-lock.yml"
    conda_lock_view, rattler_view = read_back(lock_path)
    entries = pip_entries(lock_path)
    assert sorted(entries) == [
        "linux-64/linux-only",
        "linux-64/tiny-app",
        "linux-64/tiny-dep",
        "osx-arm64/tiny-app",
        "osx-arm64/tiny-dep",
    ]
    app = entries["linux-64/tiny-app"]
    assert app["version"] == "1.0"
    assert app["url"] == (wheel_index / "files" / "tiny_app-1.0-py3-none-any.whl").as_uri()
    assert app["hash"]["sha256"] == sha256(wheel_index, "tiny_app-1.0-py3-none-any.whl")
    # Requires-Dist for linux-64: the win32-only requirement does not apply there
    assert app["dependencies"] == {"tiny-dep": ">=1", "numpy": ">=1"}
    # the wheel for the solved CPython (3.12), not the cp311 one
    assert entries["linux-64/linux-only"]["url"].endswith("cp312-cp312-manylinux_2_17_x86_64.whl")
    assert not any(p.manager == "pip" and p.name == "numpy" for p in conda_lock_view.package)
    pypi_by_platform = {
        str(platform): sorted(p.name for p in packages if type(p).__name__ == "PypiLockedPackage")
        for platform, packages in rattler_view.default_environment().packages_by_platform().items()
    }
    assert pypi_by_platform == {
        "linux-64": ["linux-only", "tiny-app", "tiny-dep"],
        "osx-arm64": ["tiny-app", "tiny-dep"],
    }
    rendered = render_explicit(lock_path, tmp_path / "explicit")
    assert set(rendered) == {"linux-64", "osx-arm64"}

    # the rendered source keeps the section, the index as conda-lock names it, per-platform selectors
    text = (path.parent / "out" / "mine.environment.yml").read_text()
    assert "pip-repositories:\n  - " + index_url in text
    assert "allow-pypi-requests: false" in text
    assert "    - linux-only  # [linux64]" in text
    assert "  - ipykernel  # [arm64]" in text
    assert "nodefaults" not in text


def test_the_summary_counts_conda_and_pypi_packages_apart(
    channel_url: str, index_url: str, tmp_path: Path
) -> None:
    path = environment(tmp_path, index_url, ["tiny-app", "numpy"])
    result = lock(path, channel_url, "--platform", "linux-64")
    assert result.exit_code == 0, result.output
    assert "  linux-64: 4 conda packages\n" in result.output
    assert "PyPI (uv, " in result.output
    assert "ms): 2 packages: tiny-app 1.0, tiny-dep 1.2; already from conda: numpy 2.3.4\n" in (
        result.output
    )


def test_a_package_without_a_wheel_for_a_platform_fails_naming_package_and_platform(
    channel_url: str, index_url: str, tmp_path: Path
) -> None:
    path = environment(tmp_path, index_url, ["tiny-app", "linux-only"])
    result = lock(path, channel_url, "--platform", "linux-64", "--platform", "osx-arm64")
    assert result.exit_code == 4, result.output
    assert "Error: PyPI package linux-only has no wheel for osx-arm64 (Python 3.12" in result.output
    assert "# [not arm64]" in result.output  # the fix names the selector that would skip it
    assert not (path.parent / "out" / "mine.conda-lock.yml").exists()


def test_a_pypi_package_that_conflicts_with_the_conda_part_is_a_failed_solve(
    channel_url: str, index_url: str, tmp_path: Path
) -> None:
    path = environment(tmp_path, index_url, ["needs-old-numpy"])
    result = lock(path, channel_url, "--platform", "linux-64")
    assert result.exit_code == 4, result.output
    assert "could not resolve the pip: section for linux-64" in result.output
    assert "numpy<2" in result.output and "numpy==2.3.4" in result.output


def test_lock_check_sees_a_changed_pip_requirement_and_the_hash_covers_the_pypi_part(
    channel_url: str, index_url: str, tmp_path: Path
) -> None:
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    from dlsetup.envs.conda.lock import pypi_mapping_path

    path = environment(tmp_path, index_url, ["tiny-app"])
    assert lock(path, channel_url, "--platform", "linux-64").exit_code == 0
    out = path.parent / "out"
    lock_path = out / "mine.conda-lock.yml"
    check = CliRunner().invoke(cli, ["lock", str(path), "--check", str(lock_path)])
    assert check.exit_code == 0, check.output
    assert "is current" in check.output

    # conda-lock's content hash of the rendered file includes the pip: requirements
    def hashes(env_file: Path) -> dict[str, str]:
        spec = make_lock_spec(src_files=[env_file], mapping_url=str(pypi_mapping_path()))
        vpr = virtual_package_repo_from_specification(out / "mine.virtual-packages.yml")
        return dict(compute_content_hashes(spec, vpr))

    recorded = json.loads(
        CliRunner().invoke(cli, ["lock", str(path), "--check", str(lock_path), "--json"]).stdout
    )["data"]["content_hash"]["linux-64"]["recorded"]
    assert hashes(out / "mine.environment.yml")["linux-64"] == recorded
    without_pip = out / "without-pip.yml"
    without_pip.write_text(
        (out / "mine.environment.yml").read_text().replace("    - tiny-app\n", "")
    )
    assert hashes(without_pip)["linux-64"] != recorded

    path.write_text(path.read_text().replace("    - tiny-app\n", "    - tiny-app>=1\n"))
    stale = CliRunner().invoke(cli, ["lock", str(path), "--check", str(lock_path)])
    assert stale.exit_code == 1, stale.output
    assert "environment file changed: pip: tiny-app -> pip: tiny-app>=1" in stale.output

    # the file beside the lock edited: conda-lock's hash (pip part included) no longer matches
    path.write_text(path.read_text().replace("    - tiny-app>=1\n", "    - tiny-app\n"))
    beside = out / "mine.environment.yml"
    beside.write_text(
        beside.read_text().replace("    - tiny-app\n", "    - tiny-app\n    - tiny-dep\n")
    )
    edited = CliRunner().invoke(cli, ["lock", "--check", str(lock_path)])
    assert edited.exit_code == 1, edited.output
    assert "content hash" in edited.output


@pytest.fixture
def private_index(wheel_index: Path) -> Iterator[tuple[str, list[str | None]]]:
    """The wheel index over HTTP on 127.0.0.1, demanding basic auth: ``(base URL, headers seen)``."""
    yield from _serve(wheel_index)


@pytest.fixture
def private_channel(channel_dir: Path) -> Iterator[tuple[str, list[str | None]]]:
    """The conda channel over HTTP on 127.0.0.1, demanding basic auth: ``(host, headers seen)``."""
    yield from _serve(channel_dir)


def _serve(directory: Path) -> Iterator[tuple[str, list[str | None]]]:
    with basic_auth_server(directory, USER, PASSWORD, realm="channel") as (url, seen):
        yield url.removeprefix("http://"), seen


def test_a_private_index_gets_credentials_from_the_environment_and_the_lock_keeps_placeholders(
    channel_url: str, private_index: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    host, seen = private_index
    index = f"http://${{IDX_USER}}:${{IDX_PASSWORD}}@{host}/simple"
    path = environment(tmp_path, index, ["tiny-app"])
    unset = lock(path, channel_url, "--platform", "linux-64", env={"IDX_PASSWORD": ""})
    assert unset.exit_code == 2, unset.output
    assert "IDX_USER" in unset.output or "IDX_PASSWORD" in unset.output

    env = {"IDX_USER": USER, "IDX_PASSWORD": PASSWORD, "UV_NO_CACHE": "1"}
    result = lock(path, channel_url, "--platform", "linux-64", env=env)
    assert result.exit_code == 0, result.output
    assert any(h is not None for h in seen)  # uv and the metadata fetch really authenticated
    lock_path = path.parent / "out" / "mine.conda-lock.yml"
    app = pip_entries(lock_path)["linux-64/tiny-app"]
    assert app["url"] == (
        f"http://${{IDX_USER}}:${{IDX_PASSWORD}}@{host}/files/tiny_app-1.0-py3-none-any.whl"
    )
    assert app["dependencies"] == {"tiny-dep": ">=1", "numpy": ">=1"}  # PEP 658 or not: read
    for written in (path.parent / "out").iterdir():
        assert PASSWORD not in written.read_text(), written
    assert PASSWORD not in result.output


def test_a_private_channels_credentials_reach_no_repodata_cache_file(
    private_channel: tuple[str, list[str | None]],
    index_url: str,
    tmp_path: Path,
    isolated_dirs: dict[str, str],
) -> None:
    """rattler's repodata cache writes the URL it fetched (credentials filled in) into its
    ``.info.json`` files: a channel with ``${VAR}`` credentials is solved with a private cache
    removed afterwards (found by the explicit-lock repodata lookup's test, which has the same
    rule)."""
    host, seen = private_channel
    channel = f"http://${{CH_USER}}:${{CH_PASSWORD}}@{host}/"
    path = environment(tmp_path, index_url, ["tiny-app"])
    result = lock(path, channel, "--platform", "linux-64",
                  env={"CH_USER": USER, "CH_PASSWORD": PASSWORD})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert AUTHORIZATION in seen
    cache = Path(isolated_dirs["XDG_CACHE_HOME"])
    written = [p for p in cache.rglob("*") if p.is_file()]
    assert not [p for p in written if PASSWORD.encode() in p.read_bytes()]


@pytest.mark.network
def test_a_pip_section_from_pypi_itself_locks_real_wheels_per_platform(
    channel_url: str, tmp_path: Path
) -> None:
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        pytest.skip("pypi.org is not reachable")
    path = tmp_path / "mine.yml"
    path.write_text(
        "name: mine\ndependencies:\n  - python 3.12.*\n  - numpy\n"
        "  - pip:\n    - six==1.17.0\n    - pyyaml==6.0.2\n    - numpy\n"
    )
    result = lock(path, channel_url, "--platform", "linux-64", "--platform", "win-64")
    assert result.exit_code == 0, result.output
    entries = pip_entries(path.parent / "out" / "mine.conda-lock.yml")
    assert sorted(entries) == [
        "linux-64/pyyaml",
        "linux-64/six",
        "win-64/pyyaml",
        "win-64/six",
    ]
    assert entries["linux-64/pyyaml"]["url"].endswith(".whl")
    assert "cp312-cp312-manylinux" in entries["linux-64/pyyaml"]["url"]
    assert entries["win-64/pyyaml"]["url"].endswith("cp312-cp312-win_amd64.whl")
    assert len(entries["win-64/six"]["hash"]["sha256"]) == 64


def test_an_index_without_wheel_metadata_still_locks_and_says_what_is_missing(
    channel_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "bare-index"
    build_index(root, WHEELS[:3], metadata=False)
    with serve(root, QuietHandler) as (url, _):
        index = f"{url}/simple"
        path = environment(tmp_path, index, ["tiny-app"])
        result = lock(path, channel_url, "--platform", "linux-64")
        verbose = lock(path, channel_url, "--platform", "linux-64", "--force", "--verbose")
        as_json = lock(path, channel_url, "--platform", "linux-64", "--force", "--json")
    assert result.exit_code == 0, result.output
    entries = pip_entries(path.parent / "out" / "mine.conda-lock.yml")
    assert sorted(entries) == ["linux-64/tiny-app", "linux-64/tiny-dep"]
    assert entries["linux-64/tiny-app"]["dependencies"] == {}
    # issue 21 item 8: one summary line, not one per package; the names under --verbose / --json
    said = [line for line in result.output.splitlines() if "metadata" in line]
    assert said == [
        "  PyPI: 2 wheels on linux-64 have no metadata on their index (PEP 658), so the lock "
        "lists no dependencies for them (they are locked all the same); --verbose names them."
    ], result.output
    assert "    linux-64: tiny-app 1.0, tiny-dep 1.2\n" not in result.output
    assert verbose.exit_code == 0, verbose.output
    assert "    linux-64: tiny-app 1.0, tiny-dep 1.2\n" in verbose.output
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)["data"]
    jsonschema.validate(json.loads(as_json.stdout), load_schema("dlsetup.lock"))
    assert data["pypi_without_metadata"] == {"linux-64": ["tiny-app 1.0", "tiny-dep 1.2"]}


def test_a_platform_whose_pip_section_is_empty_gets_no_pip_as_conda_lock_decides(
    channel_url: str, index_url: str, tmp_path: Path
) -> None:
    path = environment(tmp_path, index_url, ["linux-only  # [linux64]"])
    result = lock(path, channel_url, "--platform", "linux-64", "--platform", "osx-arm64", "--json")
    assert result.exit_code == 0, result.output
    by_platform = {p["platform"]: p for p in json.loads(result.stdout)["data"]["platforms"]}
    assert "pip" in {c["name"] for c in by_platform["linux-64"]["packages"]}
    assert "pip" not in {c["name"] for c in by_platform["osx-arm64"]["packages"]}
    assert by_platform["osx-arm64"]["pypi_packages"] == []
