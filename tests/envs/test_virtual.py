"""Virtual packages: this machine's platform is solved with what rattler detects here (recorded as
such), other platforms with the documented floors, and ``__cuda`` only from NVML or ``--cuda``."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.envs.location import host_platform
from dlsetup.output import load_schema
from tests.envs.channel import PLATFORMS, Package, build_channel

pytestmark = pytest.mark.skipif(
    host_platform() != "linux-64" or not hasattr(os, "confstr"),
    reason="compares with this machine's glibc: needs a linux-64 host",
)


def _glibc() -> str:
    family, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # type: ignore[union-attr]
    assert family == "glibc"
    return version


def _kernel() -> str:
    match = re.match(r"\d+(\.\d+)*", platform.release())
    assert match
    return match.group(0)


def lock_json(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["lock", *args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    jsonschema.validate(doc, load_schema("dlsetup.lock"))
    data: dict[str, object] = doc["data"]
    return data


@pytest.fixture
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CONDA_OVERRIDE_GLIBC", "CONDA_OVERRIDE_OSX", "CONDA_OVERRIDE_ARCHSPEC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "11.2")  # never used: __cuda is NVML's or --cuda's


def test_a_lock_for_this_platform_records_this_machines_glibc_and_kernel_and_says_so(
    channel_url: str, tmp_path: Path, no_overrides: None
) -> None:
    from conda_lock.lockfile import parse_conda_lock_file

    data = lock_json(
        "pytorch",
        "--variant",
        "cpu",
        "--platform",
        "linux-64",
        "--platform",
        "linux-aarch64",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    platforms = {p["platform"]: p for p in data["platforms"]}  # type: ignore[attr-defined]
    here, other = platforms["linux-64"], platforms["linux-aarch64"]
    glibc, kernel = _glibc(), _kernel()
    assert here["virtual_packages"][:3] == ["__unix=0", f"__linux={kernel}", f"__glibc={glibc}"]
    # the generic microarchitecture, not this CPU's (x86_64_v4 builds would die on a v3 machine)
    assert here["virtual_packages"][3] == "__archspec=1=x86_64"
    assert len(here["virtual_packages"]) == 4  # no __cuda for a cpu lock, whatever the env says
    assert here["virtual_package_sources"] == {
        "__unix": "detected",
        "__linux": "detected",
        "__glibc": "detected",
        "__archspec": "floor",
    }
    assert other["virtual_packages"] == [
        "__unix=0",
        "__linux=5.10",
        "__glibc=2.28",
        "__archspec=1=aarch64",
    ]
    assert set(other["virtual_package_sources"].values()) == {"floor"}

    lock = tmp_path / "pytorch-cpu.conda-lock.yml"
    text = lock.read_text()
    assert f"#   linux-64: __unix=0 __linux={kernel} __glibc={glibc} __archspec=1=x86_64\n" in text
    assert (
        "#     detected on this machine: __unix __linux __glibc; default floors: __archspec\n"
        in text
    )
    assert "#     default floors: __unix __linux __glibc __archspec\n" in text
    meta = parse_conda_lock_file(lock).metadata.custom_metadata
    assert f"__glibc={glibc}" in meta["dlsetup_virtual_packages_linux-64"].split()
    assert "__glibc=detected" in meta["dlsetup_virtual_package_sources_linux-64"].split()
    assert "__glibc=floor" in meta["dlsetup_virtual_package_sources_linux-aarch64"].split()
    spec = (tmp_path / "pytorch-cpu.virtual-packages.yml").read_text()
    assert f'      __glibc: "{glibc}"\n' in spec


def test_conda_override_glibc_is_honoured_for_this_platform_and_recorded(
    channel_url: str, tmp_path: Path, no_overrides: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDA_OVERRIDE_GLIBC", "2.17")
    data = lock_json(
        "pytorch",
        "--variant",
        "cuda",
        "--cuda",
        "12.6",
        "--platform",
        "linux-64",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    [here] = data["platforms"]  # type: ignore[misc]
    assert "__glibc=2.17" in here["virtual_packages"]
    assert here["virtual_package_sources"]["__glibc"] == "env:CONDA_OVERRIDE_GLIBC"
    assert here["virtual_package_sources"]["__linux"] == "detected"
    assert "__cuda=12.6" in here["virtual_packages"]
    assert here["virtual_package_sources"]["__cuda"] == "option:--cuda"
    text = (tmp_path / "pytorch-cuda.conda-lock.yml").read_text()
    assert (
        "#     detected on this machine: __unix __linux; from $CONDA_OVERRIDE_GLIBC: __glibc; "
        "default floors: __archspec; from --cuda: __cuda\n" in text
    )


def test_conda_override_archspec_names_this_machines_microarchitecture(
    channel_url: str, tmp_path: Path, no_overrides: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDA_OVERRIDE_ARCHSPEC", "x86_64_v3")
    data = lock_json(
        "pytorch",
        "--variant",
        "cpu",
        "--platform",
        "linux-64",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    [here] = data["platforms"]  # type: ignore[misc]
    assert "__archspec=1=x86_64_v3" in here["virtual_packages"]
    assert here["virtual_package_sources"]["__archspec"] == "env:CONDA_OVERRIDE_ARCHSPEC"


@pytest.fixture(scope="module")
def new_glibc_channel(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test channel plus ``needs-glibc``, which (like many real builds) needs glibc 2.34."""
    extra = [
        Package("needs-glibc", "1.0", "h0_0", subdir, depends=["__glibc >=2.34"])
        for subdir in PLATFORMS
        if subdir.startswith("linux")
    ]
    return build_channel(tmp_path_factory.mktemp("glibc-channel"), extra)


