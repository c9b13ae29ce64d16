"""Command-line interface; see :mod:`edgeseg.cli.main`."""
