"""What keeps ``doctor --no-frameworks`` within 0.3 s (issue 11 item 4) without losing a fact.

The cuts: pynvml is not imported when ``libnvidia-ml.so.1`` cannot be loaded; the checks over the
framework probes (and the knowledge base behind them) are not imported when no framework was
probed. Each test shows the cut gives the same facts/findings as the slow path did.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlsetup.checks import CHECK_IDS, companions, evaluate, frameworks
from dlsetup.facts import Missing
from dlsetup.probes import nvidia
from dlsetup.probes.frameworks import FrameworksFacts, skipped
from tests.doctor.test_checks import FIRES


def _nvml_present() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_no_frameworks_imports_no_binding_or_knowledge_base() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import json, sys\n"
        "from dlsetup.cli import main\n"
        "sys.argv = ['dlsetup', 'doctor', '--no-frameworks', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert json.loads(done.stdout)["data"]["findings"] is not None  # the report was written
    unwanted = {
        "yaml",
        "rich",
        "jsonschema",
        "dlsetup.checks.frameworks",
        "dlsetup.checks.companions",
        "dlsetup.checks.fix_language",
        "dlsetup.compat.recommend",
        "dlsetup.probes.framework_worker",
    }
    if not _nvml_present():
        unwanted.add("pynvml")
    assert not unwanted & loaded, unwanted & loaded


@pytest.mark.parametrize("check_id", sorted(FIRES))
def test_framework_checks_have_nothing_to_say_without_a_framework_probe(check_id: str) -> None:
    """What makes skipping them (and their imports) lossless under --no-frameworks."""
    base = FIRES[check_id]()
    variants: list[FrameworksFacts | Missing] = [
        skipped("/env/bin/python"),
        Missing("error", "probe raised"),
    ]
    if not isinstance(base.frameworks, Missing):
        gone = Missing("not_installed")
        variants.append(dataclasses.replace(base.frameworks, torch=gone, tensorflow=gone))
    checks = [getattr(frameworks, n) for n in dir(frameworks) if n.startswith("check_")]
    checks.append(companions.check_companions)
    for variant in variants:
        facts = dataclasses.replace(base, frameworks=variant)
        for check in checks:
            assert check(facts) == [], (check.__name__, variant)


def test_framework_checks_still_run_when_a_framework_was_probed() -> None:
    found = {f.id for f in evaluate(FIRES["framework.import_failed"]())}
    assert "framework.import_failed" in found
    assert "torchvision.release_mismatch" in CHECK_IDS  # built on first use, companions included


@pytest.mark.skipif(_nvml_present(), reason="an NVML library loads here")
def test_no_nvml_library_gives_what_pynvml_itself_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = nvidia.probe_nvidia()
    monkeypatch.setattr(nvidia, "_nvml_library_loads", lambda: True)  # pynvml's own nvmlInit
    assert fast == nvidia.probe_nvidia()
    assert fast.status == "no_library"
    assert fast.nvml_error_code == 12


def test_fake_nvml_library_is_found_and_read(fake_nvml_dir: Path) -> None:
    env = {**os.environ, "LD_LIBRARY_PATH": str(fake_nvml_dir)}
    code = (
        "from dlsetup.probes.nvidia import _nvml_library_loads, probe_nvidia\n"
        "print(_nvml_library_loads(), probe_nvidia().status)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out == ["True", "ok"]
