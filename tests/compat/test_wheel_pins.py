"""The cuDNN/cuBLAS wheel pins of each framework release (issue 25): read by the refresh tool from a
release's wheel METADATA (PEP 658, or ranged reads of the wheel's central directory and dist-info
member where PyPI serves no .metadata file, as for TensorFlow 2.16-2.18), committed with their
source, and used by doctor when an installed framework's own METADATA names no CUDA wheel.

Hermetic: the ranged reads run against a real wheel built here, served by ranges from its bytes the
way an HTTP server answers ``Range:``; the committed data is read as shipped."""

from __future__ import annotations

import io
import json
import os
import random
import sys
import zipfile
from pathlib import Path

import pytest

from dlsetup.checks.environment_faults import check_wheel_pins
from dlsetup.compat.wheel_pins import release_pins
from dlsetup.probes.cuda_wheels import probe_cuda_wheels
from tests.doctor import health_cases as hc
from tests.doctor.test_failure_modes import dist_info
from tools import wheel_pins as wp

LINUX_X86 = sys.platform == "linux" and os.uname().machine == "x86_64"

#: Requires-Dist lines as TensorFlow 2.18.1's wheel spells them (read from PyPI, 2026-12-07).
TF_2_18_METADATA = (
    "Metadata-Version: 2.1\nName: tensorflow\nVersion: 2.18.1\n"
    "Requires-Dist: numpy<2.1.0,>=1.26.0\n"
    'Requires-Dist: nvidia-cublas-cu12==12.5.3.2; extra == "and-cuda"\n'
    'Requires-Dist: nvidia-cudnn-cu12==9.3.0.75; extra == "and-cuda"\n'
    'Requires-Dist: nvidia-nccl-cu12==2.21.5; extra == "and-cuda"\n'
)


def _wheel(metadata: str, filler: int = 300) -> bytes:
    """A real wheel: many members (a central directory of some KiB), METADATA deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in range(filler):  # shared objects: incompressible, as in a real wheel
            zf.writestr(f"tensorflow/lib_{n:04d}.so", random.Random(n).randbytes(4000))
        zf.writestr("tensorflow-2.18.1.dist-info/METADATA", metadata)
        zf.writestr("tensorflow-2.18.1.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return out.getvalue()


class RangeServer:
    """Answers ``fetch_range`` from a wheel's bytes as an HTTP server answers ``Range:``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.served = 0

    def __call__(self, url: str, start: int, end: int | None) -> bytes:
        part = self.data[start:] if end is None else self.data[start : end + 1]
        self.served += len(part)
        return part


def test_metadata_is_read_by_ranges_without_the_whole_wheel() -> None:
    data = _wheel(TF_2_18_METADATA)
    server = RangeServer(data)
    assert wp.metadata_by_range("https://x/tf.whl", server) == TF_2_18_METADATA
    assert server.served < len(data) / 2  # the tail and one member, not the wheel


def test_a_central_directory_beyond_the_tail_is_read_by_one_more_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wp, "TAIL", 200)  # the directory no longer fits in the first read
    server = RangeServer(_wheel(TF_2_18_METADATA))
    assert wp.metadata_by_range("https://x/tf.whl", server) == TF_2_18_METADATA


def test_not_a_zip_is_a_clear_error() -> None:
    with pytest.raises(wp.PinReadError, match="no zip end-of-central-directory"):
        wp.metadata_by_range("https://x/tf.whl", RangeServer(b"<html>404</html>"))


def test_pins_follow_the_markers_of_linux_x86_64_with_the_and_cuda_extra() -> None:
    torch_style = (
        'Requires-Dist: nvidia-cudnn-cu12 (==9.1.0.70) ; platform_system == "Linux" and '
        'platform_machine == "x86_64"\n'
        'Requires-Dist: nvidia-cublas-cu12==12.4.5.8; platform_machine == "aarch64"\n'
        "Requires-Dist: nvidia-cuda-runtime-cu12>=12.5.82; extra == 'and-cuda'\n"
    )
    assert wp.parse_wheel_pins(TF_2_18_METADATA) == {
        "nvidia-cublas-cu12": "12.5.3.2",
        "nvidia-cudnn-cu12": "9.3.0.75",
    }
    assert wp.parse_wheel_pins(torch_style) == {"nvidia-cudnn-cu12": "9.1.0.70"}


