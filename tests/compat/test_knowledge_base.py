"""The knowledge base is validated when loaded: typed records, the schema checked, and a
malformed file named key by key. And the conda-forge facts are the ones read from the recipes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dlsetup.compat import _raw, knowledge_base, load_data
from dlsetup.compat.arch import parse_arch_list
from dlsetup.compat.model import parse_knowledge_base
from dlsetup.errors import InputError, KnowledgeBaseError


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(_raw())
    return doc


def _error(doc: object) -> KnowledgeBaseError:
    with pytest.raises(KnowledgeBaseError) as caught:
        parse_knowledge_base(doc, "compat.yaml")
    assert isinstance(caught.value, InputError)  # exit code 2, an Error: line with a fix
    assert caught.value.fix
    return caught.value


def test_the_shipped_file_validates() -> None:
    kb = parse_knowledge_base(_doc())
    assert kb.schema == 2
    assert kb.refreshed is not None
    assert knowledge_base() == kb
    assert load_data()["schema"] == 2  # the dict view stays for existing callers


def test_missing_key_is_named() -> None:
    doc = _doc()
    del doc["conda_forge"]["frameworks"]["pytorch"]["platforms"]["linux-64"][0]["build"]
    err = _error(doc)
    assert err.message == (
        "compat.yaml: missing key conda_forge.frameworks.pytorch.platforms.linux-64[0].build"
    )
    # twin: the untouched document parses
    parse_knowledge_base(_doc())


def test_missing_section_is_named() -> None:
    doc = _doc()
    del doc["driver_branch_limits"]
    assert _error(doc).message == "compat.yaml: missing key driver_branch_limits"


def test_wrong_type_is_named_with_the_value() -> None:
    doc = _doc()
    doc["conda_forge"]["frameworks"]["pytorch"]["platforms"]["linux-64"][1]["cuda"] = 12.9
    err = _error(doc)
    assert err.message.startswith(
        "compat.yaml: conda_forge.frameworks.pytorch.platforms.linux-64[1].cuda: expected a "
        "string or null"
    )
    assert "found float 12.9" in err.message


def test_an_unquoted_release_key_is_refused() -> None:
    doc = _doc()
    releases = doc["pytorch"]["releases"]
    releases[2.1] = releases.pop("2.1")
    assert "quote version keys" in _error(doc).message


def test_wrong_type_in_the_pypi_facts() -> None:
    doc = _doc()
    doc["tensorflow"]["releases"]["2.21"]["cuda"] = ["12.5"]
    assert _error(doc).message.startswith("compat.yaml: tensorflow.releases.2.21.cuda: expected")


def test_a_cuda_line_without_an_arch_list_is_refused() -> None:
    doc = _doc()
    del doc["conda_forge"]["frameworks"]["tensorflow"]["platforms"]["linux-64"][0]["arch"]
    assert "the arch list of a CUDA line" in _error(doc).message


def test_lines_must_be_newest_first() -> None:
    doc = _doc()
    lines = doc["conda_forge"]["frameworks"]["pytorch"]["platforms"]["win-64"]
    lines[0], lines[1] = lines[1], lines[0]
    assert "CUDA lines newest first" in _error(doc).message


def test_unknown_key_in_a_strict_record() -> None:
    doc = _doc()
    doc["conda_forge"]["frameworks"]["pytorch"]["platforms"]["linux-64"][0]["glibcc"] = "2.28"
    err = _error(doc)
    assert err.message.startswith(
        "compat.yaml: unknown key conda_forge.frameworks.pytorch.platforms.linux-64[0].glibcc"
    )


def test_every_conda_forge_fact_cites_a_known_source() -> None:
    doc = _doc()
    doc["conda_forge"]["frameworks"]["tensorflow"]["platforms"]["linux-64"][0]["source"] = [
        "a_blog_post"
    ]
    err = _error(doc)
    assert "source 'a_blog_post' is not a key of sources" in err.message
    doc = _doc()
    del doc["driver_branch_limits"][0]["source"]
    assert _error(doc).message == "compat.yaml: missing key driver_branch_limits[0].source"


@pytest.mark.parametrize("schema", [99, 0, "1", None])
def test_schema_is_checked(schema: object) -> None:
    doc = _doc()
    doc["schema"] = schema
    err = _error(doc)
    if isinstance(schema, int):
        assert err.message == (
            f"compat.yaml: schema {schema} is not one this dlsetup reads (it reads 1, 2)"
        )
    else:
        assert err.message.startswith("compat.yaml: schema: expected an integer schema version")


def test_not_a_mapping() -> None:
    assert _error(["schema", 1]).message.startswith("compat.yaml: (top level): expected a mapping")


# -- the facts, as read from the recipes --------------------------------------------------------


def _lines(framework: str, platform: str) -> list[tuple[str | None, str, str | None]]:
    fw = knowledge_base().conda_forge.frameworks[framework]
    return [(x.cuda, x.build, x.arm_variant) for x in fw.platforms[platform]]


def test_pytorch_lines_per_platform() -> None:
    assert _lines("pytorch", "linux-64") == [
        ("13.0", "cuda130_*", None),
        ("12.9", "cuda129_*", None),
        (None, "cpu_*", None),
    ]
    assert _lines("pytorch", "linux-aarch64") == [
        ("13.0", "cuda130_*", "sbsa"),
        ("12.9", "cuda129_*", "sbsa"),
        ("12.9", "cuda129_*", "tegra"),
        (None, "cpu_*", None),
    ]
    assert _lines("pytorch", "win-64") == [
        ("13.0", "cuda130_*", None),
        ("12.8", "cuda128_*", None),
        (None, "cpu_*", None),
    ]
    for osx in ("osx-64", "osx-arm64"):
        lines = knowledge_base().conda_forge.frameworks["pytorch"].platforms[osx]
        assert [(x.cuda, x.mps) for x in lines] == [(None, True)]


def test_arch_lists_and_glibc_floors() -> None:
    fw = knowledge_base().conda_forge.frameworks["pytorch"]
    by = {(x.platform, x.cuda, x.arm_variant): x for p in fw.platforms.values() for x in p}
    assert by["linux-64", "12.9", None].arch == "5.0;6.0;7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX"
    assert by["linux-64", "13.0", None].arch == "7.5;8.0;8.6;9.0;10.0;11.0;12.0+PTX"
    assert by["linux-aarch64", "13.0", "sbsa"].arch == "7.5;8.0;8.6;8.7;9.0;10.0;11.0;12.0+PTX"
    assert by["linux-aarch64", "12.9", "tegra"].arch == "8.7+PTX"
    assert by["win-64", "12.8", None].arch == by["linux-64", "12.9", None].arch
    assert by["linux-64", "13.0", None].glibc == "2.28"
    assert by["linux-aarch64", "12.9", "tegra"].glibc == "2.34"
    assert by["linux-64", "12.9", None].glibc == "2.17"
    tf = knowledge_base().conda_forge.frameworks["tensorflow"]
    assert [(x.platform, x.cuda) for p in tf.platforms.values() for x in p if x.cuda] == [
        ("linux-64", "12.8")
    ]
    tf_arch = parse_arch_list(tf.platforms["linux-64"][0].arch or "")
    assert min(tf_arch.sass) == (6, 0) and tf_arch.ptx == frozenset({(12, 0)})
    assert "3.13" not in tf.python


def test_pypi_and_conda_forge_lists_are_both_kept() -> None:
    kb = knowledge_base()
    pypi_cu130 = kb.torch.releases["2.13"].variants["cu130"]
    conda_forge_130 = kb.conda_forge.frameworks["pytorch"].platforms["linux-64"][0].arch
    assert pypi_cu130 == "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
    assert conda_forge_130 != pypi_cu130  # conda-forge adds 11.0


def test_driver_branch_limits() -> None:
    kepler, older = knowledge_base().driver_limits
    assert (kepler.architecture, kepler.last_branch, kepler.last_cuda) == ("Kepler", "R470", "11.4")
    assert kepler.covers((3, 7)) and not kepler.covers((5, 0))
    assert older.covers((6, 1)) and older.covers((7, 0)) and not older.covers((7, 5))


# ------------------------------------------------------------------ companions (torchvision, torchaudio)


def test_companion_pairs_are_read_with_their_sources() -> None:
    kb = parse_knowledge_base(_doc())
    tv, ta = kb.companions["torchvision"], kb.companions["torchaudio"]
    assert tv.pairs["2.13"] == "0.28" and tv.pairs["2.0"] == "0.15"
    assert all(tv.pairs[f"2.{n}"] == f"0.{n + 15}" for n in range(15))  # the vision README
    assert list(ta.pairs)[-1] == "2.11" and ta.last == "2.11"  # PyPI stops at 2.11
    assert (tv.stable_abi_from, ta.stable_abi_from) == ("0.29", "2.11")
    assert "pytorch/vision README.md" in kb.cite(tv.sources)
    assert "stable ABI" in kb.cite(ta.sources)


def test_companion_unknown_key_is_refused() -> None:
    doc = _doc()
    doc["companions"]["torchvision"]["stable_abi"] = "0.29"
    assert _error(doc).message.startswith(
        "compat.yaml: unknown key companions.torchvision.stable_abi"
    )


def test_companion_pairs_out_of_order_are_refused() -> None:
    doc = _doc()
    pairs = doc["companions"]["torchvision"]["pairs"]
    doc["companions"]["torchvision"]["pairs"] = dict(reversed(list(pairs.items())))
    assert "torch releases oldest first" in _error(doc).message


def test_companion_release_that_goes_backwards_is_refused() -> None:
    doc = _doc()
    doc["companions"]["torchvision"]["pairs"]["2.13"] = "0.17"
    assert "companion releases rising with torch's" in _error(doc).message


def test_companion_last_release_must_be_the_newest_pair() -> None:
    doc = _doc()
    doc["companions"]["torchaudio"]["last"] = "2.10"
    assert "the newest release of pairs (2.11)" in _error(doc).message


def test_companion_stable_abi_needs_a_source() -> None:
    doc = _doc()
    del doc["companions"]["torchaudio"]["stable_abi_source"]
    assert _error(doc).message == (
        "compat.yaml: missing key companions.torchaudio.stable_abi_source"
    )


def test_companion_source_must_be_a_key_of_sources() -> None:
    doc = _doc()
    doc["companions"]["torchvision"]["source"] = ["tv_readme", "nowhere"]
    assert "source 'nowhere' is not a key of sources" in _error(doc).message


def test_companion_unquoted_version_is_refused() -> None:
    doc = _doc()
    doc["companions"]["torchaudio"]["pairs"]["2.9"] = 2.9
    assert "companions.torchaudio.pairs.2.9: expected a non-empty string" in _error(doc).message


# ------------------------------------------------------------------ conda-forge's companion builds


def test_conda_forge_companions_are_read_from_the_feedstocks() -> None:
    kb = knowledge_base()
    tv, ta = kb.conda_forge_companions["torchvision"], kb.conda_forge_companions["torchaudio"]
    # torchvision 0.28.0 was rebuilt for pytorch 2.13, conda-forge's pytorch: every line, everywhere
    assert (tv.release, tv.pytorch) == ("0.28.0", "2.13")
    assert tv.pytorch == ".".join(kb.conda_forge.frameworks["pytorch"].release.split(".")[:2])
    for platform, lines in kb.conda_forge.frameworks["pytorch"].platforms.items():
        assert {line.build for line in lines} == set(tv.builds[platform])
    assert tv.has_build("win-64", "cuda128_*") and not tv.has_build("win-64", "cuda129_*")
    # torchaudio stopped at 2.11.0, built with pytorch 2.10 (pinned by pytorch's run_exports)
    assert (ta.release, ta.pytorch) == ("2.11.0", "2.10")
    assert "win-64" not in ta.builds
    assert ta.builds["osx-arm64"] == ("cpu_*",)
    assert "@cc9368e9" in kb.cite(ta.sources) and "@488ecd9d" in kb.cite(tv.sources)
    assert "max_pin='x.x'" in kb.cite(ta.sources)


def test_conda_forge_companion_build_must_be_one_of_pytorchs() -> None:
    doc = _doc()
    doc["conda_forge_companions"]["packages"]["torchvision"]["builds"]["win-64"] = ["cuda129_*"]
    err = _error(doc)
    assert "conda_forge_companions.packages.torchvision.builds.win-64" in err.message
    assert "one of pytorch's build globs there (cpu_*, cuda128_*, cuda130_*)" in err.message


def test_conda_forge_companion_platform_must_be_one_of_pytorchs() -> None:
    doc = _doc()
    doc["conda_forge_companions"]["packages"]["torchaudio"]["builds"]["linux-ppc64le"] = ["cpu_*"]
    assert "a platform of pytorch's" in _error(doc).message


def test_conda_forge_companion_must_be_a_known_companion() -> None:
    doc = _doc()
    packages = doc["conda_forge_companions"]["packages"]
    packages["torchtext"] = dict(packages["torchvision"], package="torchtext")
    assert "a companion of companions: (torchvision, torchaudio)" in _error(doc).message


def test_conda_forge_companion_needs_known_sources_and_quoted_versions() -> None:
    doc = _doc()
    doc["conda_forge_companions"]["packages"]["torchaudio"]["source"] = ["cf_ta_recipe", "nowhere"]
    assert "conda_forge_companions.packages.torchaudio: source 'nowhere'" in _error(doc).message
    doc = _doc()
    doc["conda_forge_companions"]["packages"]["torchaudio"]["pytorch"] = 2.10
    assert "conda_forge_companions.packages.torchaudio.pytorch" in _error(doc).message
    doc = _doc()
    doc["conda_forge_companions"]["packages"]["torchvision"]["arch_list"] = "7.5"
    assert "unknown key conda_forge_companions.packages.torchvision.arch_list" in (
        _error(doc).message
    )


def test_schema_2_needs_the_day_the_data_was_refreshed() -> None:
    import datetime

    doc = _doc()
    del doc["refreshed"]
    assert _error(doc).message == "compat.yaml: missing key refreshed"
    doc = _doc()
    doc["refreshed"] = datetime.date(2026, 11, 27)  # what YAML makes of an unquoted date
    assert _error(doc).message == (
        'compat.yaml: refreshed: expected a quoted date "YYYY-MM-DD", found date '
        "datetime.date(2026, 11, 27)"
    )
    doc = _doc()
    doc["refreshed"] = "2026-13-01"
    assert "expected a quoted date" in _error(doc).message
    # twin: schema 1 files (before the refresh tool) read without it
    doc = _doc()
    doc["schema"] = 1
    del doc["refreshed"]
    assert parse_knowledge_base(doc).refreshed is None


def test_a_release_row_from_pypi_is_typed_and_checked() -> None:
    kb = parse_knowledge_base(_doc())
    release = kb.torch.releases["2.15"]
    assert (release.released, release.pypi_default) == ("2026-10-28", "cu132")
    assert not release.has_variant_facts  # variants not read: no arch list is invented
    assert kb.torch.releases["2.14"].has_variant_facts
    doc = _doc()
    doc["pytorch"]["releases"]["2.15"]["released"] = "28/10/2026"
    assert _error(doc).message.startswith(
        'compat.yaml: pytorch.releases.2.15.released: expected a quoted date "YYYY-MM-DD"'
    )
    doc = _doc()
    doc["pytorch"]["releases"]["2.15"]["source"] = ["pypi_torch", "a_forum_post"]
    assert "pytorch.releases.2.15: source 'a_forum_post' is not a key of sources" in (
        _error(doc).message
    )
    doc = _doc()
    doc["pytorch"]["releases"]["2.15"]["python_max"] = "3.x"
    assert "pytorch.releases.2.15.python_max" in _error(doc).message
