"""The per-user cache of the parsed knowledge base (dlsetup/compat/cache.py): a hit gives the
records of a fresh parse, and nothing but the document of the very same bytes, written by us after
validation, is ever used; everything else is a miss that parses the YAML and rewrites the cache."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import dlsetup.compat as compat
from dlsetup.compat import cache, load_knowledge_base
from dlsetup.compat.model import CondaForgeFacts, CondaForgeLine, parse_knowledge_base
from dlsetup.errors import KnowledgeBaseError

DATA = compat._source()


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``XDG_CACHE_HOME`` in the test's directory; returns the cache file's path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "dlsetup" / cache.FILE_NAME


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every YAML parse made, recorded (a cache hit makes none)."""
    seen: list[bytes] = []
    real = compat._parse_yaml

    def counting(data: bytes) -> dict[str, Any]:
        seen.append(data)
        return real(data)

    monkeypatch.setattr(compat, "_parse_yaml", counting)
    return seen


@pytest.fixture
def fresh_process() -> Iterator[None]:
    """The process-wide knowledge base forgotten before and after (as in a new process)."""
    compat._loaded.cache_clear()
    yield
    compat._loaded.cache_clear()


def _fresh(data: bytes = DATA) -> Any:
    return parse_knowledge_base(yaml.safe_load(data.decode("utf-8")), compat.DATA_FILE)


def test_a_hit_gives_the_records_of_a_fresh_parse(cache_home: Path, parses: list[bytes]) -> None:
    first, doc1 = load_knowledge_base(DATA)
    assert len(parses) == 1 and cache_home.is_file()
    second, doc2 = load_knowledge_base(DATA)
    assert len(parses) == 1  # the hit parsed no YAML
    assert second == first == _fresh()
    assert doc2 == doc1 == yaml.safe_load(DATA.decode("utf-8"))
    # the records are rebuilt as the same typed records, not left as JSON lists and dicts
    assert type(second.conda_forge) is CondaForgeFacts
    line = second.conda_forge.frameworks["pytorch"].platforms["linux-64"][0]
    assert type(line) is CondaForgeLine and isinstance(line.sources, tuple)
    assert isinstance(second.conda_forge.tegra_ccs, frozenset)
    assert list(doc2) == list(doc1)  # mapping order kept (orders are facts: newest first)
    # the file cannot carry code: plain JSON, its header naming the very bytes it caches
    header = json.loads(cache_home.read_bytes().partition(b"\n")[0])
    assert header["source_sha256"] == cache.source_key(DATA)


def test_knowledge_base_uses_the_cache_from_the_second_process_on(
    cache_home: Path, parses: list[bytes], fresh_process: None
) -> None:
    kb = compat.knowledge_base()
    assert len(parses) == 1
    compat._loaded.cache_clear()  # a second dlsetup process
    assert compat.knowledge_base() == kb == _fresh()
    assert len(parses) == 1  # the second process read the cache
    assert compat.load_data() == yaml.safe_load(DATA.decode("utf-8"))


def test_a_changed_file_is_parsed_again(cache_home: Path, parses: list[bytes]) -> None:
    load_knowledge_base(DATA)
    assert b'release: "2.13.0"' in DATA
    changed = DATA.replace(b'release: "2.13.0"', b'release: "2.13.1"', 1)
    kb, _ = load_knowledge_base(changed)
    assert len(parses) == 2  # a different hash: not the cached document
    assert kb.conda_forge.frameworks["pytorch"].release == "2.13.1"
    assert kb == _fresh(changed)
    # a comment only: the same document, but other bytes, so parsed again all the same
    load_knowledge_base(changed + b"\n# edited\n")
    assert len(parses) == 3
    # and the cache now holds the last file's document: the first one is parsed again
    load_knowledge_base(DATA)
    assert len(parses) == 4
    load_knowledge_base(DATA)
    assert len(parses) == 4


def _write_cache(path: Path, header: dict[str, object], body: bytes) -> None:
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


