"""``dlsetup create --from-lock`` reads every lock a user has (issue 9, the read/install half).

The locks are written by the real tools' own code (:mod:`tests.envs.lock_builders`): conda-lock's
writer and explicit renderer, py-rattler's pixi.lock writer. Each is built by the real CLI in a
subprocess into a prefix, and the result is checked from inside the environment's own Python
(the fixture's python is the real interpreter binary in a conda-forge-like layout, no
``pyvenv.cfg``: its ``sys.prefix`` and ``site-packages`` are the environment's, in the staging
folder as in the final one) and in ``conda-meta``.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from dlsetup.envs.lockfiles.formats import detect_format, read_locked_environment
from dlsetup.errors import InputError
from dlsetup.output import load_schema
from tests.envs.lock_builders import (
    CHECKOUT,
    LINUX_ONLY,
    PLATFORM,
    Fixture,
    build_fixture,
    write_conda_lock,
    write_explicit,
    write_pixi_lock,
    write_pixi_lock_v6,
)
from tests.envs.lock_builders import create_from_lock as create
from tests.support.proc import run_cli

pytestmark = LINUX_ONLY


@pytest.fixture(scope="module")
def conda_lock(fx: Fixture) -> Path:
    return write_conda_lock(fx, fx.channel_dir.parent / "x.conda-lock.yml")


@pytest.fixture(scope="module")
def pixi_lock(fx: Fixture) -> Path:
    directory = fx.channel_dir.parent / "proj"
    directory.mkdir(exist_ok=True)
    return write_pixi_lock(fx, directory / "pixi.lock")


INSPECT = """
import importlib, importlib.metadata as md, json, sys
names = sys.argv[1].split(",") if sys.argv[1] else []
print(json.dumps({
    "prefix": sys.prefix,
    "dists": sorted(d.metadata["Name"] for d in md.distributions()),
    "files": {n: importlib.import_module(n).__file__ for n in names},
}))
"""


def inside(prefix: Path, modules: list[str]) -> dict[str, object]:
    """What the environment's own Python sees: its prefix, distributions, module files."""
    out = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", INSPECT, ",".join(modules)],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}, cwd=prefix,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def conda_meta(prefix: Path) -> set[str]:
    return {json.loads(p.read_text())["name"] for p in (prefix / "conda-meta").glob("*.json")}


def assert_built(prefix: Path, conda: set[str], pypi: set[str], conda_modules: list[str]) -> None:
    assert conda_meta(prefix) == conda
    assert not (prefix / "pyvenv.cfg").exists()  # a conda environment, not a venv
    seen = inside(prefix, [p.replace("-", "_") for p in sorted(pypi)] + conda_modules)
    assert seen["prefix"] == str(prefix)
    assert seen["dists"] == sorted(pypi)
    files = seen["files"]
    assert isinstance(files, dict)
    site = prefix / "lib" / "python3.11" / "site-packages"
    for module, file in files.items():
        assert Path(file).is_relative_to(site), (module, file)


# --- detection and errors ---------------------------------------------------------------------


def test_each_format_is_detected_from_its_content_not_its_name(
    conda_lock: Path, pixi_lock: Path, tmp_path: Path
) -> None:
    explicit = write_explicit(conda_lock, tmp_path / "weird.yml")
    assert detect_format(conda_lock, conda_lock.read_text())[0] == "conda-lock-v1"
    assert detect_format(explicit, explicit.read_text())[0] == "explicit"
    assert detect_format(pixi_lock, pixi_lock.read_text())[0] == "pixi"


@pytest.mark.parametrize(
    ("name", "text", "what"),
    [
        ("environment.yml", "channels: [conda-forge]\ndependencies: [python]\n",
         "is an environment file (channels/dependencies), not a lock"),
        ("uv.lock", 'version = 1\nrequires-python = ">=3.11"\n[[package]]\nname = "x"\n',
         "is a TOML lock (uv.lock or poetry.lock)"),
        ("requirements.txt", "torch==2.13.0\nnumpy>=2\n", "is a pip requirements file"),
        ("v2.conda-lock.yml", "version: 2\npackage: []\nmetadata: {}\n",
         "is a conda-lock file of version 2"),
    ],
)  # fmt: skip
def test_an_unsupported_format_names_itself_and_the_supported_ones_exit_2(
    tmp_path: Path, name: str, text: str, what: str
) -> None:
    lock = tmp_path / name
    lock.write_text(text)
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 2, err
    assert f"Error: {lock} {what}; it is not a lock dlsetup reads" in err
    assert "conda-lock v1" in err and "@EXPLICIT" in err and "pixi.lock" in err
    assert "Traceback" not in err
    assert not (tmp_path / "env").exists()


