"""The time and memory each class of hostile input costs the CLI: the figures of docs/reliability.md.

    python benchmarks/hostile_inputs.py [--model auto] [--only decode-time metadata ...]

Every case comes from the generators the tests use (tests/hostile_*.py, made in code) and runs
in a fresh `fakelens` process, as a user would meet it: an image through `predict` (`--evidence`
for metadata), a zip, path list or folder through `scan`, a result file through `report`, a
model file through `predict --model`. For each run: wall time, the process's own peak resident
memory (VmHWM), exit code, and whether a traceback reached stderr. Writes
benchmarks/results/hostile_inputs.json with every run and the worst case of each class; prints
the worst against the issue's bounds (10 s, 1.5 GB). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

TESTS = Path(__file__).parents[1] / "tests"
sys.path.insert(0, str(TESTS))

import hostile_decode  # noqa: E402
import hostile_listing  # noqa: E402
import hostile_metadata  # noqa: E402
import hostile_models  # noqa: E402
import hostile_results  # noqa: E402
from results_file import save_results  # noqa: E402

BOUND_S, BOUND_MB = 10.0, 1536.0
#: Runs the CLI, then prints its own peak memory: ru_maxrss would count the parent's.
CLI = (
    "import re, sys\nfrom fakelens.cli import app\ntry:\n    app()\nfinally:\n"
    "    status = open('/proc/self/status').read()\n"
    "    print('VmHWM', re.search(r'VmHWM:\\s+(\\d+)', status)[1], file=sys.stderr)"
)
Run = tuple[str, list[str | os.PathLike[str]], dict[str, str]]  # case, CLI arguments, extra env


def measure(args: list[str | os.PathLike[str]], env: dict[str, str], cwd: Path) -> dict[str, object]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLI, *map(os.fsdecode, args)],
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=600,
    )
    wall = time.perf_counter() - began
    stderr = done.stderr.decode("utf-8", "replace")
    peak = re.search(r"VmHWM (\d+)", stderr)
    return {
        "wall_s": round(wall, 3),
        "peak_mb": round(int(peak[1]) / 1024, 1) if peak else None,
        "exit_code": done.returncode,
        "traceback": "Traceback" in stderr.replace("VmHWM", ""),
    }


def images(folder: Path, cases, *extra: str) -> Iterator[Run]:
    for case in cases:
        path = folder / case.name
        path.write_bytes(case.data)
        yield case.name, ["predict", path, "--json", *extra], {}


def decode_time(folder: Path, model: list[str]) -> Iterator[Run]:
    yield from images(folder, hostile_decode.slow_decodes(), *model)


def decode_memory(folder: Path, model: list[str]) -> Iterator[Run]:
    yield from images(folder, hostile_decode.huge_canvases(), *model)


def metadata(folder: Path, model: list[str]) -> Iterator[Run]:
    yield from images(folder, hostile_metadata.every_case(), "--evidence", *model)


def zips(folder: Path, model: list[str]) -> Iterator[Run]:
    for name, members in (
        ("members that will not inflate", hostile_listing.good_members() + hostile_listing.broken_members()),
        ("names flagged UTF-8 that are not", hostile_listing.good_members() + hostile_listing.odd_names()),
    ):
        archive = folder / f"{len(os.listdir(folder))}.zip"
        archive.write_bytes(hostile_listing.zip_bytes(members))
        yield name, ["scan", archive, "--out", folder / f"{archive.stem}.csv", "-q", *model], {}


def path_lists(folder: Path, model: list[str]) -> Iterator[Run]:
    lines = [line for line, _ in hostile_listing.path_lists(folder).values()]
    listing = folder / "list.txt"
    listing.write_bytes(b"\n".join(lines) + b"\n")
    scan = ["scan", f"@{listing}", "--out", folder / "list.csv", "-q", *model]
    yield "every hostile line in one list", scan, {}


def folders(folder: Path, model: list[str]) -> Iterator[Run]:
    hostile_listing.deep_folders(folder)
    scan = ["scan", folder, "--out", folder.parent / "deep.csv", "-q", *model]
    yield "1,100 levels and paths past PATH_MAX", scan, {}


def links(folder: Path, model: list[str]) -> Iterator[Run]:
    root, elsewhere = folder / "root", folder / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    hostile_listing.outside_links(root, elsewhere)
    yield "links out of the folder", ["scan", root, "--out", folder / "links.csv", "-q", *model], {}


def names(folder: Path, model: list[str]) -> Iterator[Run]:
    path = folder / os.fsdecode(b"not-utf8-\xff.jpg")
    path.write_bytes(hostile_listing.jpeg(1))
    strict = {"PYTHONIOENCODING": "utf-8"}
    yield "predict under a strict stdout", ["predict", path, *model], strict
    yield "predict --json under C.UTF-8", ["predict", path, "--json", *model], {"LC_ALL": "C.UTF-8"}


def results(folder: Path, model: list[str]) -> Iterator[Run]:
    files = [
        ("long cells", ".csv", hostile_results.csv_file(*hostile_results.long_cells().values())),
        ("markup in every field", ".csv", hostile_results.csv_file(*hostile_results.markup_rows())),
        *((f.name, f.suffix, f.data) for f in hostile_results.malformed_results()),
    ]
    for number, (name, suffix, data) in enumerate(files):
        path = folder / f"{number}{suffix}"
        path.write_bytes(data)
        yield name, ["report", path, "--out", folder / f"{number}-report"], {}


def models(folder: Path, model: list[str]) -> Iterator[Run]:
    good = folder / "good.jpg"
    good.write_bytes(hostile_listing.jpeg(2))
    for cases in (
        hostile_models.card_cases_keras,
        hostile_models.card_cases_onnx,
        hostile_models.archive_cases,
        hostile_models.graph_cases_keras,
        hostile_models.graph_cases_onnx,
        hostile_models.probe_cases,
    ):
        for case in cases():
            yield f"{cases.__name__}: {case.name}", ["predict", good, "--model", case.write(folder)], {}


CLASSES: dict[str, tuple[str, Callable[[Path, list[str]], Iterator[Run]]]] = {
    "decode-time": ("10: slow decodes", decode_time),
    "decode-memory": ("11: huge canvases", decode_memory),
    "metadata": ("1, 12: metadata readers and unbounded evidence", metadata),
    "zips": ("2, 3: zip members and names", zips),
    "path-lists": ("4: NUL and huge lines in path lists", path_lists),
    "folders": ("5: deep folders", folders),
    "links": ("symlinks out of the scanned folder", links),
    "names": ("13: names that are not UTF-8", names),
    "results": ("6, 7, 8: long cells, markup and malformed result files", results),
    "models": ("9: model cards and archives", models),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="auto", help="the model images are judged with")
    parser.add_argument("--only", nargs="+", choices=sorted(CLASSES), help="classes to run (default: all)")
    args = parser.parse_args()
    model = ["--model", args.model]
    machine = platform.processor() or platform.machine()
    report: dict[str, object] = {"machine": machine, "cpus": os.cpu_count()}
    classes = {}
    for key in args.only or CLASSES:
        title, runs = CLASSES[key]
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch) / "in"
            folder.mkdir()
            measured = [
                {"case": case, **measure(cli, env, Path(scratch))} for case, cli, env in runs(folder, model)
            ]
            hostile_listing.remove_tree(folder)
        worst_time = max(measured, key=lambda r: r["wall_s"])
        worst_memory = max(measured, key=lambda r: r["peak_mb"] or 0)
        classes[key] = {
            "title": title,
            "cases": len(measured),
            "tracebacks": sum(r["traceback"] for r in measured),
            "exit_codes": sorted({r["exit_code"] for r in measured}),
            "worst_time": worst_time,
            "worst_memory": worst_memory,
            "runs": measured,
        }
        within = worst_time["wall_s"] <= BOUND_S and (worst_memory["peak_mb"] or 0) <= BOUND_MB
        print(
            f"{key:14} {len(measured):4} cases"
            f"  worst {worst_time['wall_s']:6.2f} s ({worst_time['case'][:40]})"
            f"  {worst_memory['peak_mb']:7.1f} MB ({worst_memory['case'][:40]})"
            f"  tracebacks {classes[key]['tracebacks']}  {'within' if within else 'OVER'} the bounds",
            flush=True,
        )
    report["classes"] = classes
    print(f"Results saved to {save_results('hostile_inputs.json', report)}")


if __name__ == "__main__":
    main()
