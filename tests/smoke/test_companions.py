"""``dlsetup smoke`` checks PyTorch's companions (torchvision, torchaudio) on every device.

The references are checked against independent computations (torch's own ``stft``, a hand-worked
NMS); the checks run in the real torch worker with the real torch, and stand-in companions from
:mod:`tests.smoke.companion_standins` on ``PYTHONPATH``: working ones (real torch ops), broken ones
(the operator missing, the import failing, wrong numbers, a crash, a hang) and none. Each verdict is
seen to change when the thing it checks is broken. The ``network`` test installs the real
torchvision 0.28.0 (a CUDA build) beside the venv's CPU torch 2.13 and sees it fail as it does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from dlsetup.output import load_schema
from dlsetup.smoke import companions as comp
from tests.doctor.standins import crashing_standin, hanging_standin
from tests.smoke.companion_standins import real_torchvision, torchaudio_standin, torchvision_standin
from tests.smoke.fault_env import fault_env
from tests.support.proc import run_cli


def validate(document: Any, schema: str) -> None:
    jsonschema.validate(document, load_schema(schema), cls=jsonschema.Draft202012Validator)


# ------------------------------------------------------------------ the references


def test_nms_reference_keeps_the_boxes_worked_out_by_hand() -> None:
    boxes, scores = np.array(comp.NMS_BOXES), np.array(comp.NMS_SCORES)
    # by score: 0 (.9) kept; 1 (.8) IoU 81/119 = 0.68 with 0: gone; 2 (.75) kept; 3 (.7) 0.68 with
    # 2: gone; 6 (.65) 50/150 with 0: kept; 4 (.6) 0.33 with 0, 25/175 with 6: kept; 5 (.5) apart:
    # kept; 7 (.3) 49/100 with 0: kept (0.49 is not above 0.5)
    assert comp.nms_reference(boxes, scores, 0.5) == [0, 2, 6, 4, 5, 7]
    assert comp.iou(boxes[0], boxes[[1, 4, 7]]) == pytest.approx([81 / 119, 50 / 150, 49 / 100])
    assert comp.nms_reference(boxes, scores, 0.45) == [0, 2, 6, 4, 5]  # now 7 goes too


def test_spectrogram_reference_is_torchs_stft_power_with_peaks_at_the_two_tones() -> None:
    import torch

    signal = comp.tone()
    want = comp.spectrogram_reference(signal, comp.N_FFT, comp.HOP)
    spec = torch.stft(
        torch.tensor(signal), comp.N_FFT, comp.HOP, window=torch.hann_window(comp.N_FFT,
        dtype=torch.float64), center=True, pad_mode="reflect", return_complex=True,
    )  # fmt: skip
    assert want == pytest.approx(spec.abs().pow(2).numpy(), rel=1e-9, abs=1e-9)
    assert want.shape == (comp.N_FFT // 2 + 1, 1 + comp.N_SAMPLES // comp.HOP)
    bin_hz = comp.SAMPLE_RATE / comp.N_FFT
    middle = want[:, want.shape[1] // 2]
    assert int(np.argmax(middle)) == round(1000 / bin_hz)  # the louder tone, bin 8
    assert int(np.argmax(middle[14:])) + 14 == round(2500 / bin_hz)  # the quieter one, bin 20
    # an interior frame by the definition: |sum_n w[n] x[n + t hop - n_fft/2] e^(-2 pi i k n / N)|^2
    n = np.arange(comp.N_FFT)
    w = 0.5 - 0.5 * np.cos(2 * math.pi * n / comp.N_FFT)
    t = 5
    frame = signal[t * comp.HOP - comp.N_FFT // 2 : t * comp.HOP + comp.N_FFT // 2]
    k = np.arange(comp.N_FFT // 2 + 1)[:, None]
    dft = np.abs((w * frame * np.exp(-2j * math.pi * k * n / comp.N_FFT)).sum(axis=1)) ** 2
    assert want[:, t] == pytest.approx(dft, rel=1e-9, abs=1e-9)


# ------------------------------------------------------------------ the smoke, end to end


def smoke(pythonpath: Path | None, *args: str, faults: str = "") -> tuple[int, dict[str, Any]]:
    env = {"PYTHONPATH": str(pythonpath) if pythonpath else ""}
    if faults:
        env = fault_env(faults, *([pythonpath] if pythonpath else []))
    proc = run_cli("smoke", "--framework", "torch", "--json", *args, env=env)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    validate(doc, "dlsetup.smoke")
    return proc.returncode, doc


def companions(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (run,) = doc["data"]["runs"]
    assert run["status"] == "ok" and all(c["passed"] for c in run["combinations"])
    return {c["companion"]: c for c in run["companions"]}


pytestmark = [pytest.mark.slow, pytest.mark.torch]


@pytest.fixture(scope="module")
def working(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("working")
    torchvision_standin(root)
    return torchaudio_standin(root)


def test_working_companions_pass_beside_the_grid_in_json_text_and_benchmark(
    working: Path, tmp_path: Path
) -> None:
    code, doc = smoke(working, "--output", str(tmp_path / "bench.json"))
    assert code == 0 and doc["data"]["passed"] is True
    found = companions(doc)
    assert found["torchvision"]["status"] == "passed"
    assert found["torchvision"]["version"] == "0.28.0+cpu"
    assert "kept boxes [0, 2, 6, 4, 5, 7], as the NumPy reference" in found["torchvision"]["detail"]
    assert found["torchaudio"]["status"] == "passed"
    assert found["torchaudio"]["max_abs_error"] < 1e-2
    assert all(c["fix"] is None and c["error"] is None for c in found.values())
    bench = json.loads((tmp_path / "bench.json").read_text())
    validate(bench, "dlsetup.smoke-benchmark")
    assert bench["data"]["runs"][0]["phases"]["companions_s"] >= 0
    text = run_cli("smoke", "--framework", "torch", env={"PYTHONPATH": str(working)})
    assert text.returncode == 0, text.stdout[-2000:]
    assert "2/2 companion checks" in text.stdout
    assert "torchvision 0.28.0+cpu: ok, torchvision.ops.nms" in text.stdout
    assert "torchaudio 2.13.0+cpu: ok, torchaudio.transforms.Spectrogram" in text.stdout


def test_a_broken_reference_fails_each_companion_check(working: Path) -> None:
    code, doc = smoke(
        working, faults="torch:broken-reference=torchvision,torch:broken-reference=torchaudio"
    )
    assert code == 1 and doc["data"]["passed"] is False
    found = companions(doc)
    assert {c["status"] for c in found.values()} == {"failed"}
    assert {c["stage"] for c in found.values()} == {"compare"}
    assert "expected [0, 2, 6, 4, 5]" in found["torchvision"]["detail"]
    assert "NumPy reference" in found["torchaudio"]["detail"]


def test_wrong_numbers_from_a_companion_fail_its_check(tmp_path: Path) -> None:
    torchvision_standin(tmp_path, "wrong")
    torchaudio_standin(tmp_path, "wrong")  # magnitude instead of power
    code, doc = smoke(tmp_path)
    assert code == 1
    found = companions(doc)
    assert found["torchvision"]["stage"] == "compare"
    assert (
        "kept boxes [0, 1, 2, 3, 4, 5, 6, 7], expected [0, 2, 6, 4, 5, 7]"
        in (found["torchvision"]["detail"])
    )
    assert found["torchaudio"]["stage"] == "compare"


def test_no_companion_installed_is_reported_not_failed() -> None:
    if comp.installed("torchvision") or comp.installed("torchaudio"):
        pytest.skip("a companion is installed in this venv")
    code, doc = smoke(None)
    assert code == 0
    found = companions(doc)
    assert {c["status"] for c in found.values()} == {"not_installed"}
    assert all(c["fix"] is None for c in found.values())
    text = run_cli("smoke", "--framework", "torch", "--steps", "60")
    assert "torchvision: not installed (reported, not failed)" in text.stdout


def test_an_installed_torchvision_whose_operator_is_missing_fails_with_the_error_and_a_fix(
    tmp_path: Path,
) -> None:
    torchvision_standin(tmp_path, "op_missing")
    code, doc = smoke(tmp_path)
    assert code == 1 and doc["data"]["passed"] is False
    found = companions(doc)
    tv = found["torchvision"]
    assert (tv["status"], tv["stage"]) == ("failed", "operator")
    assert tv["error"] == "RuntimeError: operator torchvision::nms does not exist"
    assert "'torchvision==0.28.*' --index-url https://download.pytorch.org/whl/cpu" in tv["fix"]
    assert "dlsetup doctor" in tv["fix"]
    assert found["torchaudio"]["status"] == "not_installed"  # the other one is not failed for it
    text = run_cli("smoke", "--framework", "torch", env={"PYTHONPATH": str(tmp_path)})
    assert text.returncode == 1
    assert "FAIL torchvision 0.28.0+cpu: torchvision.ops.nms raised on cpu: RuntimeError: " in (
        text.stdout
    )
    assert "fix: install the torchvision release built for torch 2.13.0+cpu" in text.stdout


def test_companions_whose_import_fails_fail_at_import_with_the_loaders_error(
    tmp_path: Path,
) -> None:
    torchvision_standin(tmp_path, "import_fails", version="0.28.0+cu130")
    torchaudio_standin(tmp_path, "import_fails")
    code, doc = smoke(tmp_path)
    assert code == 1
    found = companions(doc)
    assert found["torchvision"]["stage"] == found["torchaudio"]["stage"] == "import"
    assert found["torchvision"]["version"] == "0.28.0+cu130"  # read without importing it
    assert "operator torchvision::nms does not exist" in found["torchvision"]["error"]
    assert "libtorchaudio.so" in found["torchaudio"]["error"]
    # torchaudio 2.11, built on torch's stable ABI, is the release for torch 2.11 and later
    assert "'torchaudio==2.11.*'" in found["torchaudio"]["fix"]


def test_a_companion_that_crashes_the_worker_fails_alone_and_the_grid_is_kept(
    tmp_path: Path,
) -> None:
    crashing_standin(tmp_path, "torchvision")  # os.abort() on import
    code, doc = smoke(tmp_path)
    assert code == 1
    found = companions(doc)  # the grid's 48 rows passed and are there
    tv = found["torchvision"]
    assert (tv["status"], tv["stage"]) == ("failed", "crashed")
    assert "exited with status -6" in tv["error"]
    assert "torchaudio" not in found  # the worker was gone before it


def test_a_companion_whose_import_hangs_is_ended_by_the_timeout(tmp_path: Path) -> None:
    hanging_standin(tmp_path, "torchaudio")
    torchvision_standin(tmp_path)
    code, doc = smoke(tmp_path, "--timeout", "6")
    assert code == 1
    found = companions(doc)
    assert found["torchvision"]["status"] == "passed"
    assert (found["torchaudio"]["status"], found["torchaudio"]["stage"]) == ("failed", "timeout")


@pytest.mark.network
def test_real_torchvision_0_28_beside_the_cpu_torch_2_13_is_reported_broken(
    tmp_path: Path,
) -> None:
    """PyPI's torchvision 0.28.0 is a CUDA 13.0 build; beside the CPU torch its import fails."""
    site = real_torchvision(tmp_path / "site")
    code, doc = smoke(site)
    assert code == 1
    tv = companions(doc)["torchvision"]
    assert (tv["status"], tv["stage"]) == ("failed", "import")
    assert tv["version"].startswith("0.28.0")
    assert "operator torchvision::nms does not exist" in tv["error"]
    assert "torchvision==0.28.*" in tv["fix"]


