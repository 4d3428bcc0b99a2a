"""dlsetup.reading, the one bounded reader: what it refuses, how it names it, and that every
reader of a user's file goes through it (issue 20, "Unbounded input").

Unit tests of each bound; the defects of the issue through the real CLI (a FIFO, ``/dev/zero``, a
100k-deep document, a 5,001-digit integer: exit 2 with a named error, promptly, no traceback); and
one property-based test per kind of file dlsetup reads, calling in-process the function the CLI
calls: any input ends as a result or an exit-2/4 error, within a time and memory bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlsetup import reading
from dlsetup.cli import cli
from dlsetup.errors import DlsetupError, InputError
from dlsetup.reading import ReadError
from tests.fleet.documents import node_document
from tests.support.proc import REPO, run_cli

DEEP = 100_000
HUGE_INT = "1" * 5001


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    yield path


def _refused(call: Callable[[], object], reason: str, *fragments: str) -> ReadError:
    with pytest.raises(ReadError) as info:
        call()
    err = info.value
    assert err.reason == reason, err.message
    assert isinstance(err, InputError) and int(err.exit_code) == 2
    assert err.fix
    for fragment in fragments:
        assert fragment in err.message, err.message
    return err


# --- not a regular file: refused unopened, promptly -------------------------------------------


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_being_opened(fifo: Path) -> None:
    start = time.monotonic()
    _refused(
        lambda: reading.read_bytes(fifo, what="fleet document", max_bytes=100),
        "not_regular",
        f"fleet document {fifo} is a FIFO",
    )
    assert time.monotonic() - start < 2


@pytest.mark.timeout(10)
def test_a_symlink_to_a_fifo_is_refused(fifo: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.toml"
    link.symlink_to(fifo)
    _refused(
        lambda: reading.load_toml(link, what="pylock.toml", max_bytes=100),
        "not_regular",
        f"pylock.toml {link} is a FIFO",
    )


@pytest.mark.timeout(10)
def test_dev_zero_and_a_directory_are_refused(tmp_path: Path) -> None:
    _refused(
        lambda: reading.read_text("/dev/zero", what="baseline", max_bytes=10**9),
        "not_regular",
        "baseline /dev/zero is a character device",
    )
    _refused(
        lambda: reading.load_yaml(tmp_path, what="lock", max_bytes=100),
        "not_regular",
        f"lock {tmp_path} is a directory",
    )
    _refused(
        lambda: reading.read_bytes(tmp_path / "nope", what="lock", max_bytes=100),
        "missing",
        "does not exist",
    )


def test_a_file_over_the_cap_is_refused_with_its_size_and_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 3000)
    _refused(
        lambda: reading.load_json(path, what="fleet document", max_bytes=2048),
        "too_large",
        f"fleet document {path} is 2.93 KiB, more than the 2 KiB a fleet document may have",
    )
    path.write_bytes(b" " * 2049)
    _refused(
        lambda: reading.read_bytes(path, what="lock", max_bytes=2048),
        "too_large",
        "is 2049 bytes, more than the 2048 bytes a lock may have",
    )


def test_a_growing_file_stops_at_the_cap() -> None:
    # /proc files say size 0 and then give more: the read itself stops at the cap
    _refused(
        lambda: reading.read_bytes("/proc/self/status", what="status", max_bytes=16),
        "too_large",
        "holds more than 16 bytes",
    )


def test_invalid_utf8_names_the_byte_its_offset_and_line(tmp_path: Path) -> None:
    path = tmp_path / "doc.yml"
    path.write_bytes(b"name: x\ndeps: caf\xe9\n")
    _refused(
        lambda: reading.load_yaml(path, what="environment file", max_bytes=100),
        "not_utf8",
        f"environment file {path} is not UTF-8 text: byte 0xe9 at offset 17 (line 2)",
    )
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())  # a BOM is dropped
    assert reading.load_json(path, what="x", max_bytes=100) == {"a": 1}


# --- depth, numbers, aliases --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("syntax", "text"),
    [
        ("json", "[" * DEEP + "]" * DEEP),
        ("json", '{"a": ' * DEEP + "1" + "}" * DEEP),
        ("toml", "a = " + "[" * DEEP + "]" * DEEP),
        ("toml", "a = " + "{b = " * DEEP + "1" + "}" * DEEP),
        ("yaml", "[" * DEEP + "]" * DEEP),
        ("yaml", "- " * DEEP + "x"),
        ("yaml", "".join(" " * i + "a:\n" for i in range(2000))),
    ],
    ids=["json-array", "json-object", "toml-array", "toml-table", "yaml-flow", "yaml-dash",
         "yaml-indent"],
)  # fmt: skip
@pytest.mark.timeout(20)
def test_deep_nesting_is_refused_never_a_recursion_error(
    tmp_path: Path, syntax: str, text: str
) -> None:
    path = tmp_path / f"deep.{syntax}"
    path.write_text(text, encoding="utf-8")
    load = {"json": reading.load_json, "toml": reading.load_toml, "yaml": reading.load_yaml}
    _refused(
        lambda: load[syntax](path, what="document", max_bytes=10**7),
        "too_deep",
        f"document {path} is nested more than 100 levels deep",
    )


def test_nesting_at_the_cap_and_brackets_in_strings_are_fine(tmp_path: Path) -> None:
    assert reading.parse_json("[" * 100 + "]" * 100, source="s", what="x") is not None
    quoted = "[" + '"[[[[",' * 500 + "1]"
    assert len(reading.parse_json(quoted, source="s", what="x")) == 501
    toml = 'a = "' + "[" * 500 + '"\n# ' + "{" * 500 + "\nb = '''" + "[" * 500 + "'''\n"
    assert reading.parse_toml(toml, source="s", what="x")["a"] == "[" * 500
    yaml_text = "a: '" + "[" * 500 + "'\nb:\n  - c: [1, 2]\n"
    assert reading.parse_yaml(yaml_text, source="s", what="x")["b"] == [{"c": [1, 2]}]


@pytest.mark.parametrize(
    ("syntax", "text"),
    [
        ("json", f'{{"a": {HUGE_INT}}}'),
        ("json", f'{{"a": {"9" * 200}}}'),
        ("toml", f"a = {HUGE_INT}"),
        ("toml", "a = 0x" + "f" * 500),
        ("yaml", f"a: {HUGE_INT}"),
        ("yaml", "a: " + ":".join(["59"] * 300)),  # YAML 1.1 base 60
    ],
    ids=["json", "json-200", "toml", "toml-hex", "yaml", "yaml-sexagesimal"],
)
def test_an_absurd_integer_is_a_named_error(tmp_path: Path, syntax: str, text: str) -> None:
    path = tmp_path / f"int.{syntax}"
    path.write_text(text, encoding="utf-8")
    load = {"json": reading.load_json, "toml": reading.load_toml, "yaml": reading.load_yaml}
    _refused(
        lambda: load[syntax](path, what="document", max_bytes=10**6),
        "value",
        f"document {path} holds an integer of more than 100 digits",
    )


def test_yaml_self_reference_and_alias_bombs_are_refused() -> None:
    _refused(
        lambda: reading.parse_yaml("a: &a [*a]\n", source="s.yml", what="lock"),
        "aliases",
        "refers to itself",
    )
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    _refused(
        lambda: reading.parse_yaml("\n".join(lines), source="s.yml", what="lock"),
        "aliases",
        "expands to more than",
    )
    assert reading.parse_yaml("a: &a [1]\nb: *a\n", source="s", what="x") == {
        "a": [1],
        "b": [1],
    }


def test_syntax_errors_name_the_file_and_the_syntax() -> None:
    _refused(lambda: reading.parse_json("{", source="f.json", what="baseline"), "syntax",
             "baseline f.json is not JSON text: ")  # fmt: skip
    _refused(lambda: reading.parse_toml("a = [", source="p.toml", what="pylock.toml"), "syntax",
             "pylock.toml p.toml is not TOML: ")  # fmt: skip
    _refused(lambda: reading.parse_yaml("a: [", source="e.yml", what="lock"), "syntax",
             "lock e.yml is not YAML: ")  # fmt: skip
    _refused(
        lambda: reading.parse_json("[NaN]", source="f.json", what="baseline", allow_nan=False),
        "syntax",
        "NaN is not a JSON value",
    )


# --- the defects through the real CLI -----------------------------------------------------------


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output and "RecursionError" not in output, output


@pytest.mark.timeout(60)
def test_fleet_report_of_dev_zero_and_a_fifo_exit_2_promptly(fifo: Path) -> None:
    for target in ("/dev/zero", str(fifo)):
        start = time.monotonic()
        proc = run_cli("fleet", "report", target, timeout=30)
        assert proc.returncode == 2, proc.stderr
        assert f"fleet document {target} is a " in proc.stderr
        _no_traceback(proc.stdout + proc.stderr)
        assert time.monotonic() - start < 20


@pytest.mark.parametrize(
    "body",
    ['{"schema": "dlsetup.doctor", "data": ' + "[" * DEEP + "]" * DEEP + "}",
     '{"schema": "dlsetup.doctor", "data": {"exit_code": ' + HUGE_INT + "}}"],
    ids=["100k-deep", "5001-digits"],
)  # fmt: skip
def test_fleet_report_of_a_hostile_document_exits_2(tmp_path: Path, body: str) -> None:
    path = tmp_path / "doctor-n1.json"
    path.write_text(body, encoding="utf-8")
    result = CliRunner().invoke(cli, ["fleet", "report", str(path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"fleet document {path}" in result.output
    _no_traceback(result.output)


@pytest.mark.timeout(60)
def test_smoke_compare_with_a_fifo_exits_2_promptly(fifo: Path) -> None:
    proc = run_cli("smoke", "--compare", str(fifo), timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert f"baseline {fifo} is a FIFO" in proc.stderr
    _no_traceback(proc.stdout + proc.stderr)


@pytest.mark.timeout(120)
def test_lock_check_and_create_from_lock_of_a_fifo_exit_2_promptly(tmp_path: Path) -> None:
    conda = tmp_path / "x.conda-lock.yml"
    os.mkfifo(conda)
    (tmp_path / "venv").mkdir()
    pylock = tmp_path / "venv" / "pylock.toml"
    os.mkfifo(pylock)
    for args, path in [
        (("lock", "--check", str(conda)), conda),
        (("lock", "--check", str(pylock)), pylock),
        (("lock", "--check", "/dev/zero"), Path("/dev/zero")),
        (("create", "--from-lock", str(pylock), "--prefix", str(tmp_path / "env")), pylock),
    ]:
        proc = run_cli(*args, timeout=30)
        assert proc.returncode == 2, (args, proc.stderr)
        assert str(path) in proc.stderr and "not a regular file" in proc.stderr, proc.stderr
        _no_traceback(proc.stdout + proc.stderr)


@pytest.mark.timeout(120)
def test_a_100k_deep_pylock_toml_exits_2(tmp_path: Path) -> None:
    pylock = tmp_path / "pylock.toml"
    pylock.write_text(
        'lock-version = "1.0"\ncreated-by = "dlsetup"\npackages = []\n'
        "[tool.dlsetup]\nx = " + "[" * DEEP + "]" * DEEP + "\n",
        encoding="utf-8",
    )
    for args in (
        ("lock", "--check", str(pylock)),
        ("create", "--from-lock", str(pylock), "--prefix", str(tmp_path / "env")),
    ):
        proc = run_cli(*args, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "nested more than 100 levels deep" in proc.stderr, proc.stderr
        _no_traceback(proc.stdout + proc.stderr)
        assert not (tmp_path / "env").exists()


# --- one property-based test per kind of file ---------------------------------------------------

#: generous bounds for one example of a few KiB (a hang or a blow-up is orders beyond them)
SECONDS_PER_EXAMPLE = 5.0
PEAK_BYTES = 64 * 1024 * 1024

BOMBS = [
    "[" * DEEP,
    "{" * DEEP,
    "- " * 5000 + "x",
    "a = " + "[" * 5000,
    HUGE_INT,
    "0x" + "f" * 500,
    "a: &a [*a]",
    "\x00\x01\x02",
    ":".join(["59"] * 200),
]


@st.composite
def hostile(draw: st.DrawFn, seed: str) -> bytes:
    """Garbage shaped like ``seed``: raw bytes, the seed with a slice replaced by junk or a bomb,
    truncated, or with bytes that are not UTF-8."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=300))
    data = seed
    if kind in (1, 2):
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, min(len(data), start + 40)))
        junk = draw(
            st.sampled_from(BOMBS) | st.text(max_size=30) | st.sampled_from(list("[]{}:-'\"#\n,*&"))
        )
        data = data[:start] + junk + data[end:]
    elif kind == 3:
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == 4:
        data = data.replace("\n", "\n" + draw(st.sampled_from(BOMBS)) + "\n", 1)
    raw = data.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        raw += b"\xff\xfe"
    return raw


