"""Issue 21: users' environment files mean what conda, pixi and uv make of them.

* specs are read with the ecosystem's parsers (rattler's ``MatchSpec``): ``python >= 3.8`` is a
  range, not a pin (item 1);
* conda-forge's PyTorch rules apply only where dlsetup chooses the build: a pinned pytorch release
  or the ``pytorch`` channel is the solver's to decide, and an unsatisfiable result is explained
  afterwards (item 2);
* the PyPI dependency specs of a lock's ``manager: pip`` entries are ones rattler's and
  conda-lock's parsers both read (item 7);
* a ``git+`` URL or a local path in ``pip:`` is refused as "cannot be pinned with hashes", with
  what to do (item 8).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dlsetup.cli import cli
from dlsetup.envs.conda.request import (
    framework_rules_apply,
    pinned_python,
    python_constraint,
)
from dlsetup.envs.files.spec import load_environment_file
from dlsetup.errors import InputError
from tests.envs.test_lock import read_back
from tests.support.shared import built_once
from tests.support.wheels import Wheel, build_index


def write(tmp_path: Path, text: str, name: str = "mine.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def lock(path: Path, channel_url: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["lock", str(path), "--variant", "cpu", "--platform", "linux-64", "--channel",
         channel_url, "--output", str(path.parent / "out"), *args],
    )  # fmt: skip


# ---- item 1: specs read by rattler's MatchSpec ---------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "pin"),
    [
        ("python >= 3.8", None),  # a range constrains; it pins nothing
        ("python >=3.8", None),
        ("python >=3.12,<3.13", None),
        ("python 3.9|3.10", None),
        ("python=3", None),
        ("python", None),
        ("python=3.9", "3.9"),
        ("python==3.9", "3.9"),
        ("python 3.12.*", "3.12"),
        ("python 3.11.4", "3.11"),
        ("python=3.10.*", "3.10"),
        ("conda-forge::python=3.11", "3.11"),
        ('python[version="3.11.*"]', "3.11"),
        ("python 3.12.* *_cpython", "3.12"),
    ],
)
def test_python_is_pinned_only_by_an_exact_pin(spec: str, pin: str | None) -> None:
    assert pinned_python(("numpy", spec)) == pin


def test_a_python_range_filters_the_frameworks_pythons() -> None:
    allows = python_constraint(("python >= 3.8",))
    assert allows is not None
    assert [v for v in ("3.10", "3.12", "3.14") if allows(v)] == ["3.10", "3.12", "3.14"]
    below = python_constraint(("python <3.10",))
    assert below is not None
    assert not below("3.10")
    assert below("3.9")
    patch = python_constraint(("python >=3.12.1",))
    assert patch is not None
    assert patch("3.12")  # 3.12.5 satisfies it
    assert python_constraint(("numpy",)) is None


@pytest.mark.parametrize("python_line", ["python >= 3.8", "python >=3.8"])
def test_a_python_range_with_or_without_a_space_locks_alike(
    python_line: str, channel_url: str, tmp_path: Path
) -> None:
    """Before: ``python >= 3.8`` was read as a pin to 3.8 and refused ("conda-forge builds pytorch
    2.13.0 for Python 3.10, ..., not 3.8") while ``python >=3.8`` locked."""
    path = write(
        tmp_path,
        "name: mine\nchannels:\n  - conda-forge\ndependencies:\n"
        f"  - {python_line}\n  - numpy\n  - pytorch * cpu_*\n",
    )
    result = lock(path, channel_url)
    assert result.exit_code == 0, result.output
    assert "conda-forge builds" not in result.output
    text = (tmp_path / "out" / "mine.environment.yml").read_text()
    assert f"  - {python_line}\n" in text  # the user's range is kept, never turned into a pin


def test_a_python_range_no_conda_forge_build_fits_is_refused_naming_the_range(
    channel_url: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "name: mine\ndependencies:\n  - python <3.10\n  - pytorch * cpu_*\n",
    )
    result = lock(path, channel_url)
    assert result.exit_code == 2, result.output
    assert "conda-forge builds pytorch" in result.stderr
    assert "none of which python <3.10 allows" in result.stderr
    assert str(path) in result.stderr


# ---- item 2: conda-forge's rules only where dlsetup chooses the build ----------------------------


@pytest.mark.parametrize(
    ("deps", "channels", "applies"),
    [
        (("python=3.9", "pytorch"), ("conda-forge",), True),
        (("python=3.9", "pytorch * cpu_*"), ("https://mirror.example/conda-forge",), True),
        (("python=3.9", "pytorch=1.11.0"), ("conda-forge",), False),  # a release the user pinned
        (("python=3.9", "pytorch >=2,<2.6"), ("conda-forge",), False),  # excludes 2.13.0
        (("python=3.9", "pytorch >=2"), ("conda-forge",), True),  # admits conda-forge's release
        (("python=3.9", "pytorch"), ("pytorch",), False),
        (("python=3.9", "pytorch"), ("pytorch", "nvidia", "conda-forge"), False),
        (("python=3.9", "pytorch"), ("nvidia", "conda-forge"), True),
        (("python=3.9", "pytorch"), ("https://conda.anaconda.org/pytorch",), False),
        (("python=3.9", "pytorch::pytorch"), ("conda-forge",), False),
        (("python=3.9", "pytorch"), ("defaults",), False),
    ],
)
def test_the_pytorch_rules_apply_only_where_dlsetup_chooses_the_build(
    deps: tuple[str, ...], channels: tuple[str, ...], applies: bool
) -> None:
    assert framework_rules_apply("pytorch", deps, channels) is applies


def test_nothing_of_conda_forges_is_added_for_a_build_the_user_chose(tmp_path: Path) -> None:
    """A cuda lock bounds conda-forge's ``cuda-version`` where dlsetup chooses the build, and adds
    nothing for a release the user pinned on another channel (the solver and ``__cuda`` decide)."""
    from dlsetup.envs.conda.request import solver_decides
    from dlsetup.envs.files.spec import render

    path = write(
        tmp_path,
        "name: seed\nchannels:\n  - pytorch\n  - nvidia\ndependencies:\n"
        "  - python=3.9\n  - pytorch=2.1.0\n  - pytorch-cuda=12.1\n",
    )
    spec = load_environment_file(path)
    assert solver_decides(spec.dependencies, spec.channels)
    assert not solver_decides(("python", "pytorch * cuda*"), ("conda-forge",))
    assert not solver_decides(("python", "numpy"), ("pytorch",))  # no framework: nothing to say

    def deps(bound: bool) -> tuple[str, ...]:
        rendered = render(
            spec, target="file", variant="cuda", cuda="12.4", python=None, bound_cuda=bound
        )
        return rendered.dependencies_for("linux-64")

    assert "cuda-version <13" in deps(True)
    assert deps(False) == ("python=3.9", "pytorch=2.1.0", "pytorch-cuda=12.1")


def test_a_pytorch_channel_file_is_solved_and_the_failure_explained_not_pre_empted(
    channel_dir: Path, tmp_path: Path
) -> None:
    """The seed's recipe (``channels: [pytorch]``, ``python=3.9``, ``pytorch=1.11.0``): before, it
    was refused before any solve with "conda-forge builds pytorch 2.13.0 ... use --python-version
    3.14". Now the solver decides (here: a local channel named ``pytorch`` without that release)
    and the failure is explained after the solve."""
    pytorch_channel = tmp_path / "channels" / "pytorch"
    pytorch_channel.parent.mkdir()
    pytorch_channel.symlink_to(channel_dir, target_is_directory=True)
    url = pytorch_channel.as_uri()
    path = write(
        tmp_path,
        f"name: seed\nchannels:\n  - {url}\ndependencies:\n"
        "  - python=3.9\n  - pytorch=1.11.0\n  - cpuonly\n",
    )
    result = CliRunner().invoke(
        cli,
        ["lock", str(path), "--variant", "cpu", "--platform", "linux-64",
         "--output", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 4, result.output  # the solver's verdict, not a usage error
    assert "conda-forge builds" not in result.stderr
    assert "--python-version 3.14" not in result.stderr
    assert "no package on" in result.stderr and "matches" in result.stderr
    assert "the pytorch conda channel published its last builds with PyTorch 2.5" in result.stderr


def test_an_unpinned_pytorch_on_a_pytorch_channel_is_not_held_to_conda_forges_pythons(
    channel_dir: Path, tmp_path: Path
) -> None:
    pytorch_channel = tmp_path / "pytorch"
    pytorch_channel.symlink_to(channel_dir, target_is_directory=True)
    path = write(
        tmp_path,
        f"name: seed\nchannels:\n  - {pytorch_channel.as_uri()}\ndependencies:\n"
        "  - python=3.9\n  - pytorch\n",
    )
    result = CliRunner().invoke(
        cli,
        ["lock", str(path), "--variant", "cpu", "--platform", "linux-64",
         "--output", str(tmp_path / "out")],
    )  # fmt: skip
    assert "conda-forge builds" not in result.output
    assert result.exit_code in (0, 4), result.output  # whatever the solver says, after solving


def test_a_conda_forge_file_with_an_unbuilt_python_is_still_refused_with_a_fix_for_the_file(
    channel_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "name: mine\ndependencies:\n  - python=3.9\n  - pytorch * cpu_*\n")
    result = lock(path, channel_url)
    assert result.exit_code == 2, result.output
    assert "conda-forge builds pytorch 2.13.0 for Python 3.10" in result.stderr
    assert "not 3.9" in result.stderr
    assert f"python line of {path}" in result.stderr
    assert "pin the pytorch release" in result.stderr


# ---- item 7: PyPI dependency specs that rattler and conda-lock both read -------------------------

UNCONSTRAINED = (
    Wheel("loose-app", "1.0", ("loose-dep", "other-dep>=1")),  # loose-dep: no version at all
    Wheel("loose-dep", "2.0"),
    Wheel("other-dep", "1.1"),
)


@pytest.fixture(scope="session")
def loose_index(tmp_path_factory: pytest.TempPathFactory) -> str:
    root, _ = built_once(
        tmp_path_factory, "wheel-index-loose", lambda root: build_index(root, UNCONSTRAINED)
    )
    return (root / "simple").resolve().as_uri()


def test_a_requirement_without_a_version_is_written_so_rattler_reads_the_lock(
    channel_url: str, loose_index: str, tmp_path: Path
) -> None:
    """Before: ``loose-dep: '*'`` (rattler: ``ParseCondaLockError ... MapOrVec``)."""
    path = write(
        tmp_path,
        "name: mine\nchannels:\n  - conda-forge\ndependencies:\n  - python 3.12.*\n  - pip:\n"
        f"    - --index-url {loose_index}\n    - loose-app\n",
    )
    result = lock(path, channel_url)
    assert result.exit_code == 0, result.output
    lock_path = tmp_path / "out" / "mine.conda-lock.yml"
    conda_lock_view, rattler_view = read_back(lock_path)
    [app] = [p for p in conda_lock_view.package if p.name == "loose-app"]
    assert app.dependencies == {"loose-dep": "", "other-dep": ">=1"}
    pypi = {
        p.name: p
        for packages in rattler_view.default_environment().packages_by_platform().values()
        for p in packages
        if type(p).__name__ == "PypiLockedPackage"
    }
    assert sorted(pypi) == ["loose-app", "loose-dep", "other-dep"]
    from dlsetup.envs.lockfiles.formats import read_locked_environment

    locked = read_locked_environment(lock_path, "linux-64")  # what create --from-lock reads
    assert sorted(p.name for p in locked.pypi) == ["loose-app", "loose-dep", "other-dep"]


@pytest.mark.parametrize(
    ("given", "written"),
    [("*", ""), ("", ""), (">=1", ">=1"), ("<2,>=1.0", "<2,>=1.0"), ("==2.1.0+cpu", "==2.1.0+cpu")],
)
def test_pypi_dependency_specs_are_written_in_a_form_both_parsers_read(
    given: str, written: str
) -> None:
    from dlsetup.envs.conda.lock import pypi_dependency_specs

    assert pypi_dependency_specs({"x": given}) == {"x": written}


# ---- item 8: what a pip: section cannot pin with hashes ------------------------------------------


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("git+https://github.com/org/tool.git@v1.2", "a VCS URL (git+)"),
        ("hg+https://hg.example/tool", "a VCS URL (hg+)"),
        ("tool @ git+https://github.com/org/tool.git", "a VCS URL (git+)"),
        ("./src/tool", "a local path"),
        ("../tool", "a local path"),
        ("/opt/src/tool", "a local path"),
        (".", "a local path"),
        ("file:///opt/src/tool", "a local path"),
        ("https://host/tool-1.0.tar.gz", "a URL"),
        ("tool @ https://host/tool-1.0-py3-none-any.whl", "a URL"),
    ],
)
def test_a_vcs_url_or_local_path_in_pip_cannot_be_pinned_with_hashes(
    tmp_path: Path, line: str, what: str
) -> None:
    path = write(
        tmp_path, f"name: mine\ndependencies:\n  - python\n  - pip:\n    - tiny-app\n    - {line}\n"
    )
    with pytest.raises(InputError) as caught:
        load_environment_file(path)
    error = caught.value
    assert f"{path}, line 6: " in error.message
    assert f"{line!r} is {what}, which cannot be pinned with hashes" in error.message
    assert "Expected" not in error.message  # no raw parse error from packaging
    assert error.fix is not None
    assert "pip install" in error.fix and "after dlsetup create" in error.fix


def _lock_with_pip_entry(dependencies: dict[str, str]) -> Any:
    """A one-platform lock with a ``manager: pip`` entry and dlsetup's metadata, in conda-lock's
    models (what :mod:`dlsetup.envs.conda.lock` fills)."""
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile, LockMeta

    python = LockedDependency(
        name="python", version="3.12.1", manager="conda", platform="linux-64", dependencies={},
        url="https://conda.anaconda.org/conda-forge/linux-64/python-3.12.1-h1_0_cpython.conda",
        hash=HashModel(md5="0" * 32, sha256="a" * 64), categories={"main"}, build="h1_0_cpython",
    )  # fmt: skip
    app = LockedDependency(
        name="loose-app", version="1.0", manager="pip", platform="linux-64",
        dependencies=dependencies,
        url="https://files.pythonhosted.org/packages/loose_app-1.0-py3-none-any.whl",
        hash=HashModel(sha256="b" * 64), categories={"main"},
    )  # fmt: skip
    meta = LockMeta(
        content_hash={"linux-64": "c" * 64},
        channels=[],
        platforms=["linux-64"],
        sources=["e.yml"],
        custom_metadata={"dlsetup_target": "file"},
    )
    return Lockfile(package=[python, app], metadata=meta)


def test_the_read_back_check_sees_a_lock_rattler_cannot_read(tmp_path: Path) -> None:
    """The check every environment test runs where dlsetup writes a lock (tests/envs/conftest.py),
    on the lock shape rattler refused; quiet for the form dlsetup writes now, and for locks
    dlsetup did not make."""
    import conda_lock.lockfile

    from tests.support.lock_readback import checking_writer

    real = conda_lock.lockfile.write_conda_lock_file  # the fixture's check wraps the real writer
    real = getattr(real, "__wrapped__", real)
    problems: list[str] = []
    write = checking_writer(real, problems)
    star = tmp_path / "star.conda-lock.yml"
    write(_lock_with_pip_entry({"loose-dep": "*"}), star, metadata_choices=set())
    [problem] = problems
    assert problem.startswith(f"{star}: rattler cannot read the lock dlsetup wrote")
    assert "MapOrVec" in problem
    problems.clear()
    write(_lock_with_pip_entry({"loose-dep": ""}), tmp_path / "empty.conda-lock.yml", set())
    assert problems == []
    foreign = _lock_with_pip_entry({"loose-dep": "*"})
    foreign.metadata.custom_metadata = None  # a test's own hand-made lock: not judged
    write(foreign, tmp_path / "foreign.conda-lock.yml", metadata_choices=set())
    assert problems == []
