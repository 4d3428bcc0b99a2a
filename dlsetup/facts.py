"""Small value types shared by probes, checks and renderers.

A fact that could not be read is never a bare ``None``: it is a :class:`Missing` that says why
(``"not_supported"``, ``"function_not_found"``, ``"no_driver"``, ``"gpu_lost"``, ...), so reports can
print the reason and checks can tell "the GPU has no ECC" from "the driver could not tell us".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, Union

T = TypeVar("T")


@dataclass(frozen=True)
class Missing:
    """A value that could not be read, and why.

    Attributes:
        reason: a short stable token: ``not_supported``, ``function_not_found``, ``no_permission``,
            ``gpu_lost``, ``no_driver``, ``not_found``, ``timeout``, ``error``, ...
        detail: optional human text (the library's error message).
    """

    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"n/a ({self.reason})"


#: A fact of type T, or the reason it is missing.
Maybe = Union[T, Missing]  # noqa: UP007 - a runtime alias usable on Python 3.10


def present(value: object) -> bool:
    """True when ``value`` is a real value, not a :class:`Missing`."""
    return not isinstance(value, Missing)
