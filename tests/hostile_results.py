"""Hostile result files, names and report inputs, made in code (issue 19: classes 6, 7, 8, 13, 14).

Each function returns named cases for one class; nothing is committed as binary. Rows follow
`resultfile.COLUMNS` (plus `declared` and `evidence` where evidence is asked for).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from fakelens.scanning.results import COLUMNS, EVIDENCE_COLUMNS

Row = dict[str, Any]


def row(**fields: Any) -> Row:
    """A good result row, with `fields` replaced."""
    good = {"path": "a.jpg", "label": "ai", "ai_probability": 0.75, "model": "seed", "error": None}
    return {**good, "size": 1, "modified": "2024-01-01T00:00:00+00:00", **fields}


def failed(**fields: Any) -> Row:
    return row(**{"label": None, "ai_probability": None, "error": "not a recognised image format", **fields})


def finding(**fields: str) -> dict[str, str]:
    """A metadata finding that points somewhere (shown in a report's evidence table)."""
    return {
        "kind": "xmp",
        "key": "CreatorTool",
        "value": "x",
        "points_to": "ai",
        "strength": "weak",
        **fields,
    }


def with_evidence(r: Row, findings: list[dict[str, Any]] | None = None, declared: str | None = None) -> Row:
    return {**r, "declared": declared, "evidence": findings or []}


# === Class 6: cells longer than csv's default limit of 131,072 characters ===


def long_cells() -> dict[str, Row]:
    """Rows (with evidence) whose cells a first run writes and a resume or report must read back."""
    many = [finding(key=f"Tool{i}", value="v" * 120) for i in range(1_300)]  # about 220 KB as JSON
    return {
        "1,300 findings": with_evidence(row(path="many findings.jpg"), many, "ai: XMP"),
        "an error of 300,000 characters": with_evidence(failed(path="long error.jpg", error="e" * 300_000)),
        "a path of 1,000,000 characters": with_evidence(row(path="p" * 1_000_000 + ".jpg")),
        "a declaration of 200,000 characters": with_evidence(
            row(path="declared.jpg"), [], "ai: " + "d" * 200_000
        ),
    }


# === Class 7: markup in everything a report shows ===

#: HTML, script, CSS, template and Markdown syntax that a file name, an error, a model name or a
#: metadata field could carry. None may reach a report as markup.
PAYLOADS = (
    "<img src=x onerror=alert(document.domain)>",
    "<script>alert(1)</script>",
    '"><svg onload=alert(1)>',
    "'><iframe srcdoc='<script>alert(1)</script>'>",
    "</td></tr></table><script>alert(1)</script>",
    "<meta http-equiv=refresh content='0;url=https://example.com/'>",
    "<base href=https://example.com/>",
    "<a href=javascript:alert(1)>x</a>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<!-- --><style>body{display:none}</style>",
    "[click](javascript:alert(1)) ![x](https://example.com/x.png) `code` | cell | *em* _em_",
    "line\nbreak <b>bold</b>\r\n\n# heading\n<p>",
    "{{ 7*7 }} {% raw %} ${7*7}",
)


def markup_rows() -> list[Row]:
    """Every payload in every field a scan report shows: path, error, model, declared, evidence
    (and a failed row's label, which a report must not show at all)."""
    rows = []
    for i, payload in enumerate(PAYLOADS):
        text = f"{payload} {i}"
        findings = [finding(kind=text, key=text, value=text, points_to=text, strength=text)]
        rows += [
            with_evidence(row(path=f"{text}.jpg")),
            with_evidence(failed(path=f"failed {text}.jpg", error=text, label=text)),
            with_evidence(row(path=f"model {i}.jpg", model=text)),
            with_evidence(row(path=f"evidence {i}.jpg"), findings, declared=f"ai: {text}"),
        ]
    return rows


# === Class 8: result files that are not what a scan writes ===


@dataclass(frozen=True)
class ResultFile:
    name: str
    suffix: str  # ".csv" or ".jsonl"
    data: bytes
    #: The line the refusal must name; None for a file that is usable as it is.
    line: int | None


def jsonl(*records: Any) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def csv_file(*records: Row, columns: tuple[str, ...] = (*COLUMNS, *EVIDENCE_COLUMNS)) -> bytes:
    """Rows as a scan writes them: evidence as JSON text, unless a test put text there itself."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for r in records:
        cells = [r.get(c) for c in columns]
        writer.writerow(json.dumps(c) if isinstance(c, list) else c for c in cells)
    return buffer.getvalue().encode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


#: Values of the wrong type, or out of range, for each field a report reads.
WRONG_VALUES: dict[str, tuple[Any, ...]] = {
    "path": (None, 5, ["a.jpg"], {"a": 1}, "", True),
    "label": ("maybe", None, 1, ["ai"], {"ai": 1}, ""),
    "ai_probability": (
        "high",
        None,
        True,
        [0.5],
        {"p": 0.5},
        -0.1,
        1.5,
        float("nan"),
        float("inf"),
        10**400,
        "",
    ),
    "error": (5, ["x"], {"x": 1}, True),
    "model": (5, ["seed"], {"name": "seed"}, False),
    "declared": (5, ["ai"], {"ai": 1}),
    "evidence": (5, "text", {"a": 1}, [1], ["x"], [[]], [{"kind": 5}], [{"points_to": ["ai"]}], True),
}


def malformed_results() -> list[ResultFile]:
    """JSONL and CSV files a report must refuse, naming the line (or use, when `line` is None)."""
    good = row(path="good.jpg")
    cases = [
        ResultFile("empty", ".jsonl", b"", None),
        ResultFile("blank lines", ".jsonl", b"\n\n" + jsonl(good) + b"  \n", None),
        ResultFile("a lone surrogate", ".jsonl", jsonl(row(path="\ud800 \udcff.jpg", error="\udfff")), None),
        ResultFile("header only", ".csv", csv_file(), None),
        ResultFile(
            "a failed row with junk in label and score",
            ".jsonl",
            jsonl(failed(label=[1], ai_probability="x")),
            None,
        ),
        ResultFile("a list", ".jsonl", jsonl(good, [1, 2]), 2),
        ResultFile("a string", ".jsonl", jsonl(good, "a.jpg"), 2),
        ResultFile("a number", ".jsonl", jsonl(5), 1),
        ResultFile("null", ".jsonl", jsonl(good, good, None), 3),
        ResultFile("not JSON", ".jsonl", jsonl(good) + b"{'path': 1}\n", 2),
        ResultFile("a cut line", ".jsonl", jsonl(good) + b'{"path": "b.jpg", "lab', 2),
        ResultFile("an array nested 100,000 deep", ".jsonl", _nested(100_000).encode() + b"\n", 1),
        ResultFile(
            "an object nested 100,000 deep", ".jsonl", ('{"a":' * 100_000 + "1" + "}" * 100_000).encode(), 1
        ),
        ResultFile(
            "evidence nested 100,000 deep",
            ".jsonl",
            jsonl(good)[:-2] + b', "evidence": ' + _nested(100_000).encode() + b"}\n",
            1,
        ),
        ResultFile("not UTF-8", ".jsonl", jsonl(good) + b'{"path": "\xff.jpg"}\n', 2),
        ResultFile("no path", ".jsonl", jsonl({k: v for k, v in good.items() if k != "path"}), 1),
        ResultFile("no error key", ".jsonl", jsonl({k: v for k, v in good.items() if k != "error"}), 1),
        ResultFile("missing columns", ".csv", b"path,label\na.jpg,ai\n", 1),
        ResultFile("not CSV at all", ".csv", b"\x00\x01\x02 binary\n", 1),
        ResultFile("a short row", ".csv", csv_file(good) + b"b.jpg,ai\r\n", 3),
        ResultFile("a long row", ".csv", csv_file(good, good) + b"b.jpg,ai,0.5,seed,,1,t,,[],extra\r\n", 4),
        ResultFile("an open quote to the end", ".csv", csv_file(good) + b'"b.jpg,ai,0.5\r\n', 3),
        ResultFile("a CSV not UTF-8", ".csv", csv_file(good) + b"\xff\xfe.jpg,ai,0.5,seed,,1,t,,[]\r\n", 3),
        ResultFile("an evidence cell not JSON", ".csv", csv_file(row(evidence="[{")), 2),
        ResultFile("an evidence cell nested deep", ".csv", csv_file(row(evidence=_nested(50_000))), 2),
    ]
    for column, values in WRONG_VALUES.items():
        for value in values:
            cases.append(
                ResultFile(f"{column} {value!r:.30}", ".jsonl", jsonl(good, row(**{column: value})), 2)
            )
    # In CSV every cell is text (an empty one is None): these are the cells text can make wrong.
    for column in ("label", "ai_probability", "evidence"):
        for value in WRONG_VALUES[column]:
            if value not in (None, True, False) and not isinstance(value, dict):
                cell = json.dumps(value) if column == "evidence" else value
                cases.append(
                    ResultFile(
                        f"CSV {column} {value!r:.30}", ".csv", csv_file(good, row(**{column: cell})), 3
                    )
                )
    for column in ("path", "label", "ai_probability"):
        cases.append(ResultFile(f"CSV empty {column}", ".csv", csv_file(good, row(**{column: ""})), 3))
    return cases


# === Class 13: names that are not UTF-8 ===

#: File names as bytes: each is not UTF-8 somewhere (results show those bytes as `\xNN`).
UNDECODABLE_NAMES = (
    b"\xff\xfe.jpg",
    b"latin1 \xe9t\xe9.jpg",
    b"cut \xe2\x82.jpg",  # a UTF-8 sequence cut short
    b"surrogate \xed\xa0\x80.jpg",  # UTF-8 of a surrogate: not valid UTF-8
    b"overlong \xc0\xaf.jpg",
    b"\x80 lone continuation.jpg",
)


# === Class 14: journals cut anywhere ===

#: Names that make CSV quote a cell (and JSON escape it), some across lines.
JOURNAL_NAMES = (
    "plain.jpg",
    "new\nline.jpg",
    "cr\rreturn.jpg",
    "crlf\r\nname.jpg",
    'a "quote".jpg',
    "comma, name.jpg",
    '",\n",\r\n"".jpg',
    "\\xff\\xfe.jpg",  # what a scan writes for a name that is not UTF-8
    "\u00e9t\u00e9 \U0001f600\u2028sep.jpg",
    "\ttab and trailing space .jpg",
)
#: What hypothesis builds more names from.
JOURNAL_ALPHABET = "ab,\"'\n\r\t \\\u00e9\u2028\U0001f600|"
