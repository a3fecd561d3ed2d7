"""Screenshots of Badger's GUI driving the demo soft IOC, for docs/badger.md.

    python -m devtools.badger_screenshots [--out docs]

Runs what an operator does, offscreen (no display needed) in a fresh HOME: `pva-badger setup`,
the soft IOC serving softioc/examples/demo.toml in a child process, Badger's main window in
its dark theme; loads the demo environment, opens DEMO:Q1:SET's Info dialog, arms a fault that
refuses one put of DEMO:Q2:SET, runs three evaluations with "Run until" and answers the
Retry/Stop dialog with Retry. Saves:

    badger-info-dialog.png    the Info dialog (the plugin's rows, mode first)
    badger-retry-dialog.png   the Retry/Stop dialog showing the refused put
    badger-run.png            the main window after the run

The file paths in the retry dialog and the status bar are shortened ("…/", "~": they name
this machine's folders); the text is otherwise Badger's. Needs Badger (``pip install badger-epics-pva[badger]``). Prints
the retry dialog's main text as Badger showed it.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.badger_screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNG files (default docs/)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="badger-home-") as home:
        os.environ["HOME"] = home  # before Badger reads its settings: a first-time operator's
        for name in [k for k in os.environ if k.startswith("EPICS_PVA")]:
            del os.environ[name]
        return _shoot(Path(home), out)


def _shoot(home: Path, out: Path) -> int:
    from devtools.ioc_process import IOCProcess
    from epics_pva.badger.setup import gui_command, setup_badger
    from softioc.pytest_plugin import demo_config_path

    with IOCProcess(demo_config_path()) as ioc:
        for name, value in ioc.client_conf.items():
            if not name.startswith("EPICS_PVA_INTERFACE_"):
                os.environ[name] = value
        report = setup_badger(home / "badger")
        print(f"set up Badger in {home}; the GUI would start with: {gui_command(report)}")

        from PyQt5.QtGui import QFont
        from PyQt5.QtWidgets import QApplication
        from qdarkstyle import DarkPalette, load_stylesheet

        app = QApplication(sys.argv[:1])
        font = QFont()
        font.setPixelSize(13)  # as badger.gui.launch_gui sets it, with its default dark theme
        app.setFont(font)
        app.setStyleSheet(load_stylesheet(palette=DarkPalette))

        from badger.gui.windows.main_window import BadgerMainWindow
        from badger.gui.windows.measurement_retry_dialog import BadgerMeasurementRetryDialog

        from devtools.badger_gui import open_info, run_until, select_environment, wait_until

        window = BadgerMainWindow()
        window.resize(1600, 1000)
        window.show()
        try:
            page = window.home_page
            select_environment(page, "demo", ["DEMO:Q1:SET", "DEMO:Q2:SET"], "DEMO:OBJ")
            rows = open_info(page, "DEMO:Q1:SET", save=str(out / "badger-info-dialog.png"))
            print(f"Info dialog: {len(rows)} rows, first {next(iter(rows.items()))}")

            ioc.call("arm", {"pv": "DEMO:Q2:SET", "kind": "put_reject", "count": 1, "message": "interlock open"})
            texts: list[str] = []

            def retry(dialog: BadgerMeasurementRetryDialog) -> None:
                texts.append(dialog.textLabel.text())
                dialog.textLabel.setText(_shorten(texts[-1], home))  # this machine's paths: "…"
                dialog.resize(720, 480)
                wait_until(lambda: True, 0.1, "a repaint")
                dialog.grab().save(str(out / "badger-retry-dialog.png"))
                (dialog.retryButton if len(texts) == 1 else dialog.stopButton).click()

            watch = run_until(page, 3, (lambda d: isinstance(d, BadgerMeasurementRetryDialog), retry))
            if watch.unexpected or len(texts) != 1:
                print(f"unexpected: {watch.unexpected}; retry dialogs: {len(texts)}", file=sys.stderr)
                return 1
            status = page.status_bar.summary
            status.setText(_shorten(status.text(), home))  # "archived to ~/badger/archive"
            window.grab().save(str(out / "badger-run.png"))
            print("Retry dialog's main text begins:")
            print("\n".join(texts[0].splitlines()[:8]))
        finally:
            window.process_manager.close_proccesses()
            window.close()
    for name in ("badger-info-dialog.png", "badger-retry-dialog.png", "badger-run.png"):
        print(f"wrote {out / name}")
    return 0


def _shorten(text: str, home: Path) -> str:
    """Text without this machine's folders: installed packages and the checkout become "…",
    the temporary home "~"."""
    folders = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(ROOT)}
    for folder in sorted(folders, key=len, reverse=True):
        text = text.replace(folder.rstrip("/") + "/", "…/")
    return text.replace(str(home), "~")


if __name__ == "__main__":
    sys.exit(main())
