"""doctor's framework probe loads only a framework's native core where that answers the same facts.

The worker loads ``torch._C`` (with ``torch/version.py``) or TensorFlow's ``pywrap_tfe`` (with its
``build_info``) instead of the whole import; the parent sends to a second, full worker whatever
only the full import can explain. These tests show each side of that line with the real parts:
the real torch 2.13 CPU and tensorflow-cpu of the venv (core and full give the same facts),
stand-in TensorFlow packages laid out like the real one (a core that answers; the same core with a
``Requires-Dist`` its interpreter does not meet, which goes to the full import and its error), a
companion that must be imported, and the worker's own rules over torch's native answers where no
GPU can give them here (devices seen, cuDNN compiled and runtime differing).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from textwrap import dedent
from types import SimpleNamespace
from typing import Any

import pytest

from dlsetup.probes import framework_worker as worker
from dlsetup.probes.frameworks import (
    CompanionBuild,
    FrameworkProbe,
    FrameworkRun,
    TorchBuild,
    unmet_requirements,
)
from tests.doctor.standins import torch_standin
from tests.smoke.companion_standins import torchaudio_standin, torchvision_standin

#: tensorflow-cpu 2.21.0's Requires-Dist, as its wheel's METADATA lists them (first lines).
TF_221_REQUIRES = [
    "absl-py>=1.0.0",
    "protobuf<8.0.0,>=6.31.1",
    "setuptools",
    "numpy>=1.26.0",
    "ml_dtypes<1.0.0,>=0.5.1",
    'nvidia-cublas-cu12<13.0,>=12.5.3.2; extra == "and-cuda"',
    'tensorflow-io-gcs-filesystem>=0.23.1; python_version < "3.12"',
]
MARKERS_311 = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}
INSTALLED = {
    "absl-py": "2.3.1",
    "protobuf": "6.33.0",
    "setuptools": "80.9.0",
    "numpy": "2.3.4",
    "ml_dtypes": "0.5.3",
    "tensorflow-io-gcs-filesystem": "0.37.1",
}


def requirements(**installed: str | None) -> dict[str, Any]:
    return {
        "distribution": "tensorflow-cpu",
        "requires": TF_221_REQUIRES,
        "installed": {**INSTALLED, **installed},
    }


@pytest.mark.parametrize(
    ("installed", "markers", "unmet"),
    [
        ({}, MARKERS_311, []),
        ({"protobuf": "5.29.3"}, MARKERS_311, ["protobuf<8.0.0,>=6.31.1 (5.29.3 installed)"]),
        ({"ml_dtypes": None}, MARKERS_311, ["ml_dtypes<1.0.0,>=0.5.1 (not installed)"]),
        ({"numpy": "1.24.4"}, MARKERS_311, ["numpy>=1.26.0 (1.24.4 installed)"]),
        # a marker is evaluated with the TARGET interpreter's variables: 3.12 does not need it
        (
            {"tensorflow-io-gcs-filesystem": None},
            {**MARKERS_311, "python_version": "3.12"},
            [],
        ),
        (
            {"tensorflow-io-gcs-filesystem": None},
            MARKERS_311,
            ["tensorflow-io-gcs-filesystem>=0.23.1 (not installed)"],
        ),
        ({"numpy": "2.5.0rc1"}, MARKERS_311, []),  # a pre-release counts, as pip check counts it
    ],
    ids=[
        "met",
        "protobuf-too-old",
        "ml-dtypes-missing",
        "numpy-too-old",
        "marker-false",
        "marker-true",
        "prerelease",
    ],
)
def test_unmet_requirements_are_judged_as_pip_check_judges_them(
    installed: dict[str, str | None], markers: dict[str, str], unmet: list[str]
) -> None:
    assert unmet_requirements(requirements(**installed), markers) == unmet


def test_requirements_of_an_extra_are_neither_looked_up_nor_required() -> None:
    req = requirements()
    assert "nvidia-cublas-cu12" not in req["installed"]
    assert unmet_requirements(req, MARKERS_311) == []
    assert unmet_requirements(None, None) == [] and unmet_requirements("junk", {}) == []


def _run(pythonpath: Path | None, frameworks: tuple[str, ...], full: bool = False) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath) if pythonpath else ""
    env["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"
    return (
        FrameworkRun(sys.executable, 240, frameworks, env=env, full_import=full).start().collect()
    )


def _probe(value: Any) -> FrameworkProbe:
    assert isinstance(value, FrameworkProbe), value
    return value


def tensorflow_core_standin(root: Path, *, requires: str, init_error: str) -> Path:
    """A ``tensorflow`` laid out like the real one where the core probe reads it (``python/
    pywrap_tfe.py``, ``python/client/_pywrap_tf_session``, ``python/platform/build_info.py``) with
    a distribution that requires ``requires``; its ``__init__`` raises ``init_error`` (the error
    the full import meets, such as protobuf's "Descriptors cannot be created directly")."""
    files = {
        "tensorflow/__init__.py": f"raise TypeError({init_error!r})\n",
        "tensorflow/python/__init__.py": "",
        "tensorflow/python/pywrap_tfe.py": (
            "def TF_ListPhysicalDevices():\n    return [b'/physical_device:CPU:0']\n"
        ),
        "tensorflow/python/client/__init__.py": "",
        "tensorflow/python/client/_pywrap_tf_session.py": "def get_version():\n    return '2.17.0'\n",
        "tensorflow/python/platform/__init__.py": "",
        "tensorflow/python/platform/build_info.py": dedent(
            """\
            import collections
            build_info = collections.OrderedDict([('is_cuda_build', False), ('is_rocm_build', False)])
            """
        ),
        "tensorflow-2.17.0.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: tensorflow\nVersion: 2.17.0\nRequires-Dist: {requires}\n"
        ),
        "protobuf-4.25.3.dist-info/METADATA": "Metadata-Version: 2.1\nName: protobuf\nVersion: 4.25.3\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


# TensorFlow 2.17's own protobuf requirement, and one the installed 4.25.3 does not meet
TF_217_PROTOBUF = "protobuf!=4.21.0,!=4.21.1,!=4.21.2,!=4.21.3,!=4.21.4,!=4.21.5,<5.0.0dev,>=3.20.3"
DESCRIPTORS = "Descriptors cannot be created directly."


def test_a_tensorflow_core_whose_requirements_are_met_answers_alone(tmp_path: Path) -> None:
    tensorflow_core_standin(tmp_path, requires=TF_217_PROTOBUF, init_error=DESCRIPTORS)
    tf = _probe(_run(tmp_path, ("tensorflow",)).tensorflow)
    assert (tf.status, tf.imported, tf.version) == ("ok", "tensorflow.python.pywrap_tfe", "2.17.0")
    assert tf.messages == ()


def test_an_unmet_requirement_sends_tensorflow_to_the_full_import_and_its_error(
    tmp_path: Path,
) -> None:
    """The same core with protobuf 4.25.3 where ``>=5`` is required: the core would answer, but
    the full import is what a user runs, and it fails; doctor reports that failure."""
    tensorflow_core_standin(tmp_path, requires="protobuf>=5.26.1,<6", init_error=DESCRIPTORS)
    tf = _probe(_run(tmp_path, ("tensorflow",)).tensorflow)
    assert tf.status == "import_failed"
    assert tf.detail == f"TypeError: {DESCRIPTORS}"


def test_torch_core_and_full_import_give_the_same_facts() -> None:
    pytest.importorskip("torch")
    core = _probe(_run(None, ("torch",)).torch)
    full = _probe(_run(None, ("torch",), full=True).torch)
    assert (core.imported, full.imported) == ("torch._C", "torch")
    assert core.torch == full.torch
    assert core.version == full.version


def test_a_companion_that_must_be_imported_sends_torch_to_the_full_import(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    torchaudio_standin(tmp_path, version="2.13.0+cpu")
    torch = _probe(_run(tmp_path, ("torch",)).torch)
    assert torch.status == "ok"
    assert torch.imported == "torch"
    assert torch.messages == (
        "torch's core alone did not answer (torchaudio is probed by importing it, which needs the "
        "full torch import); the full import was used",
    )


def test_a_stand_in_torch_without_a_native_core_is_imported(tmp_path: Path) -> None:
    torch_standin(tmp_path, version="2.6.0+cu124", cuda="12.4")
    torch = _probe(_run(tmp_path, ("torch",)).torch)
    assert (torch.status, torch.imported, torch.messages) == ("ok", "torch", ())


def _core(devices: int = 0, compiled: tuple[int, ...] = (9, 1, 0), runtime: tuple[int, ...] = (9, 1, 0)) -> Any:  # fmt: skip
    """What ``torch._C`` of a CUDA 12.4 build answers, for the rules no GPU-less machine can reach."""
    return SimpleNamespace(
        _cuda_getDeviceCount=lambda: devices,
        _cuda_getArchFlags=lambda: "sm_80 sm_90",
        _has_cudnn=True,
        _cudnn=SimpleNamespace(
            getCompileVersion=lambda: compiled,
            getRuntimeVersion=lambda: runtime,
            getVersionInt=lambda: runtime[0] * 10000 + runtime[1] * 100 + runtime[2],
            is_cuda=True,
        ),
        _nccl_version=lambda: (2 << 32) | (21 << 16) | 5,
        _nccl_version_suffix=lambda: b"",
        _has_mps=False,
    )


VERSION = SimpleNamespace(__version__="2.6.0+cu124", cuda="12.4", hip=None)


def test_torch_core_facts_of_a_cuda_build_without_a_device() -> None:
    facts = worker.probe_torch_core(VERSION, _core(runtime=(9, 3, 0)))
    assert facts["cudnn"] == 90300 and facts["nccl"] == "2.21.5"
    assert facts["arch_list"] == ["sm_80", "sm_90"]
    assert (facts["cuda_available"], facts["device_count"]) == (False, 0)


@pytest.mark.parametrize(
    ("core", "reason"),
    [
        (_core(devices=2), "CUDA answered with devices"),
        (_core(runtime=(8, 9, 7)), "cuDNN compiled (9, 1, 0) differs from the runtime (8, 9, 7)"),
        (_core(runtime=(9, 0, 0)), "cuDNN compiled (9, 1, 0) differs from the runtime (9, 0, 0)"),
    ],
    ids=["devices-seen", "cudnn-major-differs", "cudnn-runtime-older"],
)
def test_what_only_the_full_torch_import_explains_is_left_to_it(core: Any, reason: str) -> None:
    with pytest.raises(worker.CoreNotEnough, match=reason.replace("(", r"\(").replace(")", r"\)")):
        worker.probe_torch_core(VERSION, core)


def test_a_pluggable_device_sends_tensorflow_to_the_full_import(tmp_path: Path) -> None:
    """tensorflow/__init__ loads ``site-packages/tensorflow-plugins`` (Apple's Metal plugin,
    Intel's extension): a core load would not list their devices."""
    tensorflow_core_standin(tmp_path, requires=TF_217_PROTOBUF, init_error="full import ran")
    (tmp_path / "tensorflow-plugins").mkdir()
    (tmp_path / "tensorflow-plugins" / "libmetal_plugin.so").write_bytes(b"\x7fELF")
    tf = _probe(_run(tmp_path, ("tensorflow",)).tensorflow)
    assert (tf.status, tf.detail) == ("import_failed", "TypeError: full import ran")


def _torchvision_needing_pillow(root: Path, pillow: str) -> Path:
    """A torchvision whose compiled extension loads and registers its operators, whose import fails
    as the real one does without Pillow, and whose distribution requires Pillow as 0.28's does;
    ``pillow`` is the installed Pillow's version (its dist-info first on the path)."""
    torchvision_standin(root, "extension", version="0.28.0+cpu", requires_torch="==2.13.0")
    meta = next(root.glob("torchvision-*.dist-info")) / "METADATA"
    meta.write_text(meta.read_text() + "Requires-Dist: pillow!=8.3.*,>=5.3.0\n")
    (root / "torchvision" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'PIL'\")\n"
    )
    dist = root / f"pillow-{pillow}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pillow\nVersion: {pillow}\n")
    return root


def _torchvision(root: Path) -> Any:
    build = _probe(_run(root, ("torch",)).torch).torch
    assert isinstance(build, TorchBuild)
    assert isinstance(build.torchvision, CompanionBuild), build.torchvision
    return build.torchvision


def test_a_torchvision_whose_requirements_are_not_met_is_imported_and_its_error_shown(
    tmp_path: Path,
) -> None:
    """Its extension alone answers; its import is what a user runs, and it fails."""
    pytest.importorskip("torch")
    tv = _torchvision(_torchvision_needing_pillow(tmp_path, pillow="5.0.0"))
    assert tv.status == "import_failed"
    assert tv.import_error == "ModuleNotFoundError: No module named 'PIL'"


def test_a_torchvision_whose_requirements_are_met_answers_from_its_extension(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    tv = _torchvision(_torchvision_needing_pillow(tmp_path, pillow="11.0.0"))
    assert (tv.status, tv.imported, tv.extension_loaded) == ("ok", True, True)
