"""How `fakelens` starts: quiet (no TensorFlow log lines unless --verbose), without TensorFlow
when no model is needed, help that reads well, and exit 2 with the help when run bare."""

from __future__ import annotations

import os
import platform
import re

import click
import pytest
import typer
from clirun import run, run_cold
from conftest import encode, random_image

from fakelens.cli import app
from fakelens.cli.app import reflow

#: What TensorFlow's C++ libraries print as they load and start, absl's prefix included.
TF_LOG_LINE = re.compile(r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|^[IWE]\d{4} ", re.M)
#: Without TF_CPP_MIN_LOG_LEVEL, as a user's shell has it (conftest sets it for this process).
USER_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "img.png"
    path.write_bytes(encode(random_image(0), "PNG"))
    return path


def test_a_keras_prediction_prints_no_tensorflow_log_lines(image):
    ran = run_cold("predict", "--model", "seed", "--backend", "keras", image, env=USER_ENV)
    assert ran.returncode == 0, ran.stderr
    assert ran.imported_tensorflow and ran.stdout.startswith(f"{image}\t")
    assert not TF_LOG_LINE.search(ran.stderr), ran.stderr


@pytest.mark.skipif(platform.machine() != "x86_64", reason="oneDNN's start-up line is printed on x86-64")
def test_verbose_shows_tensorflows_log_lines(image):
    ran = run_cold("--verbose", "predict", "--model", "seed", "--backend", "keras", image, env=USER_ENV)
    assert ran.returncode == 0, ran.stderr
    assert "oneDNN custom operations are on" in ran.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["models"],
        ["--help"],
        ["predict", "--help"],
        ["train", "--help"],
        ["predict", "--bogus"],
        ["scan", "nowhere"],
        ["report", "nope.csv"],
        ["predict", "nope.jpg"],
    ],
    ids=" ".join,
)
def test_commands_that_need_no_model_do_not_import_tensorflow(args):
    ran = run_cold(*args)
    assert ran.returncode in (0, 1, 2), ran.stderr
    assert not ran.imported_tensorflow


def test_no_arguments_prints_the_help_and_exits_2():
    ran = run_cold()
    assert ran.returncode == 2
    assert "Usage: fakelens" in ran.stdout + ran.stderr and "predict" in ran.stdout + ran.stderr


def every_command() -> list[tuple[tuple[str, ...], click.Command]]:
    """(the words that call it, the command) for the app, each group and each command."""
    found = [((), typer.main.get_command(app))]
    for words, command in found:  # the list grows as groups are met
        found += [((*words, name), sub) for name, sub in getattr(command, "commands", {}).items()]
    return found


COMMANDS = every_command()


@pytest.mark.parametrize(("words", "command"), COMMANDS, ids=[" ".join(w) or "fakelens" for w, _ in COMMANDS])
def test_help_paragraphs_wrap_as_one_and_flags_show_no_type(words, command):
    for paragraph in (command.help or "").split("\n\n"):
        assert "\n" not in paragraph, f"hard line break in the help of {' '.join(words)!r}"
    shown = run(*words, "--help")
    assert shown.exit_code == 0
    assert "<bool>" not in shown.output


def test_reflow_joins_lines_within_paragraphs_only():
    text = """First line
        goes on.

        Second paragraph."""
    assert reflow(text) == "First line goes on.\n\nSecond paragraph."
    assert reflow("\b\nkept\nas is") == "\b\nkept\nas is"