def test_a_lock_goes_to_the_backend_its_content_names_whatever_its_file_name(
    conda_lock: Path, tmp_path: Path
) -> None:
    from dlsetup.envs.pipeline import backend_for_lock

    pep751 = tmp_path / "my.lock.toml"
    pep751.write_text('lock-version = "1.0"\n[[packages]]\nname = "x"\n')
    code, _out, err = create(pep751, tmp_path / "env")
    assert code == 2 and f"{pep751} is not a valid PEP 751 lock" in err, err
    assert "Traceback" not in err and not (tmp_path / "env").exists()
    disguised = tmp_path / "pylock.toml"  # a conda-lock file under a venv lock's name
    disguised.write_bytes(conda_lock.read_bytes())
    assert backend_for_lock(disguised)[0].name == "conda"
    assert backend_for_lock(pep751)[0].name == "venv"


def test_a_malformed_conda_lock_exits_2_naming_file_and_field(
    conda_lock: Path, tmp_path: Path
) -> None:
    data = yaml.safe_load(conda_lock.read_text())
    del data["package"][1]["url"]
    bad = tmp_path / "bad.conda-lock.yml"
    bad.write_text(yaml.safe_dump(data))
    code, _, err = create(bad, tmp_path / "env")
    assert code == 2, err
    assert re.search(
        rf"Error: {re.escape(str(bad))} is not a readable lock: conda-lock's model rejects it "
        r"\(package\.1\.url: Field required\)",
        err,
    ), err
    assert "hand-edited" not in err


def test_a_malformed_explicit_line_exits_2_naming_the_line(
    conda_lock: Path, tmp_path: Path
) -> None:
    explicit = write_explicit(conda_lock, tmp_path / "x.txt")
    lines = explicit.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("file://"))
    lines[index] = lines[index] + "zz"
    explicit.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"line {index + 1}: '[0-9a-f]+zz' is neither an md5"):
        read_locked_environment(explicit, PLATFORM)


def test_unknown_environment_and_category_are_named_with_the_choices(
    conda_lock: Path, pixi_lock: Path
) -> None:
    with pytest.raises(InputError, match="has no environment 'gpu'; it has: default, dev"):
        read_locked_environment(pixi_lock, PLATFORM, environment="gpu")
    with pytest.raises(InputError, match="has no category docs; it has: dev, main"):
        read_locked_environment(conda_lock, PLATFORM, extras=("docs",))
    with pytest.raises(InputError, match=r"--environment dev applies to pixi\.lock files"):
        read_locked_environment(conda_lock, PLATFORM, environment="dev")
    with pytest.raises(InputError, match=r"--no-dev applies to conda-lock files"):
        read_locked_environment(pixi_lock, PLATFORM, dev=False)


# --- conda-lock v1 ----------------------------------------------------------------------------


def test_conda_lock_v1_with_pypi_ranges_is_read_with_conda_locks_models_and_categories(
    conda_lock: Path,
) -> None:
    text = conda_lock.read_text()
    assert "tinybeta: '>=0.1,<0.9 || >=1.0'" in text and "tinyconda: '*'" in text
    import rattler

    with pytest.raises(Exception, match="MapOrVec"):  # why the fallback exists
        rattler.LockFile.from_path(conda_lock)
    default = read_locked_environment(conda_lock, PLATFORM)
    assert [p.name for p in default.pypi] == ["tinyalpha", "tinybeta", "tinydev"]
    assert {r.name.normalized for r in default.conda} == {
        "python", "pip", "tinyconda", "tinyconda-dev",
    }  # fmt: skip
    assert default.categories == ("dev", "main")
    main = read_locked_environment(conda_lock, PLATFORM, dev=False)
    assert [p.name for p in main.pypi] == ["tinyalpha", "tinybeta"]
    assert "tinyconda-dev" not in {r.name.normalized for r in main.conda}
    assert all(p.sha256 and len(p.sha256) == 64 for p in default.pypi)


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ("file:///etc/passwd", "metadata.channels is str 'file:///etc/passwd', not a list"),
        ([":"], "names a channel rattler cannot read: ':'"),
    ],
)
def test_channels_that_are_not_a_list_of_channels_exit_2_naming_them(
    conda_lock: Path, tmp_path: Path, channels: object, message: str
) -> None:
    """Found by the lock fuzz: a string for the list was read one character a channel, and ':'
    reached rattler (InvalidChannelError, exit 70)."""
    data = yaml.safe_load(conda_lock.read_text())
    data["metadata"]["channels"] = channels
    bad = tmp_path / "bad.conda-lock.yml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = create(bad, tmp_path / "env")
    assert code == 2, err
    assert message in err and str(bad) in err, err
    assert not (tmp_path / "env").exists()


