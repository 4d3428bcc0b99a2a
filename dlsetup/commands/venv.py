"""The ``--backend venv`` side of ``dlsetup lock`` and ``dlsetup create``: options and rendering.

The commands stay in :mod:`dlsetup.commands.envs`; this holds the options they share for the venv
backend, the request they build from them, and how a venv lock is shown (text or ``--json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from dlsetup.envs.venv.lock import PlatformLock, VenvLockRequest, VenvLockResult

BACKEND_CHOICE = click.Choice(["conda", "venv"])


def venv_options(func: Any) -> Any:
    """``--backend``, ``--torch-index-url`` and ``--index-url``, for lock and create."""
    decorators = [
        click.option(
            "--backend",
            type=BACKEND_CHOICE,
            default="conda",
            show_default=True,
            help="conda: a conda environment from conda-forge (conda-lock file). venv: a Python "
            "virtual environment from PyPI and PyTorch's wheel index, locked with uv into a "
            "PEP 751 pylock.toml (pip and uv read it).",
        ),
        click.option(
            "--torch-index-url",
            metavar="URL",
            help="venv: the PyTorch wheel index; {variant} is replaced by cpu, cu126, cu130, ... "
            "(default: https://download.pytorch.org/whl/{variant}).",
        ),
        click.option(
            "--index-url",
            metavar="URL",
            help="venv: the index for everything else (default: https://pypi.org/simple).",
        ),
        click.option(
            "--torch-version",
            metavar="X.Y",
            help="venv: lock this PyTorch release instead of the one chosen. Refused (exit 2, "
            "with the releases that fit) where dlsetup's data shows it has no build for the "
            "variant, the GPUs or the Python; a release newer than the data is allowed, its "
            "wheel variant chosen by the rules of the newest release the data knows, and said so.",
        ),
        click.option(
            "--accept-variant",
            metavar="VARIANT",
            help="venv: where the sources hold no PyTorch build of the variant chosen (cpu, "
            "cu126, ...) but another one (PyPI's Linux torch is a CUDA build, which also runs on "
            "a CPU), lock that one, labelled as what it is: name the variant the refusal "
            "reports (cu130), or 'any'. Without it such a lock stops (exit 2) before anything "
            "is downloaded, naming the build found and its download size.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def refuse_conda_only(ctx: click.Context, **given: Any) -> None:
    """Refuse options that only conda environments have, with ``--backend venv``."""
    for option, value in given.items():
        if value:
            raise click.UsageError(f"{option} does not apply to --backend venv", ctx=ctx)


def refuse_venv_only(
    ctx: click.Context,
    torch_index_url: str | None,
    index_url: str | None,
    torch_version: str | None = None,
    accept_variant: str | None = None,
) -> None:
    """Refuse the venv backend's options with ``--backend conda``."""
    for option, value in (
        ("--torch-index-url", torch_index_url),
        ("--index-url", index_url),
        ("--torch-version", torch_version),
        ("--accept-variant", accept_variant),
    ):
        if value:
            raise click.UsageError(f"{option} only applies to --backend venv", ctx=ctx)


def venv_request(
    target: str,
    variant: str,
    cuda: str | None,
    gpu_arch: tuple[str, ...],
    python_version: str | None,
    platforms: tuple[str, ...],
    all_platforms: bool,
    torch_index_url: str | None,
    index_url: str | None,
    torch_version: str | None = None,
    accept_variant: str | None = None,
) -> VenvLockRequest:
    """The venv backend's request from the command's options."""
    from dlsetup.envs.pipeline import venv_request as make_request

    request: VenvLockRequest = make_request(
        target=target,
        variant=variant,
        cuda=cuda,
        platforms=platforms,
        all_platforms=all_platforms,
        python_version=python_version,
        gpu_arch=gpu_arch,
        torch_index_url=torch_index_url,
        index_url=index_url,
        torch_version=torch_version,
        accept_variant=accept_variant,
    )
    return request


