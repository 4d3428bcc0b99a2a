"""``dlsetup lock`` and ``dlsetup create``: thin Click commands over :mod:`dlsetup.envs`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dlsetup.commands.options import FilePath
from dlsetup.commands.venv import venv_options
from dlsetup.envs.files.spec import PLATFORMS, TARGETS, VARIANTS
from dlsetup.errors import ExitCode
from dlsetup.platforms import CUDA_PLATFORMS

if TYPE_CHECKING:
    from rich.console import Console

    from dlsetup.envs.finish import SmokeOutcome

ENGINE_CHOICE = click.Choice(["rattler", "conda-lock"])
VARIANT_CHOICE = click.Choice(["auto", *VARIANTS])


class TargetType(click.Choice):  # type: ignore[type-arg]
    """``pytorch``, ``tensorflow``, ``both``, or the path of an environment ``.yml`` file."""

    name = "target"

    def __init__(self) -> None:
        super().__init__(list(TARGETS))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if text.endswith((".yml", ".yaml")):
            if not Path(text).is_file():
                self.fail(f"environment file {text!r} does not exist.", param, ctx)
            return text
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(
                f"{text!r} is not one of {', '.join(repr(t) for t in TARGETS)} "
                "(or the path of an environment .yml file).",
                param,
                ctx,
            )


def _lock_data(result: Any, choice: Any) -> dict[str, Any]:
    return {
        "name": result.name,
        "target": result.target,
        "variant": result.variant,
        "variant_reason": choice.reason,
        "cuda": result.cuda,
        "python": result.python,
        "engine": result.engine,
        "channels": list(result.channels),
        "files": {
            "environment": str(result.environment_path),
            "virtual_packages": str(result.virtual_packages_path),
            "lock": str(result.lock_path),
        },
        "platforms": [
            {
                "platform": p.platform,
                "virtual_packages": [str(v) for v in p.virtual_packages],
                "virtual_package_sources": {v.name: v.source for v in p.virtual_packages},
                "packages": [
                    {"name": pkg.name, "version": pkg.version, "build": pkg.build}
                    for pkg in p.packages
                ],
                "solve_ms": round(p.solve_ms, 3),
                "pypi_packages": [
                    {"name": pkg.name, "version": pkg.version} for pkg in p.pypi_packages
                ],
                "pypi_ms": round(p.pypi_ms, 3),
                "provided_by_conda": list(p.provided_by_conda),
            }
            for p in result.platforms
        ],
        "content_hash": dict(result.content_hash),
        "companion_notes": list(result.companion_notes),
        "pypi_notes": list(result.pypi_notes),
        "pypi_without_metadata": {p: list(n) for p, n in result.pypi_without_metadata.items()},
        "gpus": [
            {"index": g.index, "name": g.name, "compute_capability": f"{g.cc[0]}.{g.cc[1]}"}
            for g in result.gpus
        ],
        "gpu_source": result.gpu_source,
        "cuda_lines": [
            {
                "platform": platform,
                "line": line.line,
                "specs": list(line.specs),
                "support": line.support,
                "reason": line.reason,
                "passed_over": list(line.passed_over),
                "builds": [
                    {"package": b.package, "cuda": b.cuda, "build": b.build_glob, "arch": b.arch}
                    for b in line.builds
                ],
            }
            for platform, line in result.lines.items()
        ],
    }


def _frameworks_line(packages: Any, kind: str = "") -> str:
    shown = [
        f"{p.name} {p.version} ({p.build})" for p in packages if p.name in ("pytorch", "tensorflow")
    ]
    return "; ".join([*shown, f"{len(packages)} {kind}packages"])


def _pypi_line(platform: Any) -> str:
    """``PyPI (uv, 12 ms): 3 packages: a 1.0, b 2.0, c 3.0; from conda: numpy 2.1``."""
    names = ", ".join(f"{p.name} {p.version}" for p in platform.pypi_packages)
    line = f"PyPI (uv, {platform.pypi_ms:.0f} ms): {len(platform.pypi_packages)} packages"
    line += f": {names}" if names else ""
    if platform.provided_by_conda:
        line += f"; already from conda: {', '.join(platform.provided_by_conda)}"
    return line


def _python_is_not_a_version(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """``--python`` on lock/create: one option name has one meaning across the commands."""
    if value is not None:
        raise click.BadOptionUsage(
            "--python",
            "--python is the interpreter path in doctor/smoke; for lock and create use "
            f"--python-version {value if str(value).count('.') == 1 else '3.12'}",
            ctx=ctx,
        )


def _lock_options(func: Any) -> Any:
    decorators = [
        click.option(
            "--variant",
            type=VARIANT_CHOICE,
            default="auto",
            show_default=True,
            help="cpu, cuda or mps (PyTorch on Apple silicon). auto: cuda when NVML sees an NVIDIA "
            "GPU and driver (on the newest CUDA line every GPU runs), mps on osx-arm64, else cpu.",
        ),
        click.option(
            "--cuda",
            metavar="X.Y",
            help="Solve the CUDA build for this CUDA version (__cuda=X.Y). Default: the newest CUDA "
            "the driver supports (nvidia-smi's 'CUDA Version'). Implies --variant cuda with auto.",
        ),
        click.option(
            "--gpu-arch",
            "gpu_arch",
            metavar="X.Y",
            multiple=True,
            help="Lock for GPUs of this compute capability (6.1, 8.6, 12.0, or sm_61); repeatable, "
            "or comma-separated for a mixed box. The CUDA line is the newest whose builds run on "
            "every one. Default: the GPUs NVML sees (none with --cuda). Implies --variant cuda "
            "with auto.",
        ),
        click.option(
            "--python-version",
            "python_version",
            metavar="X.Y",
            help="Python version of the environment, e.g. 3.11 (default: the environment file's; "
            "3.12 in the shipped ones).",
        ),
        click.option(
            "--python",
            hidden=True,
            expose_value=False,
            callback=_python_is_not_a_version,
            help="Refused: the interpreter path of doctor and smoke; here it is --python-version.",
        ),
        click.option(
            "--channel",
            "channels",
            metavar="URL",
            multiple=True,
            help="Channel name or URL, repeatable, highest priority first (default: conda-forge).",
        ),
        click.option(
            "--engine",
            type=ENGINE_CHOICE,
            default="rattler",
            show_default=True,
            help="rattler needs no conda binary; conda-lock runs conda-lock's own solve and needs a "
            "conda, mamba or micromamba executable.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.command(
    epilog="""\b
