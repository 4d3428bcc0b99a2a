"""``dlsetup create`` never deletes what is not an environment, never builds one target twice at
once, never reads or writes outside the prefix because a package says so, and refuses with a
message instead of a traceback or a Rust panic (issue 7: nothing lost, nothing leaked).

Every scenario runs the real CLI in a subprocess against real archives built at test time
(:mod:`tests.envs.channel`), hostile ones included.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from dlsetup.output import load_schema
from tests.envs.channel import PLACEHOLDER, Package, build_channel
from tests.envs.lock_builders import lock_args, make_env, temporaries
from tests.support.pause_env import pause_env
from tests.support.proc import REPO, run_cli
from tests.support.shared import built_once
from tests.support.signals import SIGNALLED

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links, modes and signals")

PY = "python 3.12.*"
#: the checkout under test, also where a test runs create from another directory
CHECKOUT = {"PYTHONPATH": str(REPO)}


def _noarch(name: str, **kwargs: object) -> Package:
    return Package(name, "1.0", "h0_0", "noarch", noarch="generic", **kwargs)  # type: ignore[arg-type]


def _hostile_packages(secret: Path) -> list[Package]:
    ok_entry = {"path_type": "hardlink", "sha256": "0" * 64, "size_in_bytes": 1}
    return [
        # item 3: a "text file with a prefix placeholder" that is a link to an outside secret
        _noarch(
            "abslink",
            symlinks={"etc/victim_link": str(secret)},
            prefix_files=("etc/victim_link",),
        ),
        # ... or a relative link inside the package, listed the same way
        _noarch(
            "placeholderlink",
            files={"etc/real.txt": f"at {PLACEHOLDER}\n".encode()},
            symlinks={"etc/alias": "real.txt"},
            prefix_files=("etc/real.txt", "etc/alias"),
        ),
        # a link that climbs out of the prefix
        _noarch("escapelink", symlinks={"etc/up": "../../../../etc/passwd"}),
        # a file whose path goes through a link of the same package
        _noarch(
            "underlink",
            symlinks={"share": "lib"},
            files={"share/x.txt": b"x\n", "lib/y.txt": b"y\n"},
        ),
        # modes: world-writable and setuid/setgid members
        _noarch(
            "modes",
            files={"bin/suid-tool": b"#!/bin/sh\n", "etc/world.txt": b"w\n", "etc/sg": b"g\n"},
            modes={"bin/suid-tool": 0o4777, "etc/world.txt": 0o666, "etc/sg": 0o2775},
        ),
        # item 6: paths.json entries rattler panics on or would write outside the prefix
        _noarch(
            "abspath",
            files={"etc/a.txt": b"a"},
            paths_json=[{"_path": str(secret.parent / "pwned"), **ok_entry}],
        ),
        _noarch(
            "dotdot",
            files={"etc/a.txt": b"a"},
            paths_json=[{"_path": "etc/../../pwned", **ok_entry}],
        ),
        _noarch(
            "nulpath",
            files={"etc/a.txt": b"a"},
            paths_json=[{"_path": "etc/a.txt\u0000.so", **ok_entry}],
        ),
        _noarch(
            "duplicate",
            files={"etc/a.txt": b"a"},
            paths_json=[{"_path": "etc/a.txt", **ok_entry}, {"_path": "etc/a.txt", **ok_entry}],
        ),
        # item 11: a post-link script dlsetup does not run
        _noarch(
            "postlink",
            files={"bin/.postlink-post-link.sh": b'#!/bin/sh\necho ran > "$PREFIX/ran"\n'},
        ),
    ]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Locks of a channel with hostile packages: ``{package name: lock}``, and ``secret`` (built
    once for the whole test run)."""
    built = built_once(tmp_path_factory, "hostile", _hostile_locks)[1]
    return {name: Path(path) for name, path in built.items()}


