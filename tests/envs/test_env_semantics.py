"""Environment files mean what conda and conda-lock make of them: ``nodefaults``, ``defaults``,
platform selectors (evaluated per platform, or refused with the line), ``pip:`` sections; and the
pieces of the PyPI resolution that need no solve (wheel tags, the conda part as PyPI names)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.envs.files.selectors import KNOWN_NAMES, evaluate
from dlsetup.envs.files.spec import (
    DEFAULTS_CHANNELS,
    DEFAULTS_WINDOWS_CHANNEL,
    PLATFORMS,
    load_environment_file,
    render,
)
from dlsetup.envs.pypi.resolve import (
    best_wheel,
    conda_provided,
    marker_environment,
    platform_tags,
    requires_dist,
)
from dlsetup.errors import InputError
from dlsetup.platforms import PLATFORM_INFO


def write(tmp_path: Path, text: str, name: str = "mine.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rendered(path: Path, platforms: tuple[str, ...] = PLATFORMS) -> str:
    spec = load_environment_file(path)
    return render(
        spec, target="file", variant="cpu", cuda=None, python=None, platforms=platforms
    ).text


# ---- selectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_platform_tables_selector_names_are_conda_locks(platform: str) -> None:
    from conda_lock.src_parser.selectors import filter_platform_selectors

    logging.getLogger("conda_lock.src_parser.selectors").setLevel(logging.ERROR)
    for name in sorted(KNOWN_NAMES | {"ppc64le", "x86_64", "py38"}):
        kept = list(filter_platform_selectors(f"  - numpy  # [{name}]", platform=platform))
        assert bool(kept) == (name in PLATFORM_INFO[platform].selectors), (name, platform)


@pytest.mark.parametrize(
    ("expression", "platforms"),
    [
        ("linux", {"linux-64", "linux-aarch64"}),
        ("osx and arm64", {"osx-arm64"}),
        ("win", {"win-64"}),
        ("unix", {"linux-64", "linux-aarch64", "osx-64", "osx-arm64"}),
        ("not win", {"linux-64", "linux-aarch64", "osx-64", "osx-arm64"}),
        ("(linux or osx) and not aarch64", {"linux-64", "osx-64", "osx-arm64"}),
        ("linux64 or win64", {"linux-64", "win-64"}),
        ("osx and win", set()),
    ],
)
def test_selector_expressions_evaluate_per_platform(expression: str, platforms: set[str]) -> None:
    assert evaluate(expression, where="f, line 1").platforms == platforms


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        ("py>=38", "'py' is not a platform name"),
        ("cuda", "'cuda' is not a platform name"),
        ("x86_64", "'x86_64' is not a platform name"),
        ("linux and", "it ends where a name was expected"),
        ("(linux or osx", "a '(' is not closed"),
        ("linux osx", "unexpected 'osx'"),
    ],
)
def test_a_selector_conda_lock_would_not_understand_is_refused_with_its_line(
    tmp_path: Path, selector: str, why: str
) -> None:
    path = write(tmp_path, f"name: mine\ndependencies:\n  - python\n  - numpy  # [{selector}]\n")
    result = CliRunner().invoke(cli, ["lock", str(path), "--variant", "cpu", "--output", "out"])
    assert result.exit_code == 2, result.output
    assert f"Error: unsupported selector [{selector}] in {path}, line 4: {why}" in result.output
    assert "combined with and, or, not" in result.output  # the fix
    assert not (tmp_path / "out").exists()


def test_a_selector_on_a_channel_line_is_refused_not_dropped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: mine\nchannels:\n  - conda-forge\n  - pytorch  # [linux]\ndependencies:\n  - numpy\n",
    )
    with pytest.raises(InputError, match=r"line 4: a selector \[linux\] on this line"):
        load_environment_file(path)


def test_selected_lines_are_applied_per_platform_and_conda_lock_reads_the_rendering_the_same(
    tmp_path: Path,
) -> None:
    from conda_lock.src_parser import make_lock_spec

    from dlsetup.envs.conda.lock import pypi_mapping_path

    path = write(
        tmp_path,
        "name: mine\ndependencies:\n  - python 3.12.*\n  - numpy\n  - cuda-version  # [linux]\n"
        "  - appnope  # [osx and arm64]\n  - pywin32  # [win]\n  - not-win  # [not win]\n"
        "  - pip:\n    - tiny-app\n    - linux-only  # [linux64]\n",
    )
    spec = load_environment_file(path)
    env = render(spec, target="file", variant="cpu", cuda=None, python=None, platforms=PLATFORMS)
    assert env.dependencies_for("osx-arm64") == ("python 3.12.*", "numpy", "appnope", "not-win")
    assert env.dependencies_for("win-64") == ("python 3.12.*", "numpy", "pywin32")
    assert env.dependencies_for("linux-aarch64") == (
        "python 3.12.*",
        "numpy",
        "cuda-version",
        "not-win",
    )
    assert [r.name for r in env.pip_for("linux-64")] == ["tiny-app", "linux-only"]
    assert [r.name for r in env.pip_for("linux-aarch64")] == ["tiny-app"]
    out = tmp_path / "rendered.yml"
    out.write_text(env.text)
    logging.getLogger("conda_lock.src_parser.selectors").setLevel(logging.ERROR)
    lock_spec = make_lock_spec(src_files=[out], mapping_url=str(pypi_mapping_path()))
    for platform in PLATFORMS:
        conda = [d.name for d in lock_spec.dependencies[platform] if d.manager == "conda"]
        pip = [d.name for d in lock_spec.dependencies[platform] if d.manager == "pip"]
        ours = [d.split()[0] for d in env.dependencies_for(platform)]
        assert sorted(conda) == sorted([*ours, "pip"]), platform  # conda-lock adds pip for pip:
        assert pip == [r.name for r in env.pip_for(platform)], platform
    # read back by dlsetup: the same per-platform meaning
    again = load_environment_file(out)
    for platform in PLATFORMS:
        assert sorted(again.dependencies_on(platform)) == sorted(env.dependencies_for(platform))
        assert [r.text for r in again.pip_on(platform)] == [r.text for r in env.pip_for(platform)]


# ---- channels --------------------------------------------------------------------------------------


def test_nodefaults_is_not_a_channel(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: mine\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n  - numpy\n",
    )
    assert load_environment_file(path).channels == ("conda-forge",)
    assert "nodefaults" not in rendered(path)
    alone = write(
        tmp_path, "name: mine\nchannels:\n  - nodefaults\ndependencies:\n  - numpy\n", "b.yml"
    )
    assert load_environment_file(alone).channels == ("conda-forge",)  # dlsetup's default channel


def test_defaults_is_condas_multichannel_on_repo_anaconda_com(tmp_path: Path) -> None:
    import rattler

    path = write(
        tmp_path, "name: mine\nchannels:\n  - pytorch\n  - defaults\ndependencies:\n  - numpy\n"
    )
    unix = render(
        load_environment_file(path),
        target="file",
        variant="cpu",
        cuda=None,
        python=None,
        platforms=("linux-64", "osx-arm64"),
    )
    assert unix.spec.channels == ("pytorch", *DEFAULTS_CHANNELS)
    assert DEFAULTS_CHANNELS == (
        "https://repo.anaconda.com/pkgs/main",
        "https://repo.anaconda.com/pkgs/r",
    )
    windows = render(
        load_environment_file(path),
        target="file",
        variant="cpu",
        cuda=None,
        python=None,
        platforms=("linux-64", "win-64"),
    )
    assert (
        windows.spec.channels[-1]
        == DEFAULTS_WINDOWS_CHANNEL
        == "https://repo.anaconda.com/pkgs/msys2"
    )
    # a name stays a name (rattler puts it under the channel alias); defaults never becomes one
    assert "conda.anaconda.org" not in unix.text
    assert rattler.Channel("pytorch").base_url.startswith("https://conda.anaconda.org/pytorch")
    assert rattler.Channel(DEFAULTS_CHANNELS[0]).base_url.rstrip("/") == DEFAULTS_CHANNELS[0]


def test_a_channel_url_and_a_channel_option_keep_their_meaning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: mine\nchannels:\n  - https://my.mirror/conda-forge\n  - defaults\ndependencies:\n  - numpy\n",
    )
    env = render(
        load_environment_file(path),
        target="file",
        variant="cpu",
        cuda=None,
        python=None,
        channels=("nodefaults", "defaults"),
        platforms=("linux-64",),
    )
    assert env.spec.channels == DEFAULTS_CHANNELS
    assert load_environment_file(path).channels[0] == "https://my.mirror/conda-forge"


# ---- pip: sections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("-e ./src", "pip option '-e' is not locked by dlsetup"),
        ("-r requirements.txt", "pip option '-r' is not locked by dlsetup"),
        ("--find-links ./wheels", "pip option '--find-links' is not locked by dlsetup"),
        ("mypkg @ https://host/mypkg-1.0.tar.gz", "is a URL, which cannot be pinned with hashes"),
        ("tiny-app>=1", "tiny-app is listed twice"),
        ("--index-url https://a/simple --x", "--index-url needs one URL"),
        ("not a requirement!", "is not a PyPI requirement"),
        ("--index-url", "--index-url needs one URL"),
    ],
)
def test_what_a_pip_section_cannot_lock_is_refused_with_its_line(
    tmp_path: Path, line: str, why: str
) -> None:
    path = write(
        tmp_path, f"name: mine\ndependencies:\n  - python\n  - pip:\n    - tiny-app\n    - {line}\n"
    )
    with pytest.raises(InputError, match=r"line 6: .*") as caught:
        load_environment_file(path)
    assert why in caught.value.message
    assert caught.value.fix and "an environment file has name:" not in caught.value.fix


def test_index_lines_become_conda_locks_pip_repositories_and_read_back(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: mine\ndependencies:\n  - python\n  - pip:\n"
        "    - --index-url=https://${IDX_USER}:${IDX_PASSWORD}@pypi.example/simple?a=b\n"
        "    - --extra-index-url https://alice:s3cret@extra.example/simple\n"
        "    - transformers>=4.40\n",
    )
    spec = load_environment_file(path)
    assert spec.pip_index_url == "https://${IDX_USER}:${IDX_PASSWORD}@pypi.example/simple?a=b"
    assert spec.pip_extra_index_urls == ("https://alice:s3cret@extra.example/simple",)
    text = rendered(path, ("linux-64",))
    assert (
        "pip-repositories:\n  - https://${IDX_USER}:${IDX_PASSWORD}@pypi.example/simple?a=b\n"
        "  - https://extra.example/simple\nallow-pypi-requests: false\n"
    ) in text
    assert "s3cret" not in text and "alice" not in text
    again = load_environment_file(write(tmp_path, text, "rendered.yml"))
    assert again.pip_index_url == "https://${IDX_USER}:${IDX_PASSWORD}@pypi.example/simple?a=b"
    assert again.pip_extra_index_urls == ("https://extra.example/simple",)
    assert [r.text for r in again.pip] == ["transformers>=4.40"]


def test_a_mapping_other_than_pip_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: mine\ndependencies:\n  - numpy\n  - npm:\n    - left-pad\n")
    with pytest.raises(InputError, match=r"line 4: a mapping \{npm\}"):
        load_environment_file(path)


# ---- PyPI resolution pieces ------------------------------------------------------------------------


def test_the_best_wheel_is_the_most_specific_one_the_platform_accepts() -> None:
    urls = [
        "file:///w/plat-1.0-py3-none-any.whl",
        "file:///w/plat-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
        "file:///w/plat-1.0-cp312-cp312-manylinux_2_34_x86_64.whl",  # needs glibc 2.34 > 2.28
        "file:///w/plat-1.0-cp312-cp312-win_amd64.whl",
        "file:///w/plat-1.0-cp312-cp312-macosx_11_0_arm64.whl",
        "file:///w/plat-1.0-cp312-cp312-macosx_14_0_arm64.whl",  # needs macOS 14 > 11.0
    ]

    def best(platform: str) -> str | None:
        tags = {t: i for i, t in enumerate(platform_tags(platform, "3.12.7"))}
        chosen = best_wheel(urls, tags)
        return chosen.rsplit("-", 1)[-1] if chosen else None

    assert best("linux-64") == "manylinux_2_17_x86_64.whl"
    assert best("win-64") == "win_amd64.whl"
    assert best("osx-arm64") == "macosx_11_0_arm64.whl"
    assert best("linux-aarch64") == "any.whl"
    assert (
        best_wheel(urls[1:4], {t: i for i, t in enumerate(platform_tags("osx-64", "3.12"))}) is None
    )


def test_the_conda_part_as_pypi_names_follows_conda_locks_rule() -> None:
    provided = conda_provided(
        [
            ("pytorch", "2.13.0", ["python >=3.12,<3.13.0a0", "numpy"]),
            ("numpy", "2.3.4", ["python_abi 3.12.* *_cp312", "python >=3.12"]),
            ("openssl", "3.5.0", ["ca-certificates"]),  # not a Python package
            ("python", "3.12.7", ["openssl"]),
            ("__glibc", "2.28", []),
        ]
    )
    assert provided == {"torch": "2.13.0", "numpy": "2.3.4"}


def test_requires_dist_keeps_what_applies_to_the_platform() -> None:
    metadata = (
        "Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Dist: tiny-dep>=1\n"
        "Requires-Dist: pywin32; sys_platform == 'win32'\nRequires-Dist: Extra_Thing; extra == 'x'\n"
        "Requires-Dist: anything\n"
    )
    linux = requires_dist(metadata, marker_environment("linux-64", "3.12.7"))
    assert linux == {"tiny-dep": ">=1", "anything": "*"}
    assert "pywin32" in requires_dist(metadata, marker_environment("win-64", "3.12.7"))
