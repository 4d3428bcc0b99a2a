"""PyTorch's companions in the smoke: one torchvision operator and one torchaudio transform per device.

Runs INSIDE the target interpreter (the torch worker loads it by path, like :mod:`reference`), so it
imports only the standard library and NumPy at module level; ``torchvision`` and ``torchaudio`` are
imported lazily, inside :func:`check_companion`, and only when they are installed. The host imports
it as ``dlsetup.smoke.companions`` for the names and the references (the tests check the references
against hand-computed values).

Per device, each companion gives one check, a JSON-ready dict (see :func:`check_companion`):

* ``torchvision``: ``torchvision.ops.nms`` (a compiled kernel: CPU, CUDA or MPS) on 8 boxes, against
  :func:`nms_reference`; the kept indices must be equal;
* ``torchaudio``: ``torchaudio.transforms.Spectrogram`` of a short two-tone signal (importing
  torchaudio loads its compiled extension), against :func:`spectrogram_reference`.

A companion that is not installed is ``not_installed`` (reported, not failed). One that is installed
but cannot be imported, whose operator raises (``operator torchvision::nms does not exist``,
``Couldn't load custom C++ ops``), or whose numbers differ from the reference is ``failed`` with the
error text.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: The companions of PyTorch that the smoke checks, in report order.
COMPANIONS: tuple[str, ...] = ("torchvision", "torchaudio")
#: What each companion's check computes (the ``check`` field of its result).
CHECKS: dict[str, str] = {
    "torchvision": "torchvision.ops.nms",
    "torchaudio": "torchaudio.transforms.Spectrogram",
}

#: NMS input: (x1, y1, x2, y2) boxes with distinct scores; no IoU lies within 0.01 of the threshold,
#: so float32 rounding cannot change the answer.
NMS_BOXES: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 0.0, 10.0, 10.0),
    (1.0, 1.0, 11.0, 11.0),  # IoU 0.68 with box 0: suppressed
    (20.0, 20.0, 30.0, 30.0),
    (21.0, 19.0, 31.0, 29.0),  # IoU 0.68 with box 2: suppressed
    (5.0, 0.0, 15.0, 10.0),  # IoU 0.33 with box 0: kept
    (40.0, 40.0, 45.0, 45.0),
    (0.0, 5.0, 10.0, 15.0),  # IoU 0.33 with box 0, 0.14 with box 4: kept
    (2.0, 2.0, 9.0, 9.0),  # inside box 0, IoU 0.49 with it: kept
)
NMS_SCORES: tuple[float, ...] = (0.9, 0.8, 0.75, 0.7, 0.6, 0.5, 0.65, 0.3)
NMS_IOU_THRESHOLD = 0.5

#: Spectrogram input: 256 samples at 8 kHz of 1 kHz + 0.5 x 2.5 kHz; 64-point FFT, hop 16.
SAMPLE_RATE = 8000
N_SAMPLES = 256
N_FFT = 64
HOP = 16
#: (rtol, atol as a share of the largest reference value) of the float32 spectrogram.
SPECTROGRAM_TOLERANCE = (1e-4, 1e-5)


def iou(a: Array, b: Array) -> Array:
    """Intersection over union of box ``a`` (4,) with each box of ``b`` (N, 4); no +1 on the sides."""
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0.0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0.0, None)
    inter = w * h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: Array = inter / (area_a + area_b - inter)
    return out


def nms_reference(boxes: Array, scores: Array, threshold: float) -> list[int]:
    """Non-maximum suppression as torchvision defines it: visit the boxes by falling score, keep a
    box unless a kept box overlaps it with IoU > ``threshold``; the kept indices, best first."""
    kept: list[int] = []
    for i in (int(j) for j in np.argsort(-scores, kind="stable")):
        if not kept or not np.any(iou(boxes[i], boxes[kept]) > threshold):
            kept.append(i)
    return kept


def tone() -> Array:
    """The spectrogram's input signal (float64)."""
    t = np.arange(N_SAMPLES) / SAMPLE_RATE
    out: Array = np.sin(2 * math.pi * 1000.0 * t) + 0.5 * np.sin(2 * math.pi * 2500.0 * t)
    return out


