"""The venv lock's companion CUDA check reaches beyond ``lock``: what it found is recorded in the
lock's ``[tool.dlsetup]`` table (``cuda_checked``, ``cuda_warnings``; checked when read back),
``lock --json`` carries the matched pairs (``cuda_checked``) beside the warnings, and ``create``
(locking on the way, or ``--from-lock``) repeats each warning of the platform it builds, in
``lock``'s words (one ``Warning: ... Fix: ...`` line on stderr; ``cuda_warnings`` in ``create
--json``), taken from the lock, not from another look at the wheels.

The wheels are the PyPI-shaped stand-ins of :mod:`tests.envs.test_venv_companion_cuda` (torch
2.14.1, CUDA 13.0; torchvision 0.29.1 ``+cu130``; torchaudio 2.11.0 ``+cu130`` and 2.11.1
``+cu132``): torchvision matches, torchaudio 2.11.1 is warned of. The real uv resolves and
builds the venv; the CLI runs in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dlsetup.output import load_schema
from tests.envs.test_venv_companion_cuda import (
    CUDA_ARGS,
    TORCHAUDIO_ENTRY,
    TORCHAUDIO_FIX,
    TORCHAUDIO_WARNING,
    _lock,
    _pypi_wheels,
    _warnings,
)
from tests.support.proc import run_cli
from tests.support.wheels import build_index

LOCK = "pylock.pytorch-cu130.toml"
TORCHVISION_CHECKED = (
    "torchvision 0.29.1 is a CUDA 13.0 build, as torch is (its torchvision/version.py says "
    "0.29.1+cu130)"
)


def _index(tmp_path: Path) -> str:
    return build_index(tmp_path / "pypi", _pypi_wheels(("2.11.0+cu130", "2.11.1+cu132")))


def _create(env: dict[str, str], lock: Path, prefix: Path, *args: str) -> tuple[int, str, str]:
    proc = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-smoke",
        "--no-jupyter", *args, env=env,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def _tool(lock: Path) -> dict[str, Any]:
    from dlsetup.envs.venv.pylock import load_toml

    table: dict[str, Any] = load_toml(lock.read_text(encoding="utf-8"))["tool"]["dlsetup"]
    return table


def _rewrite(lock: Path, edit: Any) -> None:
    """``edit(tool table)`` in place, the lock written back as dlsetup writes it (header kept)."""
    from dlsetup.envs.venv.pylock import dumps_pylock, load_toml

    text = lock.read_text(encoding="utf-8")
    header = [line[2:] for line in text.split("\n\n", 1)[0].splitlines()]
    document = load_toml(text)
    edit(document["tool"]["dlsetup"])
    lock.write_text(dumps_pylock(document, header), encoding="utf-8")


def test_lock_records_the_check_in_its_table_and_json_carries_the_matched_pairs(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """torchvision matches torch's CUDA, torchaudio 2.11.1 does not (13.2 beside 13.0): the
    lock's ``[tool.dlsetup]`` records both (the warning with lock's words and the matching
    build), and ``--json`` carries ``cuda_checked`` beside ``cuda_warnings``."""
    out = tmp_path / "out"
    code, stdout, stderr = _lock(isolated_dirs, out, _index(tmp_path), "--json")
    assert code == 0, (stdout, stderr)
    doc = json.loads(stdout)
    jsonschema.validate(doc, load_schema("dlsetup.venv-lock"))
    build = doc["data"]["platforms"][0]["build"]
    assert build["cuda_checked"] == [
        {
            "name": "torchvision",
            "version": "0.29.1",
            "cuda": "13.0",
            "declared": "0.29.1+cu130",
            "torch": "2.14.1",
            "message": TORCHVISION_CHECKED,
        }
    ]
    assert build["cuda_warnings"] == [TORCHAUDIO_ENTRY]
    tool = _tool(out / LOCK)
    assert tool["cuda_checked"] == [
        {
            "platform": "linux-64",
            "name": "torchvision",
            "version": "0.29.1",
            "declared": "0.29.1+cu130",
            "torch": "2.14.1",
            "torch_variant": "cu130",
        }
    ]
    assert tool["cuda_warnings"] == [
        {
            "platform": "linux-64",
            "name": "torchaudio",
            "version": "2.11.1",
            "declared": "2.11.1+cu132",
            "torch": "2.14.1",
            "torch_variant": "cu130",
            "matching": {"version": "2.11.0", "declared": "2.11.0+cu130"},
            "message": TORCHAUDIO_WARNING,
            "fix": TORCHAUDIO_FIX,
        }
    ]
    text = (out / LOCK).read_text(encoding="utf-8")
    assert f"#   CUDA checked: {TORCHVISION_CHECKED}.\n" in text  # the header is unchanged


def test_create_from_lock_repeats_the_recorded_warning_from_the_lock_itself(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """``create --from-lock --json`` carries the lock's warning (``cuda_warnings``, in the
    schema); in text, one ``Warning:`` line on stderr, in the words the lock records: edited
    there, the edit is what create says (nothing is read from a wheel again)."""
    out = tmp_path / "out"
    code, stdout, stderr = _lock(isolated_dirs, out, _index(tmp_path))
    assert code == 0, (stdout, stderr)
    assert _warnings(stderr) == [f"Warning: {TORCHAUDIO_WARNING}. Fix: {TORCHAUDIO_FIX}"]
    lock = out / LOCK
    code, stdout, stderr = _create(isolated_dirs, lock, tmp_path / "env", "--json")
    assert code == 0, (stdout, stderr)
    doc = json.loads(stdout)
    jsonschema.validate(doc, load_schema("dlsetup.create"))
    assert doc["data"]["cuda_warnings"] == [{"platform": "linux-64", **TORCHAUDIO_ENTRY}]
    assert _warnings(stderr) == []  # --json carries it, as lock --json does

    def edit(tool: dict[str, Any]) -> None:
        tool["cuda_warnings"][0]["message"] = "linux-64: as the lock says it"
        tool["cuda_warnings"][0]["fix"] = "pin torchaudio==2.11.0"

    _rewrite(lock, edit)
    code, stdout, stderr = _create(isolated_dirs, lock, tmp_path / "env2")
    assert code == 0, (stdout, stderr)
    assert _warnings(stderr) == [
        "Warning: linux-64: as the lock says it. Fix: pin torchaudio==2.11.0"
    ]
    assert "Created " in stdout
    # said with the plan, before anything is installed: a build that fails still showed it
    lines = stderr.splitlines()
    warned_at = lines.index("Warning: linux-64: as the lock says it. Fix: pin torchaudio==2.11.0")
    assert warned_at < next(i for i, line in enumerate(lines) if line.startswith("Installing "))


def test_create_target_says_the_warning_its_lock_made(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """``create pytorch --backend venv`` locks on the way; the warning ``lock`` would print is
    printed by create too (stderr), and the lock kept in the venv records it."""
    index = _index(tmp_path)
    prefix = tmp_path / "env"
    proc = run_cli(
        "create", "pytorch", "--backend", "venv", "--python-version", "3.11", *CUDA_ARGS,
        "--torch-version", "2.14", "--torch-index-url", index, "--index-url", index,
        "--prefix", str(prefix), "--no-smoke", "--no-jupyter", env=isolated_dirs,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert _warnings(proc.stderr) == [f"Warning: {TORCHAUDIO_WARNING}. Fix: {TORCHAUDIO_FIX}"]
    assert "Traceback" not in proc.stderr
    kept = _tool(prefix / "pylock.dlsetup.toml")
    assert [w["name"] for w in kept["cuda_warnings"]] == ["torchaudio"]


def test_a_lock_without_the_record_still_creates_and_a_bad_entry_is_refused(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """A lock written before the check was recorded (no ``cuda_*`` keys) builds, with nothing
    to warn of; an entry that is not one dlsetup writes is refused before anything is built
    (exit 2), naming the file, the entry and the value."""
    out = tmp_path / "out"
    code, stdout, stderr = _lock(isolated_dirs, out, _index(tmp_path))
    assert code == 0, (stdout, stderr)
    lock = out / LOCK
    recorded = _tool(lock)

    def tamper(tool: dict[str, Any]) -> None:
        tool["cuda_warnings"][0]["declared"] = "2.11.1+cu130"  # "warns" of a matched pair

    _rewrite(lock, tamper)
    code, stdout, stderr = _create(isolated_dirs, lock, tmp_path / "bad")
    assert code == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    said = " ".join(stderr.split())
    assert (
        f"Error: {lock}: [tool.dlsetup] cuda_warnings[0] has declared = '2.11.1+cu130' beside "
        "torch_variant = 'cu130': it warns of torchaudio, and a warning is for another CUDA "
        "minor version of torch's major"
    ) in said
    assert "Fix: lock again with dlsetup lock --backend venv" in said
    assert not (tmp_path / "bad").exists()

    def strip(tool: dict[str, Any]) -> None:
        del tool["cuda_checked"], tool["cuda_warnings"]

    _rewrite(lock, strip)
    assert "cuda_warnings" not in lock.read_text(encoding="utf-8")
    code, stdout, stderr = _create(isolated_dirs, lock, tmp_path / "env", "--json")
    assert code == 0, (stdout, stderr)
    doc = json.loads(stdout)
    jsonschema.validate(doc, load_schema("dlsetup.create"))
    assert doc["data"]["cuda_warnings"] == []
    assert recorded["cuda_warnings"]  # the lock did record one before it was stripped


def test_lock_check_notes_the_recorded_warning_and_refuses_a_bad_entry(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """``lock --check`` replays the request without resolving, so it cannot see the pair
    again: the recorded warning is a note (the lock is current by its request); a bad entry is
    refused, exit 2."""
    out = tmp_path / "out"
    code, stdout, stderr = _lock(isolated_dirs, out, _index(tmp_path))
    assert code == 0, (stdout, stderr)
    lock = out / LOCK
    proc = run_cli("lock", "--check", str(lock), "--json", env=isolated_dirs)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.lock-check"))
    assert doc["data"]["current"] is True
    assert (
        f"CUDA warning recorded when locked: {TORCHAUDIO_WARNING}; fix: {TORCHAUDIO_FIX}"
    ) in doc["data"]["notes"]

    def tamper(tool: dict[str, Any]) -> None:
        tool["cuda_checked"] = "torchvision"

    _rewrite(lock, tamper)
    proc = run_cli("lock", "--check", str(lock), env=isolated_dirs)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert (
        f"{lock}: [tool.dlsetup] cuda_checked = 'torchvision' is not an array of tables"
        in " ".join(proc.stderr.split())
    )


BAD_ENTRIES = [
    ("cuda_warnings", 0, "declared", "2.11.1", "not version 2.11.1 with a CUDA build (+cuXYZ)"),
    ("cuda_warnings", 0, "declared", "2.11.1+cu126", "a warning is for another CUDA minor"),
    ("cuda_warnings", 0, "torch_variant", "cpu", "not a CUDA build (cuXYZ)"),
    ("cuda_warnings", 0, "platform", "win-64", "which the lock's platforms (linux-64) do not"),
    ("cuda_warnings", 0, "message", "\x1b[2Jcleared", "control characters"),
    ("cuda_warnings", 0, "fix", 3, "not a non-empty string"),
    ("cuda_warnings", 0, "matching", {"version": "2.11.0", "declared": "2.11.0+cu132"},
     "not a cu130 build"),
    ("cuda_warnings", 0, "version", "two", "not a version"),
    ("cuda_checked", 0, "declared", "0.29.1+cu132", "but the builds differ"),
    ("cuda_checked", 0, "name", "torch vision", "not a project name"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "index", "field", "value", "said"), BAD_ENTRIES)
def test_each_recorded_field_is_checked_when_read(
    tmp_path: Path, key: str, index: int, field: str, value: Any, said: str
) -> None:
    """In process, on a table as the lock writes it: each field of a bad value is refused,
    naming the entry and the value; the table as written reads back to what was found."""
    from dlsetup.envs.venv.cuda_record import recorded_cuda
    from dlsetup.envs.venv.pylock import PyLock
    from dlsetup.errors import InputError

    tool: dict[str, Any] = {
        "platforms": ["linux-64"],
        "cuda_checked": [
            {"platform": "linux-64", "name": "torchvision", "version": "0.29.1",
             "declared": "0.29.1+cu130", "torch": "2.14.1", "torch_variant": "cu130"}
        ],
        "cuda_warnings": [
            {"platform": "linux-64", "name": "torchaudio", "version": "2.11.1",
             "declared": "2.11.1+cu132", "torch": "2.14.1", "torch_variant": "cu130",
             "matching": {"version": "2.11.0", "declared": "2.11.0+cu130"},
             "message": TORCHAUDIO_WARNING, "fix": TORCHAUDIO_FIX}
        ],
    }  # fmt: skip
    path = tmp_path / "pylock.x.toml"
    good = recorded_cuda(PyLock(path, "", (), (), tool, {}))
    assert [m.message for m in good.checked] == [TORCHVISION_CHECKED]
    assert [{"platform": w.platform, **w.data()} for w in good.warnings_on("linux-64")] == [
        {"platform": "linux-64", **TORCHAUDIO_ENTRY}
    ]
    assert good.warnings_on("win-64") == ()  # create repeats only the platform it builds
    tool[key][index][field] = value
    with pytest.raises(InputError) as caught:
        recorded_cuda(PyLock(path, "", (), (), tool, {}))
    assert caught.value.message.startswith(f"{path}: [tool.dlsetup] {key}[{index}] ")
    assert said in caught.value.message
    if isinstance(value, str) and "\x1b" not in value:
        assert repr(value) in caught.value.message
