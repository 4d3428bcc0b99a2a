"""Test-only: pause ``dlsetup create`` right after rattler links its first package.

Put this directory on ``PYTHONPATH`` (:func:`tests.support.pause_env.pause_env` does) and set
``DLSETUP_TEST_PAUSE_AFTER_LINK`` to a file path: Python imports this module at start-up
(``sitecustomize``), and it wraps the installer's progress reporter so that, once, after the first
package is linked, the process writes its pid into that file and waits
``$DLSETUP_TEST_PAUSE_SECONDS`` (default 120) seconds — or until dlsetup starts stopping (a
signal). A test can then interrupt or kill the process at a known point mid-install. No
production module knows about this hook.
"""

from __future__ import annotations

import os
from pathlib import Path

PAUSE_ENV = "DLSETUP_TEST_PAUSE_AFTER_LINK"
PAUSE_SECONDS_ENV = "DLSETUP_TEST_PAUSE_SECONDS"


def _install_pause() -> None:
    pause_file = os.environ.get(PAUSE_ENV)
    if not pause_file:
        return
    try:
        from dlsetup.envs.conda import install
    except ImportError:  # another interpreter started with this environment (the env's Python)
        return
    reporter = install._Reporter
    original = reporter.on_link_complete
    paused: list[bool] = []

    def on_link_complete(self: object, index: int) -> None:
        original(self, index)  # type: ignore[arg-type]
        if not paused:
            paused.append(True)
            Path(pause_file).write_text(str(os.getpid()), encoding="utf-8")
            install._STOPPING.wait(float(os.environ.get(PAUSE_SECONDS_ENV, "120")))

    reporter.on_link_complete = on_link_complete  # type: ignore[method-assign]


_install_pause()
