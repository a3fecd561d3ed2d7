"""One registry of what epics_pva does around os.fork(): every module adds its hooks here.

A forked child inherits the parent's locks (possibly held by threads it does not have) and
p4p contexts (which hang it), so several modules must act at a fork. They register with
`at_fork`; this module registers with `os.register_at_fork` once, and runs the hooks as
Python would (before-hooks newest first, after-hooks oldest first), each one even when an
earlier one failed.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

__all__ = ["at_fork"]

Hook = Callable[[], object]
_before: list[Hook] = []
_after_in_parent: list[Hook] = []
_after_in_child: list[Hook] = []


def at_fork(*, before: Hook | None = None, after_in_parent: Hook | None = None,
            after_in_child: Hook | None = None) -> None:
    """Run `before` just before os.fork(), and the others just after it, in each process."""
    for hooks, hook in ((_before, before), (_after_in_parent, after_in_parent),
                        (_after_in_child, after_in_child)):
        if hook is not None:
            hooks.append(hook)


def _run(hooks: list[Hook]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:  # noqa: BLE001 - as os.register_at_fork does: report it, run the others
            print(f"epics_pva: at-fork hook {hook!r} failed:", file=sys.stderr)
            traceback.print_exc()


os.register_at_fork(before=lambda: _run(_before[::-1]),
                    after_in_parent=lambda: _run(_after_in_parent),
                    after_in_child=lambda: _run(_after_in_child))
