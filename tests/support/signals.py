"""Children that a test will signal start with the signals' default actions.

A process started as a background job (``cmd &`` in a script, ``nohup``, CI runners) inherits
SIGINT ignored, and so does every child pytest starts. Python installs its KeyboardInterrupt
handler only when SIGINT is *not* ignored, and dlsetup honours an inherited ignore as Python
does, so a test that sends SIGINT to such a child would see it ignored (exit 0, or a hang until
the timeout) instead of the Ctrl-C it meant to test. Every test that sends a signal passes
:func:`default_signal_actions` as ``preexec_fn`` (or ``**SIGNALLED``) to the child it signals.
"""

from __future__ import annotations

import signal
from typing import Any

#: the signals the tests send and expect dlsetup to act on
SENT = (signal.SIGINT, signal.SIGTERM)


def default_signal_actions() -> None:
    """``preexec_fn``: the child starts with SIGINT and SIGTERM at their default actions, as a
    command typed in a terminal does, whatever this test run inherited."""
    for signum in SENT:
        signal.signal(signum, signal.SIG_DFL)


#: keyword arguments for ``subprocess.Popen``/``run`` of a child the test will signal
SIGNALLED: dict[str, Any] = {"preexec_fn": default_signal_actions}