def _bounded(call: Callable[[], object]) -> None:
    """``call`` returns or raises an exit-2/4 DlsetupError; within time and memory bounds."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        call()
    except DlsetupError as exc:
        assert int(exc.exit_code) in (2, 4), exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.monotonic() - start < SECONDS_PER_EXAMPLE
    assert peak < PEAK_BYTES, peak


FUZZ = settings(
    max_examples=40,
    deadline=None,  # _bounded holds the time bound (tracemalloc slows the first example)
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _fuzz(tmp: Path, name: str, seed: str, entry: Callable[[Path], object]) -> Any:
    warm = tmp / f"warm-{name}"  # the first call imports conda-lock, pydantic, rattler: unbounded
    warm.write_text(seed, encoding="utf-8")
    with contextlib.suppress(DlsetupError):
        entry(warm)

    @FUZZ
    @given(data=hostile(seed))
    def run(data: bytes) -> None:
        path = tmp / name
        path.write_bytes(data)
        _bounded(lambda: entry(path))

    return run


FLEET_SEED = json.dumps(node_document(), indent=1)


def test_any_fleet_document_is_a_report_or_a_named_error(tmp_path: Path) -> None:
    from dlsetup.fleet.report import fleet_report

    _fuzz(tmp_path, "doctor-n1.json", FLEET_SEED, lambda p: fleet_report([p]))()


@FUZZ
@given(text=st.text(max_size=60) | st.sampled_from(BOMBS) | st.just("gpu[01-04,07],cpu1"))
def test_any_node_list_is_a_report_or_a_named_error(text: str) -> None:
    import tempfile

    from dlsetup.fleet.report import fleet_report

    with tempfile.TemporaryDirectory() as tmp:
        doc = Path(tmp) / "doctor-n1.json"
        doc.write_text(FLEET_SEED, encoding="utf-8")
        _bounded(lambda: fleet_report([doc], nodelist=text))


def test_any_smoke_baseline_is_metrics_or_a_named_error(tmp_path: Path) -> None:
    from dlsetup.smoke.benchmark import load_baseline

    seed = (REPO / "benchmarks" / "baseline" / "smoke-cpu.json").read_text(encoding="utf-8")
    _fuzz(tmp_path, "baseline.json", seed, load_baseline)()


PYLOCK_SEED = """lock-version = "1.0"
created-by = "dlsetup"
requires-python = ">=3.10"