def test_a_compiled_torchvision_extension_is_checked_without_importing_the_package(
    tmp_path: Path,
) -> None:
    """The fast path: only the extension (a real shared library) is loaded, and its nms kernel
    called; the package's __init__ would abort the worker, so it is seen not to run."""
    torchvision_standin(tmp_path, "extension")
    (tmp_path / "torchvision" / "__init__.py").write_text("import os\nos.abort()\n")
    code, doc = smoke(tmp_path)
    assert code == 0, doc
    tv = companions(doc)["torchvision"]
    assert tv["status"] == "passed" and tv["version"] == "0.28.0+cpu"
    assert "kept boxes [0, 2, 6, 4, 5, 7], as the NumPy reference" in tv["detail"]
    assert "without import torchvision" in tv["detail"]


def test_a_compiled_extension_with_wrong_numbers_fails_on_the_fast_path(tmp_path: Path) -> None:
    torchvision_standin(tmp_path, "extension_wrong")
    code, doc = smoke(tmp_path)
    assert code == 1
    tv = companions(doc)["torchvision"]
    assert (tv["status"], tv["stage"]) == ("failed", "compare")
    assert "kept boxes [0, 1, 2, 3, 4, 5, 6, 7], expected [0, 2, 6, 4, 5, 7]" in tv["detail"]