def test_a_release_without_pep_658_metadata_is_read_by_ranges_and_says_so() -> None:
    wheel = _wheel(TF_2_18_METADATA)
    name = "tensorflow-2.18.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    project = json.dumps({
        "releases": {
            "2.18.1": [
                {"filename": name.replace("cp311", "cp310"), "url": f"../../packages/cp310/{name}"},
                {"filename": name, "url": f"../../packages/{name}"},
            ]
        }
    }).encode()  # fmt: skip
    wheel_url = f"https://pypi.org/packages/{name}"

    def fetch(url: str) -> bytes:
        raise wp.PinReadError(f"{url}: HTTP Error 404")  # no .metadata file

    found = wp.read_release("tensorflow", "2.18.1", project, fetch, RangeServer(wheel))
    assert found.read_via == "range" and found.wheel == name
    assert found.pins["nvidia-cudnn-cu12"] == "9.3.0.75"
    assert wp.pick_wheel(project, "2.18.1", wp.PYPI_URL.format(name="tensorflow")) == (
        name,
        wheel_url,
    )


def test_the_committed_pins_cover_tensorflow_2_16_to_2_18_with_their_source() -> None:
    assert release_pins("tensorflow", "2.16.1") == {
        "nvidia-cublas-cu12": "12.3.4.1",
        "nvidia-cudnn-cu12": "8.9.7.29",
    }
    assert release_pins("tensorflow", "2.17.1")["nvidia-cudnn-cu12"] == "8.9.7.29"  # type: ignore[index]
    assert release_pins("tensorflow", "2.18.0")["nvidia-cudnn-cu12"] == "9.3.0.75"  # type: ignore[index]
    assert release_pins("torch", "2.5.1")["nvidia-cudnn-cu12"] == "9.1.0.70"  # type: ignore[index]
    assert release_pins("torch", "2.5.1+cu124") is None  # another build than PyPI's
    text = wp.DATA.read_text("utf-8")
    for version in ("2.16.1", "2.16.2", "2.17.0", "2.17.1", "2.18.0", "2.18.1"):
        assert f'"{version}": {{' in text and "read_via: range" in text


# ----------------------------------------------------------------------------- doctor uses them ----


def _bare_pair(site: Path, cudnn: str) -> None:
    """torch 2.5.1 and TensorFlow 2.18.0 whose METADATA lists no requirement (stand-ins), and
    the cuDNN wheel pip left."""
    dist_info(site, "torch", "2.5.1")
    dist_info(site, "tensorflow", "2.18.0")
    dist_info(site, "nvidia_cudnn_cu12", cudnn)


@pytest.mark.skipif(not LINUX_X86, reason="the pins are those of the Linux x86-64 wheels")
def test_torch_2_5_beside_tensorflow_2_18_is_a_pin_conflict_from_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bare_pair(tmp_path, "9.1.0.70")  # torch installed last: its cuDNN, below TF's 9.3
    monkeypatch.syspath_prepend(str(tmp_path))
    wheels = probe_cuda_wheels()
    assert {(p.framework, p.version, p.source) for p in wheels.pins if "cudnn" in p.package} == {
        ("torch", "9.1.0.70", "knowledge_base"),
        ("tensorflow", "9.3.0.75", "knowledge_base"),
    }
    facts = hc._tc().facts(cuda_libs=hc.with_libs(wheels=wheels))
    found = [f for f in check_wheel_pins(facts) if f.details["package"] == "nvidia-cudnn-cu12"]
    assert len(found) == 1 and found[0].details["broken"] == ["tensorflow"]
    assert found[0].command.endswith("install nvidia-cudnn-cu12==9.3.0.75")


@pytest.mark.skipif(not LINUX_X86, reason="the pins are those of the Linux x86-64 wheels")
def test_tensorflows_newer_cudnn_serves_both_and_stays_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bare_pair(tmp_path, "9.3.0.75")
    monkeypatch.syspath_prepend(str(tmp_path))
    facts = hc._tc().facts(cuda_libs=hc.with_libs(wheels=probe_cuda_wheels()))
    assert not [f for f in check_wheel_pins(facts) if f.details["package"] == "nvidia-cudnn-cu12"]


def test_a_cpu_build_takes_no_pins_from_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist_info(tmp_path, "torch", "2.5.1+cpu")
    dist_info(tmp_path, "nvidia_cudnn_cu12", "9.1.0.70")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not [p for p in probe_cuda_wheels().pins if p.framework == "torch"]