def _corruptions(path: Path) -> list[tuple[str, bytes]]:
    good = path.read_bytes()
    head, _, body = good.partition(b"\n")
    header = json.loads(head)
    flipped = body.replace(b"cuda130_", b"cuda131_", 1)
    foreign = dict(header, dlsetup="0.0.0-other")
    old_format = dict(header, format=0)
    a_list = b"[1, 2]"
    return [
        ("garbage", b"\x80\x81not json at all\x00"),
        ("empty", b""),
        ("truncated", good[: len(good) // 2]),
        ("header only", head),
        ("a byte changed in the document", head + b"\n" + flipped),
        ("another dlsetup version", json.dumps(foreign).encode() + b"\n" + body),
        ("another file format", json.dumps(old_format).encode() + b"\n" + body),
        (
            "not a mapping, digest matching",
            json.dumps(dict(header, body_sha256=cache.source_key(a_list))).encode()
            + b"\n"
            + a_list,
        ),
        ("a header that is a list", b"[]\n" + body),
    ]


def test_a_corrupt_cache_file_is_ignored_and_replaced(
    cache_home: Path, parses: list[bytes]
) -> None:
    load_knowledge_base(DATA)
    good = cache_home.read_bytes()
    for name, blob in _corruptions(cache_home):
        cache_home.write_bytes(blob)
        before = len(parses)
        kb, _ = load_knowledge_base(DATA)
        assert len(parses) == before + 1, name  # the YAML was parsed
        assert kb == _fresh(), name
        assert cache_home.read_bytes() == good, name  # rewritten
        assert cache.load(cache.source_key(DATA)) is not None, name
    assert [p.name for p in cache_home.parent.iterdir()] == [cache.FILE_NAME]  # no temp files


def test_a_forged_document_that_fails_validation_is_not_used(
    cache_home: Path, parses: list[bytes]
) -> None:
    load_knowledge_base(DATA)
    head, _, body = cache_home.read_bytes().partition(b"\n")
    doc = json.loads(body)
    del doc["conda_forge"]["frameworks"]["pytorch"]["platforms"]["linux-64"][0]["build"]
    forged = json.dumps(doc).encode()
    _write_cache(cache_home, dict(json.loads(head), body_sha256=cache.source_key(forged)), forged)
    assert cache.load(cache.source_key(DATA)) is not None  # it reads as a hit...
    kb, _ = load_knowledge_base(DATA)
    assert kb == _fresh() and len(parses) == 2  # ...fails validation, and the YAML decides
    assert cache.load(cache.source_key(DATA)) == yaml.safe_load(DATA.decode("utf-8"))


@pytest.mark.parametrize("where", ["a file in the way", "no home", "relative XDG_CACHE_HOME"])
def test_no_writable_cache_directory_still_works(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parses: list[bytes]
) -> None:
    if where == "a file in the way":
        blocker = tmp_path / "blocker"
        blocker.write_text("not a directory")
        monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache" if "relative" in where else "")

        def no_home() -> Path:
            raise RuntimeError("Could not determine home directory.")

        monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert cache.cache_dir() is None or where == "a file in the way"
    for _ in range(2):
        kb, _ = load_knowledge_base(DATA)
        assert kb == _fresh()
    assert len(parses) == 2  # parsed each time: nothing to cache in
    if where == "a file in the way":
        assert not cache.store(cache.source_key(DATA), {"schema": 1})
        assert blocker.read_text() == "not a directory"


def test_a_malformed_file_raises_naming_the_key_and_is_never_cached(
    cache_home: Path, parses: list[bytes]
) -> None:
    load_knowledge_base(DATA)  # the good file cached
    good = cache_home.read_bytes()
    assert b' build: "cuda130_*",' in DATA
    broken = DATA.replace(b' build: "cuda130_*",', b"", 1)
    for _ in range(2):  # the second time too: no cache of it was written by the first
        with pytest.raises(KnowledgeBaseError) as caught:
            load_knowledge_base(broken)
        assert caught.value.message == (
            f"{compat.DATA_FILE}: missing key "
            "conda_forge.frameworks.pytorch.platforms.linux-64[0].build"
        )
    assert len(parses) == 3
    assert cache_home.read_bytes() == good  # the good file's cache, untouched and unused


@pytest.mark.parametrize(
    "document",
    [
        {1: "an int key"},
        {"when": datetime.date(2026, 1, 1)},
        {"ratio": float("nan")},
        {"s": {"a", "b"}},
        {"x": (1, 2)},
        {"\ud800": "a lone surrogate"},
    ],
    ids=["int-key", "date", "nan", "set", "tuple", "surrogate"],
)
def test_a_document_json_cannot_carry_exactly_is_not_cached(
    document: dict[str, Any], cache_home: Path
) -> None:
    assert not cache.store("k" * 64, document)
    assert not cache_home.exists()


def test_the_cache_can_be_turned_off(cache_home: Path, parses: list[bytes]) -> None:
    for _ in range(2):
        load_knowledge_base(DATA, use_cache=False)
    assert len(parses) == 2 and not cache_home.exists()
