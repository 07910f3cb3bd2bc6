"""Where commands write and how they end: runs/<command>/<name>[-N]/ unless --out, "Results saved
to <path>" as the last line (never when nothing was saved), scans that say what they could not do."""

from __future__ import annotations

import zipfile

import pytest
from clirun import run
from conftest import encode, random_image

from fakelens.data.layout import open_input
from fakelens.fsutil import next_run_dir
from fakelens.scanning.scan import known_total


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_next_run_dir_numbers_runs_from_2(tmp_path):
    assert next_run_dir(tmp_path, "seed") == tmp_path / "seed"
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed-2").mkdir()
    assert next_run_dir(tmp_path, "seed") == tmp_path / "seed-3"


def test_data_show_writes_a_new_run_dir_each_time(tiny_layout, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in (tiny_layout.name, f"{tiny_layout.name}-2"):
        result = run("data", "show", tiny_layout, "--count", "4")
        assert result.exit_code == 0, result.output
        grid = f"runs/data-show/{folder}/grid.png"
        assert last_line(result.output) == f"Results saved to {grid}"
        assert (tmp_path / grid).is_file()


def test_explain_goes_to_runs_and_claims_no_results_when_nothing_was_explained(
    seed_model_file, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.png"
    good.write_bytes(encode(random_image(0), "PNG"))
    result = run("explain", good, tmp_path / "missing.png", "--model", seed_model_file)
    assert result.exit_code == 1
    assert "missing.png" in result.output
    assert last_line(result.output) == "Results saved to runs/explain/seed"
    assert (tmp_path / "runs/explain/seed/good.overlay.png").is_file()

    nothing = run("explain", tmp_path / "missing.png", "--model", seed_model_file)
    assert nothing.exit_code == 1 and "missing.png" in nothing.output
    assert "Results saved" not in nothing.output


def test_report_of_a_missing_file_is_a_usage_error(tmp_path):
    result = run("report", tmp_path / "nope.csv")
    assert result.exit_code == 2
    assert "nope.csv" in result.output and "does not exist" in result.output


def test_scan_lists_failures_before_where_results_went_and_says_model_loading_is_apart(
    seed_model_file, tmp_path
):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.png").write_bytes(encode(random_image(0), "PNG"))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "r.csv"
    result = run("scan", folder, "--out", out, "--model", seed_model_file, "-q")
    assert result.exit_code == 1
    assert "broken.png" in result.output and "s loading the model." in result.output
    assert last_line(result.output) == f"Results saved to {out}"


def test_scan_of_a_folder_without_images_warns_and_exits_1(seed_model_file, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    result = run("scan", folder, "--out", tmp_path / "r.csv", "--model", seed_model_file, "-q")
    assert result.exit_code == 1
    assert f"warning: {folder}: no image files found" in result.output
    matched = run("scan", folder, "--include", "*.jpg", "--out", tmp_path / "r.csv", "-m", seed_model_file)
    assert matched.exit_code == 1 and "no image files found matching --include *.jpg" in matched.output


@pytest.fixture
def sources(tmp_path):
    """The same three images and one text file as a folder, a zip and a list of paths."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    names = ["a.jpg", "sub/b.png", "sub/c.jpg", "notes.txt"]
    for name in names:
        (folder / name).write_bytes(b"x")
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as written:
        for name in names:
            written.writestr(name, b"x")
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{folder / name}\n" for name in names))
    return {"folder": folder, "zip": archive, "list": f"@{listing}"}


@pytest.mark.parametrize(
    ("kind", "include", "total"), [("zip", (), 3), ("zip", ("sub/*",), 2), ("list", (), 3)]
)
def test_scan_progress_knows_its_total_where_listing_is_cheap(sources, kind, include, total):
    with open_input(sources[kind]) as source:
        assert known_total(source, include) == total
        assert len(list(source.iter_names())) == 4  # a list of paths is still there to scan


def test_scan_progress_of_a_folder_counts_without_an_end(sources):
    with open_input(sources["folder"]) as source:
        assert known_total(source) is None
