"""A machine's temporary folder (its pickled config for the shards), and who removes it.

The parent makes it and removes it when the machine stops. A parent killed by SIGKILL cannot:
its shards, which stop when their command pipe closes, remove it on their way out once they
see they have been orphaned, and the next machine to start removes any folder whose recorded
owner process is gone. A folder without an owner file (made by an older version) is never
touched: it may belong to a machine running now.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["PREFIX", "leave_if_orphaned", "make_folder", "remove_stale"]

_log = logging.getLogger(__name__)

PREFIX = "softioc-machine-"
OWNER = "owner"  # the file holding the pid of the process that made the folder


def make_folder() -> Path:
    """A new folder under the temporary directory, owned by this process (its pid recorded)."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    (folder / OWNER).write_text(str(os.getpid()))
    return folder


def _owner(folder: Path) -> int | None:
    """The pid recorded in `folder`, or None when it has none (or not one to trust)."""
    try:
        text = (folder / OWNER).read_text()
    except OSError:
        return None
    return int(text) if text.strip().isdigit() and len(text.strip()) < 12 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another account's process: alive
        return True
    return True


def remove_stale(root: str | None = None) -> int:
    """Remove the machine folders under `root` (the temporary directory) whose owner is dead;
    how many. A folder without an owner file, or whose owner lives, is kept."""
    removed = 0
    for folder in Path(root or tempfile.gettempdir()).glob(PREFIX + "*"):
        pid = _owner(folder)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += not folder.exists()
    if removed:
        _log.info("removed %d temporary folder(s) of machines whose parent process died", removed)
    return removed


def leave_if_orphaned(folder: Path, parent: int, grace: float = 1.0) -> bool:
    """In a shard on its way out: remove its machine's `folder` if `parent` (the pid that made
    it) is no longer this process's parent, waiting up to `grace` s for the kernel to reparent
    us (a pipe closes as a process dies, just before its children are handed on). Whether removed."""
    if not folder.name.startswith(PREFIX) or _owner(folder) != parent:
        return False  # not a folder a machine made for us: never ours to remove
    deadline = time.monotonic() + grace
    while os.getppid() == parent:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)  # the reparenting is not signalled to the child
    shutil.rmtree(folder, ignore_errors=True)  # several shards may race here: the last one finishes
    return not folder.exists()
