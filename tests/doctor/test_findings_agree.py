"""The findings-agree rule over every scenario of the suite (issue 25; written in docs/doctor.md,
"Findings agree"): all findings of one machine are rendered together and held to it.

1. One cause, one fix: a finding another one explains is superseded (info, no command,
   ``details.superseded_by`` naming a finding of the same report) or, for a GPU, left out of it
   (:data:`dlsetup.checks.supersede.GPU_EXPLAINS`): no "reset it" beside "RMA", no reading of a GPU
   NVML cannot open.
2. Every fix names the concrete device and the exact command: no ``<index>``-style placeholder
   (the one exception: a MIG instance's UUID, which NVML's device list does not give), and every
   ``nvidia-smi -i N`` names a GPU of this machine that NVML can reach.
3. No fix the facts show cannot work: no ``PY -m pip`` in an environment without pip; no page
   retirement query for an Ampere GPU nor a row-remapper one before Ampere; no BIOS setting offered
   to lift a PCIe slot unless another GPU shows a faster slot exists.

The scenarios: every firing and silent case of tests/doctor/test_checks.py (constructed facts,
which include the health and failure-mode cases), each again with its interpreter in a venv made
without pip (uv on PATH, and not), and every machine the fake NVML scripts (probed through the
real pynvml in one subprocess).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from dlsetup.checks import DoctorFacts, Finding, evaluate
from dlsetup.checks.supersede import GPU_EXPLAINS, SUPERSEDES, explained_frameworks
from dlsetup.commands.doctor import render
from dlsetup.doctor import DoctorReport
from dlsetup.facts import Missing
from dlsetup.probes.envmanagers import ActiveEnv, EnvManagersFacts, ManagerFacts
from tests.doctor import test_checks as tc
from tests.support.fake_nvml import SCENARIOS, nvml_env, subprocess_env
from tests.support.proc import REPO

_PLACEHOLDER = re.compile(r"<[A-Za-z][^<>]*>")
_ALLOWED = {"MIG-<uuid>"}  # a MIG instance's UUID: nvidia-smi -L lists them, NVML's GPUs do not
_SMI_INDEX = re.compile(r"nvidia-smi -i ([0-9,]+)")
_ECC_QUERY = re.compile(r"nvidia-smi -i (\d+) -q -d ECC,([A-Z_,]+)")


def gpus_of(f: Finding) -> set[int]:
    """The GPU indexes a finding is about (its ``details``)."""
    found: set[int] = set()
    gpus = f.details.get("gpus")
    if isinstance(gpus, dict):
        found |= {int(k) for k in gpus}
    elif isinstance(gpus, list):
        for g in gpus:
            if isinstance(g, int):
                found.add(g)
            elif isinstance(g, dict) and isinstance(g.get("index"), int):
                found.add(g["index"])
    if isinstance(f.details.get("gpu"), int):
        found.add(f.details["gpu"])
    return found


def _one_cause(found: tuple[Finding, ...]) -> list[str]:
    out = []
    present = {f.id for f in found}
    for f in found:
        cause = f.details.get("superseded_by")
        if cause is not None:
            if cause not in present or f.severity != "info" or f.command:
                out.append(f"{f.id} superseded by {cause}: not shown with it, or still acts")
            continue
        for specific in found:
            if f.id in SUPERSEDES.get(specific.id, ()):
                frameworks = explained_frameworks(specific)
                if frameworks is None or f.details.get("framework") in frameworks:
                    out.append(f"{f.id} stands beside {specific.id}, which explains it")
        for specific in found:
            explained = GPU_EXPLAINS.get(specific.id, ())
            if specific is f or not (
                f.id in explained or ("*" in explained and f.id.startswith("gpu."))
            ):
                continue
            if gpus_of(f) & gpus_of(specific):
                out.append(
                    f"{f.id} advises on GPU {gpus_of(f) & gpus_of(specific)} of {specific.id}"
                )
    return out


def _concrete(facts: DoctorFacts, found: tuple[Finding, ...]) -> list[str]:
    out = []
    reachable = {g.index for g in facts.gpus if not g.unreachable}
    for f in found:
        for text in (f.fix, f.command):
            for hole in _PLACEHOLDER.findall(text):
                if not any(hole in allowed for allowed in _ALLOWED if allowed in text):
                    out.append(f"{f.id}: placeholder {hole} in {text!r}")
            for listed in _SMI_INDEX.findall(text):
                for index in listed.split(","):
                    if int(index) not in reachable:
                        out.append(f"{f.id}: nvidia-smi -i {index}, no reachable GPU {index}")
    return out


def _can_work(facts: DoctorFacts, found: tuple[Finding, ...], pip: bool) -> list[str]:
    out = []
    cc = {g.index: g.compute_capability for g in facts.gpus}
    for f in found:
        for text in (f.fix, f.command):
            if (
                not pip
                and re.search(r" -m pip (install|uninstall)", text)
                and "ensurepip" not in text
            ):
                out.append(f"{f.id}: pip in an environment without it: {text!r}")
            for index, sections in _ECC_QUERY.findall(text):
                known = cc.get(int(index))
                if not isinstance(known, tuple):
                    continue
                if known >= (8, 0) and "PAGE_RETIREMENT" in sections:
                    out.append(f"{f.id}: page retirement on Ampere+ GPU {index}")
                if known < (8, 0) and "ROW_REMAPPER" in sections:
                    out.append(f"{f.id}: row remapper before Ampere on GPU {index}")
        offers_bios = f.id == "gpu.pcie_slot_limits_gpu" and "in the BIOS" in f.fix
        if offers_bios and f.details.get("faster_slot_gpu") is None:
            out.append(f"{f.id}: a BIOS setting offered without a faster slot in sight")
    return out


def violations(facts: DoctorFacts, *, pip: bool = True) -> list[str]:
    """Every breach of the rule by the findings of ``facts``, rendered together first."""
    found = evaluate(facts)
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render(console, DoctorReport(facts, found, 0.0), strict=False)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    missing = [
        f"{f.id}: command not printed whole" for f in found if f.command and f.command not in text
    ]
    return _one_cause(found) + _concrete(facts, found) + _can_work(facts, found, pip) + missing


# --------------------------------------------------------------------- the suite's scenarios ----

CASES = {f"fires:{k}": v for k, v in tc.FIRES.items()} | {
    f"silent:{k}": v for k, v in tc.SILENT.items()
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_findings_of_each_constructed_scenario_agree(name: str) -> None:
    assert violations(CASES[name]()) == []


def _without_pip(facts: DoctorFacts, python: str, uv: bool) -> DoctorFacts:
    fw = facts.frameworks
    if isinstance(fw, Missing):
        return facts
    managers = EnvManagersFacts(
        (
            ManagerFacts("pip", python, Missing("error", "No module named pip")),
            ManagerFacts("uv", "/usr/bin/uv" if uv else Missing("not_installed"), "0.9.0"),
        ),
        ActiveEnv("venv", "venv", str(Path(python).parent.parent)),
    )
    libs = facts.cuda_libs
    if not isinstance(libs, Missing) and not isinstance(libs.wheels, Missing):
        libs = dataclasses.replace(libs, wheels=dataclasses.replace(libs.wheels, python=python))
    return dataclasses.replace(
        facts,
        frameworks=dataclasses.replace(fw, python_executable=python),
        env_managers=managers,
        cuda_libs=libs,
    )


@pytest.mark.parametrize("uv", [True, False], ids=["uv", "no-uv"])
def test_no_fix_asks_for_pip_in_a_venv_without_it(tmp_path: Path, uv: bool) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    python = str(venv / "bin" / "python")
    broken = {
        name: v
        for name, case in CASES.items()
        if (v := violations(_without_pip(case(), python, uv), pip=False))
    }
    assert broken == {}


#: Run inside a subprocess whose LD_LIBRARY_PATH holds the fake NVML: each scenario's FAKE_NVML_*
#: are set in turn (the fake reads them at every call) and probed through the real pynvml.
_PROBE_ALL = """
import json, os, sys
from dlsetup.probes.nvidia import probe_nvidia
from tests.doctor import test_checks as tc
from tests.doctor.test_findings_agree import violations
from tests.support.fake_nvml import SCENARIOS, nvml_env
out = {}
for name, scenario in SCENARIOS.items():
    for key in [k for k in os.environ if k.startswith("FAKE_NVML_")]:
        del os.environ[key]
    for key, value in nvml_env(sys.argv[1], **scenario).items():
        if key.startswith("FAKE_NVML_"):
            os.environ[key] = value
    nvidia = probe_nvidia()
    out[name] = violations(tc.facts(nvidia=nvidia))
