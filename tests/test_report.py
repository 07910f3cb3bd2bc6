"""Reports for a training run and for a scan: self-contained HTML, Markdown, and a look in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import zipfile

import numpy as np
import pytest
from browser import browser_page
from conftest import encode, random_image
from metadata_files import SD_PARAMETERS, png_with_text
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.errors import InvalidArgumentError
from fakelens.evaluation.evaluate import evaluate
from fakelens.inference.detector import load_detector
from fakelens.plots import plot_history, score_histogram
from fakelens.reporting import report
from fakelens.reporting.mistakes import heatmap_tiles
from fakelens.reporting.report import ReportOptions, write_report

runner = CliRunner()
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?!data:)""")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_layout, seed_model_file):
    """A run directory as training and `evaluate` leave it, on the tiny generated data set."""
    run = tmp_path_factory.mktemp("runs") / "seed-tiny"
    run.mkdir()
    history = {
        "loss": [0.7, 0.6],
        "val_loss": [0.71, 0.65],
        "accuracy": [0.5, 0.6],
        "val_accuracy": [0.5, 0.55],
    }
    (run / "config.json").write_text(json.dumps({"model": "seed", "epochs": 2, "seed": 42, "data_key": "k"}))
    (run / "run.json").write_text(json.dumps({"train_images": 16, "versions": {"keras": "3"}}))
    (run / "history.json").write_text(json.dumps(history))
    plot_history(history, run)
    shutil.copy(seed_model_file, run / "model.keras")
    evaluate(load_detector(run / "model.keras"), tiny_layout, run / "evaluate", robustness=True, quiet=True)
    return run


@pytest.fixture(scope="module")
def scan_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan")
    for i in range(3):
        (folder / f"{i}.png").write_bytes(encode(random_image(i), "PNG"))
    (folder / "sd.png").write_bytes(png_with_text({"parameters": SD_PARAMETERS}))
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = folder / "results.csv"
    result = runner.invoke(app, ["scan", str(folder), "--out", str(out), "-m", "seed", "-q", "--evidence"])
    assert result.exit_code == 1
    return out


def test_run_report_has_curves_metrics_robustness_and_confident_mistakes(run_dir, tiny_layout, tmp_path):
    out = write_report(run_dir, tmp_path / "run.html", options=ReportOptions(data=tiny_layout, top=3))
    html = out.read_text()
    assert "Training run seed-tiny" in html and "Evaluation: evaluate" in html
    assert "jpeg_q75" in html and "dedup_test" in html
    assert not EXTERNAL.search(html), "the report must not load anything from outside the file"
    # loss, accuracy, then confusion, reliability and ROC of the evaluation, then mistake tiles
    wrong = int(re.search(r"test images drawn at random \(seed 0\) from .*?: (\d+) wrong", html).group(1))
    assert wrong > 0 and html.count("<figure>") == min(3, wrong)
    assert html.count('src="data:image/png;base64,') == 5 + min(3, wrong)


def test_run_report_without_data_says_why_there_are_no_mistakes(run_dir, tmp_path):
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "evaluate" / "metrics.json").write_text(json.dumps({**metrics, "data": str(tmp_path / "gone")}))
    html = write_report(copy, tmp_path / "r.html").read_text()
    assert "Confident mistakes are not shown: no data (pass --data)" in html


def test_scan_report_counts_histogram_most_ai_like_and_errors(scan_results, tmp_path):
    result = runner.invoke(
        app, ["report", str(scan_results), "--out", str(tmp_path / "scan.html"), "--top", "2"]
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "scan.html").read_text()
    assert "Scan results results.csv" in html and "histogram of ai_probability" in html
    assert html.count("<figure>") == 2
    assert "broken.jpg" in html and "not a recognised image format" in html
    assert "png_text parameters → ai (strong)" in html  # the scan was made with --evidence
    assert not EXTERNAL.search(html)


def test_scan_report_shows_what_files_declare_beside_the_score(scan_results, tmp_path):
    declared = "ai: PNG text (Stable Diffusion WebUI parameters)"
    html = write_report(scan_results, tmp_path / "scan.html", options=ReportOptions(top=0)).read_text()
    section = html[html.index("<h2>Declared in the files</h2>") : html.index("<h2>Metadata evidence</h2>")]
    assert "<b>1</b>declare AI" in section and "<b>0</b>declare a capture" in section
    [row] = re.findall(r"<tr><td>[^<]*sd\.png</td>.*</tr>", section)
    assert re.search(r"<td>(ai|real)</td><td class=\"num\">0\.\d{3}</td><td>" + re.escape(declared), row)
    markdown = write_report(scan_results, tmp_path / "scan.md", markdown=True, options=ReportOptions(top=0))
    assert re.search(
        r"sd\.png \| (ai|real) \| 0\.\d{3} \| " + re.escape(declared) + r" \|", markdown.read_text()
    )


