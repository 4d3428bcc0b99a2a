"""``dlsetup lock`` never writes outside ``--output``, never leaves a half-replaced set of files and
never ends in a traceback: environment names, oversized / binary / non-UTF-8 environment files, bad
channels, an ``--output`` under a file or on a read-only file system, a full disk (a real small
tmpfs), a failed rename, ``--cuda`` outside the known range, and ``--python-version``.

Every test runs the real CLI against the local conda channel and real files."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dlsetup.cli import cli
from dlsetup.envs.files.spec import MAX_ENVIRONMENT_FILE_BYTES, validate_cuda
from dlsetup.errors import InputError
from tests.envs.lock_builders import lock_args
from tests.support.proc import run_cli

OUTPUTS = (
    "pytorch-cpu.environment.yml",
    "pytorch-cpu.virtual-packages.yml",
    "pytorch-cpu.conda-lock.yml",
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_refused(result: Result, code: int, *fragments: str) -> None:
    """Exit ``code`` with an ``Error:`` line holding every fragment, and no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Error: " in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def lock_cpu(channel_url: str, output: Path, *extra: str, target: str = "pytorch") -> Result:
    return invoke(*lock_args(target, channel_url, output, *extra))


def env_file(path: Path, name_line: str) -> Path:
    path.write_text(
        f"{name_line}\nchannels:\n  - conda-forge\ndependencies:\n  - python 3.12.*\n  - numpy\n",
        encoding="utf-8",
    )
    return path


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- item 2: an environment file's name: is a file name, checked on load ---------------------


@pytest.mark.parametrize(
    "name_line",
    [
        "name: ../escaped",
        'name: "a\\nb"',
        "name: my env",
        "name: a:b",
        "name: '#x'",
        "name: base",
        "name: -dash",
    ],
)
def test_an_invalid_name_in_the_environment_file_writes_nothing(
    name_line: str, channel_url: str, tmp_path: Path
) -> None:
    source = env_file(tmp_path / "mine.yml", name_line)
    out = tmp_path / "sub" / "out"
    result = lock_cpu(channel_url, out, target=str(source))
    assert_refused(
        result, 2, f"malformed environment file {source}, line 1: invalid environment name"
    )
    assert "Fix: change the line to something like 'name: my-env'" in result.stderr
    assert tree(tmp_path) == {"mine.yml"}


