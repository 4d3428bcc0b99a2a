"""The datasheet table (compat/data/gpu_peaks.yaml): every issue-11 GPU is there with a source,
device names as NVML prints them find their row, and malformed data is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from dlsetup.compat.gpu_peaks import DATA, GpuPeaksError, load_peaks, parse_peaks, peak_for

#: NVML / torch.cuda.get_device_name spellings -> the row they must find.
NAMES = {
    "NVIDIA H100 80GB HBM3": "H100 SXM",
    "NVIDIA H100 PCIe": "H100 PCIe",
    "NVIDIA H100 NVL": "H100 NVL",
    "NVIDIA H200": "H200 SXM",
    "NVIDIA A100-SXM4-40GB": "A100 40GB",
    "NVIDIA A100-PCIE-40GB": "A100 40GB",
    "NVIDIA A100-SXM4-80GB": "A100 80GB SXM",
    "NVIDIA A100 80GB PCIe": "A100 80GB PCIe",
    "NVIDIA L4": "L4",
    "NVIDIA L40S": "L40S",
    "NVIDIA A10": "A10",
    "Tesla T4": "T4",
    "Tesla V100-SXM2-16GB": "V100 SXM2",
    "Tesla V100-PCIE-32GB": "V100 PCIe",
    "NVIDIA GeForce RTX 3090": "GeForce RTX 3090",
    "NVIDIA GeForce RTX 4090": "GeForce RTX 4090",
    "NVIDIA GeForce RTX 5090": "GeForce RTX 5090",
}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_device_names_find_their_datasheet_row(name: str) -> None:
    row = peak_for(name)
    assert row is not None and row.model == NAMES[name]
    assert row.source.startswith("NVIDIA ") and "http" in row.source


@pytest.mark.parametrize(
    "name", ["NVIDIA GeForce RTX 3090 Ti", "NVIDIA A10G", "NVIDIA L40", "NVIDIA RTX A6000"]
)
def test_lookalike_names_are_not_matched_to_another_gpu(name: str) -> None:
    assert peak_for(name) is None


def test_dense_tensor_figures_are_half_the_sparse_datasheet_figures() -> None:
    h100 = peak_for("NVIDIA H100 80GB HBM3")
    assert h100 is not None
    # Datasheet: TF32 989* / BF16 1,979* TFLOPS, "* With sparsity".
    assert (h100.tf32_tflops, h100.bf16_tflops) == (494.5, 989.5)
    assert h100.fp32_tflops == 67 and h100.memory_bandwidth_gbs == 3350


def test_volta_and_turing_have_no_tf32_or_bf16() -> None:
    for name in ("Tesla T4", "Tesla V100-SXM2-16GB"):
        row = peak_for(name)
        assert row is not None
        assert row.matmul_peak("tf32") is None and row.matmul_peak("bf16") is None
        assert row.matmul_peak("fp16") is not None


def test_only_the_rtx_5090_row_is_unverified() -> None:
    assert [p.model for p in load_peaks() if p.unverified] == ["GeForce RTX 5090"]


def _document() -> dict[str, Any]:
    loaded = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["gpus"][0].update(fp32_tflops=-1), "positive number"),
        (lambda d: d["gpus"][0].update(fp32_tflops=True), "positive number"),
        (lambda d: d["gpus"][0].update(source="nowhere"), "not in sources"),
        (lambda d: d["gpus"][0].pop("source"), "no source"),
        (lambda d: d["gpus"][0].update(match=["(unclosed"]), "bad pattern"),
        (lambda d: d["gpus"][0].update(surprise=1), "unknown key surprise"),
        (lambda d: d["gpus"][-1].pop("second_source"), "unverified needs a second_source"),
        (lambda d: d.update(schema=2), "schema: 1"),
    ],
)
def test_malformed_data_is_refused(mutate: Any, message: str) -> None:
    document = copy.deepcopy(_document())
    mutate(document)
    with pytest.raises(GpuPeaksError, match=message):
        parse_peaks(document)
