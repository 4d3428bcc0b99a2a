"""The ``pip:`` section of an environment file: its requirements and index lines, read as conda
(pip) and conda-lock read them. Standard library and ``packaging`` only.

* Requirements are PEP 508 (``transformers>=4.40``, ``x; sys_platform == "linux"``), each with the
  platforms its selector is true on (:mod:`dlsetup.envs.files.selectors`).
* ``--index-url URL`` / ``-i URL`` / ``--index-url=URL`` and ``--extra-index-url URL`` lines are
  honoured; conda-lock's own ``pip-repositories:`` / ``allow-pypi-requests: false`` form (what
  dlsetup renders, because conda-lock's parser reads no option lines) is read back the same way.
* Anything that cannot be pinned with hashes is refused with its line and what to do: other pip
  options (``-e``, ``-r``, ``--find-links``), a VCS URL (``git+https://...``, ``name @ git+...``), a
  local path (``./src``, ``/opt/x``, ``file:...``) or another URL, a second ``--index-url``.

``bad(node, what)`` is the caller's error factory (:func:`dlsetup.envs.files.spec.load_environment_file`:
an :class:`~dlsetup.errors.InputError` naming the file and the node's line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_INDEX_OPTIONS = {"--index-url": True, "-i": True, "--extra-index-url": False}


@dataclass(frozen=True)
class PipRequirement:
    """One requirement of a ``pip:`` section.

    Attributes:
        text: the PEP 508 requirement as written (``transformers>=4.40``).
        name: its normalized project name (``transformers``).
        line: its line in the file (1-based; 0 when rendered).
        platforms: the platforms its selector is true on; None: every platform.
    """

    text: str
    name: str
    line: int = 0
    platforms: frozenset[str] | None = None


def _refuse(bad: Any, node: Any, what: str, fix: str) -> Any:
    """``bad(node, what)`` (the file and line) with a fix for this refusal."""
    error = bad(node, what)
    error.fix = fix
    return error


_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
_UNPINNABLE_FIX = (
    "install it after dlsetup create with pip install into the environment (its python -m pip "
    "install ...), or publish it as a wheel on an index and list it here by name and version "
    "with that index as --extra-index-url"
)


def _unpinnable_source(value: str) -> str | None:
    """What a ``pip:`` entry installs from when it is no PyPI name: ``a VCS URL (git+)``,
    ``a local path``, ``a URL``; None for a name (PEP 508's ``name @ URL`` included: its URL
    decides)."""
    from packaging.requirements import InvalidRequirement, Requirement

    target = value.strip()
    try:
        url = Requirement(target).url
    except InvalidRequirement:
        url = None
    if url is not None:
        target = url
    lowered = target.lower()
    for prefix in _VCS_PREFIXES:
        if lowered.startswith(prefix):
            return f"a VCS URL ({prefix})"
    if lowered.startswith("file:") or target.startswith((".", "/", "~", "\\")):
        return "a local path"
    if len(target) > 2 and target[1] == ":" and target[2] in "\\/":
        return "a local path"  # C:\src\tool
    if "://" in target:
        return "a URL"
    return None


def _option(value: str) -> tuple[str, str]:
    """``("--index-url", "URL")`` from ``--index-url URL`` or ``--index-url=URL``."""
    head, _, rest = value.partition(" ")
    if "=" in head:
        head, _, before = head.partition("=")
        rest = f"{before} {rest}"
    return head, rest.strip()


def pip_section(
    items: list[tuple[str, Any, frozenset[str] | None]], bad: Any
) -> tuple[tuple[PipRequirement, ...], str | None, tuple[str, ...]]:
    """The requirements, ``--index-url`` and ``--extra-index-url`` values of a ``pip:`` section.

    Args:
        items: ``(text, YAML node, platforms of its selector or None)`` per entry.
        bad: the caller's error factory.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    requirements: list[PipRequirement] = []
    index_url: str | None = None
    extra: list[str] = []
    seen: dict[str, Any] = {}
    for value, node, where in items:
        if value.startswith("-"):
            option, argument = _option(value)
            if option not in _INDEX_OPTIONS:
                raise _refuse(
                    bad,
                    node,
                    f"pip option {option!r} is not locked by dlsetup (only --index-url and "
                    "--extra-index-url are): editable installs (-e), nested files (-r) and "
                    "local wheel directories (--find-links) cannot be pinned with hashes",
                    "list PyPI requirements and index lines only; serve local wheels as an "
                    "index (--extra-index-url), or install editable packages after dlsetup create",
                )
            if not argument or " " in argument:
                raise _refuse(bad, node, f"{option} needs one URL", f"{option} https://host/simple")
            if where is not None:
                raise _refuse(
                    bad,
                    node,
                    f"{option} lines take no selector; the index is every platform's",
                    "remove the selector from this line",
                )
            if _INDEX_OPTIONS[option]:
                if index_url is not None:
                    raise _refuse(
                        bad,
                        node,
                        "a second --index-url (pip would use only the last one)",
                        "keep one --index-url and make the others --extra-index-url",
                    )
                index_url = argument
            else:
                extra.append(argument)
            continue
        unpinnable = _unpinnable_source(value)
        if unpinnable is not None:
            raise _refuse(
                bad,
                node,
                f"{value!r} is {unpinnable}, which cannot be pinned with hashes (dlsetup locks "
                "PyPI packages by name, version and the sha256 of a published wheel)",
                _UNPINNABLE_FIX,
            )
        try:
            requirement = Requirement(value)
        except InvalidRequirement as exc:
            raise _refuse(
                bad,
                node,
                f"{value!r} is not a PyPI requirement: {exc}",
                "write a PEP 508 requirement such as 'transformers>=4.40' (conda match specs "
                "such as 'numpy 2.*' belong above the pip: section)",
            ) from exc
        name = canonicalize_name(requirement.name)
        if name in seen and where is None and seen[name] is None:
            raise _refuse(
                bad,
                node,
                f"{requirement.name} is listed twice in the pip: section",
                "list it once, with every version constraint on that line",
            )
        seen[name] = where
        requirements.append(PipRequirement(value, name, int(node.start_mark.line) + 1, where))
    return tuple(requirements), index_url, tuple(extra)


def pip_repositories(
    fields: dict[str, Any], index_url: str | None, extra: tuple[str, ...], bad: Any
) -> tuple[str | None, tuple[str, ...]]:
    """Add conda-lock's ``pip-repositories:`` / ``allow-pypi-requests:`` (what dlsetup renders)."""
    import yaml

    node = fields.get("pip-repositories")
    if node is None:
        return index_url, extra
    if not isinstance(node, yaml.SequenceNode) or not all(
        isinstance(i, yaml.ScalarNode) and str(i.value).strip() for i in node.value
    ):
        raise bad(node, "'pip-repositories:' must be a list of index URLs")
    urls = [str(i.value).strip() for i in node.value]
    allow = fields.get("allow-pypi-requests")
    no_pypi = isinstance(allow, yaml.ScalarNode) and str(allow.value).lower() == "false"
    if no_pypi and index_url is None:
        return urls[0], (*extra, *urls[1:])
    return index_url, (*extra, *urls)