def test_plain_string_channels_are_read(conda_lock: Path, fx: Fixture, tmp_path: Path) -> None:
    """conda-lock's models accept ``channels: [URL]``; rattler 0.28 does not."""
    data = yaml.safe_load(conda_lock.read_text())
    data["metadata"]["channels"] = [fx.channel_url]
    plain = tmp_path / "plain.conda-lock.yml"
    plain.write_text(yaml.safe_dump(data, sort_keys=False))
    locked = read_locked_environment(plain, PLATFORM)
    assert locked.channels == (fx.channel_url,)
    assert len(locked.conda) == 4 and len(locked.pypi) == 3


def test_create_from_conda_lock_v1_installs_conda_and_pypi_packages(
    conda_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    code, out, err = create(conda_lock, prefix, "--json")
    assert code == 0, err
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema("dlsetup.create"))
    assert (doc["data"]["packages"], doc["data"]["pypi_packages"]) == (4, 3)
    assert doc["data"]["lock_format"] == "conda-lock-v1"
    assert_built(
        prefix,
        {"python", "pip", "tinyconda", "tinyconda-dev"},
        {"tinyalpha", "tinybeta", "tinydev"},
        ["tinyconda", "tinyconda_dev", "pip"],
    )
    head = (prefix / "bin" / "tinydev").read_text().splitlines()[0]
    assert head == f"#!{prefix}/bin/python"  # the staged path was rewritten
    run = subprocess.run([str(prefix / "bin" / "tinydev")], capture_output=True, text=True)
    assert run.stdout == "tinydev ok\n"