Examples:
  dlsetup lock pytorch                       this machine: CUDA build if NVML sees a GPU
  dlsetup lock pytorch --variant cuda --cuda 12.4 --platform linux-64
                                             for a colleague's GPU box, from a laptop
  dlsetup lock both --variant cpu --all-platforms --output locks/
  dlsetup lock pytorch --cuda 13.0 --gpu-arch 6.1   for a Pascal box: the CUDA 12 line
  dlsetup lock pytorch --platform osx-arm64  (auto picks mps there)
  dlsetup lock ./my-environment.yml --channel https://my.mirror/conda-forge
  dlsetup lock --check pytorch-cuda.conda-lock.yml   CI: exit 1 when the lock is stale
  dlsetup lock ./my-environment.yml --check my-env.conda-lock.yml
  dlsetup lock pytorch --backend venv        a PEP 751 pylock.toml (uv): PyTorch from the wheel
                                             index whose CUDA variant every GPU runs

\b
Writes into --output: NAME.environment.yml (the rendered source), NAME.virtual-packages.yml
(what each platform was solved with) and NAME.conda-lock.yml, which conda-lock install,
conda-lock render and micromamba read. The lock's header says which CUDA it was solved for,
which CUDA line each platform got and why (the GPU that ruled out a newer one).
"""
)
@click.argument("target", type=TargetType(), required=False, metavar="TARGET")
@_lock_options
@venv_options
@click.option(
    "--check",
    "check",
    metavar="LOCKFILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Do not lock: say whether LOCKFILE is still what this command would make from its "
    "inputs (environment file, variant, CUDA version, GPUs, platforms, virtual packages). Exit 0 "
    "when current, 1 when stale (one line per reason). Options not given are the lock's own; "
    "TARGET names your environment file for a lock of one. A pylock.toml (--backend venv) is "
    "checked against the request its [tool.dlsetup] table records. No solve, no network.",
)
@click.option(
    "--platform",
    "platforms",
    type=click.Choice(list(PLATFORMS)),
    multiple=True,
    help="Lock for this platform; repeatable. Default: this machine's.",
)
@click.option(
    "--all-platforms",
    is_flag=True,
    help=f"Lock for every platform where the variant exists (of {', '.join(PLATFORMS)}; CUDA "
    f"on {', '.join(p for p in PLATFORMS if p in CUDA_PLATFORMS)}).",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the environment file and the lock.",
)
@click.option("--force", is_flag=True, help="Replace existing output files.")
@click.option(
    "--verbose",
    is_flag=True,
    help="Also list what a summary line counts (the PyPI wheels whose index serves no metadata).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a dlsetup.lock JSON document (with --check: dlsetup.lock-check).",
)
@click.pass_context
def lock(  # noqa: PLR0917 - a Click callback receives every option
    ctx: click.Context,
    target: str | None,
    variant: str,
    cuda: str | None,
    gpu_arch: tuple[str, ...],
    python_version: str | None,
    channels: tuple[str, ...],
    engine: str,
    backend: str,
    torch_index_url: str | None,
    index_url: str | None,
    torch_version: str | None,
    accept_variant: str | None,
    check: Path | None,
    platforms: tuple[str, ...],
    all_platforms: bool,
    output: Path,
    force: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Lock TARGET (pytorch, tensorflow, both, or an environment .yml) for this machine's hardware.

    A lock lists the exact package files, with their hashes, that an environment is built from,
    so `dlsetup create --from-lock` (or conda-lock, micromamba) builds the same environment
    anywhere, later. No conda installation is needed.

    The variant (cpu, cuda, mps) follows what the hardware probes see unless --variant says
    otherwise. Every platform is solved with explicit virtual packages: this machine's platform
    with the glibc/macOS/kernel versions detected here, others with documented minimums; a CUDA
    lock records the CUDA version it was solved for, never a silent default.
    """
    if check is not None:
        _check_lock(ctx, check, target, variant, cuda, gpu_arch, python_version, channels,
                    platforms, all_platforms, force=force, as_json=as_json,
                    venv=(torch_version, torch_index_url, index_url),
                    backend=backend if _given(ctx, "backend") else None)  # fmt: skip
        return
    if target is None:
        raise click.UsageError("Missing argument 'TARGET'.", ctx=ctx)
    if backend == "venv":
        from dlsetup.commands.venv import lock_venv_command, refuse_conda_only, venv_request

        refuse_conda_only(ctx, **{"--channel": channels, "--engine": _given(ctx, "engine")})
        lock_venv_command(
            venv_request(target, variant, cuda, gpu_arch, python_version, platforms,
                         all_platforms, torch_index_url, index_url, torch_version,
                         accept_variant),
            output, force=force, as_json=as_json,
        )  # fmt: skip
        return
    from dlsetup.commands.venv import refuse_venv_only

    refuse_venv_only(ctx, torch_index_url, index_url, torch_version, accept_variant)
    from dlsetup.envs.pipeline import conda_request, lock, virtual_package_sources
    from dlsetup.output import dumps, envelope, make_console

    opts = conda_request(
        target=target, variant=variant, cuda=cuda, platforms=platforms,
        all_platforms=all_platforms, python_version=python_version, channels=channels,
        engine=engine, gpu_arch=gpu_arch,
    )  # fmt: skip
    result, choice = lock("conda", opts, output, force=force).result
    if as_json:
        click.echo(dumps(envelope("dlsetup.lock", _lock_data(result, choice))))
        return
    console = make_console()
    solved = f"CUDA {result.cuda}" if result.cuda else "no CUDA"
    console.print(
        f"Locked {result.name} ({result.variant}: {choice.reason}) for "
        f"{', '.join(p.platform for p in result.platforms)} with {result.engine}, {solved}."
    )
    pip_section = any(p.pypi_packages or p.provided_by_conda for p in result.platforms)
    for p in result.platforms:
        console.print(
            f"  {p.platform}: {_frameworks_line(p.packages, 'conda ' if pip_section else '')}"
        )
        if pip_section:
            console.print(f"    {_pypi_line(p)}", markup=False, soft_wrap=True)
        line = result.lines.get(p.platform)
        if line is not None:
            console.print(f"    CUDA line {line.line}: {' '.join(line.specs)}", markup=False)
        console.print(f"    virtual packages: {' '.join(str(v) for v in p.virtual_packages)}")
        console.print(f"      ({virtual_package_sources(p.virtual_packages)})")
    for note in result.companion_notes:
        console.print(f"  Companions: {note}.", markup=False, soft_wrap=True)
    for note in result.pypi_notes:
        console.print(f"  PyPI: {note}.", markup=False, soft_wrap=True)
    for line in result.channel_sources:  # where .condarc or pixi's mirrors sent a channel
        console.print(f"  Channel: {line}.", markup=False, soft_wrap=True)
    if verbose:
        for platform, names in result.pypi_without_metadata.items():
            console.print(f"    {platform}: {', '.join(names)}", markup=False, soft_wrap=True)
    console.print("Wrote:")
    for path in (result.environment_path, result.virtual_packages_path, result.lock_path):
        console.print(f"  {path}")
    console.print(f"Next: dlsetup create --from-lock {result.lock_path}")


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _check_lock(
    ctx: click.Context,
    lock_path: Path,
    target: str | None,
    variant: str,
    cuda: str | None,
    gpu_arch: tuple[str, ...],
    python_version: str | None,
    channels: tuple[str, ...],
    platforms: tuple[str, ...],
    all_platforms: bool,
    *,
    force: bool,
    as_json: bool,
    venv: tuple[str | None, str | None, str | None] = (None, None, None),
    backend: str | None = None,
) -> None:
    """``dlsetup lock --check LOCKFILE``: exit 0 when current, 1 when stale."""
    for name, option in (("output", "--output"), ("engine", "--engine")):
        if _given(ctx, name):
            raise click.UsageError(f"{option} does not apply to --check (nothing is written)")
    if force:
        raise click.UsageError("--force does not apply to --check (nothing is written)")
    from dlsetup.envs.pipeline import check_lock
    from dlsetup.envs.staleness import CheckRequest
    from dlsetup.output import dumps, envelope, make_console

    request = CheckRequest(
        target=target,
        variant=variant if _given(ctx, "variant") else None,
        cuda=cuda,
        gpu_arch=gpu_arch,
        platforms=platforms,
        all_platforms=all_platforms,
        python_version=python_version,
        channels=channels,
        torch_version=venv[0],
        torch_index_url=venv[1],
        index_url=venv[2],
    )
    result = check_lock(lock_path, request, backend=backend)
    if as_json:
        data = {
            "lock": str(result.lock),
            "environment_file": str(result.environment_file),
            "source": result.source,
            "current": result.current,
            "target": result.target,
            "variant": result.variant,
            "cuda": result.cuda,
            "platforms": list(result.platforms),
            "differences": [
                {"kind": d.kind, "platform": d.platform, "message": d.message}
                for d in result.differences
            ],
            "notes": list(result.notes),
            "content_hash": result.content_hash,
            "hash_engine": result.hash_engine,
            "seconds": round(result.seconds, 4),
        }
        click.echo(dumps(envelope("dlsetup.lock-check", data)))
    else:
        console = make_console()

        def say(text: str) -> None:
            console.print(text, markup=False, soft_wrap=True)

        made = result.variant or "made by conda-lock, checked as conda-lock --check-input-hash"
        if result.current:
            say(f"{lock_path} is current ({', '.join(result.platforms)}; {made}"
                + (f", CUDA {result.cuda}" if result.cuda else "") + ").")  # fmt: skip
        else:
            say(f"{lock_path} is stale:")
            for d in result.differences:
                say(f"  {d.message}")
            say(f"Lock it again: {result.relock_command or _relock_command(result, target)}")
        for note in result.notes:
            say(f"Note: {note}")
    if not result.current:
        ctx.exit(int(ExitCode.FINDINGS))