def _hostile_locks(root: Path) -> dict[str, str]:
    secret = root / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN\n")
    secret.chmod(0o600)
    packages = _hostile_packages(secret)
    url = build_channel(root / "channel", packages)
    locks: dict[str, str] = {"secret": str(secret)}
    for pkg in packages:
        env_file = root / f"{pkg.name}.yml"
        env_file.write_text(
            f"name: {pkg.name}\nchannels:\n  - conda-forge\nplatforms:\n  - linux-64\n"
            f"dependencies:\n  - {PY}\n  - {pkg.name}\n"
        )
        out = run_cli(*lock_args(env_file, url, root / "locks"))
        assert out.returncode == 0, out.stderr
        locks[pkg.name] = str(root / "locks" / f"{pkg.name}.conda-lock.yml")
    return locks


@pytest.fixture
def cpu_lock(channel_url: str, tmp_path: Path) -> Path:
    """A linux-64 PyTorch CPU lock against the test channel."""
    out = run_cli(*lock_args("pytorch", channel_url, tmp_path / "locks"))
    assert out.returncode == 0, out.stderr
    return tmp_path / "locks" / "pytorch-cpu.conda-lock.yml"


def create(lock: Path, prefix: str | Path, *extra: str, cwd: Path | None = None) -> tuple[int, str]:
    proc = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-smoke",
        "--no-jupyter", *extra, cwd=cwd, env=CHECKOUT,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def error_of(output: str) -> str:
    assert "Traceback" not in output, output
    assert "panicked" not in output, output
    assert "Error: " in output, output
    return output[output.index("Error: ") :]


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under ``root``: mode and content (a link's target), without following links."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        data = (
            os.readlink(path).encode()
            if path.is_symlink()
            else path.read_bytes()
            if path.is_file()
            else b""
        )
        found[str(path.relative_to(root))] = (info.st_mode, data)
    return found


# --- item 1 and 9: what --prefix may name --------------------------------------------------------


@pytest.mark.parametrize("empty", ["", " ", "\t"])
def test_an_empty_prefix_is_a_usage_error_even_with_force_and_the_current_directory_is_kept(
    empty: str, cpu_lock: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "src" / "thesis.tex").write_text("three years\n")
    (work / "notes.txt").write_text("keep\n")
    before = snapshot(work)
    code, out = create(cpu_lock, empty, "--force", cwd=work)
    assert code == 2, out
    what = f"{empty!r} is blank" if empty else "is empty (or '.')"
    assert error_of(out).startswith(
        f"Error: --prefix {what}: it must name the environment's own directory\n"
    )
    assert "Fix: name the environment's own directory, for example --prefix ./env\n" in out
    assert snapshot(work) == before
    assert temporaries(tmp_path) == []


def test_force_never_replaces_a_directory_that_is_not_an_environment(
    cpu_lock: Path, tmp_path: Path
) -> None:
    projects = tmp_path / "projects"
    (projects / "app").mkdir(parents=True)
    (projects / "app" / "main.py").write_text("print('mine')\n")
    before = snapshot(projects)
    for extra in ((), ("--force",)):
        code, out = create(cpu_lock, projects, *extra)
        assert code == 2, out
        assert error_of(out) == (
            f"Error: {projects} is not empty and is not an environment (it has no conda-meta/ "
            "or pyvenv.cfg); dlsetup never replaces or deletes it, even with --force\n"
            f"Fix: choose a new or empty directory, for example --prefix {projects / 'env'}\n"
        )
        assert snapshot(projects) == before
    assert temporaries(tmp_path) == []


def test_force_replaces_an_environment_and_a_venv(cpu_lock: Path, tmp_path: Path) -> None:
    conda_env = tmp_path / "conda-env"
    make_env(conda_env)
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for prefix in (conda_env, venv):
        code, out = create(cpu_lock, prefix)
        assert code == 2, out
        assert error_of(out).startswith(f"Error: environment {prefix} already exists;")
        code, out = create(cpu_lock, prefix, "--force")
        assert code == 0, out
        assert f"Replaced {prefix} (8 packages" in out
        assert (prefix / "conda-meta" / "pytorch-2.13.0-cpu_mkl_py312h0_100.json").is_file()
        assert not (prefix / "bin" / "tool").exists()
        assert not (prefix / "pyvenv.cfg").exists()
    assert temporaries(tmp_path) == []


