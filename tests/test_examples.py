"""The `Examples:` in the public API's docstrings run as written, on a tiny folder: a 32x32
photo, a second one in `photos/`, and a text file beside each."""

from __future__ import annotations

import doctest
import importlib

import pytest
from conftest import encode, random_image

MODULES = [
    "fakelens",
    "fakelens.inference.detector",
    "fakelens.scanning.scan",
    "fakelens.models.registry",
]


@pytest.fixture
def example_folder(tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photo.jpg").write_bytes(encode(random_image(0)))
    (tmp_path / "notes.txt").write_text("not an image")
    for i in (1, 2):
        (tmp_path / "photos" / f"{i}.jpg").write_bytes(encode(random_image(i)))
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_as_written(name, example_folder):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
