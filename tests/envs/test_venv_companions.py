"""Issue 22 items 1 and 2: a venv lock carries PyTorch's companions (torchvision, torchaudio) from
the same index and of the same variant as torch, and its variant label is checked against what
uv resolved, before anything is downloaded.

Hermetic: the local PyTorch-shaped indexes (``+cpu``/``+cu126``/``+cu130`` torch, torchvision and
torchaudio) and a small PyPI whose Linux torch is a CUDA build without a local version (its
``nvidia-*`` requirements and ``triton``), as PyPI's is (:mod:`tests.support.torch_index`); the
real uv resolves; the CLI runs in a subprocess.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dlsetup.envs.venv.pylock import load_toml, parse_pylock
from dlsetup.output import load_schema
from tests.support.http_server import QuietHandler, serve
from tests.support.proc import run_cli
from tests.support.torch_index import (
    LINUX,
    PYPI_TORCH,
    TORCHAUDIO,
    TORCHVISION,
    TorchIndex,
    _torch_files,
)
from tests.support.user_config import block_network, own_home
from tests.support.wheels import Wheel, build_index

LINUX_64 = ("--platform", "linux-64")


def lock(
    env: dict[str, str], out: Path, *args: str, torch_url: str, pypi_url: str
) -> tuple[int, str, str]:
    proc = run_cli(
        "lock", "pytorch", "--backend", "venv", *LINUX_64, "--torch-index-url", torch_url,
        "--index-url", pypi_url, "--output", str(out), *args, env=env,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def packages(lock_path: Path) -> dict[str, str]:
    return {p["name"]: p["version"] for p in load_toml(lock_path.read_text())["packages"]}


def json_data(stdout: str) -> dict[str, Any]:
    doc = json.loads(stdout)
    jsonschema.validate(doc, load_schema("dlsetup.venv-lock"))
    return dict(doc["data"])


# --- item 1: companions on the venv path ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "variant"),
    [
        (("--variant", "cpu"), "cpu"),
        (("--variant", "cuda", "--cuda", "13.0", "--gpu-arch", "8.9"), "cu130"),
        (("--variant", "cuda", "--cuda", "13.0", "--gpu-arch", "6.1"), "cu126"),
    ],
)
def test_the_companions_come_from_torchs_index_in_torchs_variant(
    torch_index: TorchIndex,
    tmp_path: Path,
    isolated_dirs: dict[str, str],
    args: tuple[str, ...],
    variant: str,
) -> None:
    code, out, err = lock(
        isolated_dirs, tmp_path, *args, torch_url=torch_index.torch_url,
        pypi_url=torch_index.pypi_url,
    )  # fmt: skip
    assert code == 0, err
    path = tmp_path / f"pylock.pytorch-{variant}.toml"
    found = packages(path)
    assert found["torchvision"] == f"{TORCHVISION}+{variant}"
    assert found["torchaudio"] == f"{TORCHAUDIO}+{variant}"
    assert found["torch"].endswith(f"+{variant}")
    text = path.read_text()
    assert (
        f"#   Companions: torchvision {TORCHVISION}+{variant}, torchaudio {TORCHAUDIO}+{variant} "
        "(the variant and release of torch's).\n"
    ) in text
    # where each package came from: the companions from torch's own index
    assert f"#   From {torch_index.variant_url(variant)}: " in text
    assert f"torchvision {TORCHVISION}+{variant}" in out


def test_both_carries_the_companions_beside_tensorflow(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    proc = run_cli(
        "lock", "both", "--backend", "venv", "--variant", "cpu", *LINUX_64, "--torch-index-url",
        torch_index.torch_url, "--index-url", torch_index.pypi_url, "--output", str(tmp_path),
        "--json", env=isolated_dirs,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json_data(proc.stdout)
    [platform] = data["platforms"]
    assert "torchvision==0.29.*" in platform["requirements"]
    assert "torchaudio==2.11.*" in platform["requirements"]
    assert platform["build"]["companions"] == [
        {"name": "torchvision", "version": f"{TORCHVISION}+cpu"},
        {"name": "torchaudio", "version": f"{TORCHAUDIO}+cpu"},
    ]
    assert platform["build"]["fits_plan"] is True
    sources = {p["name"]: p.get("source") for p in platform["packages"]}
    assert sources["torchvision"] == torch_index.variant_url("cpu")
    assert sources["numpy"] == torch_index.pypi_url
    assert {"tensorflow", "torch", "torchvision", "torchaudio"} <= set(sources)


def _index(root: Path, wheels: list[Wheel]) -> str:
    return build_index(root, wheels)


def _cpu_torch(release: str = "2.14.0") -> Wheel:
    local = f"{release}+cpu"
    return Wheel(
        "torch",
        local,
        tag=f"cp311-cp311-{LINUX}",
        requires_python=">=3.10",
        files=_torch_files(local, "cpu", None),
    )


def _companion(name: str, version: str, floor: str) -> Wheel:
    return Wheel(name, version, (f"torch>={floor}",), tag=f"py3-none-{LINUX}")


def test_torchaudio_missing_from_torchs_index_is_left_out_and_said(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """A mirror with torch and torchvision only: PyPI's torchaudio (another variant) is not taken
    beside a +cpu torch; the lock says torchaudio is left out, and why."""
    mirror = _index(
        tmp_path / "mirror",
        [_cpu_torch(), _companion("torchvision", f"{TORCHVISION}+cpu", "2.14.0")],
    )
    code, out, err = lock(
        isolated_dirs, tmp_path, "--variant", "cpu", "--torch-version", "2.14",
        torch_url=mirror, pypi_url=torch_index.pypi_url,
    )  # fmt: skip
    assert code == 0, err
    path = tmp_path / "pylock.pytorch-cpu.toml"
    found = packages(path)
    assert found["torchvision"] == f"{TORCHVISION}+cpu"
    assert "torchaudio" not in found
    note = (
        f"torchaudio left out on linux-64: torchaudio {TORCHAUDIO} is PyPI's build (no local "
        "version), torch 2.14.0+cpu is the cpu build: a companion loads only beside a torch of "
        "its own variant"
    )
    assert f"# Companions: {note}.\n" in path.read_text()
    assert f"  Companions: {note}\n" in out
    assert parse_pylock(path).tool["companion_notes"] == [note]


def test_a_torchvision_of_another_variant_stops_the_lock_naming_what_would_match(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """torch 2.14.0+cpu alone on a directory of wheels, PyPI's CUDA torchvision beside it (the
    shape of this project's build machines): refused before anything is downloaded, with the
    pair the default index has and the options that lock it."""
    only_torch = _index(tmp_path / "wheels", [_cpu_torch()])
    code, out, err = lock(
        isolated_dirs, tmp_path / "out", "--variant", "cpu", "--torch-version", "2.14",
        torch_url=only_torch, pypi_url=torch_index.pypi_url,
    )  # fmt: skip
    assert code == 2, (out, err)
    assert (
        f"Error: linux-64: torch and torchvision do not pair on these sources: torchvision "
        f"{TORCHVISION} is PyPI's build (no local version), torch 2.14.0+cpu is the cpu build"
    ) in err
    assert "nothing was downloaded" in err
    assert (
        f"Fix: torch {PYPI_TORCH} and torchvision {TORCHVISION} (torch {PYPI_TORCH}, PyPI's CUDA "
        f"13.0 build (3 CUDA libraries as wheels: nvidia-*, triton), which also runs on a CPU) "
        f"go together on {torch_index.pypi_url} alone: --torch-version 2.14 --torch-index-url "
        f"{torch_index.pypi_url} --accept-variant cu130"
    ) in err
    assert not (tmp_path / "out").exists()


# --- item 2: labels that are true -------------------------------------------------------------------


def test_a_cpu_lock_from_pypi_is_refused_and_never_labelled_cpu(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """PyPI as the PyTorch index: its Linux torch is a CUDA build; a cpu lock stops (exit 2) naming
    it, before anything is downloaded; nothing is written."""
    code, out, err = lock(
        isolated_dirs, tmp_path, "--variant", "cpu", "--torch-version", "2.14",
        torch_url=torch_index.pypi_url, pypi_url=torch_index.pypi_url,
    )  # fmt: skip
    assert code == 2, (out, err)
    assert (
        f"Error: linux-64: the cpu build of PyTorch is not on the sources; they have torch "
        f"{PYPI_TORCH}, PyPI's CUDA 13.0 build (3 CUDA libraries as wheels: nvidia-*, triton), "
        f"which also runs on a CPU, from {torch_index.pypi_url}; nothing was downloaded"
    ) in err
    assert "Fix: lock it, labelled cu130: --accept-variant cu130; or name an index with cpu " in err
    assert list(tmp_path.glob("pylock.*")) == []


def test_accepting_pypis_cuda_build_labels_the_lock_as_what_it_holds(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    code, out, err = lock(
        isolated_dirs, tmp_path, "--variant", "cpu", "--torch-version", "2.14",
        "--accept-variant", "cu130", "--json",
        torch_url=torch_index.pypi_url, pypi_url=torch_index.pypi_url,
    )  # fmt: skip
    assert code == 0, err
    data = json_data(out)
    assert data["name"] == "pytorch-cu130"
    assert data["torch"]["variant"] == "cu130"
    assert data["torch"]["planned_variant"] == "cpu"
    assert data["torch"]["accepted_variant"] == "cu130"
    [platform] = data["platforms"]
    build = platform["build"]
    assert (build["variant"], build["fits_plan"], build["pypi_build"]) == ("cu130", False, True)
    assert build["cuda_libraries"] == ["nvidia-cuda-runtime", "nvidia-cudnn-cu13", "triton"]
    assert isinstance(platform["download_bytes"], int)
    # PyPI's companions name no CUDA version in their metadata: said, not guessed
    assert build["unchecked"] == [
        f"{name} {version} is PyPI's build, whose metadata does not name the CUDA version it was "
        "built for (torch's: 13.0); dlsetup doctor checks the pair once installed"
        for name, version in (("torchvision", TORCHVISION), ("torchaudio", TORCHAUDIO))
    ]
    path = tmp_path / "pylock.pytorch-cu130.toml"
    text = path.read_text()
    assert "# PyTorch 2.14, wheel variant cu130.\n" in text
    assert "wheel variant cpu" not in text
    assert (
        "#   Not the variant planned: cpu was planned; the sources hold no such build, and cu130 "
        "was accepted (--accept-variant).\n"
    ) in text
    assert f"#   Unchecked: torchvision {TORCHVISION} is PyPI's build, whose metadata" in text
    tool = parse_pylock(path).tool
    assert (tool["torch_variant"], tool["planned_variant"]) == ("cu130", "cpu")
    assert tool["request"]["accept_variant"] == "cu130"
    # lock --check replays the plan (cpu, another variant accepted): current, not stale
    check = run_cli("lock", "--check", str(path), env=isolated_dirs)
    assert check.returncode == 0, check.stdout + check.stderr
    # stale (another release asked now): the command that locks again keeps the acceptance
    stale = run_cli("lock", "--check", str(path), "--torch-version", "2.13", env=isolated_dirs)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "--torch-version 2.13 " in stale.stdout
    assert " --accept-variant cu130" in stale.stdout


def test_accepting_another_variant_than_the_one_found_still_stops(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    code, _, err = lock(
        isolated_dirs, tmp_path, "--variant", "cpu", "--torch-version", "2.14",
        "--accept-variant", "cu126",
        torch_url=torch_index.pypi_url, pypi_url=torch_index.pypi_url,
    )  # fmt: skip
    assert code == 2
    assert "(--accept-variant cu126 names another)" in err
    code, _, err = lock(
        isolated_dirs, tmp_path, "--variant", "cpu", "--torch-version", "2.14",
        "--accept-variant", "any",
        torch_url=torch_index.pypi_url, pypi_url=torch_index.pypi_url,
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "pylock.pytorch-cu130.toml").exists()


def test_accept_variant_is_refused_with_the_conda_backend(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    proc = run_cli(
        "lock", "pytorch", "--accept-variant", "any", "--output", str(tmp_path), env=isolated_dirs
    )
    assert proc.returncode == 2
    assert "--accept-variant only applies to --backend venv" in proc.stderr


# --- the label rules, on resolutions as uv writes them ------------------------------------------


@pytest.mark.parametrize(
    ("packages", "label", "variant", "fits"),
    [
        ({"torch": "2.14.0+cpu"}, "cpu", "cpu", True),
        # a +cpu torch beside CUDA libraries (tensorflow[and-cuda]'s) is no cpu lock
        ({"torch": "2.14.0+cpu", "nvidia-cudnn-cu12": "9.1"}, "cpu", "cpu", False),
        (
            {"torch": "2.14.0", "nvidia-cuda-runtime": "13.0.96", "triton": "3.6"},
            "cpu",
            "cu130",
            False,
        ),
        ({"torch": "2.14.0", "nvidia-cuda-runtime-cu12": "12.6.77"}, "cu126", "cu126", True),
        # PyPI's build without its runtime named: the knowledge base's default CUDA for 2.14
        ({"torch": "2.14.0", "triton": "3.6"}, "cu126", "cu130", False),
        ({"torch": "2.14.0"}, "cpu", "cpu", True),  # PyPI's macOS / Windows build
        ({"torch": "2.14.0+cu126"}, "cu130", "cu126", False),
    ],
)
def test_a_label_is_checked_against_the_build_resolved(
    packages: dict[str, str], label: str, variant: str, fits: bool
) -> None:
    from dlsetup.envs.venv.resolved import fits_label, resolved_build

    build = resolved_build(packages)
    assert build is not None
    assert build.variant == variant
    assert fits_label(build, label) is fits


def test_the_download_size_is_said_when_over_a_gib() -> None:
    from dlsetup.envs.venv.lock import VENV_PLATFORMS, PlatformLock, VenvLockRequest
    from dlsetup.envs.venv.lock import variant_to_lock as accepted
    from dlsetup.envs.venv.resolved import resolved_build
    from dlsetup.errors import NoFittingBuildError

    build = resolved_build({"torch": "2.14.1", "nvidia-cuda-runtime": "13.0.96", "triton": "3.6"})

    def platform(size: int) -> PlatformLock:
        linux = VENV_PLATFORMS["linux-64"]
        return PlatformLock(linux, "https://pypi.org/simple", (), (), 1.0, build, "cpu", size)

    with pytest.raises(NoFittingBuildError) as big:
        accepted(VenvLockRequest("pytorch"), (platform(2_790_000_000),))
    assert "from https://pypi.org/simple; up to 2.6 GB of wheels; nothing was" in str(big.value)
    with pytest.raises(NoFittingBuildError) as small:
        accepted(VenvLockRequest("pytorch"), (platform(900_000_000),))
    assert "of wheels" not in str(small.value)
    assert accepted(VenvLockRequest("pytorch", accept_variant="cu130"), (platform(1),)) == "cu130"


# --- a mirror the user configured for pip ------------------------------------------------------


@pytest.fixture
def pip_mirror_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose pip.conf is the test's own (this machine's pip and uv settings out of the
    way), PyTorch's index out of reach at once (HTTPS through a proxy at a closed port)."""
    home = own_home(tmp_path, monkeypatch)
    block_network(monkeypatch)
    return home


