"""doctor's framework probe reports torch's companions, torchvision and torchaudio.

The real torch 2.13 CPU of the venv is probed with stand-in companions on ``PYTHONPATH``
(:mod:`tests.smoke.companion_standins`): working ones, one whose extension did not load, ones whose
import fails, one that crashes or hangs the probe, none. Each fact is seen to change when the
companion is broken. The ``network`` test probes the real torchvision 0.28.0 (a CUDA 13.0 build)
beside the CPU torch: the loader's own error names the CUDA library it lacks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dlsetup.facts import Missing
from dlsetup.output import load_schema, to_jsonable
from dlsetup.probes.frameworks import CompanionBuild, FrameworkRun, FrameworksFacts, TorchBuild
from tests.doctor.standins import crashing_standin, hanging_standin
from tests.smoke.companion_standins import real_torchvision, torchaudio_standin, torchvision_standin

pytestmark = [pytest.mark.slow, pytest.mark.torch]


def probe(pythonpath: Path | None, timeout: float = 60) -> tuple[FrameworksFacts, TorchBuild]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath) if pythonpath else ""
    env["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"
    facts = FrameworkRun(sys.executable, timeout, ("torch",), env=env).start().collect()
    schema = load_schema("dlsetup.doctor")
    sub = {"$ref": "#/$defs/frameworks", "$defs": schema["$defs"]}
    jsonschema.validate(to_jsonable(facts), sub, cls=jsonschema.Draft202012Validator)
    assert not isinstance(facts.torch, Missing)
    assert facts.torch.status == "ok", facts.torch.detail
    build = facts.torch.torch
    assert isinstance(build, TorchBuild)
    return facts, build


def companion(value: Any) -> CompanionBuild:
    assert isinstance(value, CompanionBuild), value
    return value


def test_working_companions_are_ok_with_version_torch_pin_and_cuda_build(tmp_path: Path) -> None:
    torchvision_standin(tmp_path, version="0.28.0+cu130", requires_torch="==2.13.0")
    torchaudio_standin(tmp_path, version="2.13.0+cpu")
    _, build = probe(tmp_path)
    tv, ta = companion(build.torchvision), companion(build.torchaudio)
    assert (tv.status, tv.imported, tv.extension_loaded) == ("ok", True, True)
    assert (tv.import_error, tv.extension_error) == ("", "")
    assert tv.version == "0.28.0+cu130"
    assert tv.cuda == "13.0"  # from the +cu130 tag: the version module does not say
    assert tv.torch_requirement == "==2.13.0"
    assert tv.location == str(tmp_path / "torchvision")
    assert (ta.status, ta.extension_loaded, ta.version) == ("ok", True, "2.13.0+cpu")
    assert ta.cuda == Missing("cpu_build", "version 2.13.0+cpu")
    assert ta.torch_requirement == Missing("not_reported")  # no distribution metadata


def test_an_extension_that_did_not_load_is_reported_with_the_loaders_error(
    tmp_path: Path,
) -> None:
    torchvision_standin(tmp_path, "op_missing")
    _, build = probe(tmp_path)
    tv = companion(build.torchvision)
    assert (tv.status, tv.imported, tv.extension_loaded) == ("extension_failed", True, False)
    assert tv.extension_file == str(tmp_path / "torchvision" / "_C.so")
    # torch.ops.load_library's own words, and the dynamic loader's beneath them
    assert tv.extension_error.startswith(
        f"OSError: Could not load this library: {tv.extension_file}"
    )
    assert "<- OSError: " in tv.extension_error
    assert build.torchaudio == Missing("not_installed", "torchaudio is not installed")


def test_companions_whose_import_fails_carry_the_import_error_and_the_extension_error(
    tmp_path: Path,
) -> None:
    torchvision_standin(tmp_path, "import_fails", version="0.28.0+cu130")
    torchaudio_standin(tmp_path, "import_fails")
    _, build = probe(tmp_path)
    tv, ta = companion(build.torchvision), companion(build.torchaudio)
    assert (tv.status, tv.imported, tv.extension_loaded) == ("import_failed", False, False)
    assert tv.import_error == "RuntimeError: operator torchvision::nms does not exist"
    assert "Could not load this library" in tv.extension_error
    assert (tv.version, tv.cuda) == ("0.28.0+cu130", "13.0")  # read without importing it
    assert ta.status == "import_failed"
    assert "libtorchaudio.so" in ta.import_error and "libtorchaudio.so" in ta.extension_error


def test_no_companion_installed_is_missing_not_installed() -> None:
    from dlsetup.smoke.companions import installed

    if installed("torchvision") or installed("torchaudio"):
        pytest.skip("a companion is installed in this venv")
    _, build = probe(None)
    assert build.torchvision == Missing("not_installed", "torchvision is not installed")
    assert build.torchaudio == Missing("not_installed", "torchaudio is not installed")


def test_a_companion_that_crashes_the_probe_keeps_torchs_facts(tmp_path: Path) -> None:
    crashing_standin(tmp_path, "torchvision")
    torchaudio_standin(tmp_path)
    facts, build = probe(tmp_path)
    assert facts.torch.version == "2.13.0+cpu"  # type: ignore[union-attr]
    assert build.cuda == Missing("cpu_build")
    tv = companion(build.torchvision)
    assert tv.status == "crashed"
    assert "SIGABRT" in tv.detail
    assert isinstance(build.torchaudio, Missing) and build.torchaudio.reason == "not_probed"


def test_a_companion_that_hangs_the_probe_is_a_timeout_and_keeps_torchs_facts(
    tmp_path: Path,
) -> None:
    torchvision_standin(tmp_path)
    hanging_standin(tmp_path, "torchaudio")
    _, build = probe(tmp_path, timeout=8)
    assert companion(build.torchvision).status == "ok"
    ta = companion(build.torchaudio)
    assert ta.status == "timeout" and "8 s" in ta.detail


@pytest.mark.network
def test_real_torchvision_0_28_beside_the_cpu_torch_names_the_missing_cuda_library(
    tmp_path: Path,
) -> None:
    site = real_torchvision(tmp_path / "site")
    _, build = probe(site)
    tv = companion(build.torchvision)
    assert tv.status == "import_failed"
    assert tv.import_error == "RuntimeError: operator torchvision::nms does not exist"
    assert tv.version == "0.28.0+cu130" and tv.cuda == "13.0"
    assert tv.torch_requirement == "==2.13.0"
    # the CUDA build's extension needs torch's CUDA libraries, which the CPU torch lacks
    assert "cannot open shared object file" in tv.extension_error
    assert "cuda" in tv.extension_error


def test_torchvision_is_probed_through_its_compiled_extension_without_importing_it(
    tmp_path: Path,
) -> None:
    # issue 25: import torchvision costs about 1.4 s (torch._dynamo); its extension alone answers
    # whether the build loads beside this torch, as smoke's companion check does
    torchvision_standin(tmp_path, "extension", version="0.28.0+cpu", requires_torch="==2.13.0")
    init = tmp_path / "torchvision" / "__init__.py"
    init.write_text("raise ImportError('the probe imported torchvision')\n", encoding="utf-8")
    _, build = probe(tmp_path)
    tv = companion(build.torchvision)
    assert (tv.status, tv.extension_loaded, tv.import_error) == ("ok", True, "")
    assert tv.extension_file == str(tmp_path / "torchvision" / "_C.so")
    assert tv.version == "0.28.0+cpu" and tv.torch_requirement == "==2.13.0"
    assert tv.cuda == Missing("cpu_build", "torchvision::_cuda_version() is -1")
    # an extension that does not load sends the probe to the import, whose error is reported
    (tmp_path / "torchvision" / "_C.so").write_text("not a shared library\n", encoding="utf-8")
    _, build = probe(tmp_path)
    broken = companion(build.torchvision)
    assert broken.status == "import_failed"
    assert "the probe imported torchvision" in broken.import_error
