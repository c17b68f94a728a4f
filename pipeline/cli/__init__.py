"""The ``newsradar`` command: argument parsing, the commands, and every terminal table (``show``).

The only package that imports rich. May import everything in pipeline/, jobs included.
"""

from pipeline.cli.commands import main

__all__ = ["main"]