def test_a_mirror_with_an_older_release_and_a_package_it_cannot_serve(
    pip_mirror_home: Path, torch_index: TorchIndex, tmp_path: Path
) -> None:
    """This machine's shape, in small: PyTorch's index out of reach; pip configured with an extra
    index that holds an older torch with its torchvision (the data's newest release is not
    there) and a numpy with no wheel for the platform; PyPI beside it. torch comes from the
    mirror at its release (said in the lock), numpy from PyPI (as pip would take it), and
    nothing of PyPI's CUDA torch of the newest release."""
    from click.testing import CliRunner

    from dlsetup.cli import cli

    mirror = _index(
        tmp_path / "mirror",
        [
            _cpu_torch(),
            _companion("torchvision", f"{TORCHVISION}+cpu", "2.14.0"),
            _companion("torchaudio", f"{TORCHAUDIO}+cpu", "2.11.0"),
            Wheel("numpy", "2.4.0", tag="cp311-cp311-manylinux_2_34_x86_64"),
        ],
    )
    conf = pip_mirror_home / ".config/pip/pip.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"[global]\nindex-url = {torch_index.pypi_url}\nextra-index-url = {mirror}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["lock", "pytorch", "--backend", "venv", "--variant", "cpu", *LINUX_64,
         "--python-version", "3.11", "--output", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    path = out / "pylock.pytorch-cpu.toml"
    found = packages(path)
    assert (found["torch"], found["torchvision"]) == ("2.14.0+cpu", f"{TORCHVISION}+cpu")
    assert found["numpy"] == "2.3.4"
    text = path.read_text()
    assert "is not on the sources; 2.14 is the newest release there with a torchvision" in text
    assert f"#   From {mirror}: torch, torchvision, torchaudio\n" in text
    assert f"#   From {torch_index.pypi_url}: ipykernel, numpy\n" in text


def test_create_says_the_variant_it_took_before_it_builds(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    proc = run_cli(
        "create", "pytorch", "--backend", "venv", "--variant", "cpu", "--torch-version", "2.14",
        "--torch-index-url", torch_index.pypi_url, "--index-url", torch_index.pypi_url,
        "--accept-variant", "any", "--prefix", str(tmp_path / "env"), "--no-smoke",
        "--no-jupyter", env=isolated_dirs,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr
    line = (
        f"  Source: linux-64: no cpu build of PyTorch on the sources; torch {PYPI_TORCH}, PyPI's "
        "CUDA 13.0 build (3 CUDA libraries as wheels: nvidia-*, triton), which also runs on a "
        f"CPU, from {torch_index.pypi_url}, is locked as cu130 (--accept-variant)\n"
    )
    assert line in said
    assert said.index(line) < said.index("Installing ")


# --- over HTTP: what "before anything is downloaded" means -------------------------------------


@pytest.fixture
def served(torch_index: TorchIndex) -> Iterator[tuple[str, list[str]]]:
    """The PyTorch-shaped indexes and the small PyPI served over HTTP on 127.0.0.1, as PyTorch's
    index and PyPI serve theirs (index pages, PEP 658 ``.metadata`` files, wheels); every path
    requested is recorded."""
    requested: list[str] = []

    class Recording(QuietHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

    with serve(torch_index.root, Recording) as (url, _):
        yield url, requested


def test_over_http_the_variant_is_judged_from_metadata_without_fetching_a_wheel(
    served: tuple[str, list[str]], tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """A cpu lock against PyPI served over HTTP stops on its CUDA torch having read index pages
    and ``.metadata`` files only: not one wheel was fetched. A cpu lock against the cpu index
    served the same way resolves torch and both companions of its variant."""
    base, requested = served
    env = {**isolated_dirs, "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "NO_PROXY": "127.0.0.1"}
    pypi = f"{base}/pypi/simple"
    code, out, err = lock(
        env, tmp_path / "refused", "--variant", "cpu", "--torch-version", "2.14",
        torch_url=pypi, pypi_url=pypi,
    )  # fmt: skip
    assert code == 2, (out, err)
    assert "PyPI's CUDA 13.0 build" in err
    assert any(p.endswith(".whl.metadata") for p in requested), requested
    assert not [p for p in requested if p.endswith(".whl")]
    code, out, err = lock(
        env, tmp_path / "cpu", "--variant", "cpu", "--torch-version", "2.14",
        torch_url=f"{base}/whl/{{variant}}/simple", pypi_url=pypi,
    )  # fmt: skip
    assert code == 0, err
    found = packages(tmp_path / "cpu" / "pylock.pytorch-cpu.toml")
    assert (found["torch"], found["torchvision"], found["torchaudio"]) == (
        "2.14.0+cpu",
        f"{TORCHVISION}+cpu",
        f"{TORCHAUDIO}+cpu",
    )
    assert not [p for p in requested if p.endswith(".whl")]