def test_the_detected_glibc_decides_the_solve_here_and_the_floor_elsewhere(
    new_glibc_channel: str, tmp_path: Path, no_overrides: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tuple(int(x) for x in _glibc().split(".")[:2]) < (2, 34):
        pytest.skip("this machine's glibc is older than 2.34")
    env_file = tmp_path / "needs-glibc.yml"
    env_file.write_text(
        "name: needs-glibc\nchannels:\n  - conda-forge\nplatforms:\n  - linux-64\n"
        "  - linux-aarch64\ndependencies:\n  - python 3.12.*\n  - needs-glibc\n"
    )
    common = ["--variant", "cpu", "--channel", new_glibc_channel]
    data = lock_json(str(env_file), *common, "--platform", "linux-64", "--output", str(tmp_path))
    [here] = data["platforms"]  # type: ignore[misc]
    assert {"name": "needs-glibc", "version": "1.0", "build": "h0_0"} in here["packages"]
    # another Linux platform is solved with the glibc 2.28 floor, where the package cannot go
    aarch64 = ["lock", str(env_file), *common, "--platform", "linux-aarch64"]
    result = CliRunner().invoke(cli, [*aarch64, "--output", str(tmp_path / "floor")])
    assert result.exit_code == 4, result.output
    assert result.output.startswith(
        "Error: needs-glibc 1.0 for linux-aarch64 needs glibc >=2.34 (__glibc), but linux-aarch64 "
        "was solved with glibc 2.28 (the default floor for linux-aarch64, which is not this "
        "machine's platform)\n"
    )
    assert result.output.endswith(
        "Fix: use an older needs-glibc (pin it in the environment file), or, if the machines this "
        "environment is for have glibc 2.34 or newer, say so with CONDA_OVERRIDE_GLIBC=2.34\n"
    )
    assert not (tmp_path / "floor").exists() or not list((tmp_path / "floor").iterdir())
    # ... and the fix it names works, and is recorded
    monkeypatch.setenv("CONDA_OVERRIDE_GLIBC", "2.34")
    data = lock_json(*aarch64[1:], "--output", str(tmp_path / "override"))
    [there] = data["platforms"]  # type: ignore[misc]
    assert "__glibc=2.34" in there["virtual_packages"]
    assert there["virtual_package_sources"]["__glibc"] == "env:CONDA_OVERRIDE_GLIBC"
