"""One lock request, from options to files: pick the variant and platforms, render, lock.

This is what ``dlsetup lock`` and ``dlsetup create TARGET`` do before anything is solved:

* TARGET is a shipped target (``pytorch``, ``tensorflow``, ``both``) or the path of a user's own
  environment file (then ``target`` is recorded as ``file``);
* ``--variant auto`` is resolved by :func:`dlsetup.envs.variant.choose_variant` (with
  ``--all-platforms`` the variant is chosen for this machine, then locked wherever it exists);
* a platform where the variant does not exist is refused with the list of those where it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlsetup.envs import spec as spec_mod
from dlsetup.envs.credentials import redact_error
from dlsetup.envs.location import host_platform
from dlsetup.envs.lock import LockResult, lock_environment
from dlsetup.envs.spec import PLATFORMS, TARGETS
from dlsetup.envs.variant import VariantChoice, choose_variant
from dlsetup.envs.virtual import CUDA_DRIVER, CUDA_OPTION
from dlsetup.errors import DlsetupError, InputError


@dataclass(frozen=True)
class LockRequest:
    """What the user asked ``dlsetup lock`` for (empty ``platforms``: this machine's)."""

    target: str
    variant: str
    cuda: str | None
    platforms: tuple[str, ...]
    all_platforms: bool
    python_version: str | None
    channels: tuple[str, ...]
    engine: str


def lock_target(
    opts: LockRequest, output: Path, *, force: bool
) -> tuple[LockResult, VariantChoice]:
    """Choose the variant and platforms, render the environment file and lock it.

    Args:
        opts: what the user asked for.
        output: directory for the three output files.
        force: replace existing output files.

    Raises:
        InputError: an impossible combination (variant not built for a platform, ...).
        ExistsError: an output file exists and ``force`` is false.
        SolveError: unsatisfiable, or the channels could not be read.
    """
    try:
        return _lock_target(opts, output, force=force)
    except DlsetupError as exc:  # a channel URL may be quoted in any message: mask credentials
        redact_error(exc)
        raise


def _lock_target(
    opts: LockRequest, output: Path, *, force: bool
) -> tuple[LockResult, VariantChoice]:
    host = host_platform()
    custom = opts.target not in TARGETS
    if opts.python_version is not None:
        spec_mod.validate_python_version(opts.python_version)
    if opts.all_platforms and opts.platforms:
        raise InputError("--all-platforms and --platform exclude each other", fix="use one of them")
    requested_platforms = opts.platforms or (host,)
    if not opts.all_platforms and any(p not in PLATFORMS for p in requested_platforms):
        bad = next(p for p in requested_platforms if p not in PLATFORMS)
        raise InputError(
            f"this machine's platform {bad} is not one dlsetup locks for; valid platforms: "
            f"{', '.join(PLATFORMS)}",
            fix="name one with --platform",
        )

    def has_variant(variant: str) -> bool:
        if custom:
            return variant in ("cpu", "cuda")
        return bool(spec_mod.variant_platforms(opts.target, variant))

    choice = choose_variant(
        opts.variant,
        cuda=opts.cuda,
        platforms=(host,) if opts.all_platforms else requested_platforms,
        has_variant=has_variant,
    )
    if custom:
        source = spec_mod.load_environment_file(Path(opts.target))
        available = source.platforms or PLATFORMS
        target_label = "file"
    else:
        source = spec_mod.load_environment_file(
            spec_mod.environment_file(opts.target, choice.variant)
        )
        available = source.platforms
        target_label = opts.target
    if opts.all_platforms:
        platforms = tuple(p for p in PLATFORMS if p in available)
    else:
        platforms = requested_platforms
        missing = [p for p in platforms if p not in available]
        if missing:
            raise InputError(
                f"{opts.target} has no {choice.variant} variant for {', '.join(missing)}; "
                f"the {choice.variant} variant exists for: {', '.join(available)}",
                fix="pick one of those with --platform, or another --variant (cpu exists on more "
                "platforms)",
            )
    name = source.name if custom else f"{opts.target}-{choice.variant}"
    rendered = spec_mod.render(
        source,
        target=target_label,
        variant=choice.variant,
        cuda=choice.cuda,
        python=opts.python_version,
        channels=opts.channels,
        platforms=platforms,
        name=name,
    )
    result = lock_environment(
        rendered,
        platforms=platforms,
        output_dir=output,
        engine=opts.engine,
        force=force,
        cuda_source=CUDA_OPTION if opts.cuda is not None else CUDA_DRIVER,
    )
    return result, choice
