"""Datasheet peaks of NVIDIA GPUs (``compat/data/gpu_peaks.yaml``), validated on load.

:func:`peak_for` finds the row of a device name as NVML or ``torch.cuda.get_device_name`` prints
it (``"NVIDIA H100 80GB HBM3"``). Tensor figures are dense (no structured sparsity); see the data
file's header for how each figure was read off its datasheet.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlsetup.errors import DlsetupError

DATA = Path(__file__).with_name("data") / "gpu_peaks.yaml"

#: The throughput fields, TFLOPS (10^12 floating-point operations per second), dense.
MATMUL_FIELDS = ("fp32_tflops", "tf32_tflops", "bf16_tflops", "fp16_tflops")


class GpuPeaksError(DlsetupError):
    """``gpu_peaks.yaml`` is malformed (a bug in the shipped data, never a user error)."""


@dataclass(frozen=True)
class GpuPeak:
    """One GPU model's datasheet peaks.

    Attributes:
        model: ``"H100 SXM"``.
        match: regular expressions searched in a device name.
        fp32_tflops: non-tensor FP32 (FMA) peak.
        tf32_tflops / bf16_tflops / fp16_tflops: dense tensor-core matmul peaks (FP32
            accumulation for bf16/fp16), None where the GPU has no such mode.
        memory_bandwidth_gbs: device memory bandwidth, GB/s (10^9 bytes/s).
        source: the datasheet, as the data file's ``sources`` describes it.
        unverified: only a non-NVIDIA page vouches for some of the row's figures.
    """

    model: str
    match: tuple[str, ...]
    fp32_tflops: float
    tf32_tflops: float | None
    bf16_tflops: float | None
    fp16_tflops: float | None
    memory_bandwidth_gbs: float
    source: str
    unverified: bool = False

    def matmul_peak(self, dtype: str) -> float | None:
        """The peak of ``dtype`` (``fp32``, ``tf32``, ``bf16``, ``fp16``) in TFLOPS, or None."""
        value = getattr(self, f"{dtype}_tflops", None)
        return float(value) if isinstance(value, (int, float)) else None


def _number(row: dict[str, Any], key: str, *, optional: bool) -> float | None:
    value = row.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise GpuPeaksError(
            f"gpu_peaks.yaml: {row.get('model', '?')}: {key} must be a positive number, "
            f"not {value!r}"
        )
    return float(value)


def parse_peaks(document: object) -> tuple[GpuPeak, ...]:
    """Validate the parsed YAML document and build its rows.

    Raises:
        GpuPeaksError: a missing or unknown key, a bad number, a source not in ``sources``, a
            ``match`` pattern that does not compile, or ``unverified`` without ``second_source``.
    """
    if not isinstance(document, dict) or document.get("schema") != 1:
        raise GpuPeaksError("gpu_peaks.yaml: expected a mapping with schema: 1")
    sources = document.get("sources")
    rows = document.get("gpus")
    if not isinstance(sources, dict) or not isinstance(rows, list) or not rows:
        raise GpuPeaksError("gpu_peaks.yaml: needs a 'sources' mapping and a 'gpus' list")
    allowed = {
        "model",
        "match",
        *MATMUL_FIELDS,
        "memory_bandwidth_gbs",
        "source",
        "second_source",
        "unverified",
    }
    peaks = []
    for row in rows:
        if not isinstance(row, dict):
            raise GpuPeaksError(f"gpu_peaks.yaml: a row is not a mapping: {row!r}")
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise GpuPeaksError(f"gpu_peaks.yaml: {row.get('model')}: unknown key {unknown[0]}")
        model, match = row.get("model"), row.get("match")
        if not isinstance(model, str) or not model:
            raise GpuPeaksError(f"gpu_peaks.yaml: a row without a model: {row!r}")
        if not isinstance(match, list) or not match or not all(isinstance(m, str) for m in match):
            raise GpuPeaksError(f"gpu_peaks.yaml: {model}: match must be a list of patterns")
        for pattern in match:
            try:
                re.compile(pattern)
            except re.error as error:
                raise GpuPeaksError(f"gpu_peaks.yaml: {model}: bad pattern {pattern!r}") from error
        for key in ("source", "second_source"):
            if key in row and row[key] not in sources:
                raise GpuPeaksError(f"gpu_peaks.yaml: {model}: {key} {row[key]!r} not in sources")
        if "source" not in row:
            raise GpuPeaksError(f"gpu_peaks.yaml: {model}: no source")
        unverified = row.get("unverified", False) is True
        if unverified and "second_source" not in row:
            raise GpuPeaksError(f"gpu_peaks.yaml: {model}: unverified needs a second_source")
        fp32 = _number(row, "fp32_tflops", optional=False)
        bandwidth = _number(row, "memory_bandwidth_gbs", optional=False)
        assert fp32 is not None and bandwidth is not None
        peaks.append(
            GpuPeak(
                model=model,
                match=tuple(match),
                fp32_tflops=fp32,
                tf32_tflops=_number(row, "tf32_tflops", optional=True),
                bf16_tflops=_number(row, "bf16_tflops", optional=True),
                fp16_tflops=_number(row, "fp16_tflops", optional=True),
                memory_bandwidth_gbs=bandwidth,
                source=str(sources[row["source"]]),
                unverified=unverified,
            )
        )
    return tuple(peaks)


@functools.lru_cache(maxsize=1)
def load_peaks(path: Path = DATA) -> tuple[GpuPeak, ...]:
    """The shipped table (parsed once per process)."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise GpuPeaksError(f"cannot read {path}: {error}") from error
    return parse_peaks(document)


def peak_for(device_name: str, peaks: tuple[GpuPeak, ...] | None = None) -> GpuPeak | None:
    """The first row whose pattern occurs in ``device_name``, or None for an unknown GPU."""
    for peak in load_peaks() if peaks is None else peaks:
        if any(re.search(pattern, device_name) for pattern in peak.match):
            return peak
    return None
