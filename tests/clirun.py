"""Running the `fakelens` command in tests: in this process (`run`), or as a user runs it, in a
fresh Python (`run_cold`), which also tells whether the command imported TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from click.testing import Result
from typer.testing import CliRunner

from fakelens.cli import app

runner = CliRunner()
#: The last line a cold run writes to stderr: whether TensorFlow was imported.
_MARKER = "fakelens-test: tensorflow imported="
_COLD = f"""
import sys
from fakelens.cli import app
try:
    app(sys.argv[1:], prog_name="fakelens")
finally:
    print("\\n{_MARKER}" + str("tensorflow" in sys.modules), file=sys.stderr)
"""


def run(*args: object, input: str | None = None) -> Result:
    """`fakelens ARGS` in this process; output holds stdout and stderr as a terminal shows them."""
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


@dataclass(frozen=True)
class ColdRun:
    returncode: int
    stdout: str
    stderr: str
    imported_tensorflow: bool


def run_cold(*args: object, env: dict[str, str] | None = None, timeout: float = 120) -> ColdRun:
    """`fakelens ARGS` in a fresh Python process, as from a shell."""
    command = [sys.executable, "-c", _COLD, *map(str, args)]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    stderr, _, flag = finished.stderr.rpartition(f"\n{_MARKER}")
    return ColdRun(finished.returncode, finished.stdout, stderr, flag.strip() == "True")
