"""Resource probes of this process: memory, threads, file descriptors, live p4p client objects.

Linux only for RSS, OS threads and descriptors (read from /proc/self); elsewhere they read -1.
"""

from __future__ import annotations

import gc
import os
import threading
from typing import Any

from ..ioc_process import status_field

__all__ = ["POOL_PREFIX", "RELEASERS", "RELEASE_PREFIX", "python_threads", "snapshot", "status_field"]


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _p4p_objects() -> dict[str, int]:
    """Live p4p client subscriptions (after a full garbage collection) and operations started
    by epics_pva and not yet ended."""
    from p4p.client import raw

    from epics_pva.transport import live_operations, wait_released

    wait_released(5.0)  # the releaser threads end a call's completed operations just after it
    gc.collect()
    subscriptions = sum(isinstance(obj, raw.Subscription) for obj in gc.get_objects())
    return {"subscriptions": subscriptions, "operations": live_operations()}


POOL_PREFIX = "epics_pva"  # the Interface's validation threads: bounded by its max_workers
RELEASE_PREFIX = "pva-release"  # the transport's releaser threads: at most two, ending once idle
RELEASERS = 2


def python_threads() -> list[threading.Thread]:
    """Threads started from Python. Native threads that merely logged through Python show up in
    threading.enumerate() as 'dummy' threads for good; they are counted as OS threads instead."""
    dummy = getattr(threading, "_DummyThread", ())
    return [t for t in threading.enumerate() if not isinstance(t, dummy)]


def snapshot() -> dict[str, Any]:
    """RSS (kB), OS and Python threads (the Interface's pool apart), open descriptors, live p4p
    subscriptions and operations."""
    probe = _p4p_objects()
    names = sorted(t.name for t in python_threads())
    return {
        "rss_kb": status_field("VmRSS"),
        "os_threads": status_field("Threads"),
        "py_threads": len(names),
        "pool_threads": sum(name.startswith(POOL_PREFIX) for name in names),
        "release_threads": sum(name.startswith(RELEASE_PREFIX) for name in names),
        "fds": _open_fds(),
        **probe,
        "thread_names": names,
    }
