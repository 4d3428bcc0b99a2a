"""Progress for long steps: a rich progress bar on a terminal, plain lines otherwise.

Steps are named (``solve``, ``verify``, ``link``); callbacks may come from rattler's worker
threads, so every method only touches rich's thread-safe ``Progress`` or writes whole lines.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

_LABELS = {
    "verify": "Verifying package hashes",
    "link": "Installing packages",
}


class Progress:
    """Reports named steps.

    Args:
        enabled: report at all (``False`` for ``--json`` and library use).
        stream: where to write (stderr by default, so stdout stays clean for ``--json``).
        rich: use a rich progress bar; default: when ``stream`` is a terminal.
    """

    def __init__(
        self, *, enabled: bool = True, stream: TextIO | None = None, rich: bool | None = None
    ) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.rich = self.stream.isatty() if rich is None else rich
        self._lock = threading.Lock()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._counts: dict[str, tuple[int, int]] = {}

    def start(self, step: str, total: int) -> None:
        """Begin ``step`` with ``total`` units."""
        if not self.enabled:
            return
        label = _LABELS.get(step, step)
        with self._lock:
            self._counts[step] = (0, total)
            if self.rich:
                if self._bar is None:
                    from rich.console import Console
                    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
                    from rich.progress import Progress as RichProgress

                    self._bar = RichProgress(
                        TextColumn("{task.description}"),
                        BarColumn(),
                        MofNCompleteColumn(),
                        console=Console(file=self.stream),
                        transient=False,
                    )
                    self._bar.start()
                self._tasks[step] = self._bar.add_task(label, total=total)
            else:
                print(f"{label}: {total} ...", file=self.stream, flush=True)

    def advance(self, step: str, item: str) -> None:
        """One unit of ``step`` done (``item`` names it, or is empty)."""
        if not self.enabled:
            return
        with self._lock:
            done, total = self._counts.get(step, (0, 0))
            self._counts[step] = (done + 1, total)
            if self.rich and step in self._tasks:
                self._bar.advance(self._tasks[step])

    def finish(self, step: str) -> None:
        """``step`` is complete."""
        if not self.enabled:
            return
        with self._lock:
            done, total = self._counts.get(step, (0, 0))
            if not self.rich:
                print(
                    f"{_LABELS.get(step, step)}: done ({done}/{total})",
                    file=self.stream,
                    flush=True,
                )

    def note(self, text: str) -> None:
        """A one-line message between steps."""
        if not self.enabled:
            return
        with self._lock:
            if self._bar is not None:
                self._bar.console.print(text)
            else:
                print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the bar (if any)."""
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
