"""Inference precision: speed and scores of each precision this CPU offers, side by side in one run.

    python benchmarks/inference_precision.py [--quick] [--models seed patchres] [--clip-images 200]

- Keras models in float32 and bf16 (`--precision`), and their ONNX exports (float32 graphs, as
  shipped): model-only images/s on the CIFAKE test images decoded once (20,000; `--quick`: 2,000),
  the best of `--repeats` turns, and each one's AUROC on those images.
- The CLIP encoder of `clipprobe`: INT8 as shipped (dynamic quantisation: one image per call,
  see `OnnxEncoder`) against the same graph dequantised to float32 (weights (q - zero point) x
  scale, the MatMulInteger nodes back to MatMul; batches of 4 then agree with single images):
  images/s, and the probe's scores on a deterministic `--clip-images` subset of wild.zip, with
  their AUROC.
Writes benchmarks/results/inference_precision.json; `benchmarks/scan.py --precision` runs it too.
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from results_file import save_results
from scan import best_rates, evenly_spread

from fakelens.data.layout import is_image_name, resolve_data_path
from fakelens.evaluation.metrics import auroc
from fakelens.inference.detector import Detector, load_detector
from fakelens.models.backbones import get_backbone_spec, load_backbone
from fakelens.models.backbones.fetch import ensure_asset
from fakelens.models.backbones.onnx_encoder import OnnxEncoder
from fakelens.models.precision import bf16_unsupported
from fakelens.models.probe import ProbeModel

WILD = Path("../shared/data/wild/wild.zip")


def labelled_test_images(data: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` CIFAKE test images, evenly spread over the sorted names, decoded, and is_ai."""
    from fakelens.data.decode import load_image

    with zipfile.ZipFile(data) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("test/") and is_image_name(n))
        names = evenly_spread(names, count)
        images = np.stack([load_image(archive.read(n), (32, 32)) for n in names])
    return images, np.array(["/FAKE/" in n for n in names])


def keras_precisions(models: list[str], data: Path, count: int, repeats: int) -> list[dict]:
    images, is_ai = labelled_test_images(data, count)
    precisions = ["fp32"] + ([] if bf16_unsupported() else ["bf16"])
    rows = []
    for model in models:
        detectors = {f"keras {p}": load_detector(model, backend="keras", precision=p) for p in precisions}
        detectors["onnx fp32"] = load_detector(model, backend="onnx")
        for detector in detectors.values():
            detector.predict_proba(images[: detector.batch_size])  # trace, warm up
        rates = best_rates(
            {k: lambda d=d: d.predict_proba(images) for k, d in detectors.items()}, count, repeats
        )
        reference = detectors["keras fp32"].predict_proba(images)
        for key, detector in detectors.items():
            scores = detector.predict_proba(images)
            rows.append(
                {
                    "model": model,
                    "runtime": key,
                    "images": count,
                    "images_per_second": rates[key],
                    "speed_vs_keras_fp32": rates[key] / rates["keras fp32"],
                    "auroc": auroc(is_ai, scores),
                    "max_score_difference_vs_keras_fp32": float(np.abs(scores - reference).max()),
                }
            )
    return rows


