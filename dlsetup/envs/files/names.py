"""Environment names: the one rule for ``--name`` and an environment file's ``name:``.

A name becomes a path component twice: ``<envs dir>/NAME`` (``create``) and ``NAME.conda-lock.yml``
and its two siblings (``lock --output DIR``). So it must be one plain file name: conda refuses
``/``, space, ``:`` and ``#`` in environment names (``PREFIX_NAME_DISALLOWED_CHARS``) and the names
``base``/``root``; dlsetup is stricter and allows letters, digits, ``.``, ``_`` and ``-`` only,
starting with a letter or digit, at most 64 characters. That also rules out ``..``, a leading
``-`` (read as an option), backslashes, NUL, newlines and every other control character.
Standard library only.
"""

from __future__ import annotations

import re

from dlsetup.errors import InputError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESERVED = frozenset({"base", "root"})
#: the rule, as the error messages state it
NAME_RULE = (
    "use letters, digits, '.', '_' and '-', start with a letter or digit, at most 64 characters, "
    "and not 'base' or 'root'"
)


def is_valid_env_name(name: str) -> bool:
    """Whether ``name`` may be an environment's name (and so a file or directory name)."""
    return bool(_NAME_RE.match(name)) and name.lower() not in _RESERVED


def validate_env_name(name: str) -> str:
    """Check an environment name given with ``--name``.

    Raises:
        InputError: the name breaks :data:`NAME_RULE`.
    """
    if not is_valid_env_name(name):
        raise InputError(
            f"invalid environment name {name!r}: {NAME_RULE}",
            fix="for example --name pytorch-cuda, or give a full path with --prefix",
        )
    return name
