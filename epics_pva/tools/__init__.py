"""The tools: command lines and measurements built on the core, never loaded by it.

`preflight` (pva-preflight), `journal_cli` (pva-journal), `measure` and `calibration`
(measuring and fitting a live system), `environment` (reading a Badger environment without
Badger), and `arguments`, the argparse types the command lines share. Importing
`epics_pva` loads none of them.
"""
