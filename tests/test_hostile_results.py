"""Result files, reports and names in outputs under hostile input (issue 19: classes 6, 7, 8, 13,
14, a rerun's exit code, library warnings). Cases are made in tests/hostile_results.py.

Commands run as a user runs them, in a subprocess under a strict encoding where names matter:
no traceback, the documented exit code (0 all good, 1 some inputs failed, 2 unusable input),
and every good record kept.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from base64 import b64encode
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, random_image
from hostile_results import (
    JOURNAL_ALPHABET,
    JOURNAL_NAMES,
    PAYLOADS,
    UNDECODABLE_NAMES,
    ResultFile,
    Row,
    failed,
    jsonl,
    long_cells,
    malformed_results,
    markup_rows,
    row,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.data.layout import printable_name
from fakelens.errors import InvalidArgumentError
from fakelens.plots import figure_png, score_histogram
from fakelens.reporting.report import ReportOptions, read_results, write_report
from fakelens.scanning.results import ResultWriter
from fakelens.weights import WEIGHTS_DIR

#: The shipped seed model on onnxruntime: no TensorFlow in the subprocesses, so they start fast.
SEED = ["--model", "seed", "--backend", "onnx"]
SEED_ONNX = str(WEIGHTS_DIR / "seed.onnx")
STRICT = {"PYTHONIOENCODING": "utf-8"}  # strict stdout: an unencodable name raises
C_UTF8 = {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": None}  # surrogateescape: raw bytes pass through
runner = CliRunner()


def fakelens(*args: str | Path | bytes, env: dict[str, str | None] | None = None, stdin: bytes = b""):
    """Run the command as a user does; fail on a traceback, whatever the exit code."""
    environment = {**os.environ, "PYTHONWARNINGS": "always"}
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    command = [sys.executable, "-c", "from fakelens.cli import app; app()", *args]
    done = subprocess.run(command, input=stdin, capture_output=True, env=environment, timeout=300)
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")[-3000:]
    return done


def image_folder(root: Path, names: list[bytes], bad: tuple[bytes, ...] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (root / os.fsdecode(name)).write_bytes(encode(random_image(i)))
    for name in bad:
        (root / os.fsdecode(name)).write_bytes(b"not an image")
    return root


def shown(root: Path, name: bytes) -> str:
    """The name results give a file: bytes that are not UTF-8 as `\\xNN`."""
    return printable_name(os.fsdecode(root / os.fsdecode(name)))


def read_rows(path: Path) -> list[Row]:
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            csv.field_size_limit(1 << 30)
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


# === Class 13: names that are not UTF-8, in every output ===


@pytest.mark.parametrize("env", [STRICT, C_UTF8], ids=["PYTHONIOENCODING=utf-8", "LC_ALL=C.UTF-8"])
def test_predict_prints_every_name_as_utf8_and_json_stays_json(tmp_path, env):
    names = [b"good.jpg", *UNDECODABLE_NAMES]
    root = image_folder(tmp_path / "in", names, bad=(b"bad \xff.jpg",))
    paths = [root / os.fsdecode(n) for n in [*names, b"bad \xff.jpg"]]
    expected = [shown(root, n) for n in [*names, b"bad \xff.jpg"]]
    for flags in ([], ["--json"], ["--evidence"]):
        done = fakelens("predict", *SEED, *flags, *paths, env=env)
        assert done.returncode == 1, done.stderr.decode(errors="replace")
        text = done.stdout.decode("utf-8")  # strict: a raw 0xFF byte fails here
        records = [line for line in text.splitlines() if not line.startswith("\t")]
        if flags == ["--json"]:
            parsed = [json.loads(line) for line in records]
            assert [r["path"] for r in parsed] == expected
            assert [r["error"] is None for r in parsed] == [True] * len(names) + [False]
        else:
            assert [line.split("\t")[0] for line in records] == expected


def test_explain_and_scan_write_the_same_escaped_names_in_every_file(tmp_path):
    names = [b"good.jpg", *UNDECODABLE_NAMES[:2]]
    root = image_folder(tmp_path / "in", names, bad=(b"bad \xff.jpg",))
    done = fakelens(
        "explain", *SEED, "-o", tmp_path / "x", *(root / os.fsdecode(n) for n in names), env=STRICT
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    written = {json.loads(p.read_text(encoding="utf-8"))["path"] for p in (tmp_path / "x").glob("*.json")}
    assert written == {shown(root, n) for n in names}
    assert all(s in done.stdout.decode("utf-8") for s in written)
    for suffix in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"r \xff{suffix}"  # the output's own name is not UTF-8 either
        done = fakelens("scan", root, *SEED, "--out", out, "-q", env=STRICT)
        assert done.returncode == 1 and "Results saved to" in done.stdout.decode("utf-8")
        if suffix != ".parquet":
            rows = read_rows(out)
        else:
            import pyarrow.parquet as pq

            rows = pq.read_table(out).to_pylist()
        assert {r["path"] for r in rows} == {shown(root, n) for n in [*names, b"bad \xff.jpg"]}
    html = tmp_path / "r.html"
    done = fakelens("report", tmp_path / "r \xff.jsonl", "-o", html, "--model", SEED_ONNX, env=STRICT)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert shown(root, UNDECODABLE_NAMES[0]) in html.read_text(encoding="utf-8")


def test_rich_markup_in_names_is_printed_as_text(tmp_path):
    root = tmp_path / "in"
    (root / "a[").mkdir(parents=True)
    (root / "a[" / "red]x.jpg").write_bytes(b"not an image")  # shown as a[/red]x.jpg
    (root / "[bold]notes.txt").write_text("x")
    done = fakelens("scan", root, *SEED, "--out", tmp_path / "r.csv", "-q", env=STRICT)
    assert done.returncode == 1
    assert "a[/red]x.jpg: not a recognised image format" in done.stderr.decode()
    assert "/[bold]notes.txt" in done.stdout.decode()


def test_control_characters_in_names_neither_forge_lines_nor_reach_the_terminal(tmp_path):
    """A name holding a line break, a tab and an escape sequence: one line per file, the controls
    written as `\\xNN`, in the terminal's output and its error lines alike."""
    good = tmp_path / "fake\nx.jpg\treal\t0.0\x1b[2J.jpg"
    good.write_bytes(encode(random_image(1)))
    bad = tmp_path / "bad\x1b]0;title\x07.jpg"
    bad.write_bytes(b"not an image")
    done = fakelens("predict", good, bad, *SEED, env=STRICT)
    assert done.returncode == 1
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 2 and "\x1b" not in done.stdout.decode() + done.stderr.decode()
    assert lines[0].startswith(f"{tmp_path}/fake\\x0ax.jpg\\x09real\\x090.0\\x1b[2J.jpg\t")
    assert lines[1].startswith(f"{tmp_path}/bad\\x1b]0;title\\x07.jpg\terror\t")


