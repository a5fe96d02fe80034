"""Ctrl-C and SIGTERM during a run: both end it the same way, with their own exit status.

SIGINT already arrives as ``KeyboardInterrupt`` in the main thread; SIGTERM (a scheduler or CI
cancelling the job) is turned into ``Terminated`` there too, so one ``except`` clause lets the
batch end its sandboxes, discard the submissions in flight and remove their staged copies
before the process exits.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator



class Terminated(BaseException):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt."""


def exit_status(exc: BaseException) -> int:
    """128 + the signal's number, as a shell reports a process the signal ended."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


@contextmanager
def terminate_raises() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
