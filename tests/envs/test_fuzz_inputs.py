"""Property-based fuzzing of what users hand to ``dlsetup lock`` and ``dlsetup create``.

Hypothesis generates environment files (well-formed and not: hostile names, wrong types, odd
channels, raw bytes) and conda-lock files (mutations of a real lock made from the test channel:
keys dropped, values replaced with junk, foreign or traversing URLs, wrong hashes). Every input
must end with exit 0, 1, 2 or 4 through the real CLI — never a traceback, never the internal-error
exit 70 — and nothing may be written outside the command's target (``--output`` for lock,
``--prefix`` for create, plus the private archive cache).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlsetup.cli import cli
from dlsetup.envs import staging
from tests.support.mutate import mutate

ALLOWED_EXITS = {0, 1, 2, 4}


def fuzz_settings(examples: int) -> settings:
    """Deterministic, database-free settings: CI failures reproduce, nothing is written."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "../escaped",
        "../../../../tmp/escaped",
        "/abs/name",
        "a\nb",
        "nul\x00byte",
        "base",
        "x" * 300,
        "${HOME}",
        "https://user:password@example.invalid/ch",
        "file:///etc",
        "::::",
        "名前",
        "-dash",
        "C:\\windows",
    ]
)
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | HOSTILE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SPECS = st.sampled_from(
    [
        "python 3.12.*",
        "python",
        "numpy",
        "pytorch * cpu_*",
        "nonexistent-package",
        "numpy >=99",
        "numpy[version='>=1,<",
        "pip",
        "",
        "=",
        "python ==3.12.*=*_cpython",
    ]
)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _run_confined(
    args: Callable[[Path], list[str]], setup: Callable[[Path], None], allowed: tuple[str, ...]
) -> None:
    """Run the CLI in a fresh workspace; check the exit code and that only ``allowed`` changed."""
    with tempfile.TemporaryDirectory(prefix="dlsetup-fuzz-") as tmp:
        ws = Path(tmp) / "ws"
        (ws / "cwd").mkdir(parents=True)
        setup(ws)
        before = _tree(Path(tmp))
        cwd = Path.cwd()
        os.chdir(ws / "cwd")
        try:
            # a pip: section would otherwise send uv to PyPI: offline, it fails cleanly (exit 4)
            result = CliRunner().invoke(cli, args(ws), env={"UV_OFFLINE": "1"})
        finally:
            os.chdir(cwd)
            # what the end of a dlsetup process does (atexit): remove the file that blocks a
            # cancelled rattler install from writing into a removed partial build
            staging._remove_blockers()
        assert result.exit_code in ALLOWED_EXITS, (result.exit_code, result.output)
        assert "Traceback" not in result.output, result.output
        after = _tree(Path(tmp))
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        outside = {k for k in changed if not k.startswith(allowed)}
        assert not outside, (outside, result.output)
        leftovers = [p.name for p in ws.iterdir() if p.name.startswith(".dlsetup-")]
        assert not [n for n in leftovers if not n.startswith(".dlsetup-lock")], leftovers


@st.composite
def environment_documents(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["structured", "structured", "structured", "text", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["name"] = draw(HOSTILE_TEXT | st.text(max_size=20) | JUNK)
    if draw(st.booleans()):
        doc["channels"] = draw(st.lists(HOSTILE_TEXT | st.just("conda-forge"), max_size=3) | JUNK)
    if draw(st.integers(0, 4)):
        doc["dependencies"] = draw(
            st.lists(
                SPECS | HOSTILE_TEXT | st.fixed_dictionaries({"pip": st.lists(SPECS, max_size=2)}),
                max_size=5,
            )
            | JUNK
        )
    if draw(st.booleans()):
        doc["platforms"] = draw(
            st.lists(st.sampled_from(["linux-64", "osx-arm64", "beos-64", ""]), max_size=3) | JUNK
        )
    if draw(st.booleans()):
        doc[draw(st.text(max_size=10))] = draw(JUNK)
    text = yaml.safe_dump(doc, allow_unicode=True)
    if draw(st.booleans()):
        text += draw(st.sampled_from(["  - numpy  # [osx]\n", "\t\n", "- orphan\n", ""]))
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.slow
@fuzz_settings(2000)
@given(document=environment_documents())
def test_any_environment_file_ends_cleanly_and_writes_only_into_output(
    document: bytes, channel_url: str
) -> None:
    def setup(ws: Path) -> None:
        (ws / "in").mkdir()
        (ws / "in" / "env.yml").write_bytes(document)

    _run_confined(
        lambda ws: [
            "lock",
            str(ws / "in" / "env.yml"),
            "--platform",
            "linux-64",
            "--channel",
            channel_url,
            "--output",
            str(ws / "out"),
        ],
        setup,
        ("ws/out/",),
    )


@pytest.fixture(scope="module")
def base_lock(tmp_path_factory: pytest.TempPathFactory, channel_url: str) -> dict[str, Any]:
    """A real linux-64 PyTorch CPU lock from the test channel, as a YAML document."""
    out = tmp_path_factory.mktemp("fuzz-base-lock")
    result = CliRunner().invoke(
        cli,
        [
            "lock",
            "pytorch",
            "--variant",
            "cpu",
            "--platform",
            "linux-64",
            "--channel",
            channel_url,
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = yaml.safe_load((out / "pytorch-cpu.conda-lock.yml").read_text())
    return loaded


LOCK_JUNK = JUNK | st.sampled_from(
    [
        "file:///etc/passwd",
        "https://user:password@example.invalid/conda-forge/linux-64/x-1-0.conda",
        "../../../../etc/shadow",
        "0" * 64,
        "linux-64",
        "win-64",
        "conda",
        "pip",
    ]
)


@st.composite
def lock_documents(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    doc = mutate(draw, base, LOCK_JUNK)
    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")


@pytest.mark.slow
@fuzz_settings(1000)
@given(data=st.data())
def test_any_lock_file_ends_cleanly_and_writes_only_into_the_prefix(
    data: st.DataObject, base_lock: dict[str, Any]
) -> None:
    document = data.draw(lock_documents(base_lock))

    def setup(ws: Path) -> None:
        (ws / "in").mkdir()
        (ws / "in" / "x.conda-lock.yml").write_bytes(document)

    _run_confined(
        lambda ws: [
            "create",
            "--from-lock",
            str(ws / "in" / "x.conda-lock.yml"),
            "--prefix",
            str(ws / "env"),
            "--no-smoke",
            "--no-jupyter",
        ],
        setup,
        ("ws/env/", "ws/.dlsetup-lock"),
    )