[[packages]]
name = "numpy"
version = "2.1.0"
wheels = [{ url = "https://example.invalid/numpy-2.1.0-py3-none-any.whl", hashes = { sha256 = "abababababababababababababababababababababababababababababababab" } }]

[tool.dlsetup]
request = { target = "pytorch", variant = "cpu" }
"""

ENVIRONMENT_SEED = """name: demo
channels:
  - conda-forge
dependencies:
  - python=3.12
  - numpy>=1.26
  - pip
  - pip:
      - rich==13.7.1
"""

CONDA_LOCK_SEED = """version: 1
metadata:
  content_hash:
    linux-64: abc
  channels:
  - url: conda-forge
    used_env_vars: []
  platforms:
  - linux-64
  sources:
  - environment.yml
  custom_metadata:
    dlsetup_target: pytorch
    dlsetup_variant: cpu
package:
- name: numpy
  version: 2.1.0
  manager: conda
  platform: linux-64
  dependencies:
    python: '>=3.12'
  url: https://conda.anaconda.org/conda-forge/linux-64/numpy-2.1.0-py312_0.conda
  hash:
    md5: 0123456789abcdef0123456789abcdef
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  category: main
  optional: false
"""

EXPLICIT_SEED = """# platform: linux-64
@EXPLICIT
https://conda.anaconda.org/conda-forge/linux-64/numpy-2.1.0-py312_0.conda#0123456789abcdef0123456789abcdef
"""

PIXI_SEED = """version: 6
environments:
  default:
    channels:
    - url: https://conda.anaconda.org/conda-forge/
    packages:
      linux-64:
      - conda: https://conda.anaconda.org/conda-forge/linux-64/numpy-2.1.0-py312_0.conda
