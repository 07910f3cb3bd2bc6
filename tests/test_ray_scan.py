"""`fakelens scan --engine ray`: the same rows as the local scan, on a local Ray instance."""

from __future__ import annotations

import os
import zipfile

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from conftest import encode, fixed_sample, random_image
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.data.layout import DisplayNameReader
from fakelens.data.listing import list_images
from fakelens.inference.detector import load_detector
from fakelens.scanning.scan import COLUMNS, scan
from fakelens.weights import DEFAULT_MODEL

runner = CliRunner()


@pytest.fixture(scope="module")
def archive(cifake, tmp_path_factory):
    """2,000 CIFAKE test images, two broken files, a text file and a file left out by --include."""
    path = tmp_path_factory.mktemp("ray") / "mixed.zip"
    with zipfile.ZipFile(cifake / "cifake.zip") as source, zipfile.ZipFile(path, "w") as target:
        names = [n for n in source.namelist() if n.startswith("test/") and n.endswith(".jpg")]
        for name in fixed_sample(names, 2000):
            target.writestr(name, source.read(name))
        target.writestr("bad/truncated.jpg", encode(random_image(1))[:200])
        target.writestr("bad/empty.png", b"")
        target.writestr("bad/notes.txt", "not an image")
        target.writestr("skip/ignored.jpg", encode(random_image(2)))
    return path


@pytest.mark.slow
@pytest.mark.distributed
def test_ray_engine_writes_the_local_scans_rows(archive, tmp_path):
    pytest.importorskip("ray.data")
    from fakelens.scanning.ray_engine import ray_scan

    include = ("test/*", "bad/*")
    detector = load_detector(DEFAULT_MODEL, backend="onnx")
    local = scan(detector, archive, tmp_path / "local.parquet", include=include, quiet=True)
    out = tmp_path / "ray.parquet"
    summary = ray_scan(DEFAULT_MODEL, archive, out, include=include, backend="onnx", num_cpus=2, quiet=True)

    expected = pq.read_table(tmp_path / "local.parquet").to_pylist()
    assert out.is_dir() and list(out.glob("*.parquet"))  # a directory of part files
    rows = pads.dataset(str(out)).to_table().to_pylist()
    assert len(rows) == len(expected) == 2002
    for mine, theirs in zip(rows, expected):  # row for row, in the listing's order
        assert list(mine) == list(COLUMNS)
        assert {k: mine[k] for k in COLUMNS if k != "ai_probability"} == {
            k: theirs[k] for k in COLUMNS if k != "ai_probability"
        }
        assert mine["ai_probability"] == pytest.approx(theirs["ai_probability"], abs=1e-6, nan_ok=True)
    assert sorted(summary.failures) == sorted(local.failures)
    assert [p.rsplit("/", 1)[-1] for p, _ in summary.failures] == ["empty.png", "truncated.jpg"]
    assert (summary.scored, summary.ai, summary.not_images) == (local.scored, local.ai, local.not_images)
    assert not (tmp_path / "ray.parquet.partial").exists()


def test_file_uris_list_and_read_like_local_paths(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.jpg").write_bytes(b"jpeg bytes")
    (tmp_path / "in" / "b.txt").write_text("text")
    by_uri, skipped, _ = list_images(f"file://{tmp_path / 'in'}", include=("sub/*", "*.txt"))
    by_path, _, _ = list_images(tmp_path / "in")
    assert [r["path"] for r in by_uri] == [f"file://{tmp_path}/in/sub/a.jpg"]
    assert [r["size"] for r in by_uri] == [r["size"] for r in by_path] == [10]
    assert skipped == [f"file://{tmp_path}/in/b.txt"]
    with DisplayNameReader() as reader:
        assert reader.read(by_uri[0]["path"]) == reader.read(by_path[0]["path"]) == b"jpeg bytes"
        with pytest.raises(Exception, match="cannot read"):
            reader.read(f"file://{tmp_path}/in/missing.jpg")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--engine", "spark"], "Invalid value for '--engine': Value error, 'spark' is not one of 'local',"),
        (["--engine", "ray", "--evidence"], "--evidence is available with --engine local only"),
        (["--engine", "ray", "--out", "{existing}"], "does not resume: pass --fresh"),
    ],
)
def test_ray_engine_usage_errors(options, message, tmp_path):
    (tmp_path / "done.csv").mkdir()
    options = [o.replace("{existing}", str(tmp_path / "done.csv")) for o in options]
    result = runner.invoke(app, ["scan", str(tmp_path), "--backend", "onnx", *options])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_a_folder_that_cannot_be_listed_is_reported_not_skipped(tmp_path, monkeypatch):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.jpg").write_bytes(b"jpeg bytes")
    real_scandir = os.scandir

    def scandir(path):  # chmod does not stop root, so the listing is refused here
        if os.fspath(path).rstrip("/").endswith("in/sub"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    listed, _, unlisted = list_images(tmp_path / "in")
    assert [r["path"] for r in listed] == [f"{tmp_path}/in/a.jpg"]
    assert unlisted == [(f"{tmp_path}/in/sub/", "cannot list this folder: Permission denied")]
