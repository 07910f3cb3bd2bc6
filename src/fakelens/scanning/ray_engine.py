"""`fakelens scan --engine ray`: the scan on Ray Data, from one machine to a cluster.

The driver lists the files (`data.listing.list_images`); Ray Data cuts the listing into blocks; a pool
of actors, each loading the model once, reads, decodes and scores them (`map_batches`); the rows
are written as part files. Rows have the local scan's columns and probabilities.

Output: `--out results.parquet` (or .csv, .jsonl) is a directory of part files in that format,
one or more per block, written to `results.parquet.partial/` and renamed when every row is in.
Read it whole with `pyarrow.dataset.dataset(dir)`, `pandas.read_parquet(dir)` or
`ray.data.read_parquet(dir)`. On a cluster it must be on storage every node can write to.
Rows keep the listing's order. Unlike the local scan this engine does not resume: Ray retries
failed tasks and restarts failed actors, and a run that fails leaves only the `.partial` folder.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fakelens.data.layout import DisplayNameReader
from fakelens.data.listing import list_images
from fakelens.errors import InvalidArgumentError
from fakelens.inference.detector import load_detector
from fakelens.record import FIELDS, arrow_schema
from fakelens.scanning.results import FORMATS
from fakelens.scanning.scan import ScanSummary

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'fakelens[distributed]'"
#: Rows per block of the listing at most: several model batches, few enough blocks to keep
#: Ray's per-task overhead small (and at least four blocks per actor, so that all get work).
_BLOCK_ROWS = 4096


class Scorer:
    """The actor's work: load the model once, then score batches of listed files."""

    def __init__(self, model: str, loading: dict[str, Any], workers: int):
        self.detector = load_detector(model, **loading)
        self.reader = DisplayNameReader()
        self.workers = workers

    def __call__(self, batch: Any) -> Any:
        """A pyarrow table of listed files -> a table of result rows, in the same order."""
        import pyarrow as pa

        names = batch.column("path").to_pylist()
        load = lambda index: self.detector.prepare(self.reader.read(names[index]), names[index])  # noqa: E731
        records = [
            r for chunk in self.detector.score_stream(names, load, workers=self.workers) for r in chunk
        ]
        rows = {column: [getattr(record, column) for record in records] for column in FIELDS}
        rows["size"] = batch.column("size").to_pylist()
        rows["modified"] = batch.column("modified").to_pylist()
        return pa.Table.from_pydict(rows, schema=arrow_schema())


def ray_scan(
    model: str,
    source: str | os.PathLike[str],
    out: Path,
    *,
    include: Sequence[str] = (),
    backend: str | None = None,
    precision: str = "auto",
    trust: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    actor_cpus: int = 1,
    fresh: bool = False,
    quiet: bool = False,
    follow_links: bool = False,
) -> ScanSummary:
    """Score every image of `source` into the part-file directory `out`; see the module docstring.

    `address`: a running Ray cluster ("auto", "ray://host:10001", ...); None starts a local
    instance with `num_cpus` CPUs (default: all of this machine's). Each actor holds
    `actor_cpus` CPUs, as many as fit in the cluster; `workers`: its decoding threads (default:
    one per CPU it holds).
    """
    if actor_cpus < 1:
        raise InvalidArgumentError(f"--ray-actor-cpus must be at least 1; received {actor_cpus}")
    fmt = _check_out(out, fresh)
    loading = {"trust": trust, "batch_size": batch_size, "backend": backend, "precision": precision}
    load_detector(model, **loading)  # a bad model fails here, early
    listed, not_images, unlisted = list_images(source, include, follow_links=follow_links)
    summary = ScanSummary(out=out, not_images=not_images)
    began = time.perf_counter()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with _ray(address, num_cpus, quiet) as ray:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)) // actor_cpus)
        blocks = min(max(math.ceil(len(listed) / _BLOCK_ROWS), 4 * actors), max(1, len(listed)))
        dataset = ray.data.from_items(listed, override_num_blocks=blocks)
        scored = dataset.map_batches(
            Scorer,
            fn_constructor_args=(model, loading, workers or actor_cpus),
            batch_size=batch_size or 256,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=actor_cpus,
        )
        # Writing is light: claiming no CPU lets it run beside actors that hold every CPU,
        # instead of waiting, with every row held in memory, until they finish.
        # JSON lines go through pandas, which keeps 10 digits unless asked for all 15.
        precision = {"double_precision": 15} if fmt == "json" else {}
        getattr(scored, f"write_{fmt}")(str(partial), ray_remote_args={"num_cpus": 0}, **precision)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    summary.seconds = time.perf_counter() - began
    if listed:
        _summarise(summary, out, fmt)
    summary.failures += unlisted  # not in the part files: there is no file to give a row
    return summary


def _check_out(out: Path, fresh: bool) -> str:
    """The output format's name for Ray's writers; refuses to overwrite without `fresh`."""
    formats = dict(zip(FORMATS, ("csv", "json", "parquet")))
    suffix = out.suffix.lower()
    if suffix not in formats:
        raise InvalidArgumentError(f"--out must end in {', '.join(FORMATS)}; received {out}")
    if out.exists() and not fresh:
        raise InvalidArgumentError(
            f"{out} exists; --engine ray writes a new directory of part files and does not resume: "
            "pass --fresh to replace it, or choose another --out"
        )
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"{out} is a file; --engine ray writes a directory of part files there")
    return formats[suffix]


@contextmanager
def _ray(address: str | None, num_cpus: int | None, quiet: bool) -> Iterator[Any]:
    """Ray, connected to `address`, or a local instance on loopback sized to this machine.

    The local instance keeps its sockets, logs and spilled objects in a temporary directory,
    removed afterwards, and starts no dashboard; usage statistics are never sent.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data
    except ImportError:
        raise InvalidArgumentError(INSTALL_HINT) from None
    if num_cpus is not None and (num_cpus < 1 or address is not None):
        raise InvalidArgumentError(
            f"--ray-num-cpus sizes a local instance: at least 1, without --ray-address; received {num_cpus}"
        )
    level = logging.ERROR if quiet else logging.INFO
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = not quiet
    if address is not None:
        ray.init(address=address, log_to_driver=not quiet, logging_level=level)
        try:
            yield ray
        finally:
            ray.shutdown()
        return
    with tempfile.TemporaryDirectory(prefix="fakelens-ray-") as scratch:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            _temp_dir=scratch,
            _node_ip_address="127.0.0.1",
            log_to_driver=not quiet,
            logging_level=level,
        )
        try:
            yield ray
        finally:
            ray.shutdown()


def _summarise(summary: ScanSummary, out: Path, fmt: str) -> None:
    """Counts and failures, read back from the part files (a few columns, never whole rows)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    table = pads.dataset(str(out), format=fmt).to_table(columns=["path", "label", "error"])
    failed = table.filter(pc.is_valid(table["error"]))
    summary.failures = list(zip(failed["path"].to_pylist(), failed["error"].to_pylist()))
    summary.scored = table.num_rows - failed.num_rows
    summary.ai = int(pc.sum(pc.equal(table["label"], "ai")).as_py() or 0)
