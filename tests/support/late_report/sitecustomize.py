"""Test-only: every thread but the main one reaches an event loop late (issue 20).

Put this directory on ``PYTHONPATH`` (:data:`LATE_REPORT_DIR` in
``tests/envs/test_failed_download.py``): Python imports this module at start-up
(``sitecustomize``), and from then on ``loop.call_soon_threadsafe`` called from any thread but
the main one first sleeps 0-30 ms — as when the OS preempts one of rattler's tokio threads just
after it looked whether its Python future was cancelled and just before it hands over the
result. Under load that happens on its own about once in 20-50 failed creates; here, in almost
every one. No production module knows about this hook.
"""

from __future__ import annotations

import asyncio.base_events
import random
import threading
import time
from typing import Any

_call_soon_threadsafe = asyncio.base_events.BaseEventLoop.call_soon_threadsafe


def _late(self: asyncio.base_events.BaseEventLoop, *args: Any, **kwargs: Any) -> Any:
    if threading.current_thread() is not threading.main_thread():
        time.sleep(random.uniform(0.0, 0.03))
    return _call_soon_threadsafe(self, *args, **kwargs)


asyncio.base_events.BaseEventLoop.call_soon_threadsafe = _late  # type: ignore[method-assign,assignment]