packages:
- conda: https://conda.anaconda.org/conda-forge/linux-64/numpy-2.1.0-py312_0.conda
  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  md5: 0123456789abcdef0123456789abcdef
  depends:
  - python >=3.12
"""


def test_any_pylock_toml_is_a_lock_or_a_named_error(tmp_path: Path) -> None:
    from dlsetup.envs.venv.pylock import parse_pylock

    _fuzz(tmp_path, "pylock.toml", PYLOCK_SEED, parse_pylock)()


def test_any_environment_file_is_a_spec_or_a_named_error(tmp_path: Path) -> None:
    from dlsetup.envs.files.spec import load_environment_file

    _fuzz(tmp_path, "environment.yml", ENVIRONMENT_SEED, load_environment_file)()


@pytest.mark.parametrize(
    ("name", "seed"),
    [("x.conda-lock.yml", CONDA_LOCK_SEED), ("explicit.txt", EXPLICIT_SEED),
     ("pixi.lock", PIXI_SEED)],
    ids=["conda-lock", "explicit", "pixi"],
)  # fmt: skip
def test_any_lock_file_is_an_environment_or_a_named_error(
    tmp_path: Path, name: str, seed: str
) -> None:
    from dlsetup.envs.lockfiles.formats import read_locked_environment

    _fuzz(tmp_path, name, seed, lambda p: read_locked_environment(p, "linux-64"))()


def test_any_conda_lock_given_to_lock_check_is_read_or_a_named_error(tmp_path: Path) -> None:
    from dlsetup.envs.conda.lock_check import read_lock_record as read_lock

    _fuzz(tmp_path, "x.conda-lock.yml", CONDA_LOCK_SEED, read_lock)()


# --- every reader of a user's file goes through dlsetup.reading ---------------------------------


@pytest.mark.timeout(30)
def test_no_reader_of_a_user_file_can_hang_on_a_fifo(fifo: Path) -> None:
    """Each entry point, given a FIFO: a named exit 2 at once (the FIFO has no writer, so any
    plain ``open()`` would block until the test's timeout)."""
    from dlsetup.envs.conda.lock_check import read_lock_record as read_lock
    from dlsetup.envs.files.spec import load_environment_file
    from dlsetup.envs.venv.pylock import parse_pylock
    from dlsetup.fleet.report import read_document
    from dlsetup.smoke.benchmark import load_baseline

    for entry in (read_document, load_baseline, parse_pylock, load_environment_file, read_lock):
        with pytest.raises(InputError, match=r"FIFO|not a regular file"):
            entry(fifo)


def test_the_cli_imports_no_parser_for_help() -> None:
    """dlsetup.reading imports json, os, re and stat only; yaml and tomllib stay lazy."""
    code = (
        "import sys, dlsetup.reading; "
        "print(sorted(m for m in ('yaml', 'tomllib', 'tomli') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"
