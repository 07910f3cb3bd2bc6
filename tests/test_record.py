"""The result record has one owner (`record.py`): every output carries its fields, and what a
scan writes in any format reads back the same."""

from __future__ import annotations

from dataclasses import fields

import pytest
from conftest import encode, random_image

from fakelens.inference.detector import Detector
from fakelens.record import COLUMNS, EVIDENCE_FIELDS, FIELDS, Prediction
from fakelens.scanning.reader import read_results
from fakelens.scanning.scan import scan
from fakelens.serving.schemas import Result


def test_the_api_schema_is_the_record():
    assert list(Result.model_fields) == [f.name for f in fields(Prediction)] == [*FIELDS, *EVIDENCE_FIELDS]
    assert Result.model_fields["ai_probability"].description.startswith("Calibrated probability")
    assert [name for name, info in Result.model_fields.items() if info.is_required()] == [
        "path",
        "label",
        "ai_probability",
        "model",
    ]


@pytest.mark.parametrize("evidence", [False, True])
def test_a_scan_reads_back_the_same_in_every_format(tmp_path, seed_model_file, evidence):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(encode(random_image(i)))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    detector = Detector.load(seed_model_file)
    tables = []
    for suffix in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"r{suffix}"
        scan(detector, folder, out, quiet=True, evidence=evidence)
        tables.append(read_results(out))
    assert tables[0] == tables[1] == tables[2]
    columns = [*COLUMNS, *EVIDENCE_FIELDS] if evidence else list(COLUMNS)
    assert all(list(row) == columns for row in tables[0])
    assert [row["error"] is None for row in tables[0]] == [True, True, True, False]