def venv_lock_data(result: VenvLockResult) -> dict[str, Any]:
    """The ``data`` of a ``dlsetup.venv-lock`` document."""
    from dlsetup.envs.pipeline import venv_variant_reason as variant_reason

    choice, torch = result.choice, result.torch
    return {
        "name": result.name,
        "target": result.target,
        "backend": "venv",
        "variant": choice.variant,
        "variant_reason": variant_reason(result),
        "torch": None
        if torch is None
        else {
            "variant": result.torch_variant,
            "planned_variant": torch.variant,
            "accepted_variant": result.accepted_variant,
            "companion_notes": list(result.companion_notes),
            "release": torch.release,
            "reason": torch.reason,
            "passed_over": list(torch.passed_over),
            "release_note": torch.release_note or None,
        },
        "tensorflow": None
        if result.tensorflow is None
        else {"requirement": result.tensorflow[0], "reason": result.tensorflow[1]},
        "cuda": choice.cuda,
        "python": result.python,
        "index_url": result.index_url,
        "sources": [s.data() for s in result.used_sources],
        "source_lines": list(result.sources),
        "uv_settings": list(result.uv_settings),
        "uv_settings_forwarded": list(result.uv_settings_forwarded),
        "gpus": [
            {"index": g.index, "name": g.name, "compute_capability": f"{g.cc[0]}.{g.cc[1]}"}
            for g in choice.gpus
        ],
        "gpu_source": choice.gpu_source,
        "files": {"lock": str(result.lock_path)},
        "platforms": [_platform_data(p, result) for p in result.platforms],
    }


def _platform_data(p: PlatformLock, result: VenvLockResult) -> dict[str, Any]:
    """One platform of a ``dlsetup.venv-lock`` document: what was resolved, where from."""
    sources = dict(p.origins)
    build = p.build
    return {
        "platform": p.platform.name,
        "python_platform": p.platform.python_platform,
        "marker": p.platform.marker,
        "torch_index": p.torch_index or None,
        "requirements": list(p.requirements),
        "packages": [
            {"name": n, "version": v, **({"source": sources[n]} if n in sources else {})}
            for n, v in p.packages
        ],
        "resolve_ms": round(p.resolve_ms, 3),
        "build": None
        if build is None
        else {
            "variant": build.variant,
            "planned_variant": p.expected_variant,
            "fits_plan": not p.variant_differs,
            "torch": build.torch_version,
            "pypi_build": build.pypi_build,
            "cuda_libraries": list(build.cuda_libraries),
            "companions": [{"name": n, "version": v} for n, v in build.companions],
            "description": build.describe(),
            "unchecked": list(build.unchecked),
            "cuda_warnings": [
                w.data() for w in result.cuda_warnings if w.platform == p.platform.name
            ],
            "cuda_checked": [
                m.data() for m in result.cuda_checked if m.platform == p.platform.name
            ],
        },
        "download_bytes": p.download_bytes,
    }


def lock_venv_command(
    request: VenvLockRequest, output: Path, *, force: bool, as_json: bool
) -> None:
    """``dlsetup lock TARGET --backend venv``: lock, then print what and why."""
    from dlsetup.envs.pipeline import lock
    from dlsetup.envs.pipeline import venv_variant_reason as variant_reason
    from dlsetup.output import dumps, envelope, make_console

    result: VenvLockResult = lock("venv", request, output, force=force).result
    if as_json:
        click.echo(dumps(envelope("dlsetup.venv-lock", venv_lock_data(result))))
        return
    console = make_console()

    def say(text: str) -> None:
        console.print(text, markup=False, soft_wrap=True)

    what = f"PyTorch {result.torch.release} ({result.torch_variant})" if result.torch else ""
    if result.tensorflow is not None:
        what = ", ".join(w for w in (what, result.tensorflow[0]) if w)
    say(f"Locked {result.name}{': ' + what if what else ''} for Python {result.python} with uv.")
    say(f"  Why: {variant_reason(result)}")
    if result.torch is not None:
        for line in result.accepted_lines():
            say(line)
        if result.torch.release_note:
            say(f"  Release: {result.torch.release_note}")
        for why in result.torch.passed_over:
            say(f"  Passed over {why}")
    for note in result.companion_notes:
        say(f"  Companions: {note}")
    for p in result.platforms:
        index = f"; PyTorch from {p.torch_index}" if p.torch_index else ""
        frameworks = [
            f"{n} {v}"
            for n, v in p.packages
            if n in ("torch", "torchvision", "torchaudio", "tensorflow")
        ]
        say(f"  {p.platform.name}: {'; '.join(frameworks)}; {len(p.packages)} packages{index}")
        if p.build is not None:
            say(f"    Build: {p.build.describe()}")
            for why in p.build.unchecked:
                say(f"    Unchecked: {why}")
        for where, names in p.origin_groups():
            say(f"    From {where}: {names}")
    for line in result.sources:  # each source and its origin; the fallback, when taken
        say(f"  Source: {line}")
    for line in result.uv_settings:  # the user's uv settings that are not sources, and where
        say(f"  uv setting: {line}")
    for w in result.cuda_warnings:  # another CUDA minor of torch's major: it loads (doctor warns)
        click.echo(f"Warning: {w.message}. Fix: {w.fix}", err=True)
    say(f"Wrote: {result.lock_path}")
    say(f"Next: dlsetup create --from-lock {result.lock_path}")