# === Class 14: a journal cut anywhere loses at most the torn record ===


def journal(tmp_path: Path, suffix: str, names: list[str]) -> tuple[Path, bytes, list[int]]:
    """A journal of one row per name, and the byte offset where each row ends."""
    out = tmp_path / f"r{suffix}"
    writer = ResultWriter(out, model="seed", resume=False)
    writer.write([])  # the header reaches the file
    ends = []
    for name in names:
        writer.write([row(path=name)])
        ends.append(writer.partial.stat().st_size)
    writer.close()
    return out, writer.partial.read_bytes(), ends


def check_every_cut(out: Path, data: bytes, ends: list[int], names: list[str]) -> None:
    """Cut at every byte: the complete rows are recovered and the torn one cut off, so the journal
    ends where the last complete row does. At each line end and every 16th byte, the scan also
    finishes: the published file holds every row once."""
    partial = out.with_name(out.name + ".partial")
    for cut in range(len(data), -1, -1):
        # Rewritten in place: ext4 flushes a file opened with O_TRUNC, 4 ms a cut.
        with open(partial, "r+b" if partial.exists() else "wb") as handle:
            handle.write(data[:cut])
            handle.truncate()
        writer = ResultWriter(out, model="seed")
        kept = [name for name, end in zip(names, ends) if end <= cut]
        assert sorted(writer.done) == sorted(kept), f"cut at byte {cut} of {len(data)}"
        assert partial.stat().st_size == (ends[len(kept) - 1] if kept else 0), f"cut at byte {cut}"
        if cut % 16 == 0 or data[cut - 1 : cut] == b"\n":
            writer.write([row(path=name) for name in names if name not in writer.done])
            writer.commit()
            assert sorted(r["path"] for r in read_rows(out)) == sorted(names), f"cut at byte {cut}"
            out.unlink()
        else:
            writer.close()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_journal_cut_inside_a_quoted_name_resumes_with_every_complete_row(tmp_path, suffix):
    names = list(JOURNAL_NAMES)
    out, data, ends = journal(tmp_path, suffix, names)
    marker = b"new\n" if suffix == ".csv" else b"new\\n"  # the line break inside the name
    cut = data.index(marker) + len(marker)
    (tmp_path / f"r{suffix}.partial").write_bytes(data[:cut])
    writer = ResultWriter(out, model="seed")
    assert sorted(writer.done) == ["plain.jpg"] and writer.partial.stat().st_size == ends[0]
    writer.close()
    check_every_cut(out, data, ends, names)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(
        st.one_of(st.sampled_from(JOURNAL_NAMES), st.text(JOURNAL_ALPHABET, min_size=1, max_size=8)),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    suffix=st.sampled_from([".csv", ".jsonl"]),
)
def test_a_journal_of_tricky_names_cut_at_every_byte_loses_at_most_the_torn_row(tmp_path, names, suffix):
    folder = tmp_path / f"{suffix}-{hashlib.sha1(repr(names).encode()).hexdigest()}"
    folder.mkdir()
    check_every_cut(*journal(folder, suffix, names), names)