def spectrogram_reference(signal: Array, n_fft: int, hop: int) -> Array:
    """The power spectrogram torchaudio's ``Spectrogram(n_fft, hop_length=hop)`` computes.

    The signal is reflect-padded by ``n_fft // 2`` on each side (``center=True``), cut into frames
    of ``n_fft`` samples every ``hop``, each multiplied by the periodic Hann window
    ``0.5 - 0.5 cos(2 pi n / n_fft)``; the result is ``|rfft|^2``, (n_fft // 2 + 1, frames).
    """
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * math.pi * n / n_fft)
    padded = np.pad(signal, n_fft // 2, mode="reflect")
    frames = 1 + (len(padded) - n_fft) // hop
    stack = np.stack([padded[i * hop : i * hop + n_fft] for i in range(frames)])
    spec: Array = np.abs(np.fft.rfft(stack * window, axis=1)).T ** 2
    return spec


def installed(name: str) -> bool:
    """Whether ``name`` can be found (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _file_version(name: str) -> str | None:
    """The version without importing: ``__version__`` of the package's ``version.py``, with its
    local tag (``0.28.0+cu130``: a CUDA 13.0 build), else the distribution's version."""
    import re

    try:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            with open(f"{folder}/version.py", encoding="utf-8") as fh:
                found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", fh.read(), re.MULTILINE)
            if found:
                return found.group(1)
    except (ImportError, ValueError, OSError):
        pass
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:  # not installed as a distribution, or broken metadata
        return None


def _error(exc: BaseException) -> str:
    """``Type: message`` and the exceptions it came from (``torch.ops.load_library`` wraps the
    loader's own error, which names the missing library or symbol)."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 4:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(parts)[:2000]


#: torchvision's compiled extension, relative to its package directory, first match wins (0.29
#: and later: ``_C_stable``, built on torch's stable ABI).
EXTENSION_FILES: tuple[str, ...] = ("_C_stable.so", "_C.so", "_C_stable.pyd", "_C.pyd", "_C.*.so")


def extension_file(name: str) -> str | None:
    """The compiled extension of ``name``'s package (found without importing it), or None."""
    import glob
    import os

    if name != "torchvision":
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for pattern in EXTENSION_FILES:
            found = sorted(glob.glob(os.path.join(folder, pattern)))
            if found:
                return found[0]
    return None


def _nms_with(nms: Callable[..., Any], torch: Any, device: str) -> tuple[bool, str, float | None]:
    boxes = np.array(NMS_BOXES)
    scores = np.array(NMS_SCORES)
    got = nms(
        torch.tensor(boxes, dtype=torch.float32, device=device),
        torch.tensor(scores, dtype=torch.float32, device=device),
        NMS_IOU_THRESHOLD,
    )
    kept = [int(i) for i in got.to("cpu").tolist()]
    want = nms_reference(boxes, scores, NMS_IOU_THRESHOLD)
    what = f"non-maximum suppression of {len(boxes)} boxes (IoU > {NMS_IOU_THRESHOLD:g}, float32)"
    if kept == want:
        return True, f"{what} kept boxes {kept}, as the NumPy reference", 0.0
    return False, f"{what} kept boxes {kept}, expected {want} (NumPy reference)", None


def _nms(torch: Any, device: str) -> tuple[bool, str, float | None]:
    ops = importlib.import_module("torchvision.ops")
    return _nms_with(ops.nms, torch, device)


def _fast_nms(torch: Any, device: str) -> tuple[bool, str, float | None] | None:
    """torchvision's nms kernel without ``import torchvision``: load only its compiled extension
    with ``torch.ops.load_library`` and call ``torch.ops.torchvision.nms``, the operator
    ``torchvision.ops.nms`` calls. ``import torchvision`` costs about 1.4 s (its ``ops`` import
    ``torch._dynamo``); this, milliseconds.

    Returns:
        The verdict, or None when this path does not apply (no extension file) or fails at any
        step: the caller then runs the full import, whose error is what a user sees.
    """
    path = extension_file("torchvision")
    if path is None:
        return None
    try:
        torch.ops.load_library(path)
        nms = torch.ops.torchvision.nms
        return _nms_with(nms, torch, device)
    except Exception:
        return None


def _spectrogram(torch: Any, device: str) -> tuple[bool, str, float | None]:
    transforms = importlib.import_module("torchaudio.transforms")
    signal = tone()
    transform = transforms.Spectrogram(n_fft=N_FFT, hop_length=HOP, power=2.0)
    x = torch.tensor(signal, dtype=torch.float32, device=device)
    got = np.asarray(transform.to(device)(x).detach().to("cpu").double().numpy(), np.float64)
    want = spectrogram_reference(signal, N_FFT, HOP)
    rtol, share = SPECTROGRAM_TOLERANCE
    atol = share * float(np.max(np.abs(want)))
    what = (
        f"power spectrogram of a {N_SAMPLES}-sample two-tone signal (n_fft {N_FFT}, hop {HOP}, "
        "float32)"
    )
    if got.shape != want.shape:
        return False, f"{what} has shape {got.shape}, expected {want.shape}", None
    err = np.abs(got - want)
    bad = ~(err <= atol + rtol * np.abs(want))
    worst = float(np.max(err)) if np.all(np.isfinite(got)) else math.inf
    if not np.any(bad):
        return True, f"{what} matches the NumPy reference (largest error {worst:.2g})", worst
    f, t = (int(v) for v in np.unravel_index(int(np.argmax(np.where(bad, err, -1.0))), err.shape))
    return (
        False,
        f"{what}: bin {f}, frame {t} was {got[f, t]:.6g}, expected {want[f, t]:.6g} (NumPy "
        f"reference, rtol {rtol:g}, atol {atol:.3g})",
        None,
    )


_CHECKS: dict[str, Callable[[Any, str], tuple[bool, str, float | None]]] = {
    "torchvision": _nms,
    "torchaudio": _spectrogram,
}


def check_companion(torch: Any, name: str, device: str) -> dict[str, Any]:
    """Run companion ``name``'s check on ``device``; never raises.

    Args:
        torch: the imported torch module.
        name: ``torchvision`` or ``torchaudio``.
        device: a torch device (``cpu``, ``cuda:0``, ``mps``).

    Returns:
        ``companion``, ``check``, ``status`` (``passed``, ``failed``, ``not_installed``),
        ``version`` (the module's ``__version__``, else the distribution's; None when unknown),
        ``stage`` of a failure (``import``, ``operator``, ``compare``; None otherwise), ``detail``
        (what was compared and the outcome, or why it did not run), ``error`` (the exception text,
        None when nothing raised), ``max_abs_error`` and ``seconds`` (import included).
    """
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "companion": name,
        "check": CHECKS[name],
        "status": "not_installed",
        "version": None,
        "stage": None,
        "detail": f"{name} is not installed in this environment",
        "error": None,
        "max_abs_error": None,
        "seconds": 0.0,
    }
    if not installed(name):
        result["seconds"] = time.perf_counter() - t0
        return result
    result["version"] = _file_version(name)
    fast = _fast_nms(torch, device) if name == "torchvision" else None
    if fast is not None:
        passed, detail, err = fast
        result.update(
            status="passed" if passed else "failed",
            stage=None if passed else "compare",
            detail=f"{detail} (its compiled extension loaded alone, without import {name})",
            max_abs_error=err,
            seconds=time.perf_counter() - t0,
        )
        return result
    try:
        module = importlib.import_module(name)
        result["version"] = str(getattr(module, "__version__", result["version"]))
    except Exception as exc:
        result.update(
            status="failed",
            stage="import",
            error=_error(exc),
            detail=f"import {name} failed, so {CHECKS[name]} cannot run",
        )
        result["seconds"] = time.perf_counter() - t0
        return result
    try:
        passed, detail, err = _CHECKS[name](torch, device)
    except Exception as exc:
        result.update(
            status="failed",
            stage="operator",
            error=_error(exc),
            detail=f"{CHECKS[name]} raised on {device}",
        )
    else:
        result.update(
            status="passed" if passed else "failed",
            stage=None if passed else "compare",
            detail=detail,
            max_abs_error=err,
        )
    result["seconds"] = time.perf_counter() - t0
    return result
