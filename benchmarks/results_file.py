"""Where every benchmark writes its JSON: benchmarks/results/<name>, replaced whole, never torn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def save_results(name: str, result: dict[str, Any]) -> Path:
    """Write `result` to benchmarks/results/`name` atomically and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.replace(path)
    return path
