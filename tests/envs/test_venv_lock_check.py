"""``dlsetup lock --check pylock.NAME.toml``: a venv lock replays the request its ``[tool.dlsetup]``
table records and says current (exit 0) or stale (exit 1, one reason a line), like conda locks.

Hermetic: the locks come from the real ``dlsetup lock --backend venv`` (real uv) against the local
PyTorch-shaped index; a lock whose GPUs came from the driver is checked against the fake NVIDIA
driver library with another GPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dlsetup.output import load_schema
from tests.support.fake_nvml import nvml_env
from tests.support.proc import run_cli
from tests.support.torch_index import TorchIndex

CUDA_13_DRIVER = {"driver": "580.65.06", "cuda": "13000"}
PASCAL = {"cc": "6.1", "gpu_names": "NVIDIA GeForce GTX 1080"}
ADA = {"cc": "8.9", "gpu_names": "NVIDIA GeForce RTX 4090"}


@pytest.fixture(scope="module")
def pascal_lock(torch_index: TorchIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lock for a Pascal GPU on a CUDA 13.0 driver, named with --cuda/--gpu-arch: cu126."""
    out = tmp_path_factory.mktemp("lock")
    proc = run_cli(
        "lock", "pytorch", "--backend", "venv", "--cuda", "13.0", "--gpu-arch", "6.1",
        "--platform", "linux-64", "--python-version", "3.12", "--torch-index-url",
        torch_index.torch_url, "--index-url", torch_index.pypi_url, "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out / "pylock.pytorch-cu126.toml"


def check(lock: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    proc = run_cli("lock", "--check", str(lock), *args, "--json", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.lock-check"))
    return proc.returncode, dict(doc["data"])


def kinds(data: dict[str, Any]) -> list[str]:
    return [d["kind"] for d in data["differences"]]


def test_a_fresh_venv_lock_is_current(pascal_lock: Path) -> None:
    code, data = check(pascal_lock)
    assert code == 0 and data["current"] and data["differences"] == []
    assert (data["target"], data["variant"], data["cuda"]) == ("pytorch", "cuda", "13.0")
    assert data["platforms"] == ["linux-64"] and data["environment_file"] == str(pascal_lock)
    text = run_cli("lock", "--check", str(pascal_lock))
    assert text.returncode == 0
    assert f"{pascal_lock} is current (linux-64; cuda, CUDA 13.0)." in text.stdout


def test_another_cuda_version_is_stale_with_the_reason(pascal_lock: Path) -> None:
    code, data = check(pascal_lock, "--cuda", "12.4")
    assert code == 1 and not data["current"]
    assert "cuda" in kinds(data)
    assert "locked for CUDA 13.0, now CUDA 12.4 (--cuda 12.4 was asked for)" in [
        d["message"] for d in data["differences"]
    ]


def test_another_gpu_is_stale_naming_the_new_pytorch_variant(pascal_lock: Path) -> None:
    code, data = check(pascal_lock, "--gpu-arch", "8.9")
    assert code == 1
    assert kinds(data)[:2] == ["gpus", "torch"]
    torch = next(d["message"] for d in data["differences"] if d["kind"] == "torch")
    assert torch.startswith("locked PyTorch 2.14 (cu126), now 2.14 (cu130)")
    proc = run_cli("lock", "--check", str(pascal_lock), "--gpu-arch", "8.9")
    assert proc.returncode == 1
    assert "is stale:" in proc.stdout
    assert "Lock it again: dlsetup lock pytorch --backend venv --variant cuda --cuda 13.0" in (
        proc.stdout
    )
    again = next(line for line in proc.stdout.splitlines() if line.startswith("Lock it again: "))
    assert "--gpu-arch 8.9" in again, again  # the GPU asked for now is kept in the new lock


def test_another_target_or_torch_version_is_stale(pascal_lock: Path) -> None:
    code, data = check(pascal_lock, "both")
    assert code == 1 and kinds(data)[0] == "target"
    assert data["differences"][0]["message"] == "locked for target pytorch, asked for both"
    code, data = check(pascal_lock, "--torch-version", "2.13")
    assert code == 1
    assert data["differences"] == [
        {
            "kind": "torch",
            "platform": None,
            "message": "locked PyTorch 2.14 (cu126), now 2.13 (cu126): --cuda 13.0 was asked "
            "for; PyTorch 2.13 built for CUDA 12.6; --torch-version 2.13",
        }
    ]


def test_a_torch_version_refused_now_exits_2(pascal_lock: Path, tmp_path: Path) -> None:
    proc = run_cli("lock", "--check", str(pascal_lock), "--torch-version", "1.99")
    assert proc.returncode == 2, proc.stderr
    assert "--torch-version 1.99: dlsetup's data knows no such PyTorch release" in proc.stderr
    proc = run_cli("create", "--from-lock", str(pascal_lock), "--backend", "venv",
                   "--torch-version", "2.14", "--prefix", str(tmp_path / "env"))  # fmt: skip
    assert proc.returncode == 2 and "--torch-version does not apply to --from-lock" in proc.stderr
    assert not (tmp_path / "env").exists()


def test_a_lock_whose_table_was_edited_is_stale(pascal_lock: Path, tmp_path: Path) -> None:
    # the wheels' versions are checked by packaging's PEP 751 validation (exit 2); the table
    # against the lock's own torch here
    edited = tmp_path / pascal_lock.name
    text = pascal_lock.read_text()
    assert 'torch_release = "2.14"' in text
    edited.write_text(text.replace('torch_release = "2.14"', 'torch_release = "2.13"'))
    code, data = check(edited)
    assert code == 1 and kinds(data) == ["torch", "environment"]
    assert data["differences"][1]["message"].startswith(
        "the lock's torch 2.14.0+cu126 is not the release 2.13 its [tool.dlsetup] table records"
    )


def test_a_driver_read_lock_is_checked_against_this_machines_gpus(
    fake_nvml_dir: Path, torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    pascal = {**nvml_env(fake_nvml_dir, **CUDA_13_DRIVER, **PASCAL), **isolated_dirs}
    proc = run_cli(
        "lock", "pytorch", "--backend", "venv", "--platform", "linux-64", "--python-version",
        "3.12", "--torch-index-url", torch_index.torch_url, "--index-url", torch_index.pypi_url,
        "--output", str(tmp_path), env=pascal,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lock = tmp_path / "pylock.pytorch-cu126.toml"
    code, data = check(lock, env=pascal)
    assert code == 0, data["differences"]
    assert any("read from this machine" in n for n in data["notes"])
    ada = {**nvml_env(fake_nvml_dir, **CUDA_13_DRIVER, **ADA), **isolated_dirs}
    code, data = check(lock, env=ada)
    assert code == 1 and kinds(data)[:2] == ["gpus", "torch"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("this is [not toml", "is not TOML"),
        (  # a valid PEP 751 lock that uv wrote, not dlsetup
            'lock-version = "1.0"\ncreated-by = "uv"\npackages = []\n',
            "its [tool.dlsetup] table has no request",
        ),
        ('lock-version = "1.0"\ncreated-by = "uv"\n', "is not a valid PEP 751 lock"),
    ],
)
def test_a_malformed_venv_lock_exits_2(tmp_path: Path, content: str, says: str) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(content)
    proc = run_cli("lock", "--check", str(lock))
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr


def test_a_recorded_request_that_is_not_dlsetups_exits_2(pascal_lock: Path, tmp_path: Path) -> None:
    broken = tmp_path / pascal_lock.name
    shutil.copy(pascal_lock, broken)
    text = broken.read_text()
    start = text.index("request = {")
    broken.write_text(text[:start] + 'request = { target = "pytorch", variant = 3 }\n')
    proc = run_cli("lock", "--check", str(broken))
    assert proc.returncode == 2 and "request.variant is not a string" in proc.stderr, proc.stderr