def test_scan_report_works_out_declared_for_results_written_before_it(tmp_path):
    finding = {"kind": "xmp", "key": "DigitalSourceType", "value": "digitalCapture"}
    rows = [
        {
            "path": "cam.jpg",
            "label": "ai",
            "ai_probability": 0.8,
            "model": "seed",
            "error": None,
            "evidence": [{**finding, "points_to": "real", "strength": "medium"}],
        },
        {
            "path": "plain.jpg",
            "label": "real",
            "ai_probability": 0.1,
            "model": "seed",
            "error": None,
            "evidence": [],
        },
    ]
    out = tmp_path / "old.jsonl"
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    html = write_report(out, tmp_path / "r.html", options=ReportOptions(top=0)).read_text()
    assert "<b>1</b>declare a capture" in html and "<b>1</b>of those labelled ai" in html
    declared = html[html.index("<h2>Declared in the files</h2>") : html.index("<h2>Errors</h2>")]
    assert "real: IPTC digital source type digitalCapture (XMP)" in declared and "plain.jpg" not in declared
    # Scanned without --evidence: nothing is known of declarations, so no section claims "0".
    for row in rows:
        del row["evidence"]
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    html = write_report(out, tmp_path / "r.html", options=ReportOptions(top=0)).read_text()
    assert "Declared in the files" not in html


def test_scan_report_reads_the_top_files_back_from_a_zip(tmp_path):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as target:
        for i in range(3):
            target.writestr(f"inner/{i}.png", encode(random_image(i), "PNG"))
    out = tmp_path / "results.jsonl"
    assert runner.invoke(app, ["scan", str(archive), "--out", str(out), "-m", "seed", "-q"]).exit_code == 0
    html = write_report(out, tmp_path / "r.html", options=ReportOptions(top=5)).read_text()
    assert html.count("<figure>") == 3 and "no heatmap" not in html
    assert f"{archive}/inner/0.png" in html


