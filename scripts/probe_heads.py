"""Which probe head, judged leave-one-source-out: regularisation, views, and a bounded CIFAKE share.

Every variant reuses the cached features (`data.features`), so the grid costs seconds once the
data sets have been embedded. Writes docs/probe-heads.json and prints a table.

    python scripts/probe_heads.py --data ../shared/data/wild/wild.zip \\
        --data ../shared/data/sd-unsplash/sd-unsplash.zip --cifake /tmp/cifake-subset.zip
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fakelens.data.sources import dataset_name
from fakelens.evaluation.metrics import auroc
from fakelens.training.probe import (
    ProbeConfig,
    embed_data,
    fit_head,
    judge_by_source,
    merge,
    source_weights,
    subset,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument(
        "--cifake", type=Path, help="a CIFAKE zip (a subset): one more source, and its test split"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/probe-heads.json"))
    args = parser.parse_args()
    paths = (*args.data, *([args.cifake] if args.cifake else []))
    data = merge(embed_data(ProbeConfig(data=paths)))
    split = np.array([e.split for e in data.entries])
    train_all = subset(data, split == "train")
    cifake_name = dataset_name(args.cifake) if args.cifake else None
    results = []
    for with_cifake in (False, True) if args.cifake else (False,):
        train = train_all if with_cifake else subset(train_all, train_all.sources != cifake_name)
        for c in (1.0, 10.0, 100.0):
            summary = judge_by_source(train, c).summary()
            row = {"c": c, "cifake_source": with_cifake, **summary}
            for name in sorted({e.source for e, s in zip(data.entries, split) if s == "test"}):
                test = subset(data, (split == "test") & (data.sources == name))
                head = fit_head(
                    train.features[:, 1:], train.is_ai, source_weights(train.is_ai, train.sources), c
                )
                logits = head.logits(test.features[:, 0])
                row[f"{name}_test_auroc"] = auroc(test.is_ai, logits)
                row[f"{name}_test_accuracy_at_0"] = float(np.mean((logits >= 0) == test.is_ai.astype(bool)))
            results.append(row)
            print(json.dumps(row))
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