def dequantise(source: Path, target: Path) -> None:
    """Write `source` (ONNX dynamic INT8: DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul
    by the two scales) as float32: each such chain becomes MatMul(x, (q - zero point) x scale)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced, new_weights = {}, []
    for node in (n for n in graph.node if n.op_type == "MatMulInteger"):
        quantised_x, weight, _, weight_zero = node.input
        (cast,) = consumers[node.output[0]]
        (scale_mul,) = consumers[cast.output[0]]
        scales = producer[next(i for i in scale_mul.input if i != cast.output[0])]
        weight_scale = next(constants[i] for i in scales.input if i in constants)
        real = (
            constants[weight].astype(np.float32) - constants[weight_zero].astype(np.float32)
        ) * weight_scale
        name = weight + "_dequantised"
        new_weights.append(numpy_helper.from_array(real.astype(np.float32), name))
        float_x = producer[quantised_x].input[0]
        replaced[scale_mul.output[0]] = helper.make_node("MatMul", [float_x, name], [scale_mul.output[0]])
    nodes = [replaced.get(n.output[0], n) if n.op_type == "Mul" else n for n in graph.node]
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(nodes):  # nodes are in topological order: keep those an output needs
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    graph.initializer.extend(new_weights)
    unused = [i for i in graph.initializer if i.name not in needed]
    for initializer in unused:
        graph.initializer.remove(initializer)
    onnx.save(model, str(target))


def wild_subset(count: int) -> tuple[list[bytes], np.ndarray]:
    with zipfile.ZipFile(WILD) as archive:
        names = sorted(n for n in archive.namelist() if is_image_name(n))
        names = evenly_spread(names, count)
        return [archive.read(n) for n in names], np.array(["/FAKE/" in n for n in names])


def clip_precisions(count: int, repeats: int) -> list[dict]:
    probe = load_detector("clipprobe")
    shipped = load_backbone("clip-vit-b16-int8")
    spec = get_backbone_spec("clip-vit-b16-int8")
    info = spec.info
    files, is_ai = wild_subset(count)
    prepared = np.stack([probe.prepare(data) for data in files])
    with tempfile.TemporaryDirectory() as tmp:
        float_graph = Path(tmp) / "clip-vit-b16.fp32.onnx"
        dequantise(ensure_asset(spec.asset, spec.info.name), float_graph)
        encoders = {
            "int8 (shipped), one image per call": shipped,
            "fp32 dequantised, one image per call": OnnxEncoder(
                info, float_graph, output=shipped.output, per_image=True
            ),
            "fp32 dequantised, batches of 4": OnnxEncoder(
                info, float_graph, output=shipped.output, per_image=False
            ),
        }
        detectors = {}
        for key, encoder in encoders.items():
            model = ProbeModel(encoder, probe.model.head)
            detectors[key] = Detector(
                model, probe.card, batch_size=probe.batch_size, parallel_batches=probe.parallel_batches
            )
        timed = prepared[: min(len(prepared), 48)]
        rates = best_rates(
            {k: lambda d=d: d.score_prepared(timed) for k, d in detectors.items()}, len(timed), repeats
        )
        reference = detectors["int8 (shipped), one image per call"].score_prepared(prepared)
        rows = []
        for key, detector in detectors.items():
            scores = detector.score_prepared(prepared)
            rows.append(
                {
                    "encoder": key,
                    "images_per_second": rates[key],
                    "speed_vs_int8": rates[key] / rates["int8 (shipped), one image per call"],
                    "wild_images": count,
                    "auroc": auroc(is_ai, scores),
                    "max_score_difference_vs_int8": float(np.abs(scores - reference).max()),
                }
            )
    return rows


def compare(models: list[str], data: Path | None, quick: bool, clip_images: int, repeats: int) -> dict:
    count = 2000 if quick else 20_000
    result = {"keras_and_onnx": keras_precisions(models, resolve_data_path(data), count, repeats)}
    if clip_images and WILD.exists():
        result["clip_encoder"] = clip_precisions(clip_images, repeats)
    return result


def report(result: dict) -> None:
    for row in result["keras_and_onnx"]:
        print(
            f"{row['model']:>9} {row['runtime']:>10}: {row['images_per_second']:8,.0f} images/s "
            f"({row['speed_vs_keras_fp32']:.2f}x keras fp32), AUROC {row['auroc']:.4f}, "
            f"max |score - keras fp32| {row['max_score_difference_vs_keras_fp32']:.4f}"
        )
    for row in result.get("clip_encoder", []):
        print(
            f"CLIP {row['encoder']}: {row['images_per_second']:.1f} images/s "
            f"({row['speed_vs_int8']:.2f}x int8), wild AUROC {row['auroc']:.4f} on {row['wild_images']}, "
            f"max |score - int8| {row['max_score_difference_vs_int8']:.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="CIFAKE zip [default: as for --data]")
    parser.add_argument("--quick", action="store_true", help="2,000 CIFAKE images: a smoke run")
    parser.add_argument("--models", nargs="+", default=["seed", "patchres"])
    parser.add_argument(
        "--clip-images", type=int, default=200, help="wild images for the CLIP encoder; 0 skips"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = compare(args.models, args.data, args.quick, args.clip_images, args.repeats)
    report(result)
    print(f"Results saved to {save_results('inference_precision.json', result)}")


if __name__ == "__main__":
    main()