print(json.dumps(out))
"""


def test_findings_of_every_fake_nvml_machine_agree(fake_nvml_dir: Path) -> None:
    env = subprocess_env(nvml_env(fake_nvml_dir))
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE_ALL, str(fake_nvml_dir)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == set(SCENARIOS)
    assert {name: v for name, v in result.items() if v} == {}


# ------------------------------------------------------------ the rule catches what it names ----


def test_the_rule_sees_advice_that_contradicts_itself() -> None:
    """Each clause breaks when the thing it guards is broken (on hand-made findings)."""
    facts = tc.facts(nvidia=tc.nvidia(gpus=(tc.gpu(0, compute_capability=(8, 0)),)))
    failed = Finding("gpu.row_remap_failed", "error", "t", "m", "RMA", {"gpus": [{"index": 0}]})
    aggregate = Finding("gpu.ecc_errors_aggregate", "info", "t", "m", "x", {"gpus": [{"index": 0}]})
    assert _one_cause((failed, aggregate))
    placeholder = Finding("gpu.ecc_errors", "warning", "t", "m", "nvidia-smi -i <index> -r", {})
    assert _concrete(facts, (placeholder,))
    ghost = Finding("gpu.ecc_errors", "warning", "t", "m", "sudo nvidia-smi -i 3 -r", {})
    assert _concrete(facts, (ghost,))
    retirement = Finding(
        "gpu.ecc_errors", "warning", "t", "m", "nvidia-smi -i 0 -q -d ECC,PAGE_RETIREMENT", {}
    )
    assert _can_work(facts, (retirement,), pip=True)
    bios = Finding("gpu.pcie_slot_limits_gpu", "info", "t", "m", "raise it in the BIOS", {})
    assert _can_work(facts, (bios,), pip=True)
    pip = Finding(
        "framework.import_failed", "error", "t", "m", "/v/bin/python -m pip install torch", {}
    )
    assert _can_work(facts, (pip,), pip=False)
    assert not _can_work(facts, (pip,), pip=True)