def test_markdown_report_links_its_figures_from_a_folder(scan_results, tmp_path):
    out = tmp_path / "scan.md"
    result = runner.invoke(app, ["report", str(scan_results), "--out", str(out), "--markdown", "--top", "2"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 3  # histogram + 2 tiles
    assert all((tmp_path / link).is_file() and link.startswith("scan_files/") for link in links)
    assert "| 5 | 4 |" in text  # files, scored


@pytest.fixture(scope="module")
def labelled_scan(tmp_path_factory):
    """Results of a labelled data set's scan: a real file labelled ai (a false alarm), an AI file
    and a real one in FAKE and REAL folders, and a file that failed."""
    folder = tmp_path_factory.mktemp("labelled")
    rows = []
    for i, (name, label, score) in enumerate(
        (
            ("test/REAL/alarm.png", "ai", 0.97),
            ("test/FAKE/gen.png", "ai", 0.9),
            ("test/REAL/cat.png", "real", 0.2),
        )
    ):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(random_image(i), "PNG"))
        rows.append(
            {"path": str(path), "label": label, "ai_probability": score, "model": "seed", "error": None}
        )
    rows.append(
        {
            "path": str(folder / "broken.jpg"),
            "label": None,
            "ai_probability": None,
            "model": "seed",
            "error": "bad",
        }
    )
    out = folder / "results.jsonl"
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def file_tables(html: str) -> dict[str, list[str]]:
    """The names in each sorted copy of the table of all files, by its sort key."""
    return {
        key: [name.rsplit("/", 1)[-1] for name in re.findall(r'<td class="path">([^<]*)</td>', table)]
        for key, table in re.findall(r'<table class="by-(\w+)">(.*?)</table>', html, re.DOTALL)
    }


def test_most_ai_like_files_mark_the_false_alarms_of_a_labelled_data_set(labelled_scan, tmp_path):
    html = write_report(labelled_scan, tmp_path / "r.html", options=ReportOptions(top=3)).read_text()
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert len(captions) == 3
    alarms = [c for c in captions if "False alarm: in a REAL folder" in c]
    assert len(alarms) == 1 and "REAL/alarm.png" in alarms[0]
    assert (
        html.count('<tr class="false-alarm"><td class="path">' + str(labelled_scan.parent)) == 3
    )  # per order
    markdown = write_report(labelled_scan, tmp_path / "r.md", markdown=True, options=ReportOptions(top=1))
    assert "FALSE ALARM: in a REAL folder · P(AI) 0.970" in markdown.read_text()


def test_the_table_of_all_files_sorts_by_name_score_and_label_without_script(labelled_scan, tmp_path):
    html = write_report(labelled_scan, tmp_path / "r.html", options=ReportOptions(top=0)).read_text()
    assert file_tables(html) == {
        "name": ["broken.jpg", "gen.png", "alarm.png", "cat.png"],  # by the whole path: FAKE/ < REAL/
        "score": ["alarm.png", "gen.png", "cat.png", "broken.jpg"],
        "label": ["alarm.png", "gen.png", "cat.png", "broken.jpg"],
    }
    assert '<input type="radio" name="sort" id="sort-name" checked>' in html and "<script" not in html
    assert re.search(r"cat\.png</td><td>real</td><td class=\"num\">0\.2000</td><td>real</td>", html)
    markdown = write_report(labelled_scan, tmp_path / "r.md", markdown=True, options=ReportOptions(top=0))
    text = markdown.read_text()
    section = text[text.index("## All files") : text.index("## Errors")]
    names = re.findall(r"^\| \S*/(\w+\.\w+) \|", section, re.MULTILINE)
    assert names == ["alarm.png", "gen.png", "cat.png", "broken.jpg"]  # by score


def test_the_table_of_all_files_says_where_the_rest_are_above_its_limit(labelled_scan, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "FILES_SHOWN", 2)
    html = write_report(labelled_scan, tmp_path / "r.html", options=ReportOptions(top=0)).read_text()
    note = "The table shows the first 2 of 4 files (in the\norder of the results); every file is in "
    assert note + str(labelled_scan) in html
    assert all(len(names) == 2 for names in file_tables(html).values())


def test_each_heatmap_tile_spans_its_own_map_whatever_is_beside_it():
    """A large photo's faint map beside a 32x32 image's strong one was drawn blank on a shared
    colour scale: a tile must look the same alone and in company."""
    detector = load_detector("seed")
    items = [
        (encode(random_image(7, (600, 900)), "PNG"), "large.png", "large", "real"),
        (encode(random_image(1), "PNG"), "small.png", "small", "ai"),
    ]
    together = heatmap_tiles(detector, items, [])
    alone = [heatmap_tiles(detector, [item], [])[0] for item in items]
    assert [t.png for t in together] == [t.png for t in alone]


def test_score_histogram_counts_linearly_unless_counts_span_orders_of_magnitude():
    few = score_histogram(np.array([0.1, 0.2, 0.9, 0.95, 0.97])).axes[0]
    assert few.get_yscale() == "linear" and few.get_ylabel() == "files"
    many = score_histogram(np.r_[np.full(5000, 0.01), np.full(12, 0.9)]).axes[0]
    assert many.get_yscale() == "log" and many.get_ylabel() == "files (log scale)"
    assert many.get_ylim()[0] < 1  # a bin of one file still shows


def test_report_refuses_what_it_cannot_read(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "nope.csv" in result.output and "does not exist" in result.output
    (tmp_path / "notes.txt").write_text("not results")
    with pytest.raises(InvalidArgumentError, match=r"expected a training run directory or a scan's \.csv"):
        write_report(tmp_path / "notes.txt", tmp_path / "r.html")
    with pytest.raises(InvalidArgumentError, match="nope.csv: no such file or folder"):
        write_report(tmp_path / "nope.csv", tmp_path / "r.html")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["report", str(tmp_path / "other.csv")])
    assert result.exit_code == 2 and "missing columns" in result.output
    (tmp_path / "edited.jsonl").write_text(
        '{"path": "a.png", "label": "ai", "ai_probability": "high", "error": null}\n'
    )
    result = runner.invoke(app, ["report", str(tmp_path / "edited.jsonl")])
    assert (
        result.exit_code == 2
        and "edited.jsonl: line 1 ('a.png'): ai_probability must be a number from 0 to 1; received 'high'"
        in result.output
    )


@pytest.mark.browser
def test_reports_render_in_chromium(run_dir, tiny_layout, scan_results, tmp_path):
    """Both kinds of report as a person sees them: every figure loads, offline; screenshots kept."""
    run = write_report(run_dir, tmp_path / "run.html", options=ReportOptions(data=tiny_layout, top=4))
    scan = write_report(scan_results, tmp_path / "scan.html", options=ReportOptions(top=3))
    with browser_page() as page:
        for out, heading, images in (
            (run, "Training run seed-tiny", 5),
            (scan, "Scan results results.csv", 4),
        ):
            page.goto(f"file://{out}")
            assert page.locator("h1").inner_text() == heading
            assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
            assert page.evaluate("document.images.length") >= images
            # Tiles: two panels of at least 160 px each, never upscaled; the histogram is page-wide.
            tiles = page.evaluate(
                "Array.from(document.querySelectorAll('figure img'), i => [i.width, i.naturalWidth])"
            )
            assert tiles and all(420 <= shown <= natural for shown, natural in tiles), tiles
            page.screenshot(path=str(out.with_suffix(".png")), full_page=True)
    assert all(path.with_suffix(".png").stat().st_size > 50_000 for path in (run, scan))
