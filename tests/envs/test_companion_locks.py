"""PyTorch's companions in the shipped environments (issue 14): torchvision gets PyTorch's variant
(the CPU build, the same CUDA line, the osx-arm64 build for MPS), never a CPU torchvision beside a
CUDA PyTorch; torchaudio, which conda-forge builds for pytorch 2.10 only, is left out and said so;
a platform without a companion build loses the companion there, with a selector and a note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.compat import knowledge_base
from dlsetup.envs.conda.request import LockRequest, lock_target
from dlsetup.envs.files import spec as spec_mod
from tests.envs.channel import build_channel

TORCHAUDIO_LEFT_OUT = (
    "# Companions: torchaudio left out: conda-forge's newest torchaudio, 2.11.0, is built for "
    "pytorch 2.10 (pytorch's run_exports pin that release), not for conda-forge's pytorch 2.13.0; "
    "PyPI has no torchaudio after 2.11 either.\n"
)


def lock(channel: str, out: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["lock", *args, "--channel", channel, "--output", str(out), "--force"]
    )
    return result.exit_code, result.output


def locked(path: Path) -> dict[tuple[str, str], str]:
    """``{(platform, name): build}`` of a conda-lock file."""
    from conda_lock.lockfile import parse_conda_lock_file

    return {(p.platform, p.name): p.build for p in parse_conda_lock_file(path).package}


@pytest.mark.parametrize("target", ["pytorch", "both"])
def test_cpu_locks_get_the_cpu_torchvision_and_say_torchaudio_is_left_out(
    channel_url: str, tmp_path: Path, target: str
) -> None:
    code, out = lock(channel_url, tmp_path, target, "--variant", "cpu", "--all-platforms")
    assert code == 0, out
    builds = locked(tmp_path / f"{target}-cpu.conda-lock.yml")
    platforms = {p for p, _ in builds}
    assert platforms == set(spec_mod.variant_platforms(target, "cpu"))
    for platform in platforms:
        assert builds[(platform, "pytorch")].startswith("cpu_")
        assert builds[(platform, "torchvision")] == "cpu_py312_h0_1"
    assert not any(name == "torchaudio" for _, name in builds)
    text = (tmp_path / f"{target}-cpu.conda-lock.yml").read_text()
    assert TORCHAUDIO_LEFT_OUT in text
    assert "# Companions: torchvision follows pytorch's cpu build (cpu_* on linux-64, " in text
    assert TORCHAUDIO_LEFT_OUT in (tmp_path / f"{target}-cpu.environment.yml").read_text()
    # the command says it too, in text and in --json
    note = TORCHAUDIO_LEFT_OUT.removeprefix("# Companions: ").rstrip("\n")
    assert f"  Companions: {note}\n" in out
    result = CliRunner().invoke(
        cli, ["lock", target, "--variant", "cpu", "--platform", "linux-64", "--channel",
              channel_url, "--output", str(tmp_path / "j"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["data"]["companion_notes"]
    assert any(n.startswith("torchaudio left out") for n in notes)


def test_the_mps_lock_gets_the_osx_arm64_torchvision(channel_url: str, tmp_path: Path) -> None:
    code, out = lock(
        channel_url, tmp_path, "pytorch", "--variant", "mps", "--platform", "osx-arm64"
    )
    assert code == 0, out
    builds = locked(tmp_path / "pytorch-mps.conda-lock.yml")
    assert builds[("osx-arm64", "torchvision")] == "cpu_py312_h0_1"
    assert ("osx-arm64", "torchaudio") not in builds


def test_cuda_locks_get_torchvision_of_pytorchs_line_on_every_platform(
    channel_url: str, tmp_path: Path
) -> None:
    # a Pascal card: CUDA 12.9 on Linux, 12.8 on Windows, though the driver runs CUDA 13.0
    args = ("pytorch", "--variant", "cuda", "--cuda", "13.0", "--gpu-arch", "6.1")
    code, out = lock(channel_url, tmp_path, *args, "--all-platforms")
    assert code == 0, out
    builds = locked(tmp_path / "pytorch-cuda.conda-lock.yml")
    expected = {"linux-64": "129", "linux-aarch64": "129", "win-64": "128"}
    for platform, line in expected.items():
        assert builds[(platform, "pytorch")].startswith(f"cuda{line}_")
        assert builds[(platform, "torchvision")] == f"cuda{line}_py312_h0_1"
    env_file = (tmp_path / "pytorch-cuda.environment.yml").read_text()
    assert "  - torchvision * cuda129_*  # [linux64]\n" in env_file
    assert "  - torchvision * cuda128_*  # [win64]\n" in env_file
    text = (tmp_path / "pytorch-cuda.conda-lock.yml").read_text()
    assert (
        "# Companions: torchvision follows pytorch's cuda build (cuda129_* on linux-64, "
        "cuda129_* on linux-aarch64, cuda128_* on win-64).\n" in text
    )
    assert TORCHAUDIO_LEFT_OUT in text


@pytest.mark.parametrize(("gpu", "line"), [("6.1", "129"), ("12.0", "130")])
def test_both_cuda_gets_torchvision_of_pytorchs_line(
    channel_url: str, tmp_path: Path, gpu: str, line: str
) -> None:
    args = ("both", "--variant", "cuda", "--cuda", "13.0", "--gpu-arch", gpu)
    code, out = lock(channel_url, tmp_path, *args, "--platform", "linux-64")
    if line == "130":  # TensorFlow has no CUDA 13 build: the pair is CUDA 12.9 + 12.8
        line = "129"
    assert code == 0, out
    builds = locked(tmp_path / "both-cuda.conda-lock.yml")
    assert builds[("linux-64", "pytorch")].startswith(f"cuda{line}_")
    assert builds[("linux-64", "torchvision")] == f"cuda{line}_py312_h0_1"
    assert builds[("linux-64", "tensorflow")].startswith("cuda128")


def test_a_channel_with_only_cpu_torchvision_fails_the_cuda_lock_naming_torchvision(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    channel = build_channel(tmp_path_factory.mktemp("cpu-torchvision"), torchvision_cuda=False)
    args = ("pytorch", "--variant", "cuda", "--cuda", "13.0", "--platform", "linux-64")
    code, out = lock(channel, tmp_path / "out", *args)
    assert code == 4, out
    flat = " ".join(out.split())
    assert (
        "Error: no torchvision build of PyTorch's CUDA line (torchvision * cuda130_*) on "
        f"{channel} for linux-64; a CPU torchvision beside a CUDA PyTorch is not what the "
        "cuda variant installs" in flat
    )
    assert "Fix: use --variant cpu, or a channel with torchvision's CUDA builds" in flat
    assert not (tmp_path / "out" / "pytorch-cuda.conda-lock.yml").exists()
    # the CPU lock from the same channel is whole
    code, out = lock(channel, tmp_path / "cpu", "pytorch", "--variant", "cpu")
    assert code == 0, out


def test_torchaudio_asked_for_beside_pytorch_2_13_is_refused_naming_it(
    channel_url: str, tmp_path: Path
) -> None:
    # a user's own file: conda-forge's torchaudio is pinned to pytorch 2.10, and never solved
    # around by taking another pytorch or a build of another variant
    env = tmp_path / "audio.yml"
    env.write_text(
        "name: audio\nchannels: [conda-forge]\ndependencies:\n  - python 3.12.*\n"
        "  - pytorch * cpu_*\n  - torchaudio\n"
    )
    code, out = lock(channel_url, tmp_path / "out", str(env), "--variant", "cpu")
    assert code == 4, out
    assert "torchaudio" in out.split("\n  solver:")[0]


def test_a_platform_without_a_companion_build_leaves_it_out_there_and_says_so(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were torchaudio rebuilt for pytorch 2.13 (it is built for Linux and macOS, not win-64):
    the shipped file's torchaudio is locked with PyTorch's variant where it exists, and left out
    on win-64 with a selector and a note, not swapped for something else."""
    channel = build_channel(tmp_path_factory.mktemp("audio-2.13"), torchaudio_pytorch="2.13")
    kb = knowledge_base()
    rebuilt = kb.conda_forge_companions["torchaudio"]._replace(pytorch="2.13", note=None)
    patched = kb._replace(
        conda_forge_companions={**kb.conda_forge_companions, "torchaudio": rebuilt}
    )
    monkeypatch.setattr("dlsetup.compat.knowledge_base", lambda: patched)
    monkeypatch.setattr("dlsetup.compat.lines.knowledge_base", lambda: patched)
    source = spec_mod.environment_file("pytorch", "cpu").read_text()
    shipped = tmp_path / "pytorch-cpu.yml"
    shipped.write_text(
        source.replace(
            "  - torchvision * cpu_*\n", "  - torchvision * cpu_*\n  - torchaudio * cpu_*\n"
        )
    )
    monkeypatch.setattr(spec_mod, "environment_file", lambda target, variant: shipped)

    request = LockRequest(
        target="pytorch",
        variant="cpu",
        cuda=None,
        platforms=(),
        all_platforms=True,
        python_version=None,
        channels=(channel,),
        engine="rattler",
    )
    result, _ = lock_target(request, tmp_path / "out", force=True)
    builds = locked(result.lock_path)
    for platform in ("linux-64", "linux-aarch64", "osx-64", "osx-arm64"):
        assert builds[(platform, "torchaudio")] == "cpu_py312h0_0"
    assert ("win-64", "torchaudio") not in builds
    assert builds[("win-64", "torchvision")] == "cpu_py312_h0_1"
    note = "torchaudio left out on win-64: conda-forge builds no CPU torchaudio there"
    assert note in result.companion_notes
    assert f"# Companions: {note}.\n" in result.lock_path.read_text()
    env_file = result.environment_path.read_text()
    assert "  - torchaudio * cpu_*  # [linux64]\n" in env_file
    assert "  - torchaudio * cpu_*  # [win64]\n" not in env_file