def test_a_prefix_that_is_a_file_or_lies_under_a_file_is_refused_naming_the_file(
    cpu_lock: Path, tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("data\n")
    code, out = create(cpu_lock, afile, "--force")
    assert code == 2, out
    assert error_of(out).startswith(f"Error: {afile} is a file, not a directory;")
    code, out = create(cpu_lock, afile / "sub" / "env")
    assert code == 2, out
    assert error_of(out).startswith(
        f"Error: cannot create {afile / 'sub' / 'env'}: {afile} is a file, not a directory\n"
    )
    assert afile.read_text() == "data\n"
    # nothing beside the file but the lock and the user cache (XDG_CACHE_HOME, knowledge base)
    assert sorted(p.name for p in tmp_path.iterdir()) in (
        ["afile", "locks"],
        ["afile", "cache", "locks"],
    )
    assert not list((tmp_path / "cache").glob("**/*env*"))


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make ``directory`` unwritable, for root too (``chattr +i``) where it must be."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"root, and chattr +i does not work here: {made.stderr!r}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=False)


def test_a_prefix_in_a_read_only_directory_is_a_clear_error_not_a_traceback(
    cpu_lock: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "readonly"
    locked.mkdir()
    with read_only(locked):
        code, out = create(cpu_lock, locked / "envs" / "pt")
    assert code == 2, out
    assert error_of(out).startswith(f"Error: cannot create {locked / 'envs'} (for the environment")
    assert "Fix: choose a --prefix in a directory you can write to\n" in out
    assert list(locked.iterdir()) == []


def test_a_prefix_whose_parents_are_created_leaves_none_behind_when_refused(
    cpu_lock: Path, tmp_path: Path
) -> None:
    text = cpu_lock.read_text()
    bad = tmp_path / "bad.conda-lock.yml"
    bad.write_text(re.sub(r"sha256: [0-9a-f]{64}", "sha256: " + "0" * 64, text, count=1))
    code, out = create(bad, tmp_path / "new" / "deep" / "env")
    assert code == 4, out
    assert not (tmp_path / "new").exists()


# --- item 3: nothing outside the prefix is read or followed; modes are masked ----------------------


def test_a_link_to_an_outside_file_listed_with_a_prefix_placeholder_is_refused_and_nothing_leaks(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "victim"
    code, out = create(hostile["abslink"], prefix)
    assert code == 4, out
    assert error_of(out).startswith(
        "Error: package abslink-1.0-h0_0.tar.bz2 is refused: the symbolic link etc/victim_link "
        f"points to the absolute path {hostile['secret']}\n"
    )
    assert "TOP-SECRET-TOKEN" not in out
    assert not prefix.exists()
    assert temporaries(prefix.parent) == []
    cache = Path(os.environ["XDG_CACHE_HOME"])
    leaked = [p for p in cache.rglob("*") if p.is_file() and b"TOP-SECRET" in p.read_bytes()]
    assert leaked == []


@pytest.mark.parametrize(
    ("package", "message"),
    [
        (
            "placeholderlink",
            "info/paths.json lists the symbolic link etc/alias as a file with a prefix "
            "placeholder (installing it would copy the link's target into the environment)",
        ),
        (
            "escapelink",
            "the symbolic link etc/up points to ../../../../etc/passwd, outside the environment",
        ),
        ("underlink", "the path share/x.txt lies under the symbolic link share"),
    ],
)
def test_unsafe_links_are_refused_naming_package_and_member(
    package: str, message: str, hostile: dict[str, Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / package
    code, out = create(hostile[package], prefix)
    assert code == 4, out
    assert error_of(out).startswith(
        f"Error: package {package}-1.0-h0_0.tar.bz2 is refused: {message}\n"
    )
    assert "Fix: a package must only install files inside the environment" in out
    assert not prefix.exists()
    assert temporaries(prefix.parent) == []


def test_modes_from_archives_are_masked_no_world_writable_no_setuid(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "modes"
    code, out = create(hostile["modes"], prefix)
    assert code == 0, out
    unsafe = stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID
    for path in [prefix, *prefix.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        assert not mode & stat.S_IWOTH, f"{path} is world-writable: {oct(mode)}"
        if not stat.S_ISDIR(mode):
            assert not mode & unsafe, f"{path}: {oct(mode)}"
    assert stat.S_IMODE((prefix / "bin" / "suid-tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((prefix / "etc" / "world.txt").stat().st_mode) == 0o644


# --- item 6: paths rattler panics on are refused first ---------------------------------------------


@pytest.mark.parametrize(
    ("package", "why"),
    [
        ("abspath", "lists the path '{secret_dir}/pwned', which is absolute"),
        ("dotdot", "lists the path 'etc/../../pwned', which has a '..' component"),
        ("nulpath", "lists the path 'etc/a.txt\\x00.so', which contains a NUL character"),
        ("duplicate", "lists the path 'etc/a.txt' twice"),
    ],
)
def test_unsafe_paths_json_entries_are_refused_before_rattler_sees_them(
    package: str, why: str, hostile: dict[str, Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / package
    code, out = create(hostile[package], prefix)
    assert code == 4, out  # not 134: no Rust panic, no abort
    why = why.format(secret_dir=hostile["secret"].parent)
    assert error_of(out).startswith(
        f"Error: package {package}-1.0-h0_0.tar.bz2 is refused: info/paths.json {why}\n"
    )
    assert not prefix.exists()
    assert temporaries(prefix.parent) == []
    assert not (hostile["secret"].parent / "pwned").exists()


# --- item 11: what a lock may point at; md5; skipped scripts -----------------------------------------


def test_a_file_channel_at_the_filesystem_root_cannot_fetch_an_arbitrary_file(
    cpu_lock: Path, channel_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN\n")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    text = cpu_lock.read_text().replace(f"url: {channel_url}\n", "url: file:///\n")
    text = re.sub(
        r"url: \S+/numpy-[^\n]+\n  hash:\n    md5: \w+\n    sha256: \w+",
        f"url: {secret.as_uri()}\n  hash:\n    sha256: {digest}",
        text,
    )
    lock = tmp_path / "root.conda-lock.yml"
    lock.write_text(text)
    code, out = create(lock, tmp_path / "envs" / "r")
    assert code == 4, out
    assert re.match(
        rf"Error: the channel file:/+ in {re.escape(str(lock))} is the filesystem root; refused\n",
        error_of(out),
    )
    cache = Path(os.environ["XDG_CACHE_HOME"])
    assert not [p for p in cache.rglob("*") if p.is_file() and b"TOP-SECRET" in p.read_bytes()]


def test_a_lock_url_that_is_not_the_records_archive_in_its_subdir_is_refused(
    cpu_lock: Path, channel_url: str, channel_dir: Path, tmp_path: Path
) -> None:
    repodata = channel_dir / "linux-64" / "repodata.json"
    digest = hashlib.sha256(repodata.read_bytes()).hexdigest()
    text = re.sub(
        r"url: \S+/numpy-[^\n]+\n  hash:\n    md5: \w+\n    sha256: \w+",
        f"url: {channel_url}/linux-64/repodata.json\n  hash:\n    sha256: {digest}",
        cpu_lock.read_text(),
    )
    lock = tmp_path / "odd.conda-lock.yml"
    lock.write_text(text)
    code, out = create(lock, tmp_path / "envs" / "o")
    assert code == 4, out
    assert "which is not a conda archive named" in error_of(out)
    assert not (tmp_path / "envs").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "file:///etc/passwd"), ("build", "h0/../../x")],
)
def test_a_record_no_conda_package_could_have_is_refused_before_any_work(
    cpu_lock: Path, tmp_path: Path, field: str, value: str
) -> None:
    """Found by the fuzz test: such a name failed only halfway through rattler's install."""
    text = cpu_lock.read_text()
    match = re.search(rf"^(?:- |  ){field}: (\S+)$", text, re.M)
    assert match
    lock = tmp_path / "odd.conda-lock.yml"
    lock.write_text(text[: match.start(1)] + f"'{value}'" + text[match.end(1) :])
    code, out = create(lock, tmp_path / "envs" / "n")
    assert code == 4, out
    assert f"has the {field} {value!r}, which no conda package has; refused" in error_of(out)
    assert not (tmp_path / "envs").exists()


def test_an_md5_mismatch_is_refused(cpu_lock: Path, tmp_path: Path) -> None:
    text = cpu_lock.read_text()
    match = re.search(r"url: \S+/(numpy-[^\n/]+)\n  hash:\n    md5: (\w+)", text)
    assert match
    lock = tmp_path / "md5.conda-lock.yml"
    lock.write_text(text[: match.start(2)] + "0" * 32 + text[match.end(2) :])
    code, out = create(lock, tmp_path / "envs" / "m")
    assert code == 4, out
    assert error_of(out).startswith(
        f"Error: md5 mismatch for {match.group(1)}: the lock md5.conda-lock.yml says {'0' * 32}, "
        "the archive at "
    )
    assert f" has {match.group(2)}; refused\n" in out
    assert not (tmp_path / "envs").exists()


def test_skipped_post_link_scripts_are_named_once_in_text_and_json(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "postlink"
    code, out = create(hostile["postlink"], prefix)
    assert code == 0, out
    line = "Not run (dlsetup runs no package scripts): postlink: bin/.postlink-post-link.sh\n"
    assert out.count(line) == 1, out
    assert not (prefix / "ran").exists()
    proc = run_cli(
        "create", "--from-lock", str(hostile["postlink"]), "--prefix", str(prefix), "--force",
        "--no-smoke", "--no-jupyter", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.create"))
    assert doc["data"]["skipped_scripts"] == ["postlink: bin/.postlink-post-link.sh"]


# --- item 5: one create per target -------------------------------------------------------------------


def _start_paused(
    lock: Path, prefix: Path, marker: Path, *extra: str, seconds: float = 120
) -> subprocess.Popen[str]:
    env = {**os.environ, **pause_env(marker, seconds)}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "dlsetup", "create", "--from-lock", str(lock), "--prefix",
            str(prefix), "--no-smoke", "--no-jupyter", *extra,
        ],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **SIGNALLED,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        assert time.monotonic() < deadline, "create never reached the pause point"
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_a_second_create_of_the_same_target_is_refused_while_the_first_builds(
    cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "shared"
    first = _start_paused(cpu_lock, prefix, tmp_path / "paused", seconds=3)
    try:
        for extra in ((), ("--force",)):
            code, out = create(cpu_lock, prefix, *extra)
            assert code == 4, out
            assert error_of(out) == (
                f"Error: another dlsetup create is building {prefix} (process {first.pid}); "
                "nothing was changed\n"
                "Fix: wait for it to finish, or build into another --name/--prefix\n"
            )
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert (prefix / "conda-meta" / "pytorch-2.13.0-cpu_mkl_py312h0_100.json").is_file()
    # the lock file goes with the build; the next create sees an existing env, not a busy target
    assert temporaries(prefix.parent) == []
    code, out = create(cpu_lock, prefix)
    assert code == 2, out
    assert "already exists" in out


@pytest.mark.slow
def test_a_lock_left_by_a_killed_create_is_not_mistaken_for_a_running_one(
    cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "killed"
    first = _start_paused(cpu_lock, prefix, tmp_path / "paused")
    first.kill()
    first.communicate(timeout=30)
    assert ".dlsetup-lock-killed" in temporaries(prefix.parent)
    code, out = create(cpu_lock, prefix)
    assert code == 0, out
    assert temporaries(prefix.parent) == []


# --- SIGTERM ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_mid_install_exits_143_keeps_the_old_env_and_leaves_nothing(
    cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "termed"
    make_env(prefix)
    before = snapshot(prefix)
    proc = _start_paused(cpu_lock, prefix, tmp_path / "paused", "--force")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stderr.endswith("Terminated.\n")
    assert snapshot(prefix) == before
    assert temporaries(prefix.parent) == []
