"""Waiting for the journal's locks, at most until a deadline.

A journal line is written under two locks: the Journal's thread lock (threads of one
process) and an exclusive ``flock`` on the file (other processes, and other Journal objects
of this one). A blocking flock cannot be given up, so with a deadline it is tried without
blocking again and again, a few milliseconds apart; past the deadline the wait fails with
JournalError naming the file, so a journal held by a hung process fails a set before any put
instead of hanging it. Without a deadline (None) both waits block as long as it takes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fcntl import LOCK_EX, LOCK_NB, flock

from ..errors import JournalError

__all__ = ["hold", "take_flock"]

# the first pause between two tries of a busy flock, and the longest (it doubles in between)
FIRST_POLL, LONGEST_POLL = 0.001, 0.02


@contextmanager
def hold(lock: threading.Lock, deadline: float | None, path: str | os.PathLike[str],
         timeout: float | None) -> Iterator[None]:
    """Hold `lock`, waiting at most until `deadline` (monotonic s); JournalError naming `path` past it."""
    if deadline is None:
        lock.acquire()
    elif not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise JournalError(path, f"cannot lock: another thread of this process held the journal for "
                                 f"more than {timeout or 0:g} s")
    try:
        yield
    finally:
        lock.release()


def take_flock(fd: int, deadline: float | None, path: str | os.PathLike[str], timeout: float | None) -> None:
    """Take the exclusive flock of `fd`, waiting at most until `deadline`; JournalError past it.

    OSError for any other reason the flock fails.
    """
    if deadline is None:
        flock(fd, LOCK_EX)
        return
    pause = FIRST_POLL
    while True:
        try:
            flock(fd, LOCK_EX | LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JournalError(path, f"cannot lock: another process held the journal's flock for "
                                         f"more than {timeout or 0:g} s (is a writer hung?)") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_POLL)
