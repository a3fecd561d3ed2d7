"""``python -m epics_pva.tools.measure``: the measurement command line (see `epics_pva.tools.measure.cli`)."""

import logging
import sys

from .cli import main_measure

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main_measure())
