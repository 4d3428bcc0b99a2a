"""The ``pip:`` section of an environment file: its requirements and index lines, read as conda
(pip) and conda-lock read them. Standard library and ``packaging`` only.

* Requirements are PEP 508 (``transformers>=4.40``, ``x; sys_platform == "linux"``), each with the
  platforms its selector is true on (:mod:`dlsetup.envs.files.selectors`).
* ``--index-url URL`` / ``-i URL`` / ``--index-url=URL`` and ``--extra-index-url URL`` lines are
  honoured; conda-lock's own ``pip-repositories:`` / ``allow-pypi-requests: false`` form (what
  dlsetup renders, because conda-lock's parser reads no option lines) is read back the same way.
* Anything that cannot be pinned with hashes is refused with its line: other pip options (``-e``,
  ``-r``, ``--find-links``), requirements from a URL or VCS, a second ``--index-url``.

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
        if requirement.url:
            raise _refuse(
                bad,
                node,
                f"{value!r} installs from a URL or VCS, which dlsetup does not lock",
                "name the package and a version, and its index with --index-url",
            )
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
