"""PyTorch's companions (torchvision, torchaudio): which release goes with which PyTorch release.

The pairs come from ``data/compat.yaml`` (``companions:``, sources there). Before a companion's
stable-ABI release its compiled extension is linked against one torch release only; from it on it
runs with its own torch release and every later one, so a torch newer than the table pairs with
the newest stable-ABI release (torchaudio stops at 2.11, which serves torch 2.11 and later).

The pip fixes name PyTorch's own index for the variant of the installed torch (its local version
tag: ``+cpu``, ``+cu130``); a torch without a tag came from PyPI, whose companions match it.
``--force-reinstall --no-deps``: pip would keep an installed ``0.28.0+cu130`` as satisfying
``==0.28.*`` and would otherwise replace torch too.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlsetup.compat import knowledge_base
from dlsetup.compat.frameworks import release_key, torch_index_url
from dlsetup.installer import Installer, install_command

#: The companions the knowledge base pairs with torch, in report order.
COMPANIONS: tuple[str, ...] = ("torchvision", "torchaudio")


def _key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@dataclass(frozen=True)
class CompanionPair:
    """The release of ``companion`` that goes with a torch release.

    Attributes:
        companion: ``torchvision`` / ``torchaudio``.
        release: the companion's release key (``"0.28"``).
        torch_release: the torch release of the table row (``"2.13"``); older than the torch asked
            about when the companion's stable ABI carries it forward.
        stable_abi: the release runs with ``torch_release`` and every later torch.
        source: the citations.
    """

    companion: str
    release: str
    torch_release: str
    stable_abi: bool
    source: str

    @property
    def pin(self) -> str:
        """``"0.28.*"``."""
        return f"{self.release}.*"


def _pair(companion: str, release: str, torch_release: str) -> CompanionPair:
    facts = knowledge_base().companions[companion]
    stable = facts.stable_abi_from is not None and _key(release) >= _key(facts.stable_abi_from)
    return CompanionPair(
        companion, release, torch_release, stable, knowledge_base().cite(facts.sources)
    )


def companion_release(companion: str, torch_version: str) -> CompanionPair | None:
    """The ``companion`` release that goes with ``torch_version`` (``"2.13.0+cpu"``).

    Returns:
        The pair, or None when the knowledge base does not know (torch 1.x, an unknown companion,
        a torch newer than the table whose companion has no stable-ABI release).
    """
    facts = knowledge_base().companions.get(companion)
    key = release_key(torch_version)
    if facts is None or key is None:
        return None
    if key in facts.pairs:
        return _pair(companion, facts.pairs[key], key)
    newest_torch, newest = list(facts.pairs.items())[-1]
    if _key(key) > _key(newest_torch):
        candidate = _pair(companion, newest, newest_torch)
        return candidate if candidate.stable_abi else None
    return None


@dataclass(frozen=True)
class PairVerdict:
    """Whether an installed companion release goes with the installed torch.

    Attributes:
        fits: True / False, or None when the knowledge base cannot say.
        expected: the release that goes with this torch (None when unknown).
        reason: in words, naming both versions.
    """

    fits: bool | None
    expected: CompanionPair | None
    reason: str


def pair_fits(companion: str, companion_version: str, torch_version: str) -> PairVerdict:
    """Judge ``companion`` ``companion_version`` beside torch ``torch_version``."""
    expected = companion_release(companion, torch_version)
    have = release_key(companion_version)
    if expected is None or have is None:
        return PairVerdict(None, expected, f"no pairing of {companion} with torch {torch_version}")
    if have == expected.release:
        return PairVerdict(
            True, expected, f"{companion} {have} goes with torch {expected.torch_release}"
        )
    facts = knowledge_base().companions[companion]
    built_for = next((t for t, c in facts.pairs.items() if c == have), None)
    torch_key = release_key(torch_version) or torch_version
    if built_for is not None and _pair(companion, have, built_for).stable_abi:
        if _key(torch_key) >= _key(built_for):
            return PairVerdict(
                True,
                expected,
                f"{companion} {have} is built on torch's stable ABI and runs with torch "
                f"{built_for} and later",
            )
        return PairVerdict(
            False,
            expected,
            f"{companion} {have} needs torch {built_for} or later; torch {torch_version} pairs "
            f"with {companion} {expected.release}",
        )
    built = (
        f"was built for torch {built_for} only"
        if built_for
        else "is no release the pairs table knows"
    )
    return PairVerdict(
        False,
        expected,
        f"{companion} {companion_version} {built}; torch {torch_version} pairs with {companion} "
        f"{expected.release}"
        + (
            " (built on torch's stable ABI, so it also serves later torch releases)"
            if expected.stable_abi
            else ""
        ),
    )


def torch_variant(torch_version: str) -> str | None:
    """The wheel variant named by torch's local version tag (``cpu``, ``cu130``, ``rocm6.4``);
    None for a torch without one (PyPI's own wheel)."""
    tag = torch_version.partition("+")[2]
    return tag or None


def install_companion_command(inst: Installer, pair: CompanionPair, torch_version: str) -> str:
    """The companion release of ``pair`` from the index of the installed torch's variant, in the
    environment's own installer: ``PY -m pip install --force-reinstall --no-deps
    'torchvision==0.28.*' --index-url URL``, ``uv pip install --python PY --reinstall ...`` where
    the venv has no pip, conda's or pixi's spec in theirs (:mod:`dlsetup.installer`)."""
    variant = torch_variant(torch_version)
    return install_command(
        inst,
        [f"{pair.companion}=={pair.pin}"],
        reinstall=True,
        no_deps=True,
        index_url=torch_index_url(variant) if variant else None,
    )


def conda_build_glob(torch_cuda: str | None) -> str:
    """conda-forge's build-string glob of a companion for torch's build: ``*cuda129*`` / ``*cpu*``."""
    if torch_cuda is None:
        return "*cpu*"
    return f"*cuda{torch_cuda.replace('.', '')}*"


def conda_spec(pair: CompanionPair, torch_cuda: str | None) -> str:
    """``"torchvision=0.28.*=*cuda129*"`` (conda's ``name=version=build``), quoted for a shell."""
    return f'"{pair.companion}={pair.pin}={conda_build_glob(torch_cuda)}"'


def smoke_fix(companion: str, torch_version: str, inst: Installer) -> str:
    """What ``dlsetup smoke`` says about a broken companion: its release for this torch, from the
    knowledge base, in the environment's own installer; doctor names the exact build."""
    doctor = f"`dlsetup doctor --python {inst.python}` names the fix for this environment"
    pair = companion_release(companion, torch_version)
    if pair is None:
        return f"install the {companion} release built for torch {torch_version}; {doctor}"
    return (
        f"install the {companion} release built for torch {torch_version} ({companion} "
        f"{pair.release}): `{install_companion_command(inst, pair, torch_version)}`; {doctor}"
    )
