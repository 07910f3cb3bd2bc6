"""Each option's allowed values are declared beside it in `config`; one check enforces them, for the
Python API and the command line alike."""

from __future__ import annotations

import re

import pytest
from clirun import run

from fakelens.config import Choice, Interval, ServeConfig, TrainConfig
from fakelens.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("config", "changes", "message"),
    [
        (TrainConfig, {"epochs": 0}, "epochs must be >= 1; received epochs=0"),
        (TrainConfig, {"learning_rate": 0.0}, "learning_rate must be > 0; received learning_rate=0.0"),
        (TrainConfig, {"val_fraction": 1.0}, "val_fraction must be > 0 and < 1; received val_fraction=1.0"),
        (TrainConfig, {"threshold": 1.5}, "threshold must be >= 0 and <= 1; received threshold=1.5"),
        (
            TrainConfig,
            {"schedule": "linear"},
            "schedule must be one of constant, cosine; received schedule='linear'",
        ),
        (
            TrainConfig,
            {"strategy": "mpi"},
            "strategy must be one of local, multiworker; received strategy='mpi'",
        ),
        (
            ServeConfig,
            {"request_timeout_s": 0},
            "request_timeout_s must be > 0; received request_timeout_s=0",
        ),
        (ServeConfig, {"max_files": 0}, "max_files must be >= 1; received max_files=0"),
    ],
)
def test_a_value_outside_its_field_is_refused_naming_field_value_and_what_is_allowed(
    config, changes, message
):
    with pytest.raises(InvalidArgumentError, match=f"^{re.escape(message)}$"):
        config(**changes)


def test_none_keeps_the_default_and_edges_are_allowed():
    config = TrainConfig(epochs=None, val_fraction=0.5, threshold=0.0, max_false_positive_rate=0.0, limit=4)
    assert config.epochs is None and config.limit == 4


def test_constraints_read_as_they_check():
    assert Interval(ge=0, lt=1).allows(0) and not Interval(ge=0, lt=1).allows(1)
    assert str(Interval(gt=0, le=2.5)) == "> 0 and <= 2.5"
    assert Choice(("a", "b")).allows("b") and not Choice(("a", "b")).allows("c")


def test_the_cli_reports_a_bad_training_option_in_one_line_with_exit_2(tiny_layout, tmp_path):
    result = run("train", "--data", tiny_layout, "--epochs", "0", "--runs-dir", tmp_path)
    assert result.exit_code == 2
    assert "epochs must be >= 1; received epochs=0" in result.output
    assert not any(tmp_path.iterdir())  # refused before any run directory was made


def test_train_refuses_keras_options_for_a_probe_model(tmp_path):
    result = run("train", "--model", "clipprobe", "--data", tmp_path, "--epochs", "3", "--augment")
    assert result.exit_code == 2
    assert "do not apply to it: --epochs, --augment" in result.output
