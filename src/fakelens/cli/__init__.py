"""The `fakelens` command: a thin shell that parses options, calls the library and prints.

Exit codes: 0 all good; 1 finished, but some inputs failed (they are listed); 2 usage error.
One module per group of commands; importing them registers their commands on `app`.
"""

from fakelens.cli import data, evaluate, explain, judge, models, serve, train  # noqa: F401
from fakelens.cli.app import app

__all__ = ["app"]