def test_an_absolute_name_writes_nothing_outside_output(channel_url: str, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "abs"
    source = env_file(tmp_path / "mine.yml", f"name: {target}")
    (tmp_path / "elsewhere").mkdir()
    result = lock_cpu(channel_url, tmp_path / "out", target=str(source))
    assert_refused(result, 2, f"invalid environment name {str(target)!r}")
    assert tree(tmp_path / "elsewhere") == set()
    assert not (tmp_path / "out").exists()


def test_a_file_without_name_whose_stem_is_no_name_is_refused(
    channel_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "my env.yml"
    source.write_text("dependencies:\n  - numpy\n", encoding="utf-8")
    result = lock_cpu(channel_url, tmp_path / "out", target=str(source))
    assert_refused(result, 2, "has no name:, and its file name 'my env' is not a valid")
    assert "Fix: add a line such as 'name: my-env' to the file" in result.stderr


def test_create_from_a_file_with_a_bad_name_leaves_an_existing_lock_alone(
    channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    # create locks into a temporary directory first; '../escaped' pointed beside it, into $TMPDIR
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    old = tmpdir / "escaped.conda-lock.yml"
    old.write_text("# a lock someone keeps here\n", encoding="utf-8")
    source = env_file(tmp_path / "mine.yml", "name: ../escaped")
    proc = run_cli(
        "create",
        str(source),
        "--variant",
        "cpu",
        "--channel",
        channel_url,
        "--prefix",
        str(tmp_path / "env"),
        "--no-jupyter",
        "--no-smoke",
        env={**isolated_dirs, "TMPDIR": str(tmpdir)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "invalid environment name '../escaped'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert old.read_text(encoding="utf-8") == "# a lock someone keeps here\n"
    assert sorted(p.name for p in tmpdir.iterdir()) == ["escaped.conda-lock.yml"]
    assert not (tmp_path / "env").exists()


def test_a_dependency_with_a_line_break_is_refused(channel_url: str, tmp_path: Path) -> None:
    source = tmp_path / "mine.yml"
    source.write_text('name: mine\ndependencies:\n  - "numpy\\n  - evil"\n', encoding="utf-8")
    result = lock_cpu(channel_url, tmp_path / "out", target=str(source))
    assert_refused(result, 2, f"{source}, line 3", "contains a control character")


# --- item 9: input files that are not environment files --------------------------------------


def test_an_environment_file_over_1_mib_is_refused_unread(channel_url: str, tmp_path: Path) -> None:
    source = tmp_path / "huge.yml"
    line = "  - numpy\n"
    body = "name: huge\ndependencies:\n" + line * (MAX_ENVIRONMENT_FILE_BYTES // len(line) + 1)
    source.write_text(body, encoding="utf-8")
    assert source.stat().st_size > MAX_ENVIRONMENT_FILE_BYTES
    result = lock_cpu(channel_url, tmp_path / "out", target=str(source))
    assert_refused(result, 2, f"environment file {source} is {source.stat().st_size} bytes, more")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"name: x\x00\x01\x02\ndependencies: [numpy]\n",
            "is a binary file (it contains NUL bytes)",
        ),
        (
            b"name: caf\xe9\ndependencies: [numpy]\n",
            "is not UTF-8 text: byte 0xe9 at offset 9 (line 1)",
        ),
        (b"name: x\ndependencies: [numpy]\n\x07\n", "malformed environment file"),
        (b"[" * 100_000, "is nested more than 100 levels deep"),
    ],
    ids=["binary", "latin-1", "control-character", "nested"],
)
def test_binary_and_non_utf8_environment_files_are_usage_errors(
    content: bytes, message: str, channel_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "bad.yml"
    source.write_bytes(content)
    result = lock_cpu(channel_url, tmp_path / "out", target=str(source))
    assert_refused(result, 2, str(source), message)


@pytest.mark.parametrize("channel", ["::::", "https://exa mple.org/ch"])
def test_an_unparseable_channel_is_a_usage_error(
    channel: str, channel_url: str, tmp_path: Path
) -> None:
    result = invoke(*lock_args("pytorch", channel, tmp_path / "out"))
    assert_refused(result, 2, f"invalid channel {channel!r}")
    assert "Fix: give a channel name such as conda-forge" in result.stderr
    assert not (tmp_path / "out").exists()


# --- item 9: where the outputs go ---------------------------------------------------------------


def test_output_under_a_file_is_a_usage_error(channel_url: str, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    result = lock_cpu(channel_url, tmp_path / "afile" / "out")
    assert_refused(result, 2, f"cannot create the output directory {tmp_path / 'afile' / 'out'}")
    assert "Fix: choose another --output directory" in result.stderr


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where`` (root only), unmounted afterwards."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_read_only_output_is_a_usage_error(channel_url: str, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "64k", "ro") as ro:
        result = lock_cpu(channel_url, ro / "out")
        assert_refused(
            result, 2, f"cannot write into {ro / 'out'}: it is on a read-only file system"
        )
        result = lock_cpu(channel_url, ro)
        assert_refused(result, 2, f"cannot write into {ro}: it is on a read-only file system")


def write_old_set(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out / name).write_text(f"# old {name}\n", encoding="utf-8")


def assert_old_set(out: Path, *extra: str) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, *extra])
    for name in OUTPUTS:
        assert (out / name).read_text(encoding="utf-8") == f"# old {name}\n", name


def test_full_disk_leaves_the_old_three_files_unchanged(channel_url: str, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "256k") as out:
        write_old_set(out)
        # leave two pages: room for the new environment and virtual-packages files, not the lock
        free = os.statvfs(out).f_bavail * os.statvfs(out).f_frsize
        (out / "filler").write_bytes(b"\0" * (free - 2 * 4096))
        assert os.statvfs(out).f_bavail * os.statvfs(out).f_frsize == 2 * 4096
        result = lock_cpu(channel_url, out, "--force")
        assert_refused(
            result,
            4,
            f"cannot write the lock files into {out}: no space left on the device; existing "
            "files there were left as they were",
        )
        assert "Fix: free some space (or fix the device) and retry" in result.stderr
        assert_old_set(out, "filler")
        # with room again, the same command replaces all three
        (out / "filler").unlink()
        result = lock_cpu(channel_url, out, "--force")
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
        for name in OUTPUTS:
            assert not (out / name).read_text(encoding="utf-8").startswith("# old ")


def test_a_failed_rename_puts_the_old_files_back(
    channel_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_old_set(out)
    real_replace = os.replace

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if str(dst).endswith(".conda-lock.yml") and ".dlsetup-lock-" in str(src):
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    result = lock_cpu(channel_url, out, "--force")
    assert_refused(result, 4, f"cannot write the lock files into {out}: Input/output error")
    # the environment and virtual-packages files had been replaced already: they are back
    assert_old_set(out)


# --- item 11: --cuda within what dlsetup knows --------------------------------------------------


@pytest.mark.parametrize("cuda", ["99.9", "10.2", "14.0", "12.10"])
def test_cuda_outside_the_known_range_is_refused(
    cuda: str, channel_url: str, tmp_path: Path
) -> None:
    result = invoke(
        *lock_args("pytorch", channel_url, tmp_path / "out", "--cuda", cuda, variant="cuda")
    )
    assert_refused(
        result,
        2,
        f"unknown CUDA version --cuda {cuda}: dlsetup knows CUDA 11.0 to 13.1 (and later 13.x "
        "releases)",
    )
    assert (
        "e.g. --cuda 12.4; a CUDA release newer than these needs a newer dlsetup" in result.stderr
    )
    assert not (tmp_path / "out").exists()


def test_known_cuda_versions_and_newer_minors_of_the_newest_major_pass() -> None:
    for cuda in ("11.0", "11.8", "12.4", "12.9", "13.0", "13.1", "13.5"):
        assert validate_cuda(cuda) == cuda
    with pytest.raises(InputError, match=r"expected MAJOR\.MINOR"):
        validate_cuda("twelve")


# --- item 13: --python-version on lock and create; --python means an interpreter elsewhere ------


@pytest.mark.parametrize("command", ["lock", "create"])
def test_python_on_lock_and_create_points_to_python_version(command: str, tmp_path: Path) -> None:
    result = invoke(command, "pytorch", "--python", "3.11", "--variant", "cpu")
    assert result.exit_code == 2, result.output
    assert (
        "Error: --python is the interpreter path in doctor/smoke; for lock and create use "
        "--python-version 3.11"
    ) in result.stderr
    assert "Traceback" not in result.output


def test_python_version_pins_the_environment(channel_url: str, tmp_path: Path) -> None:
    result = lock_cpu(channel_url, tmp_path, "--python-version", "3.11")
    assert result.exit_code == 0, result.output
    rendered = (tmp_path / "pytorch-cpu.environment.yml").read_text(encoding="utf-8")
    assert "  - python 3.11.*\n" in rendered
    bad = lock_cpu(channel_url, tmp_path / "o", "--python-version", "3")
    assert_refused(bad, 2, "invalid --python-version '3': expected MAJOR.MINOR such as 3.12")


def test_help_of_lock_and_create_lists_python_version_not_python() -> None:
    for command in ("lock", "create"):
        text = invoke(command, "--help").output
        assert "--python-version X.Y" in text
        assert "--python " not in text


@pytest.mark.skipif(sys.platform == "win32", reason="tmpfs and mount are Linux")
def test_tmpfs_helper_unmounts(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "m", "64k") as m:
        assert os.path.ismount(m)
    assert not os.path.ismount(tmp_path / "m")