def test_a_killed_scan_of_names_with_line_breaks_resumes_from_any_cut(tmp_path):
    names = [b"plain.jpg", b"new\nline.jpg", b'q"uote,comma.jpg', b"\xff\xfe.jpg", b"crlf\r\n.jpg"]
    root = image_folder(tmp_path / "in", names)
    out = tmp_path / "r.csv"
    assert fakelens("scan", root, *SEED, "--out", out, "-q").returncode == 0
    data = out.read_bytes()
    for cut in sorted({data.index(b"new\n") + 4, data.index(b"crlf\r") + 5, len(data) - 3}):
        out.with_name("r.csv.partial").write_bytes(data[:cut])
        out.unlink(missing_ok=True)
        done = fakelens("scan", root, *SEED, "--out", out, "-q", env=STRICT)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert sorted(r["path"] for r in read_rows(out)) == sorted(shown(root, n) for n in names)


# === Class 6: cells longer than csv's default limit ===


def test_long_cells_survive_a_resume_and_a_report(tmp_path):
    rows = list(long_cells().values())
    for suffix in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"r{suffix}"
        writer = ResultWriter(out, model="seed", evidence=True)
        writer.write(rows[:2])
        writer.close()  # killed: the journal holds two rows
        writer = ResultWriter(out, model="seed", evidence=True)
        assert writer.recovered == 2
        writer.write(rows[2:])
        writer.commit()
        writer = ResultWriter(out, model="seed", evidence=True)  # a rerun of a finished scan
        assert writer.recovered == len(rows)
        assert writer.earlier_failures() == [("long error.jpg", "e" * 300_000)]
        writer.commit()
        if suffix != ".parquet":
            found = read_results(out)
            assert [r["path"] for r in found] == [r["path"] for r in rows]
            assert len(found[0]["evidence"]) == 1_300 and len(found[1]["error"]) == 300_000
    html = write_report(tmp_path / "r.csv", tmp_path / "r.html", options=ReportOptions(top=0)).read_text()
    assert "... and 1,280 more" in html and "e" * 300_000 in html
    tiles = write_report(tmp_path / "r.csv", tmp_path / "tiles.html").read_text()  # the files are gone
    assert "File name too long" in tiles  # the 1,000,000-character path: that tile's note


