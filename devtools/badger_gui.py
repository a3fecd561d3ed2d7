"""Drive Badger's GUI offscreen as an operator would, against a soft IOC.

What tests/test_badger_gui.py and the docs' screenshots (devtools.badger_screenshots) share:
the main window's own widgets are used (the environment box, the variable table's Info
dialog, the action bar's "Run until" with its dialog, the run monitor's reset), so each
step runs exactly the GUI's code. Dialogs are modal (each runs a nested event loop), so
`DialogWatch` polls for them and answers each as a handler says; a dialog nobody expected
is recorded and closed, so a broken plugin fails the caller instead of hanging it.

Needs Badger (``pip install badger-epics-pva[badger]``) and a QApplication; with
QT_QPA_PLATFORM=offscreen no display is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from unittest.mock import patch

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication, QDialog, QLabel, QMessageBox, QWidget

__all__ = ["DialogWatch", "dialog_text", "open_info", "reset_environment", "run_until", "select_environment",
           "wait_until"]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Process Qt events until `predicate()` is true; TimeoutError saying `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout:g} s")
        QApplication.processEvents()
        time.sleep(0.01)


def dialog_text(dialog: QWidget) -> str:
    """A message box's text, or every label's text in another dialog, one per line."""
    if isinstance(dialog, QMessageBox):
        return "\n".join(t for t in (dialog.text(), dialog.informativeText()) if t)
    return "\n".join(label.text() for label in dialog.findChildren(QLabel) if label.text())


class DialogWatch:
    """Answers modal dialogs as they open: `handlers` are (test, answer) pairs tried in order.

    `test(dialog)` says whether `answer(dialog)` handles it; the answer must close it. A
    dialog no handler takes is recorded in `unexpected` as (class name, title, text) and
    rejected. Use as a context manager around the GUI actions.
    """

    def __init__(self, *handlers: tuple[Callable[[QWidget], bool], Callable[[QWidget], None]]) -> None:
        self.handlers = list(handlers)
        self.unexpected: list[tuple[str, str, str]] = []
        self.answered: list[str] = []
        self._timer = QTimer()
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._poll)

    def __enter__(self) -> DialogWatch:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.stop()

    def _poll(self) -> None:
        for widget in QApplication.topLevelWidgets():
            if not isinstance(widget, (QDialog, QMessageBox)) or not widget.isVisible():
                continue
            for test, answer in self.handlers:
                if test(widget):
                    self.answered.append(type(widget).__name__)
                    answer(widget)
                    break
            else:
                self.unexpected.append((type(widget).__name__, widget.windowTitle(), dialog_text(widget)))
                widget.reject() if isinstance(widget, QDialog) else widget.close()
            return  # one dialog per tick: the answer may open or close others


def select_environment(page: Any, environment: str, variables: list[str], objective: str,
                       generator: str = "random", automatic: bool = True) -> None:
    """On the home page's routine editor: pick the generator and the environment, check the
    variables and the objective to minimise, and tick "Automatic" (ranges around the current values)."""
    editor = page.routine_editor
    boxes = {"generator": (editor.generator_box.cb, generator), "environment": (editor.env_box.cb, environment)}
    for what, (box, name) in boxes.items():
        index = box.findText(name)
        if index < 0:
            raise LookupError(f"no {what} {name!r} in Badger's list: {[box.itemText(i) for i in range(box.count())]}")
        with DialogWatch() as watch:  # Badger shows an environment that fails to load in a dialog
            box.setCurrentIndex(index)
        if watch.unexpected:
            raise AssertionError(f"selecting the {what} {name!r} opened: {watch.unexpected}")
    table = editor.env_box.var_table
    for row in range(table.rowCount()):
        item = table.item(row, 1)
        if item is not None and item.text() in variables:
            table.cellWidget(row, 0).setChecked(True)
    objectives = editor.env_box.obj_table
    for row in range(objectives.rowCount()):
        item = objectives.item(row, 1)
        if item is not None and item.text() == objective:
            objectives.cellWidget(row, 0).setChecked(True)
    if automatic and not editor.env_box.relative_to_curr.isChecked():
        with DialogWatch() as watch:
            editor.env_box.relative_to_curr.setChecked(True)
        if watch.unexpected:
            raise AssertionError(f"ticking Automatic opened: {watch.unexpected}")


def open_info(page: Any, variable: str, save: str | None = None) -> dict[str, str]:
    """Open the variable table's Info dialog of `variable` as its context menu does; return its
    rows {field: text} in order (optionally saving a PNG of it), then close it."""
    table = page.routine_editor.env_box.var_table
    rows = [r for r in range(table.rowCount()) if table.item(r, 1) is not None and table.item(r, 1).text() == variable]
    if not rows:
        raise LookupError(f"{variable} is not in the variable table")
    found: dict[str, str] = {}

    def read(dialog: QWidget) -> None:
        labels = [label.text() for label in dialog.findChildren(QLabel)]
        for key, value in zip(labels[0::2], labels[1::2], strict=False):
            found[key.removesuffix(":")] = value
        if save is not None:
            dialog.grab().save(save)
        dialog.close()

    with DialogWatch((lambda d: d.windowTitle() == "Variable Info", read)) as watch:
        table.display_info(table.item(rows[0], 1))  # returns when the dialog is closed
    if watch.unexpected:
        raise AssertionError(f"unexpected dialog(s) around the Info dialog: {watch.unexpected}")
    return found


def run_until(page: Any, evaluations: int, *others: tuple[Callable[[QWidget], bool], Callable[[QWidget], None]],
              timeout: float = 60.0) -> DialogWatch:
    """Click "Run until", ask for `evaluations` evaluations in its dialog and press Run; wait for
    the run to end (TimeoutError after `timeout` s, the run then stopped). `others` handle
    further dialogs (the measurement Retry/Stop dialog); the returned watch says which were
    answered and which were not expected."""
    from badger.gui.windows.terminition_condition_dialog import BadgerTerminationConditionDialog

    def start(dialog: Any) -> None:
        dialog.cb.setCurrentIndex(0)  # "max evaluations"
        dialog.sb_max_eval.setValue(evaluations)
        dialog.btn_run.click()

    monitor = page.run_monitor
    with DialogWatch((lambda d: isinstance(d, BadgerTerminationConditionDialog), start), *others) as watch:
        page.run_action_bar.set_run_until_action()  # what the "Run until" menu entry does
        try:
            wait_until(lambda: monitor.running or bool(watch.unexpected), 30, "the run to start")
            wait_until(lambda: not monitor.running, timeout, "the run to end")
        finally:
            if monitor.running and monitor.routine_runner is not None:
                monitor.routine_runner.stop_routine()  # what the Stop button does
    return watch


def reset_environment(page: Any) -> None:
    """Press the action bar's reset button and confirm: the variables go back to where the run began."""
    button = page.run_action_bar.btn_reset
    if not button.isEnabled():
        raise AssertionError("the reset button is disabled: no run has set the variables yet")
    with patch("PyQt5.QtWidgets.QMessageBox.question", return_value=QMessageBox.Yes):
        button.click()
