"""Where a venv lock resolves from, and the uv call that resolves it: every source probed once
before anything is resolved (:func:`plan_routes`), and :class:`LockSources`, whose
:meth:`~LockSources.resolve` runs ``uv pip compile`` for one platform with those sources, uv's
working directory and its private cache; what was searched, for ``--json``
(:func:`used_sources`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.envs.pypi.install import run_uv_step
from dlsetup.envs.pypi.uv import index_args
from dlsetup.envs.venv.torch_choice import index_of

if TYPE_CHECKING:
    from dlsetup.envs.reachability import VenvSources
    from dlsetup.envs.sources import Source
    from dlsetup.envs.venv.lock_platforms import VenvPlatform
    from dlsetup.envs.venv.plan import VenvLockRequest, VenvPlan


#: the default index for everything else
DEFAULT_INDEX = "https://pypi.org/simple"


def _resolve(
    reqs: tuple[str, ...],
    platform: VenvPlatform,
    python: str,
    *,
    torch_index: str,
    index_url: str,
    workdir: Path,
    cache_dir: Path | None = None,
    extra: tuple[str, ...] = (),
    find_links: tuple[str, ...] = (),
    first_index: bool = False,
) -> tuple[dict[str, Any], float]:
    """uv's resolution of ``reqs`` for ``platform``, and its wall time (ms); ``first_index``: each
    package only from the first index that lists it (uv's default), even with configured
    extra indexes."""
    from dlsetup.envs.venv.pylock import load_toml

    source = workdir / f"{platform.name}.in"
    source.write_text("\n".join(reqs) + "\n", encoding="utf-8")
    out = workdir / f"pylock.{platform.name}.toml"
    args = [
        "pip", "compile", str(source), "--format", "pylock.toml", "--generate-hashes",
        "--python-version", python, "--python-platform", platform.python_platform,
        "--only-binary", ":all:", "--no-header", "--quiet", "-o", str(out),
    ]  # fmt: skip
    # torch's index first, then the configured ones; credentials in a private config file
    args += index_args(index_url, [torch_index, *extra], find_links, workdir=workdir)
    if (extra or find_links) and not first_index:
        # pip, whose settings these are, takes a package from any of its indexes; uv's default
        # takes it only from the first that lists it, so a mirror holding one package without a
        # wheel for the platform (debugpy for manylinux_2_34 only) failed the whole lock. Each
        # index is still exhausted in order (torch's first): a build of another variant taken
        # from a later one is caught by the label check (dlsetup.envs.venv.resolved)
        args += ["--index-strategy", "unsafe-first-match"]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    start = time.perf_counter()
    run_uv_step(args, "resolve")
    seconds = time.perf_counter() - start
    return load_toml(out.read_text(encoding="utf-8")), seconds * 1000


@dataclass(frozen=True)
class LockSources:
    """Where one lock resolves from, and uv's working directory and cache."""

    index_url: str
    python: str
    workdir: Path
    cache: Path | None
    #: the configured extra indexes and find-links that answered (:mod:`dlsetup.envs.sources`)
    indexes: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()

    def resolve(
        self,
        reqs: tuple[str, ...],
        platform: VenvPlatform,
        torch_index: str,
        *,
        first_index: bool = False,
    ) -> tuple[dict[str, Any], float]:
        """uv's resolution of ``reqs`` for ``platform`` from these sources (:func:`_resolve`)."""
        return _resolve(
            reqs,
            platform,
            self.python,
            torch_index=torch_index,
            index_url=self.index_url,
            extra=self.indexes,
            find_links=self.find_links,
            workdir=self.workdir,
            cache_dir=self.cache,
            first_index=first_index,
        )


def plan_routes(request: VenvLockRequest, plan: VenvPlan, pattern: str) -> VenvSources:
    """Every source of this lock, probed once with a short timeout before anything is resolved
    (:func:`dlsetup.envs.reachability.plan_venv_sources`): PyTorch's index per variant, the
    sources configured for pip and uv (unless ``--index-url`` is given), the default index."""
    from dlsetup.envs.reachability import plan_venv_sources, pypi_torch_misfit

    variants: set[str] = set()
    if plan.torch is not None:
        variants = {plan.torch.variant if p.cuda_wheels else "cpu" for p in plan.platforms}
    return plan_venv_sources(
        index_url=request.index_url,
        torch_indexes={v: index_of(pattern, v) for v in sorted(variants)},
        torch_given=request.torch_index_url is not None,
        pypi_misfit=pypi_torch_misfit(plan.choice, plan.torch.release) if plan.torch else None,
    )


@dataclass(frozen=True)
class UsedSource:
    """One source a venv lock was resolved from, for ``--json``.

    Attributes:
        role: ``torch`` (PyTorch's index for ``variant``, searched first), ``index`` (a
            configured extra index), ``find-links``, or ``default`` (the default index).
        source: the source, with where it was set (its URL may hold credentials: show
            :attr:`~dlsetup.envs.sources.Source.shown`).
        variant: the wheel variant, for ``torch``; empty otherwise.
    """

    role: str
    source: Source
    variant: str = ""

    def data(self) -> dict[str, str]:
        """The ``--json`` form: credentials masked."""
        entry = {
            "role": self.role,
            "kind": self.source.kind,
            "url": self.source.shown,
            "origin": self.source.origin,
            "origin_kind": self.source.origin_kind,
        }
        return {**entry, **({"variant": self.variant} if self.variant else {})}


def used_sources(routes: VenvSources) -> tuple[UsedSource, ...]:
    """The sources a lock over ``routes`` searches, in uv's order: PyTorch's index per variant
    (where it answered), the configured extra indexes and find-links that answered, the default
    index."""
    torch = [
        UsedSource("torch", t.tried[0].source, variant)
        for variant, t in sorted(routes.torch.items())
        if t.torch_index and t.tried
    ]
    return (
        *torch,
        *(UsedSource("index", s) for s in routes.indexes),
        *(UsedSource("find-links", s) for s in routes.find_links),
        UsedSource("default", routes.default_index),
    )
