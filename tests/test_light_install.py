"""The light runtime installs and scans without TensorFlow: `pip install 'fakelens[onnx]'` into a
fresh virtual environment (no system packages), as a serving box would. Needs the network."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import REPO, encode, random_image

pytestmark = [pytest.mark.slow, pytest.mark.install]


def test_the_onnx_extra_installs_without_tensorflow_and_scans(tmp_path):
    tree = tmp_path / "fakelens"
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", f"{tree}[onnx]"],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    absent = subprocess.run(
        [venv / "bin" / "python", "-c", "import tensorflow"], capture_output=True, text=True
    )
    assert "No module named 'tensorflow'" in absent.stderr

    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        (images / f"{i}.jpg").write_bytes(encode(random_image(i, (48, 64))))
    fakelens = venv / "bin" / "fakelens"
    scan = subprocess.run(
        [
            fakelens,
            "scan",
            images,
            "--model",
            "patchres",
            "--backend",
            "onnx",
            "--out",
            tmp_path / "r.csv",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert scan.returncode == 0, scan.stdout + scan.stderr
    assert "Scored 6 of 6 images" in scan.stdout
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 7

    keras = subprocess.run(
        [fakelens, "scan", images, "--model", "patchres", "--out", tmp_path / "k.csv"],
        capture_output=True,
        text=True,
    )
    assert keras.returncode == 2 and "pip install 'fakelens[tf]'" in keras.stderr