def test_a_scan_resumes_and_reports_a_result_file_with_long_cells(tmp_path):
    root = image_folder(tmp_path / "in", [b"a.jpg", b"b.jpg"], bad=(b"bad.jpg",))
    out = tmp_path / "r.csv"
    assert fakelens("scan", root, *SEED, "--evidence", "--out", out, "-q").returncode == 1
    with open(out, encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle))
    many = long_cells()["1,300 findings"]["evidence"]
    table[1][-1] = json.dumps(many)  # as a fakelens with no cap on findings wrote it
    with open(out, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(table)
    again = fakelens("scan", root, *SEED, "--evidence", "--out", out)
    assert again.returncode == 1 and "skipped: 3 file(s)" in again.stdout.decode()
    assert len(json.loads(read_rows(out)[0]["evidence"])) == 1_300
    done = fakelens("report", out, "-o", tmp_path / "r.html", "--model", SEED_ONNX)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode(errors="replace")


# === A rerun's exit code describes the finished file ===


def test_a_rerun_exits_1_while_the_finished_file_holds_a_failed_row(tmp_path):
    root = image_folder(tmp_path / "in", [b"a.jpg", b"b.jpg"], bad=(b"bad.jpg",))
    for suffix in (".csv", ".jsonl"):
        out = tmp_path / f"r{suffix}"
        assert fakelens("scan", root, *SEED, "--out", out, "-q").returncode == 1
        again = fakelens("scan", root, *SEED, "--out", out, "-q")
        assert again.returncode == 1
        assert "failed in an earlier run (file unchanged):" in again.stderr.decode()
        assert "bad.jpg: not a recognised image format" in again.stderr.decode()
    (root / "bad.jpg").write_bytes(encode(random_image(9)))  # fixed: rescored, the file is all good
    for suffix in (".csv", ".jsonl"):
        fixed = fakelens("scan", root, *SEED, "--out", tmp_path / f"r{suffix}", "-q")
        assert fixed.returncode == 0, fixed.stderr.decode()
        assert all(not r["error"] for r in read_rows(tmp_path / f"r{suffix}"))


def test_earlier_failures_are_the_failed_rows_the_finished_file_keeps(tmp_path):
    out = tmp_path / "r.jsonl"
    writer = ResultWriter(out, model="seed")
    writer.write([failed(path="x.jpg"), row(path="x.jpg"), failed(path="y.jpg")])
    writer.commit()
    writer = ResultWriter(out, model="seed")
    assert writer.earlier_failures() == [("y.jpg", "not a recognised image format")]
    writer.write([row(path="y.jpg")])  # rescored: the failure is no longer in the file
    assert writer.earlier_failures() == []
    writer.close()


# === Class 7: nothing a report shows from its inputs is markup ===

#: Every tag and attribute the report's template writes: anything else came from the input.
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table", "tr", "th", "td"}
TAGS |= {"div", "b", "img", "figure", "figcaption", "br", "span", "input", "label"}
ATTRIBUTES = {"lang", "charset", "http-equiv", "content", "name", "class", "src", "alt"}
ATTRIBUTES |= {"type", "id", "checked", "for"}  # the table of all files, sorted without script


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
            self._in_style = False


def check_html(html: str) -> None:
    parsed = Markup()
    parsed.feed(html)
    for tag, attrs in parsed.tags:
        assert tag in TAGS and set(attrs) <= ATTRIBUTES, (tag, attrs)
        assert tag != "img" or (attrs["src"] or "").startswith("data:image/png;base64,")
    [policy] = [a["content"] for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"]
    [style] = parsed.styles
    digest = b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert policy == (
        f"default-src 'none'; img-src data:; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )
    assert html.index("Content-Security-Policy") < html.index("<style>") < html.index("<body>")


def check_markdown(text: str) -> None:
    """No payload's tag, link or code span is left as Markdown would read it."""
    assert not re.search(r"(?<!\\)\]\((javascript|https)", text)  # a link, not an escaped "]("
    pieces = {"`code`", "*em*", "_em_"}
    for payload in PAYLOADS:
        pieces.update(re.findall(r"<[a-z!/][^>]*>?", payload))
    assert not [piece for piece in pieces if piece in text]


def test_markup_in_names_errors_models_and_evidence_stays_text(tmp_path):
    rows = markup_rows()
    out = tmp_path / "hostile.jsonl"
    out.write_bytes(jsonl(*rows))
    html = write_report(out, tmp_path / "r.html", options=ReportOptions(top=0)).read_text()
    check_html(html)
    for payload in ("<img src=x onerror=alert(document.domain)> 0", "&lt;script&gt;"):
        assert payload.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in html
    check_markdown(
        write_report(out, tmp_path / "r.md", markdown=True, options=ReportOptions(top=0)).read_text()
    )
    csv_out = tmp_path / "hostile.csv"
    writer = ResultWriter(csv_out, model="seed", evidence=True, resume=False)
    writer.write(rows)
    writer.commit()
    check_html(write_report(csv_out, tmp_path / "c.html", options=ReportOptions(top=0)).read_text())


def test_a_scan_of_files_named_like_markup_reports_them_as_text(tmp_path):
    names = [f"{p}.jpg".replace("/", "\u2215").encode() for p in PAYLOADS if "\n" not in p]
    root = image_folder(tmp_path / "in", names, bad=(b"<svg onload=alert(1)>.png",))
    out = tmp_path / "r.csv"
    assert fakelens("scan", root, *SEED, "--evidence", "--out", out, "-q", env=STRICT).returncode == 1
    for flag, name in (([], "r.html"), (["--markdown"], "r.md")):
        done = fakelens("report", out, *flag, "-o", tmp_path / name, "--top", "20", "--model", SEED_ONNX)
        assert done.returncode == 0 and done.stderr == b"", done.stderr.decode(errors="replace")
    html = (tmp_path / "r.html").read_text()
    check_html(html)
    assert html.count("<figure>") == len(names)  # every tile, its alt text and caption escaped
    check_markdown((tmp_path / "r.md").read_text())


@pytest.mark.browser
def test_a_hostile_report_runs_no_script_and_shows_its_figures_in_chromium(tmp_path):
    from browser import browser_page

    root = image_folder(tmp_path / "in", [f"{p}.jpg".replace("/", "\u2215").encode() for p in PAYLOADS[:4]])
    out = tmp_path / "r.jsonl"
    assert fakelens("scan", root, *SEED, "--out", out, "-q").returncode == 0
    with open(out, "ab") as handle:  # below the scanned files, which get the tiles
        handle.write(
            jsonl(*({**r, "ai_probability": 0.0 if r["error"] is None else None} for r in markup_rows()))
        )
    report = write_report(out, tmp_path / "r.html", options=ReportOptions(top=4, model=SEED_ONNX))
    with browser_page() as page:
        dialogs, violations = [], []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("console", lambda message: violations.append(message.text))
        page.goto(f"file://{report}")
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert page.evaluate("document.images.length") == 5  # the histogram and four tiles
        assert page.evaluate("document.scripts.length") == 0 and dialogs == []
        assert not [v for v in violations if "Content Security Policy" in v], violations


# === Class 8: malformed result files get a clear error naming the line ===

CASES = malformed_results()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_report_refuses_a_malformed_result_file_naming_the_line(tmp_path, case: ResultFile):
    source = tmp_path / f"results{case.suffix}"
    source.write_bytes(case.data)
    result = runner.invoke(app, ["report", str(source), "-o", str(tmp_path / "r.html"), "--top", "0"])
    if case.line is None:
        assert result.exit_code == 0, result.output
        check_html((tmp_path / "r.html").read_text())
    else:
        assert result.exit_code == 2, result.output
        assert f"error: {source}: line {case.line}" in result.output.replace("\n", "")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ("path", "label", "ai_probability", "model", "error", "declared", "evidence")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.lists(st.tuples(st.sampled_from(FIELDS), JSON_VALUES), max_size=3),
    finding=st.dictionaries(st.sampled_from(["kind", "key", "value", "points_to", "x"]), JSON_VALUES),
    line=st.one_of(st.none(), JSON_VALUES),
)
def test_any_json_in_a_result_file_is_reported_or_refused_by_line(tmp_path, changes, finding, line):
    rows = [row(path="first.jpg"), {**row(evidence=[finding]), **dict(changes)}]
    data = jsonl(*rows) + (b"" if line is None else jsonl(line))
    source = tmp_path / "results.jsonl"
    source.write_bytes(data)
    try:
        html = write_report(source, tmp_path / "r.html", options=ReportOptions(top=0)).read_text()
    except InvalidArgumentError as exc:
        assert re.match(rf"{re.escape(str(source))}: line [23]\b", str(exc)), exc
    else:
        check_html(html)


# === Library warnings do not reach stderr ===


def test_drawing_a_figure_raises_no_warning(recwarn):
    figure = score_histogram(np.array([0.5]))
    figure.axes[0].set_title("glyphs no font has: \x00\U000e0001")
    assert figure_png(figure).startswith(b"\x89PNG") and not recwarn.list


def test_report_writes_nothing_to_stderr_even_when_matplotlib_cannot_cache(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_bytes(jsonl(row(path="a.jpg"), failed(path="b.jpg")))
    (tmp_path / "not a folder").write_text("")
    env = {"MPLCONFIGDIR": str(tmp_path / "not a folder" / "mpl")}
    done = fakelens("report", out, "-o", tmp_path / "r.html", "--top", "0", env=env)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode(errors="replace")
