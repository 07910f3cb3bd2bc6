"""Result files: a journal that survives a kill, refuses files it did not write, publishes atomically."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from fakelens.errors import InvalidArgumentError
from fakelens.scanning.results import COLUMNS, ResultWriter


def row(path: str, model: str = "m", size: int = 1) -> dict:
    return {
        "path": path,
        "label": "ai",
        "ai_probability": 0.9,
        "model": model,
        "error": None,
        "size": size,
        "modified": "2020-01-01T00:00:00",
    }


def test_rows_are_readable_in_the_journal_before_commit(tmp_path):
    out = tmp_path / "r.jsonl"
    writer = ResultWriter(out, model="m")
    writer.write([row("a"), row("b")])
    lines = (tmp_path / "r.jsonl.partial").read_text().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["a", "b"] and not out.exists()
    writer.commit()
    assert out.exists() and not (tmp_path / "r.jsonl.partial").exists()


def test_a_torn_last_line_is_dropped_and_the_rest_resumed(tmp_path):
    out = tmp_path / "r.csv"
    writer = ResultWriter(out, model="m")
    writer.write([row("a"), row("b")])
    writer.close()
    with open(tmp_path / "r.csv.partial", "a") as handle:
        handle.write("c,ai,0.")
    resumed = ResultWriter(out, model="m")
    assert resumed.recovered == 2 and resumed.is_done("a", ("1", "2020-01-01T00:00:00"))
    assert not resumed.is_done("a", ("2", "2020-01-01T00:00:00")) and not resumed.is_done("c", ("1", ""))
    resumed.write([row("c")])
    resumed.commit()
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and [line.split(",")[0] for line in lines[1:]] == ["a", "b", "c"]


def test_a_rescored_path_keeps_only_its_newest_row(tmp_path):
    out = tmp_path / "r.jsonl"
    writer = ResultWriter(out, model="m")
    writer.write([row("a"), row("b")])
    writer.commit()
    again = ResultWriter(out, model="m")
    again.write([row("a", size=5)])
    again.commit()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["path"], r["size"]) for r in rows] == [("b", 1), ("a", 5)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "r.csv",
            "name,score\nx,1\n",
            r"not a result file written by fakelens \(columns \['name', 'score'\]",
        ),
        (
            "r.jsonl",
            f"{json.dumps(row('a'))}\nnot json\n{json.dumps(row('b'))}\n",
            r"r\.jsonl: not a result file written by fakelens \(a line that is not a result record after",
        ),
    ],
)
def test_files_not_written_by_a_scan_are_refused(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidArgumentError, match=message):
        ResultWriter(tmp_path / name, model="m")
    assert (tmp_path / name).read_text() == content and not list(tmp_path.glob("*.partial"))


def test_results_of_another_model_are_not_mixed_in(tmp_path):
    out = tmp_path / "r.jsonl"
    writer = ResultWriter(out, model="seed")
    writer.write([row("a", model="seed")])
    writer.commit()
    with pytest.raises(InvalidArgumentError, match="holds results of model 'seed', not 'patchres'"):
        ResultWriter(out, model="patchres")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_evidence_survives_a_resume_in_every_format(tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    finding = [
        {
            "kind": "png_text",
            "key": "parameters",
            "value": "Steps: 20",
            "points_to": "ai",
            "strength": "strong",
        }
    ]
    writer = ResultWriter(out, model="m", evidence=True)
    writer.write([{**row("a"), "evidence": finding}])
    writer.close()  # interrupted
    resumed = ResultWriter(out, model="m", evidence=True)
    assert resumed.is_done("a", ("1", "2020-01-01T00:00:00"))
    resumed.write([{**row("b"), "evidence": []}])
    resumed.commit()
    if suffix == ".csv":
        rows = list(csv.DictReader(out.open()))
        decoded = [json.loads(r["evidence"]) for r in rows]
    elif suffix == ".jsonl":
        decoded = [json.loads(line)["evidence"] for line in out.read_text().splitlines()]
    else:
        decoded = [json.loads(v) for v in pq.read_table(out).column("evidence").to_pylist()]
    assert decoded == [finding, []]


def test_a_csv_written_with_evidence_is_not_resumed_without_it(tmp_path):
    out = tmp_path / "r.csv"
    writer = ResultWriter(out, model="m", evidence=True)
    writer.write([{**row("a"), "evidence": []}])
    writer.commit()
    with pytest.raises(InvalidArgumentError, match="written with --evidence"):
        ResultWriter(out, model="m")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_declared_sits_before_evidence_and_survives_a_resume(tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    declared = "ai: PNG text (Stable Diffusion WebUI parameters)"
    writer = ResultWriter(out, model="m", evidence=True)
    writer.write([{**row("a"), "declared": declared, "evidence": []}])
    writer.close()  # interrupted
    resumed = ResultWriter(out, model="m", evidence=True)
    resumed.write([{**row("b"), "declared": None, "evidence": []}])
    resumed.commit()
    if suffix == ".csv":
        assert out.read_text().splitlines()[0] == ",".join((*COLUMNS, "declared", "evidence"))
        assert [r["declared"] for r in csv.DictReader(out.open())] == [declared, ""]
    elif suffix == ".jsonl":
        assert [json.loads(line)["declared"] for line in out.read_text().splitlines()] == [declared, None]
    else:
        table = pq.read_table(out)
        assert table.column_names == [*COLUMNS, "declared", "evidence"]
        assert table.column("declared").to_pylist() == [declared, None]


def test_a_csv_with_evidence_from_before_declared_is_not_resumed(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text(",".join((*COLUMNS, "evidence")) + "\na,ai,0.9,m,,1,2020-01-01T00:00:00,[]\n")
    with pytest.raises(InvalidArgumentError, match="by an earlier fakelens, without the 'declared' column"):
        ResultWriter(out, model="m", evidence=True)
    with pytest.raises(InvalidArgumentError, match="written with --evidence; resume it so"):
        ResultWriter(out, model="m")
