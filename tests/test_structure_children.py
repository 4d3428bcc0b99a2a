"""One runner: no module of dlsetup/ but dlsetup/children.py starts a process itself.

Every child goes through :mod:`dlsetup.children` (process group, parent-death signal, a deadline
that always returns). This test reads every module of ``dlsetup/`` with ``ast`` and names the file
and line of any other way to start a process.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dlsetup"

#: The runner itself.
RUNNER = "children.py"

#: Code that runs inside a *target* interpreter (a torchrun rank), which has no dlsetup to import:
#: it may start its tools itself. Each entry: path under dlsetup/ -> why.
TARGET_INTERPRETER: dict[str, str] = {}

#: Modules still to be converted (none left; an entry here needs a reason and an issue).
NOT_YET_CONVERTED: dict[str, str] = {}

FORBIDDEN: dict[str, set[str]] = {
    "subprocess": {
        "Popen",
        "run",
        "call",
        "check_call",
        "check_output",
        "getoutput",
        "getstatusoutput",
    },
    "os": {
        "system",
        "popen",
        "fork",
        "forkpty",
        "posix_spawn",
        "posix_spawnp",
        *(f"spawn{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")),
    },
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
    "pty": {"fork", "spawn"},
    "multiprocessing": {"Process", "Pool"},
}


def process_starts(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, what)`` for every way ``source`` starts a process other than dlsetup.children."""
    tree = ast.parse(source, filename)
    modules: dict[str, str] = {}  # local name -> module (import subprocess as sp)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in FORBIDDEN:
                    modules[alias.asname or top] = top
        elif isinstance(node, ast.ImportFrom) and node.module in FORBIDDEN:
            for alias in node.names:
                if alias.name in FORBIDDEN[node.module] or alias.name == "*":
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = modules.get(node.value.id)
            if module is not None and node.attr in FORBIDDEN[module]:
                found.append((node.lineno, f"{module}.{node.attr}"))
        elif isinstance(node, ast.Call) and _imports_by_name(node) in ("subprocess", "pty"):
            found.append((node.lineno, f"import of {_imports_by_name(node)} by name"))
    return sorted(found)


def _imports_by_name(call: ast.Call) -> str | None:
    """The module ``__import__("m")`` or ``importlib.import_module("m")`` loads, if a constant."""
    func = call.func
    named = (isinstance(func, ast.Name) and func.id == "__import__") or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )
    if named and call.args and isinstance(call.args[0], ast.Constant):
        return str(call.args[0].value)
    return None


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_only_the_runner_starts_processes() -> None:
    exempt = {RUNNER, *TARGET_INTERPRETER, *NOT_YET_CONVERTED}
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in exempt:
            continue
        for line, what in process_starts(path.read_text(encoding="utf-8"), str(path)):
            offenders.append(f"dlsetup/{rel}:{line}: {what}")
    assert offenders == [], (
        "start processes through dlsetup.children (run/start), not directly:\n"
        + "\n".join(offenders)
    )


def test_every_exemption_still_exists_and_still_needs_it() -> None:
    # An exemption whose file went, or no longer starts a process, is removed from the list.
    for rel in [*TARGET_INTERPRETER, *NOT_YET_CONVERTED]:
        path = PACKAGE / rel
        assert path.is_file(), f"dlsetup/{rel} is exempted but does not exist"
        assert process_starts(path.read_text(encoding="utf-8")), f"dlsetup/{rel} needs no exemption"


def test_target_interpreter_code_does_not_import_the_runner() -> None:
    # The exempted modules run where dlsetup is not installed.
    for rel in TARGET_INTERPRETER:
        tree = ast.parse((PACKAGE / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert not node.module.startswith("dlsetup"), f"dlsetup/{rel} imports dlsetup"


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import subprocess\nsubprocess.run(['x'])", "subprocess.run"),
        ("import subprocess\nsubprocess.Popen(['x'])", "subprocess.Popen"),
        ("import subprocess as sp\nsp.check_output(['x'])", "subprocess.check_output"),
        ("import subprocess\nsubprocess.call(['x'])", "subprocess.call"),
        ("import subprocess\nsubprocess.check_call(['x'])", "subprocess.check_call"),
        ("from subprocess import Popen\nPopen(['x'])", "from subprocess import Popen"),
        ("from subprocess import run as r\nr(['x'])", "from subprocess import run"),
        ("import os\nos.system('x')", "os.system"),
        ("import os\nos.popen('x')", "os.popen"),
        ("import os\nos.fork()", "os.fork"),
        ("import os\nos.spawnv(os.P_WAIT, 'x', ['x'])", "os.spawnv"),
        ("from os import spawnlp", "from os import spawnlp"),
        ("import asyncio\nasyncio.create_subprocess_exec('x')", "asyncio.create_subprocess_exec"),
        ("import asyncio\nasyncio.create_subprocess_shell('x')", "asyncio.create_subprocess_shell"),
        ("__import__('subprocess')", "import of subprocess by name"),
        ("import importlib\nimportlib.import_module('pty')", "import of pty by name"),
    ],
)
def test_the_scan_sees_each_way_to_start_a_process(source: str, what: str) -> None:
    assert [w for _, w in process_starts(source)] == [what]


def test_the_scan_lets_exception_types_and_the_runner_through() -> None:
    source = (
        "import subprocess, os\n"
        "from dlsetup import children\n"
        "try:\n    children.run(['x'], timeout=1)\n"
        "except subprocess.TimeoutExpired:\n    os.getpid()\n"
    )
    assert process_starts(source) == []
