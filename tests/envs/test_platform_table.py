"""One row per platform (:data:`dlsetup.platforms.PLATFORM_TABLE`): the venv backend's platforms,
the wheel check's tags and the JSON schemas' platform enums are read from it or held to it here.

The schemas are data files, so their enums are compared with the table rather than derived."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest

from dlsetup.checks.fix_language import conda_platform
from dlsetup.envs.location import host_platform, known_host_platform
from dlsetup.envs.venv.lock_platforms import VENV_PLATFORMS
from dlsetup.errors import InputError
from dlsetup.output import load_schema
from dlsetup.platforms import PLATFORM_NAMES, PLATFORM_TABLE, PlatformInfo, from_host
from tests.doctor.test_checks import facts, system


def _platform_enum(schema: str) -> tuple[str, ...]:
    """The ``enum`` of the one ``platform``/``platforms`` list of names in ``schema``."""
    found: list[tuple[str, ...]] = []

    def walk(node: object, key: str = "") -> None:
        if isinstance(node, dict):
            if key in ("platform", "items") and "enum" in node and "linux-64" in node["enum"]:
                found.append(tuple(node["enum"]))
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)

    walk(load_schema(schema))
    assert len(found) == 1, (schema, found)
    return found[0]


VENV_NAMES = tuple(p.name for p in PLATFORM_TABLE if p.venv)


@pytest.mark.parametrize(
    ("schema", "names"),
    [
        ("dlsetup.lock", PLATFORM_NAMES),
        ("dlsetup.lock-check", PLATFORM_NAMES),
        ("dlsetup.venv-lock", VENV_NAMES),
    ],
)
def test_each_schemas_platform_enum_is_the_tables(schema: str, names: tuple[str, ...]) -> None:
    assert _platform_enum(schema) == names


def test_the_venv_platforms_are_the_tables_venv_rows() -> None:
    assert tuple(VENV_PLATFORMS) == VENV_NAMES
    for name, row in VENV_PLATFORMS.items():
        info = next(p for p in PLATFORM_TABLE if p.name == name)
        assert (row.python_platform, row.sys_platform, row.platform_machine) == (
            info.uv_platform,
            info.sys_platform,
            info.platform_machine,
        )
        assert (row.cuda_wheels, row.and_cuda) == (info.torch_cuda_wheels, info.tf_and_cuda)
        assert (row.os_name, row.platform_system) == (info.os_name, info.platform_system)


def test_every_wheel_platform_a_venv_row_accepts_passes_the_wheel_check_of_its_row() -> None:
    """The two forms of "a wheel for this platform" agree: uv's tags, best first (the venv
    backend's reading of a lock), and the pattern the wheel check of a lock's PyPI part uses."""
    for name, row in VENV_PLATFORMS.items():
        info = next(p for p in PLATFORM_TABLE if p.name == name)
        pattern = re.compile(info.wheel_tags)
        assert row.wheel_platforms
        assert [t for t in row.wheel_platforms if not pattern.match(t)] == [], name


def test_every_row_has_its_pypi_facts() -> None:
    for info in PLATFORM_TABLE:
        assert info.wheel_tags and info.sys_platform and info.platform_machine, info.name
        assert info.uv_platform, info.name
        assert not (info.torch_cuda_wheels or info.tf_and_cuda) or info.cuda, info.name


# ``platform.system()`` and ``platform.machine()`` of machines the table has no row for: a
# RISC-V or 32-bit Linux, Linux on POWER, Windows on ARM, FreeBSD, and nothing at all.
UNKNOWN_HOSTS = [
    ("Linux", "riscv64"),
    ("Linux", "i686"),
    ("Linux", "ppc64le"),
    ("Windows", "ARM64"),
    ("FreeBSD", "amd64"),
    ("", ""),
]


@pytest.mark.parametrize("row", PLATFORM_TABLE, ids=lambda p: p.name)
def test_every_row_is_found_from_what_its_machines_report(row: PlatformInfo) -> None:
    # each row's own marker values are what Python reports there (AMD64 on Windows, arm64 on macOS)
    assert from_host(row.platform_system, row.platform_machine) is row
    assert from_host(row.platform_system.lower(), row.platform_machine.lower()) is row  # doctor's
    assert (
        conda_platform(
            facts(system=system(os_name=row.platform_system.lower(), machine=row.platform_machine))
        )
        == row.name
    )


def test_each_os_spells_arm_and_x86_its_own_way() -> None:
    assert from_host("Linux", "arm64").name == "linux-aarch64"
    assert from_host("Darwin", "aarch64").name == "osx-arm64"
    assert from_host("Windows", "x86_64").name == "win-64"
    assert from_host("Linux", "AMD64").name == "linux-64"


@pytest.mark.parametrize(("system_name", "machine"), UNKNOWN_HOSTS)
def test_a_machine_the_table_has_no_row_for_gets_the_tables_answer(
    system_name: str, machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError) as exc:
        from_host(system_name, machine)
    assert (
        "is not a platform dlsetup locks for; valid platforms: " + ", ".join(PLATFORM_NAMES)
        in exc.value.message
    )
    assert exc.value.fix is not None and "--platform" in exc.value.fix
    # doctor falls back to pip's fix instead of a conda command for a made-up platform
    assert (
        conda_platform(facts(system=system(os_name=system_name.lower(), machine=machine))) is None
    )
    # and lock/create say so instead of locking for a subdir the table does not know
    monkeypatch.setattr(platform, "system", lambda: system_name)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    with pytest.raises(InputError, match="not a platform dlsetup locks for"):
        host_platform()
    assert known_host_platform() is None


def test_on_a_machine_without_a_row_lock_names_the_platform_or_says_why_not(
    channel_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RISC-V Linux box: ``lock --platform linux-64`` still locks (this machine's platform is
    only compared with, for its virtual packages); without ``--platform`` the table's answer,
    exit 2, not a lock for ``linux-riscv64``."""
    from click.testing import CliRunner

    from dlsetup.cli import cli
    from tests.envs.lock_builders import lock_args

    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    result = CliRunner().invoke(cli, list(lock_args("pytorch", channel_url, tmp_path / "a")))
    assert result.exit_code == 0, result.output
    lock = (tmp_path / "a" / "pytorch-cpu.conda-lock.yml").read_text(encoding="utf-8")
    # no platform was this machine's: each one solved with its floors, none detected
    assert "detected on this machine" not in lock
    args = ["lock", "pytorch", "--variant", "cpu", "--channel", channel_url, "--output"]
    result = CliRunner().invoke(cli, [*args, str(tmp_path / "b")])
    assert result.exit_code == 2, result.output
    assert (
        "Error: this machine (Linux on riscv64) is not a platform dlsetup locks for; valid "
        f"platforms: {', '.join(PLATFORM_NAMES)}"
    ) in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "b").exists()
