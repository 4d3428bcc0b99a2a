"""The shipped environment files, parsing (with line numbers on errors) and rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlsetup.envs.files.spec import (
    PLATFORMS,
    TARGETS,
    environment_file,
    load_environment_file,
    render,
    variant_platforms,
)
from dlsetup.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "dlsetup" / "data" / "environments").glob("*.yml"))


def test_every_target_has_cpu_and_cuda_and_only_pytorch_has_mps() -> None:
    names = {p.stem for p in SHIPPED}
    assert names == {f"{t}-{v}" for t in TARGETS for v in ("cpu", "cuda")} | {"pytorch-mps"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_file_is_a_conda_forge_environment_with_python_numpy_and_jupyter(
    path: Path,
) -> None:
    spec = load_environment_file(path)
    assert spec.channels == ("conda-forge",)
    names = [d.split()[0] for d in spec.dependencies]
    for required in ("python", "numpy", "pip", "ipykernel", "jupyter"):
        assert required in names
    assert "python 3.12.*" in spec.dependencies
    assert set(spec.platforms) <= set(PLATFORMS)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_repository_copy_in_environments_is_identical_to_the_packaged_file(path: Path) -> None:
    assert (REPO / "environments" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_conda_lock_parses_every_shipped_file(path: Path) -> None:
    from conda_lock.src_parser import make_lock_spec

    from dlsetup.envs.conda.lock import pypi_mapping_path

    lock_spec = make_lock_spec(src_files=[path], mapping_url=str(pypi_mapping_path()))
    assert sorted(lock_spec.platforms) == sorted(load_environment_file(path).platforms)


def test_variant_platforms_follow_conda_forge() -> None:
    assert variant_platforms("pytorch", "cuda") == ("linux-64", "linux-aarch64", "win-64")
    assert variant_platforms("pytorch", "mps") == ("osx-arm64",)
    assert variant_platforms("tensorflow", "cuda") == ("linux-64",)
    assert variant_platforms("tensorflow", "mps") == ()


def test_unknown_target_lists_the_valid_ones() -> None:
    with pytest.raises(InputError) as info:
        environment_file("keras", "cpu")
    assert info.value.message == "unknown target 'keras'; valid targets: pytorch, tensorflow, both"


def test_tensorflow_has_no_mps_variant() -> None:
    with pytest.raises(InputError) as info:
        environment_file("tensorflow", "mps")
    assert info.value.message == "target 'tensorflow' has no mps variant; it has: cpu, cuda"


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "env.yml"
    bad.write_text("name: x\nchannels:\n  - conda-forge\ndependencies:\n  - numpy\n - python\n")
    with pytest.raises(InputError) as info:
        load_environment_file(bad)
    assert info.value.message.startswith(f"malformed environment file {bad}, line 6: ")


def test_a_file_whose_only_dependency_is_an_empty_pip_section_is_refused(tmp_path: Path) -> None:
    """Found by the environment-file fuzz: ``- pip: []`` alone rendered ``dependencies:`` with
    nothing under it, and conda-lock's parser crashed on it (exit 70)."""
    path = tmp_path / "env.yml"
    path.write_text("name: x\ndependencies:\n- pip: []\n")
    with pytest.raises(InputError) as info:
        load_environment_file(path)
    assert "names no package (its pip: section is empty)" in info.value.message
    path.write_text("name: x\ndependencies:\n- python\n- pip: []\n")
    assert load_environment_file(path).dependencies == ("python",)


def test_an_empty_environment_file_is_named_with_a_way_to_start_one(tmp_path: Path) -> None:
    empty = tmp_path / "env.yml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(InputError) as info:
        load_environment_file(empty)
    assert info.value.message == f"malformed environment file {empty}, line 1: the file is empty"
    assert info.value.fix is not None
    assert "dlsetup lock pytorch --variant cpu" in info.value.fix


def test_dependencies_that_are_not_a_list_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "env.yml"
    bad.write_text("name: x\nchannels:\n  - conda-forge\ndependencies: numpy\n")
    with pytest.raises(InputError) as info:
        load_environment_file(bad)
    assert (
        info.value.message
        == f"malformed environment file {bad}, line 4: 'dependencies:' must be a list"
    )


def test_unknown_platform_in_a_file_lists_the_valid_ones(tmp_path: Path) -> None:
    bad = tmp_path / "env.yml"
    bad.write_text(
        "name: x\nplatforms:\n  - linux-64\n  - linux-ppc64le\ndependencies:\n  - numpy\n"
    )
    with pytest.raises(InputError) as info:
        load_environment_file(bad)
    assert info.value.message == (
        f"malformed environment file {bad}, line 4: unknown platform 'linux-ppc64le'; valid platforms: "
        "linux-64, linux-aarch64, osx-64, osx-arm64, win-64"
    )


def test_render_pins_python_and_the_cuda_major_family_and_records_the_cuda() -> None:
    source = load_environment_file(environment_file("pytorch", "cuda"))
    rendered = render(
        source,
        target="pytorch",
        variant="cuda",
        cuda="13.0",
        python="3.11",
        channels=("file:///c",),
        platforms=("linux-64",),
        name="pt",
    )
    assert rendered.spec.dependencies == (
        "python 3.11.*",
        "numpy",
        "pip",
        "ipykernel",
        "jupyter",
        "pytorch * cuda*",
        "torchvision * cuda*",
        "cuda-version <14",
    )
    assert (
        "# Rendered by dlsetup: target pytorch, variant cuda, CUDA 13.0 (__cuda=13.0).\n"
        in rendered.text
    )
    assert rendered.text.endswith(
        "dependencies:\n  - python 3.11.*\n  - numpy\n  - pip\n  - ipykernel\n"
        "  - jupyter\n  - pytorch * cuda*\n  - torchvision * cuda*\n  - cuda-version <14\n"
    )
    assert "channels:\n  - file:///c\nplatforms:\n  - linux-64\n" in rendered.text
    assert rendered.python == "3.11"
