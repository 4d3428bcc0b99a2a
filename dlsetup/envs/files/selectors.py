"""Platform selectors of environment files (``- numpy  # [linux]``), as conda-lock reads them.

conda-lock's environment-file parser (``conda_lock/src_parser/selectors.py``) keeps a line on a
platform when its trailing comment holds ``[NAME]`` and NAME is one of that platform's selector
names (``linux64``, ``unix``, ``linux`` on linux-64 ...: the ``selectors`` column of
:mod:`dlsetup.platforms`); it drops the line on every other platform, and it drops a line whose
selector is an expression (``osx and arm64``) on *every* platform, with only a log message.

dlsetup reads the same lines with the same pattern, and evaluates expressions of those names with
``and``, ``or``, ``not`` and parentheses (conda-build's selector syntax, restricted to platform
names) per platform. Anything else in the brackets (``py>=38``, ``cuda``, ``x86_64``) is refused
with its line number: a selector is never dropped without a word. The rendered file writes each
selected line once per platform it is true on, with that platform's own name (``# [linux64]``),
which conda-lock reads the same way. Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dlsetup.errors import InputError
from dlsetup.platforms import PLATFORM_INFO, PLATFORM_NAMES

#: conda-lock's (conda-build's) selector pattern: a value, a comment, ``[expression]`` at the end
SELECTOR_RE = re.compile(r"(.+?)\s*(#.*)\[([^\[\]]+)\](?(2)[^\(\)]*)$")
_TOKEN_RE = re.compile(r"\s*(?:(?P<paren>[()])|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S+))")
#: every selector name some platform answers to
KNOWN_NAMES: frozenset[str] = frozenset().union(*(p.selectors for p in PLATFORM_INFO.values()))


@dataclass(frozen=True)
class Selector:
    """A line's selector.

    Attributes:
        expression: the text between the brackets (``osx and arm64``).
        platforms: the dlsetup platforms it is true on.
    """

    expression: str
    platforms: frozenset[str]


def selector_of(line: str) -> str | None:
    """The bracketed expression at the end of ``line``'s comment, or None (conda-lock's test)."""
    if line.lstrip().startswith("#"):
        return None
    match = SELECTOR_RE.match(line)
    return match.group(3).strip() if match else None


def evaluate(expression: str, *, where: str) -> Selector:
    """The platforms ``expression`` is true on.

    Args:
        expression: ``linux``, ``osx and arm64``, ``not win``, ``(linux or osx) and not aarch64``.
        where: ``FILE, line N`` for the message.

    Raises:
        InputError: a name no platform answers to, or not an expression of names.
    """
    tokens = _tokens(expression, where)
    platforms = frozenset(p for p in PLATFORM_NAMES if _Parser(tokens, p, expression, where).run())
    return Selector(expression, platforms)


def _refusal(expression: str, where: str, what: str) -> InputError:
    return InputError(
        f"unsupported selector [{expression}] in {where}: {what}",
        fix="use the platform names conda-lock understands, "
        f"{', '.join(sorted(KNOWN_NAMES))}, combined with and, or, not (e.g. '# [osx and "
        "arm64]'); for a Python version use a match spec ('python >=3.11'), for CUDA use "
        "--variant cuda",
    )


def _tokens(expression: str, where: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(expression):
        if match.group("bad"):
            raise _refusal(expression, where, f"{match.group('bad')!r} is not a platform name")
        token = match.group("paren") or match.group("word")
        if token is None:
            continue
        if token not in ("(", ")", "and", "or", "not") and token not in KNOWN_NAMES:
            raise _refusal(expression, where, f"{token!r} is not a platform name")
        tokens.append(token)
    if not tokens:
        raise _refusal(expression, where, "it is empty")
    return tokens


class _Parser:
    """``or`` of ``and`` of ``not``/names/parentheses, evaluated for one platform."""

    def __init__(self, tokens: list[str], platform: str, expression: str, where: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.names = PLATFORM_INFO[platform].selectors
        self.expression = expression
        self.where = where

    def run(self) -> bool:
        value = self._or()
        if self.pos != len(self.tokens):
            raise self._bad(f"unexpected {self.tokens[self.pos]!r}")
        return value

    def _bad(self, what: str) -> InputError:
        return _refusal(self.expression, self.where, what)

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == "or":
            self.pos += 1
            right = self._and()
            value = value or right
        return value

    def _and(self) -> bool:
        value = self._not()
        while self._peek() == "and":
            self.pos += 1
            right = self._not()
            value = value and right
        return value

    def _not(self) -> bool:
        word = self._peek()
        if word is None:
            raise self._bad("it ends where a name was expected")
        self.pos += 1
        if word == "not":
            return not self._not()
        if word == "(":
            value = self._or()
            if self._peek() != ")":
                raise self._bad("a '(' is not closed")
            self.pos += 1
            return value
        if word in ("and", "or", ")"):
            raise self._bad(f"{word!r} where a name was expected")
        return word in self.names