def test_no_dev_leaves_the_dev_category_out_and_the_plan_counts_both_kinds(
    conda_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    code, out, err = create(conda_lock, prefix, "--no-dev")
    assert code == 0, err
    assert (
        "Plan: 3 conda packages and 2 PyPI packages for linux-64 from x.conda-lock.yml "
        "(conda-lock-v1, categories main)"
    ) in err
    summary = " ".join(out.split())  # rich wraps long lines
    assert f"Created {prefix} (5 packages: 3 conda, 2 PyPI; linux-64, hashes verified)" in summary
    assert_built(prefix, {"python", "pip", "tinyconda"}, {"tinyalpha", "tinybeta"}, ["tinyconda"])


# --- explicit ---------------------------------------------------------------------------------


def test_create_from_conda_lock_render_explicit_installs_everything(
    conda_lock: Path, tmp_path: Path
) -> None:
    explicit = write_explicit(conda_lock, tmp_path / "linux-64.txt")
    text = explicit.read_text()
    assert "@EXPLICIT" in text and "# pip tinyalpha @ file://" in text
    prefix = tmp_path / "env"
    code, _out, err = create(explicit, prefix)
    assert code == 0, err
    assert "Plan: 4 conda packages and 3 PyPI packages" in err
    # noarch: python came from each archive's info/index.json: the files are in site-packages
    assert_built(
        prefix,
        {"python", "pip", "tinyconda", "tinyconda-dev"},
        {"tinyalpha", "tinybeta", "tinydev"},
        ["tinyconda", "tinyconda_dev"],
    )
    assert (prefix / "conda-meta" / "dlsetup.explicit.txt").read_text() == text


def conda_list_explicit(lock: Path, path: Path, *, fragment: str = "") -> Path:
    """What ``conda list --explicit`` writes for the lock's main packages: without a flag, URLs
    with no hash; ``fragment="sha256"`` (``--sha256``) adds ``#sha256:HEX``."""
    locked = read_locked_environment(lock, PLATFORM, dev=False)
    lines = ["# This file may be used to create an environment using:", "# platform: linux-64",
             "@EXPLICIT"]  # fmt: skip
    for r in locked.conda:
        lines.append(f"{r.url}#sha256:{r.sha256.hex()}" if fragment == "sha256" else r.url)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_conda_list_explicit_with_sha256_and_without_hashes(
    conda_lock: Path, tmp_path: Path
) -> None:
    """``conda list --explicit --sha256`` writes ``#sha256:HEX``; without a flag, no hash: the
    hash is then the one the channel's repodata.json records for the archive."""
    listed = conda_list_explicit(conda_lock, tmp_path / "sha.txt", fragment="sha256")
    code, _, err = create(listed, tmp_path / "env")
    assert code == 0, err
    assert conda_meta(tmp_path / "env") == {"python", "pip", "tinyconda"}
    bare = conda_list_explicit(conda_lock, tmp_path / "bare.txt")
    assert "#" not in bare.read_text().split("@EXPLICIT")[1]
    code, _, err = create(bare, tmp_path / "env2")
    assert code == 0, err
    assert "3 packages of bare.txt have no hash: taking each one's from its channel's " in err
    assert_built(tmp_path / "env2", {"python", "pip", "tinyconda"}, set(), ["tinyconda"])


@pytest.fixture
def own_fx(tmp_path: Path) -> Fixture:
    """A channel of this test's own, to change behind its repodata.json's back."""
    return build_fixture(tmp_path / "own")


def test_an_unhashed_line_whose_archive_differs_from_the_repodata_is_refused(
    own_fx: Fixture, tmp_path: Path
) -> None:
    from tests.envs.channel import Package, write_archive

    bare = conda_list_explicit(write_conda_lock(own_fx, tmp_path / "x.yml", pip=False),
                               tmp_path / "bare.txt")  # fmt: skip
    # the archive is replaced after the channel was indexed: same name, other content
    write_archive(
        Package(name="tinyconda", version="1.0", build="pyhd8ed1ab_0", subdir="noarch",
                noarch="python", depends=["python >=3.9"],
                files={"site-packages/tinyconda/__init__.py": b"import os  # swapped\n"}),
        own_fx.channel_dir / "noarch",
    )  # fmt: skip
    code, _, err = create(bare, tmp_path / "env")
    assert code == 4, err
    assert re.search(
        r"sha256 mismatch for tinyconda-1\.0-pyhd8ed1ab_0\.tar\.bz2: its channel's repodata\.json "
        r"\(for the unhashed line of bare\.txt\) says [0-9a-f]{64}, the archive at \S+ has",
        err,
    ), err
    assert not (tmp_path / "env").exists()


def test_an_unhashed_line_the_channels_repodata_does_not_list_is_refused_naming_it(
    own_fx: Fixture, tmp_path: Path
) -> None:
    from tests.envs.channel import Package, write_archive

    bare = conda_list_explicit(write_conda_lock(own_fx, tmp_path / "x.yml", pip=False),
                               tmp_path / "bare.txt")  # fmt: skip
    ghost = write_archive(
        Package(
            name="tinyghost",
            version="1.0",
            build="pyhd8ed1ab_0",
            subdir="noarch",
            noarch="python",
            files={"site-packages/tinyghost/__init__.py": b""},
        ),
        own_fx.channel_dir / "noarch",
    )  # fmt: skip  (in the channel's folder, not in its repodata.json)
    bare.write_text(bare.read_text() + ghost.resolve().as_uri() + "\n")
    code, _, err = create(bare, tmp_path / "env")
    assert code == 4, err
    assert f"line 7 of {bare} names tinyghost-1.0-pyhd8ed1ab_0.tar.bz2 without a hash" in err
    assert "repodata.json) does not list it, so it cannot be verified; refused" in err
    assert "conda list --explicit --md5" in err
    assert not (tmp_path / "env").exists()
    # the same line with its hash (conda list --explicit --md5) is verified by the hash instead
    md5 = hashlib.md5(ghost.read_bytes(), usedforsecurity=False).hexdigest()
    bare.write_text(
        bare.read_text().replace(ghost.resolve().as_uri(), f"{ghost.resolve().as_uri()}#{md5}")
    )
    code, _, err = create(bare, tmp_path / "env")
    assert code == 0, err
    assert "tinyghost" in conda_meta(tmp_path / "env")


def test_unhashed_lines_of_a_private_channel_use_its_credentials_and_print_none(
    own_fx: Fixture, tmp_path: Path
) -> None:
    """``${VAR}`` user-info in the URLs: the repodata.json lookup and the downloads are sent
    with the credentials from the environment; no message or cache file holds them."""
    from tests.support.http_server import AUTHORIZATION, PASSWORD, USER, basic_auth_server

    with basic_auth_server(own_fx.channel_dir, USER, PASSWORD, realm="channel") as (url, seen):
        base = url.replace("http://", "http://${CH_USER}:${CH_PASS}@")
        bare = conda_list_explicit(write_conda_lock(own_fx, tmp_path / "x.yml", pip=False),
                                   tmp_path / "bare.txt")  # fmt: skip
        bare.write_text(bare.read_text().replace(own_fx.channel_url, base))
        proc = run_cli(
            "create", "--from-lock", str(bare), "--prefix", str(tmp_path / "env"), "--no-smoke",
            "--no-jupyter", env={**CHECKOUT, "CH_USER": USER, "CH_PASS": PASSWORD,
                                 "XDG_CACHE_HOME": str(tmp_path / "cache")},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert conda_meta(tmp_path / "env") == {"python", "pip", "tinyconda"}
    assert PASSWORD not in proc.stdout + proc.stderr
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert not [p for p in cached if PASSWORD.encode() in p.read_bytes()]
    assert seen and all(got == AUTHORIZATION for got in seen[-3:])


def test_an_explicit_lock_for_another_platform_is_refused(conda_lock: Path, tmp_path: Path) -> None:
    explicit = write_explicit(conda_lock, tmp_path / "x.txt")
    explicit.write_text(
        explicit.read_text().replace("# platform: linux-64", "# platform: osx-arm64")
    )
    with pytest.raises(InputError, match="explicit lock for osx-arm64, not for this machine's"):
        read_locked_environment(explicit, PLATFORM)


# --- pixi.lock --------------------------------------------------------------------------------


def test_pixi_lock_two_environments_each_installs_its_own_packages(
    pixi_lock: Path, tmp_path: Path
) -> None:
    assert "version: 7" in pixi_lock.read_text()  # what py-rattler 0.28 writes
    code, out, err = create(pixi_lock, tmp_path / "default", "--json")
    assert code == 0, err
    data = json.loads(out)["data"]
    assert (data["packages"], data["pypi_packages"], data["lock_format"]) == (3, 2, "pixi")
    assert_built(tmp_path / "default", {"python", "pip", "tinyconda"}, {"tinyalpha", "tinybeta"},
                 ["tinyconda"])  # fmt: skip
    code, out, err = create(pixi_lock, tmp_path / "dev", "--environment", "dev")
    assert code == 0, err
    assert "from pixi.lock (pixi, environment dev)" in err
    assert_built(
        tmp_path / "dev",
        {"python", "tinyconda-dev"},
        {"tinyalpha", "tinybeta", "tinydev", "tinyother"},
        ["tinyconda_dev"],
    )


def test_pixi_lock_version_6_with_pypi_packages_installs_each_environment(
    fx: Fixture, tmp_path: Path
) -> None:
    """pixi's v6 format (pixi 0.40-0.5x; most pixi.lock files in repositories): conda entries
    without name/version/build, PyPI entries with their sha256 and requires_dist."""
    lock = write_pixi_lock_v6(fx, tmp_path / "pixi.lock")
    assert lock.read_text().startswith("version: 6\n")
    locked = read_locked_environment(lock, PLATFORM, environment="dev")
    assert (locked.format, len(locked.conda), len(locked.pypi)) == ("pixi", 2, 4)
    code, out, err = create(lock, tmp_path / "default", "--json")
    assert code == 0, err
    data = json.loads(out)["data"]
    assert (data["packages"], data["pypi_packages"], data["lock_format"]) == (3, 2, "pixi")
    assert_built(tmp_path / "default", {"python", "pip", "tinyconda"}, {"tinyalpha", "tinybeta"},
                 ["tinyconda", "pip"])  # fmt: skip
    code, _, err = create(lock, tmp_path / "dev", "--environment", "dev")
    assert code == 0, err
    assert_built(
        tmp_path / "dev",
        {"python", "tinyconda-dev"},
        {"tinyalpha", "tinybeta", "tinydev", "tinyother"},
        ["tinyconda_dev"],
    )
    # the PyPI hash is checked: a v6 entry whose sha256 is not the wheel's is refused
    text = lock.read_text()
    lock.write_text(text.replace(fx.wheel_sha256("tinybeta"), "0" * 64))
    code, _, err = create(lock, tmp_path / "tampered")
    assert code == 4, err
    assert "hash mismatch for the PyPI package tinybeta 0.5" in err
    assert not (tmp_path / "tampered").exists()


def test_a_pixi_pypi_entry_without_a_hash_is_refused_naming_it(fx: Fixture, tmp_path: Path) -> None:
    """py-rattler's own writer records no hash for PyPI packages: refused, never installed blind."""
    lock = write_pixi_lock(fx, tmp_path / "pixi.lock", hashes=False)
    code, _, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert re.search(r"Error: the PyPI package tiny\w+ \S+ in \S+ has no sha256", err), err
    assert not (tmp_path / "env").exists()


# --- with the lock half of issue 9 ----------------------------------------------------------------


def test_dlsetup_lock_of_a_pip_section_then_create_installs_every_package(
    fx: Fixture, tmp_path: Path
) -> None:
    """``dlsetup lock ./environment.yml`` (a ``pip:`` section and selectors) resolves the PyPI
    part with uv against a local index; ``create --from-lock`` of the lock it wrote, and
    ``create ./environment.yml`` directly, install the conda and PyPI parts into one
    environment, as its own Python sees it, with the console script pointing at it."""
    from tests.envs.lock_builders import WHEELS
    from tests.support.wheels import build_index

    index = build_index(tmp_path / "index", WHEELS)
    env = tmp_path / "environment.yml"
    env.write_text(
        f"name: e2e\nchannels:\n  - {fx.channel_url}\n  - nodefaults\ndependencies:\n"
        "  - python 3.11.*\n  - tinyconda\n  - tinyconda-dev  # [osx]\n  - pip\n  - pip:\n"
        f"    - --index-url {index}\n    - tinyalpha\n    - tinydev  # [linux]\n"
        "    - tinyother  # [win]\n"
    )
    locked = run_cli("lock", str(env), "--platform", PLATFORM, "--output", str(tmp_path / "out"),
                     env=CHECKOUT)  # fmt: skip
    assert locked.returncode == 0, locked.stderr
    lock = tmp_path / "out" / "e2e.conda-lock.yml"
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 0, err
    assert "Plan: 3 conda packages and 3 PyPI packages" in err
    direct = run_cli("create", str(env), "--prefix", str(tmp_path / "direct"), "--variant", "cpu",
                     "--no-smoke", "--no-jupyter", env=CHECKOUT)  # fmt: skip
    assert direct.returncode == 0, direct.stderr
    assert "Plan: 3 conda packages and 3 PyPI packages" in direct.stderr
    for prefix in (tmp_path / "env", tmp_path / "direct"):
        assert_built(
            prefix,
            {"python", "pip", "tinyconda"},  # not tinyconda-dev: # [osx]
            {"tinyalpha", "tinybeta", "tinydev"},  # not tinyother: # [win]
            ["tinyconda", "pip"],
        )
        script = prefix / "bin" / "tinydev"
        assert script.read_text().splitlines()[0] == f"#!{prefix}/bin/python"
        ran = subprocess.run([str(script)], capture_output=True, text=True, env={"PATH": "/bin"})
        assert ran.stdout == "tinydev ok\n", ran.stderr


def test_a_package_listed_twice_is_a_clear_usage_error(conda_lock: Path, tmp_path: Path) -> None:
    """Found by the lock fuzz test: conda-lock's model asserts with no message (was exit 70)."""
    data = yaml.safe_load(conda_lock.read_text())
    data["package"].append(data["package"][0])
    twice = tmp_path / "twice.conda-lock.yml"
    twice.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(InputError, match="a package is listed twice for one platform and category"):
        read_locked_environment(twice, PLATFORM)