def _relock_command(result: Any, target: str | None) -> str:
    what = target if target is not None and target.endswith((".yml", ".yaml")) else result.target
    if what == "file":
        what = "ENVIRONMENT.yml"
    parts = ["dlsetup lock", what, "--variant", result.variant]
    if result.backend != "conda":
        parts[2:2] = ["--backend", result.backend]
    if result.cuda:
        parts += ["--cuda", result.cuda]
    for platform in result.platforms:
        parts += ["--platform", platform]
    parts += [shlex.quote(option) for option in result.relock_options]
    parts += ["--output", str(result.lock.parent), "--force"]
    return " ".join(parts)


@click.command(
    epilog="""\b
Examples:
  dlsetup create pytorch                     lock for this machine, build, register a kernel
  dlsetup create both --name seed-course     the seed's Jupyter + TensorFlow + PyTorch setup
  dlsetup create --from-lock pytorch-cuda.conda-lock.yml --prefix ~/envs/pt
  dlsetup create tensorflow --variant cpu --force   rebuild; the old env stays until the new is ready
  dlsetup create pytorch --backend venv      a virtual environment (uv), docs/venv.md
  dlsetup create --from-lock pylock.pytorch-cu126.toml --prefix ~/envs/pt

\b
Then activate it with the line it prints (`conda activate NAME` where conda exists), or pick
the kernel "Python (NAME, dlsetup)" in Jupyter.

\b
The environment is built beside the target and moved into place only when complete, so a
failed or interrupted create leaves the target exactly as it was. Package hashes from the lock
are verified, and packages from outside the lock's channels are refused.
"""
)
@click.argument("target", type=TargetType(), required=False, metavar="[TARGET]")
@_lock_options
@venv_options
@click.option(
    "--prefix",
    type=click.Path(path_type=Path),
    help="Build the environment in this directory (it must not exist or be empty, unless --force).",
)
@click.option(
    "--name",
    metavar="NAME",
    help="Environment name, created in conda's envs directory when conda exists (so `conda "
    "activate NAME` works), else ~/.dlsetup/envs ($DLSETUP_ENVS_DIR overrides). Default: the "
    "lock's name, e.g. pytorch-cuda.",
)
@click.option(
    "--from-lock",
    "from_lock",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Build from this lock instead of locking TARGET first: conda-lock v1, explicit "
    "(@EXPLICIT) or pixi.lock, detected from its content; its PyPI packages are installed too. "
    "A PEP 751 pylock.toml / pylock.NAME.toml builds a venv (--backend venv).",
)
@click.option(
    "--environment",
    "lock_environment",
    metavar="NAME",
    help="The pixi.lock environment to build (default: default).",
)
@click.option(
    "--dev/--no-dev",
    default=True,
    show_default=True,
    help="Install a conda-lock file's dev category (as conda-lock install does).",
)
@click.option(
    "-E",
    "--extras",
    multiple=True,
    metavar="CATEGORY",
    help="Also install this category of a conda-lock file (repeatable).",
)
@click.option(
    "--allow-build",
    "allow_build",
    multiple=True,
    metavar="NAME",
    help="Build the lock's PyPI source distribution NAME with uv (repeatable): after its sha256 "
    "is verified, in an isolated build environment, uv runs the package's build backend (its "
    "setup.py or PEP 517 backend): arbitrary code. Without it nothing is built, and a lock "
    "with source distributions is refused naming them all.",
)
@click.option(
    "--build-constraints",
    "build_constraints",
    type=FilePath(),
    metavar="FILE",
    help="With --allow-build: the builds take their build requirements only from FILE's exact "
    "pins, each verified by its sha256 (uv's --build-constraints --require-build-hashes); an "
    "unpinned one, or a file whose hash differs, is refused. FILE is what `uv pip compile "
    "build-requirements.in --generate-hashes -o FILE` writes; it is checked before anything "
    "is made. Without it the build requirements are resolved unpinned and unverified.",
)
@click.option("--no-jupyter", is_flag=True, help="Do not register a Jupyter kernel.")
@click.option(
    "--no-smoke",
    is_flag=True,
    help="Do not run `dlsetup smoke` (trains a tiny network with each framework on each device, "
    "about a minute) inside the new environment.",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing environment (after the new one is complete)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a dlsetup.create JSON document.")
@click.pass_context
def create(  # noqa: PLR0917 - a Click callback receives every option
    ctx: click.Context,
    target: str | None,
    variant: str,
    cuda: str | None,
    gpu_arch: tuple[str, ...],
    python_version: str | None,
    channels: tuple[str, ...],
    engine: str,
    backend: str,
    torch_index_url: str | None,
    index_url: str | None,
    torch_version: str | None,
    accept_variant: str | None,
    prefix: Path | None,
    name: str | None,
    from_lock: Path | None,
    lock_environment: str | None,
    dev: bool,
    extras: tuple[str, ...],
    allow_build: tuple[str, ...],
    build_constraints: Path | None,
    no_jupyter: bool,
    no_smoke: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Build a verified environment for TARGET (pytorch, tensorflow, both, or a .yml), or from a lock.

    Locks first (like `dlsetup lock`) unless --from-lock is given, installs with rattler (no conda
    needed; uv for a venv, --backend venv), registers a Jupyter kernel and runs `dlsetup smoke` inside, then says how to
    activate it. Exit status 1 when the smoke test fails: the environment stays installed, and
    the failed checks and the command to rerun them are printed.
    """
    from dlsetup.commands.venv import refuse_conda_only, refuse_venv_only, venv_request
    from dlsetup.envs.backend import BuildOptions
    from dlsetup.envs.build import build_environment
    from dlsetup.envs.build_constraints import read_build_constraints
    from dlsetup.envs.pipeline import conda_request
    from dlsetup.envs.progress import Progress
    from dlsetup.output import dumps, envelope, make_console, to_jsonable

    if backend == "venv":
        refuse_conda_only(ctx, **{"--channel": channels, "--engine": _given(ctx, "engine")})
    else:
        refuse_venv_only(ctx, torch_index_url, index_url, torch_version, accept_variant)
    if from_lock is not None and torch_version is not None:
        raise click.UsageError("--torch-version does not apply to --from-lock", ctx=ctx)
    if build_constraints is not None and not allow_build:
        raise click.UsageError(
            "--build-constraints applies only with --allow-build NAME (it pins what the allowed "
            "source distributions build with; without --allow-build nothing is built)",
            ctx=ctx,
        )
    constraints = read_build_constraints(build_constraints) if build_constraints else None
    request = (
        venv_request(target, variant, cuda, gpu_arch, python_version, (), False,
                     torch_index_url, index_url, torch_version, accept_variant)
        if target is not None and backend == "venv"
        else conda_request(target=target, variant=variant, cuda=cuda, platforms=(),
                           all_platforms=False, python_version=python_version, channels=channels,
                           engine=engine, gpu_arch=gpu_arch)
        if target is not None
        else None
    )  # fmt: skip

    def smoke_starts() -> None:
        if not as_json:
            make_console(stderr=True).print(
                "Running dlsetup smoke inside the environment (a minute or two) ..."
            )

    built = build_environment(
        request,
        backend=backend,
        from_lock=from_lock,
        prefix=prefix,
        name=name,
        jupyter=not no_jupyter,
        smoke=not no_smoke,
        force=force,
        progress=Progress(enabled=not as_json),
        on_smoke_start=smoke_starts,
        options=BuildOptions(
            environment=lock_environment,
            dev=dev,
            extras=extras,
            allow_build=allow_build,
            build_constraints=constraints,
        ),
    )
    installed, kernel, smoke = built.installed, built.kernel, built.smoke
    data = {
        "name": built.name,
        "prefix": str(installed.prefix),
        "platform": installed.platform,
        "lock": str(built.from_lock) if built.from_lock else None,
        "variant_reason": built.variant_reason or None,
        "packages": installed.packages,
        "pypi_packages": installed.pypi_packages,
        "lock_format": installed.lock_format,
        "replaced": installed.replaced,
        "seconds": round(installed.seconds, 3),
        "python": str(installed.python) if installed.python else None,
        "kernel": {"name": kernel.name, "path": str(kernel.path)} if kernel else None,
        "smoke": to_jsonable(smoke),
        "activate": built.activate,
        "skipped_scripts": list(installed.skipped_scripts),
        "cuda_warnings": [dict(w.data) for w in installed.cuda_warnings],
    }
    if as_json:
        click.echo(dumps(envelope("dlsetup.create", data)))
    else:  # the lock's CUDA warnings were said with the plan, before the install
        console = make_console()
        verb = "Replaced" if installed.replaced else "Created"
        console.print(
            f"{verb} {installed.prefix} ({installed.packages + installed.pypi_packages} "
            f"packages: {installed.packages} conda, {installed.pypi_packages} PyPI; "
            f"{installed.platform}, hashes verified) in {installed.seconds:.1f} s."
        )
        if kernel:
            console.print(f"Jupyter kernel: {kernel.display_name} ({kernel.path})")
        if installed.skipped_scripts:
            console.print(
                "Not run (dlsetup runs no package scripts): "
                + ", ".join(installed.skipped_scripts),
                markup=False,
                soft_wrap=True,
            )
        _print_smoke(console, smoke)
        console.print(f"Activate it: {built.activate}", markup=False, soft_wrap=True)
    if smoke.status == "failed":
        ctx.exit(int(ExitCode.FINDINGS))


#: Failed checks shown by ``create``; the rest are in the smoke record.
SHOWN_FAILURES = 5


def _print_smoke(console: Console, smoke: SmokeOutcome) -> None:
    def say(text: str) -> None:
        console.print(text, markup=False, soft_wrap=True)

    if smoke.status == "skipped":
        say(f"Smoke test: skipped ({smoke.reason})")
        return
    took = f" in {smoke.seconds:.1f} s" if smoke.seconds is not None else ""
    if smoke.status == "passed":
        say(f"Smoke test: passed{took} ({smoke.summary})")
        say(f"  result kept in {smoke.record}")
        return
    say(f"Smoke test: FAILED{took}. The environment was built and stays installed; what failed:")
    for line in smoke.failures[:SHOWN_FAILURES]:
        say(f"  {line}")
    if len(smoke.failures) > SHOWN_FAILURES:
        say(f"  ... and {len(smoke.failures) - SHOWN_FAILURES} more")
    if smoke.record is not None:
        say(f"  full result kept in {smoke.record}")
    say(f"Rerun it: {smoke.rerun}")
