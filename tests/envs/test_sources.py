"""Issue 22 item 3: the sources users configured for mirrors are read with each tool's precedence,
and each one names where it was set.

Every file here is written in the shape the tool itself writes (``pip config set``'s INI, uv's and
pixi's TOML, conda's YAML) under a test's own root and home (:class:`Places`), so the machine's
own configuration never leaks in.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlsetup.envs.sources import (
    CONDA_ALIAS,
    Places,
    Source,
    channel_sources,
    conda_settings,
    pip_sources,
    pypi_sources,
    uv_sources,
)
from dlsetup.errors import InputError


def places(tmp_path: Path, **env: str) -> Places:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Places(env=env, home=home, root=tmp_path / "root", prefix=tmp_path / "venv")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def shown(sources: tuple[Source, ...]) -> list[tuple[str, str, str, bool]]:
    return [(s.kind, s.url, s.origin, s.default) for s in sources]


# --- pip ----------------------------------------------------------------------------------------


def test_pip_files_in_pips_order_a_later_file_overrides_an_earlier_one_key_by_key(
    tmp_path: Path,
) -> None:
    where = places(tmp_path)
    write(
        tmp_path / "root/etc/pip.conf",
        "[global]\nindex-url = https://global.example/simple\nfind-links = /opt/wheels\n",
    )
    write(
        tmp_path / "home/.config/pip/pip.conf",
        "[global]\nextra-index-url =\n    file:///opt/pypi/simple\n    file:///opt/more/simple\n",
    )
    write(tmp_path / "venv/pip.conf", "[install]\nindex-url = https://site.example/simple\n")
    assert shown(pip_sources(where)) == [
        ("index", "https://site.example/simple", "pip config " + str(tmp_path / "venv/pip.conf")
         + " [install] index-url", True),
        ("index", "file:///opt/pypi/simple",
         "pip config ~/.config/pip/pip.conf [global] extra-index-url", False),
        ("index", "file:///opt/more/simple",
         "pip config ~/.config/pip/pip.conf [global] extra-index-url", False),
        ("find-links", "/opt/wheels", "pip config /etc/pip.conf [global] find-links", False),
    ]  # fmt: skip


def test_pip_environment_variables_override_every_file(tmp_path: Path) -> None:
    write(tmp_path / "root/etc/xdg/pip/pip.conf", "[global]\nindex_url = https://file.example/s\n")
    where = places(
        tmp_path,
        PIP_INDEX_URL="https://env.example/simple",
        PIP_EXTRA_INDEX_URL="https://a.example/s https://b.example/s",
        PIP_FIND_LINKS="/srv/wheels",
    )
    assert shown(pip_sources(where)) == [
        ("index", "https://env.example/simple", "PIP_INDEX_URL", True),
        ("index", "https://a.example/s", "PIP_EXTRA_INDEX_URL", False),
        ("index", "https://b.example/s", "PIP_EXTRA_INDEX_URL", False),
        ("find-links", "/srv/wheels", "PIP_FIND_LINKS", False),
    ]


def test_pip_config_file_replaces_the_user_files_and_devnull_reads_none(tmp_path: Path) -> None:
    write(tmp_path / "home/.config/pip/pip.conf", "[global]\nindex-url = https://user.example/s\n")
    write(tmp_path / "root/etc/pip.conf", "[global]\nfind-links = /etc-wheels\n")
    own = write(tmp_path / "own.conf", "[global]\nextra-index-url = https://own.example/s\n")
    given = pip_sources(places(tmp_path, PIP_CONFIG_FILE=str(own)))
    assert [s.url for s in given] == ["https://own.example/s", "/etc-wheels"]
    assert pip_sources(places(tmp_path, PIP_CONFIG_FILE=os.devnull)) == ()


def test_a_malformed_pip_conf_is_named_with_the_fix(tmp_path: Path) -> None:
    write(tmp_path / "home/.pip/pip.conf", "index-url = https://no-section.example\n")
    with pytest.raises(InputError) as caught:
        pip_sources(places(tmp_path))
    assert caught.value.message.startswith("~/.pip/pip.conf: is not a pip configuration file")
    assert caught.value.fix is not None and "[global]" in caught.value.fix


def test_credentials_in_a_pip_conf_url_are_masked_when_shown_and_removed_when_stored(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "home/.config/pip/pip.conf",
        "[global]\nindex-url = https://alice:pw-123456@mirror.example/simple\n",
    )
    (source,) = pip_sources(places(tmp_path))
    assert source.url == "https://alice:pw-123456@mirror.example/simple"  # for uv only
    assert source.shown == "https://***@mirror.example/simple"
    assert source.stored == "https://mirror.example/simple"
    assert "pw-123456" not in source.display()


# --- uv -----------------------------------------------------------------------------------------


def test_uv_toml_indexes_and_uv_environment_variables(tmp_path: Path) -> None:
    write(
        tmp_path / "home/.config/uv/uv.toml",
        '[[index]]\nname = "mirror"\nurl = "https://uv-mirror.example/simple"\ndefault = true\n\n'
        '[[index]]\nname = "torch"\nurl = "https://uv-torch.example/whl/cpu"\n\n'
        '[pip]\nfind-links = ["/uv/wheels"]\n',
    )
    where = places(tmp_path)
    assert shown(uv_sources(where)) == [
        ("index", "https://uv-mirror.example/simple", "uv config ~/.config/uv/uv.toml [[index]] mirror", True),
        ("index", "https://uv-torch.example/whl/cpu", "uv config ~/.config/uv/uv.toml [[index]] torch", False),
        ("find-links", "/uv/wheels", "uv config ~/.config/uv/uv.toml [pip] find-links", False),
    ]  # fmt: skip
    env = places(
        tmp_path, UV_DEFAULT_INDEX="https://env.example/simple", UV_INDEX="t=https://t.example/s"
    )
    got = shown(uv_sources(env))
    assert got[0] == ("index", "https://env.example/simple", "UV_DEFAULT_INDEX", True)
    assert ("index", "https://t.example/s", "UV_INDEX", False) in got
    legacy = uv_sources(places(tmp_path, UV_INDEX_URL="https://old.example/s", UV_NO_CONFIG="1"))
    assert shown(legacy) == [("index", "https://old.example/s", "UV_INDEX_URL", True)]


def test_uv_before_pip_one_default_index_each_url_once(tmp_path: Path) -> None:
    write(
        tmp_path / "root/etc/uv/uv.toml",
        'index-url = "https://uv.example/simple"\nextra-index-url = ["https://same.example/s"]\n',
    )
    write(
        tmp_path / "root/etc/pip.conf",
        "[global]\nindex-url = https://pip.example/simple\n"
        "extra-index-url = https://same.example/s https://pip-extra.example/s\n",
    )
    got = pypi_sources(places(tmp_path))
    assert [(s.url, s.default) for s in got] == [
        ("https://uv.example/simple", True),
        ("https://same.example/s", False),
        ("https://pip-extra.example/s", False),
    ]
    assert got[0].origin == "uv config /etc/uv/uv.toml index-url"


def test_a_uv_toml_whose_index_is_not_a_url_is_named(tmp_path: Path) -> None:
    write(tmp_path / "home/.config/uv/uv.toml", "extra-index-url = 42\n")
    with pytest.raises(InputError, match=r"^~/.config/uv/uv.toml: extra-index-url is 42"):
        uv_sources(places(tmp_path))


# --- conda and pixi ---------------------------------------------------------------------------


def test_condarc_custom_channels_channel_alias_and_default_channels(tmp_path: Path) -> None:
    write(
        tmp_path / "root/etc/conda/.condarc",
        "channel_alias: https://system-alias.example\n",
    )
    write(
        tmp_path / "home/.condarc",
        "channels: [defaults]\n"
        "channel_alias: https://alias.example/conda\n"
        "custom_channels:\n  conda-forge: https://mirror.example/anaconda/cloud\n"
        "default_channels:\n  - https://mirror.example/anaconda/pkgs/main\n",
    )
    settings = conda_settings(places(tmp_path))
    forge = channel_sources("conda-forge", settings)
    assert shown(forge) == [
        ("channel", "https://mirror.example/anaconda/cloud/conda-forge",
         "~/.condarc custom_channels.conda-forge", False),
    ]  # fmt: skip
    other = channel_sources("pytorch", settings)
    assert shown(other) == [
        ("channel", "https://alias.example/conda/pytorch", "~/.condarc channel_alias", False)
    ]
    (main,) = channel_sources("defaults", settings)
    assert (main.url, main.origin) == (
        "https://mirror.example/anaconda/pkgs/main",
        "~/.condarc default_channels",
    )
    assert [s.url for s in settings.channels] == ["defaults"]


def test_condarc_env_variable_wins_and_nothing_configured_is_condas_default(
    tmp_path: Path,
) -> None:
    assert channel_sources("conda-forge", conda_settings(places(tmp_path))) == (
        Source("channel", f"{CONDA_ALIAS}/conda-forge", "conda's default", name="conda-forge"),
    )
    write(tmp_path / "home/.condarc", "channel_alias: https://home.example\n")
    own = write(tmp_path / "own.condarc", "channel_alias: https://env.example\n")
    settings = conda_settings(places(tmp_path, CONDARC=str(own)))
    assert channel_sources("x", settings)[0].url == "https://env.example/x"
    assert channel_sources("file:///ch", settings)[0].origin == "as given"


def test_pixi_mirrors_replace_the_prefix_they_stand_in_for(tmp_path: Path) -> None:
    write(
        tmp_path / "home/.pixi/config.toml",
        '[mirrors]\n"https://conda.anaconda.org/conda-forge" = '
        '["https://prefix.example/conda-forge", "https://second.example/cf"]\n',
    )
    settings = conda_settings(places(tmp_path))
    (forge,) = channel_sources("conda-forge", settings)
    assert forge.url == "https://prefix.example/conda-forge"
    assert forge.origin == (
        "pixi config ~/.pixi/config.toml [mirrors] for https://conda.anaconda.org/conda-forge"
    )
    (untouched,) = channel_sources("bioconda", settings)
    assert untouched.origin == "conda's default"


def test_a_condarc_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    write(tmp_path / "home/.condarc", "- just a list\n")
    with pytest.raises(InputError, match=r"^~/.condarc: is not a mapping"):
        conda_settings(places(tmp_path))
    write(tmp_path / "home/.condarc", "custom_channels: [a, b]\n")
    with pytest.raises(InputError, match=r"custom_channels is \['a', 'b'\]"):
        conda_settings(places(tmp_path))
