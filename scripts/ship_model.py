"""Copy a trained model into the package as a shipped model, its test metrics in its card.

    python scripts/ship_model.py runs/train/seed-cifake/model.keras \
        runs/train/seed-cifake/evaluate/metrics.json seed

The optimizer state is dropped (inference does not need it), which keeps the file small. The
ONNX export for the light runtime is written beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fakelens.export import export_model
from fakelens.models.saving import load_model, save_model
from fakelens.weights import WEIGHTS_DIR


def main(model_path: str, metrics_path: str, name: str) -> None:
    model, card = load_model(model_path, compile=False)
    evaluation = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
    keep = ("accuracy", "auroc", "ece", "ai", "real", "count", "confusion_matrix", "threshold")
    metrics = {
        **card.metrics,
        **{split: {k: evaluation[split][k] for k in keep} for split in ("test", "dedup_test")},
        "robustness": evaluation.get("robustness"),
        "data_key": evaluation["data_key"],
    }
    target = save_model(model, card.with_updates(name=name, metrics=metrics), WEIGHTS_DIR / f"{name}.keras")
    exported = export_model(target, target.with_suffix(".onnx"))
    print(f"Shipped {target} ({target.stat().st_size:,} bytes) and {exported}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
