"""Stopping a long-running command that has children of its own (``rca demo``, ``rca web``).

Ctrl-C raises KeyboardInterrupt, and each command stops its children (the Streamlit
pages, the web app's server) in its ``finally``. A ``kill`` (SIGTERM: a supervisor, a
service manager, ``timeout``) or a closed terminal (SIGHUP) would end the process at once
and leave those children running on their ports; :func:`interrupt_on_term` makes both
act as Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def interrupt_on_term() -> None:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread from now on (a no-op
    off the main thread, where Python cannot install signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
