"""Hostile model files, made in code: each case is a file name, its bytes and the refusal it must get.

One function per class of attack returns its cases; every file is derived from the shipped
models (`fakelens.weights`) or built here, so nothing binary is committed. Each must be refused
with a `ModelLoadError` naming the file, before it can cost time or memory.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from fakelens.models.runtime import CARD_KEY
from fakelens.models.saving import CARD_MEMBER
from fakelens.weights import WEIGHTS_DIR

#: A card field the case removes.
DELETE = object()
MALFORMED = "its model card is malformed"
TOO_DEEP = "nested over 32 levels deep; refused"


@dataclass(frozen=True)
class ModelCase:
    name: str  # the file name; its ending picks the loader
    data: bytes
    refusal: str  # a regex the ModelLoadError's message must match
    #: When set, the file is extended (sparsely) to this many bytes.
    size: int = 0

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        path.write_bytes(self.data)
        if self.size:
            os.truncate(path, self.size)
        return path


# === Cards: what any container (.keras, .onnx, probe .json) may carry ===


@functools.cache
def shipped_members(name: str = "seed") -> dict[str, bytes]:
    """The members of the shipped `name`.keras."""
    with zipfile.ZipFile(WEIGHTS_DIR / f"{name}.keras") as archive:
        return {member: archive.read(member) for member in archive.namelist()}


def seed_card(**changes: Any) -> dict[str, Any]:
    """The shipped seed model's card with `changes` (a value of DELETE removes the field)."""
    card = {**json.loads(shipped_members()[CARD_MEMBER]), **changes}
    return {key: value for key, value in card.items() if value is not DELETE}


def nested(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


#: Card fields outside their bounds: name -> (changes, the refusal's regex).
BAD_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "input_size_negative": (
        {"input_size": [-5, 0]},
        r"input_size must be .* from 8 to 1024; received \(-5, 0\)",
    ),
    "input_size_huge": ({"input_size": [30000, 30000]}, r"input_size must be .*; received \(30000, 30000\)"),
    "input_size_one_side": ({"input_size": [32]}, r"input_size must be"),
    "input_size_strings": ({"input_size": ["32", "32"]}, r"input_size must be"),
    "input_size_bools": ({"input_size": [True, True]}, r"input_size must be"),
    "input_size_floats": ({"input_size": [32.5, 32]}, r"input_size must be"),
    "input_size_object": ({"input_size": {"height": 32}}, r"input_size must be"),
    "threshold_over_one": ({"threshold": 1.5}, r"threshold must be a number from 0 to 1; received 1.5"),
    "threshold_nan": ({"threshold": math.nan}, r"threshold must be .*; received nan"),
    "threshold_string": ({"threshold": "0.5"}, r"threshold must be .*; received '0.5'"),
    "threshold_null": ({"threshold": None}, r"threshold must be .*; received None"),
    "threshold_bool": ({"threshold": True}, r"threshold must be .*; received True"),
    "temperature_zero": ({"temperature": 0}, r"temperature must be a number from 0.0001 to 10000"),
    "temperature_negative": ({"temperature": -1.3}, r"temperature must be"),
    "temperature_infinite": ({"temperature": math.inf}, r"temperature must be .*; received inf"),
    "temperature_huge": ({"temperature": 1e300}, r"temperature must be"),
    "fit_unknown": ({"fit": "zoom"}, r"fit must be one of 'stretch', 'crop', 'route'; received 'zoom'"),
    "fit_list": ({"fit": ["crop"]}, r"fit must be one of"),
    "fit_route_odd_size": ({"fit": "route", "input_size": [48, 48]}, r"fit 'route' needs a square"),
    "output_unknown": ({"output": "p_fake"}, r"output must be 'p_real' or 'p_ai'; received 'p_fake'"),
    "output_list": ({"output": ["p_ai"]}, r"output must be"),
    "name_empty": ({"name": ""}, r"name must be printable text of 1 to 200 characters"),
    "name_escape_codes": ({"name": "seed\x1b[2J\x1b[31m"}, r"name must be printable text"),
    "name_newline": ({"name": "seed\nerror: forged"}, r"name must be printable text"),
    "name_10k": ({"name": "x" * 10_000}, r"name must be .*; received 'xxxx.*\.\.\.$"),
    "name_number": ({"name": 5}, r"name must be .*; received 5"),
    "architecture_missing": ({"architecture": DELETE}, r"missing field\(s\) \['architecture'\]"),
    "metrics_list": ({"metrics": [1, 2]}, r"metrics must be a JSON object"),
    "training_string": ({"training": "x"}, r"training must be a JSON object"),
    "unknown_field": ({"mean": [0.5, 0.5, 0.5]}, r"unknown field\(s\) \['mean'\]"),
}


def card_texts() -> list[tuple[str, bytes, str]]:
    """(name, card JSON, refusal): every bad field, and cards that are not cards at all."""
    fields = [
        (name, json.dumps(seed_card(**changes)).encode(), rule)
        for name, (changes, rule) in BAD_FIELDS.items()
    ]
    card = json.dumps(seed_card())
    return [
        *fields,
        ("card_nested_200k", nested(200_000).encode(), TOO_DEEP),
        (
            "card_metrics_nested_200k",
            card[:-1].encode() + b', "x": ' + nested(200_000).encode() + b"}",
            TOO_DEEP,
        ),
        (
            "card_metrics_nested_40",
            json.dumps(seed_card(metrics={"x": json.loads(nested(40))})).encode(),
            TOO_DEEP,
        ),
        (
            "card_2mb",
            json.dumps(seed_card(metrics={"pad": "x" * 2_000_000})).encode(),
            r"over the 1,048,576-byte limit",
        ),
        ("card_not_json", b'{"name": "seed", ', r"its model card is not valid JSON"),
        ("card_not_utf8", b'{"name": "\xff\xfe"}', r"its model card is not valid JSON"),
        ("card_5000_digits", b'{"name": "seed", "threshold": ' + b"9" * 5000 + b"}", r"not valid JSON"),
        ("card_a_list", b"[1, 2]", r"its model card must be a JSON object; received \[1, 2\]"),
        ("card_null", b"null", r"its model card must be a JSON object; received None"),
    ]


# === .keras archives ===


def keras_file(members: dict[str, bytes], **options: Any) -> bytes:
    """A zip of `members` (each written with `options`, e.g. compress_type)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, **options)
    return buffer.getvalue()


def zip64_file(members: dict[str, bytes]) -> bytes:
    """A zip of `members` ending in zip64 records, which `zipfile` writes only past 65,535 members."""
    with mock.patch.object(zipfile, "ZIP_FILECOUNT_LIMIT", 0):
        return keras_file(members)


def card_cases_keras() -> list[ModelCase]:
    """The seed model with each bad card in place of its own."""
    return [
        ModelCase(f"{name}.keras", keras_file({**shipped_members(), CARD_MEMBER: text}), rule)
        for name, text, rule in card_texts()
    ]


#: zlib.crc32(bytes(blocks << 24)), precomputed: a gigabyte of zeros takes seconds to sum.
ZEROS_CRC = {2: 0x59450445, 64: 0x5B64C2B0}


def raw_zip(entries: dict[str, tuple[int, bytes, int, int]]) -> bytes:
    """A zip of name -> (method, stored bytes, crc32, inflated size), written by hand: zipfile
    cannot take data compressed elsewhere."""
    body, directory = bytearray(), bytearray()
    for name, (method, data, crc, size) in entries.items():
        encoded = name.encode()
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0)
        directory += b"PK\x01\x02" + struct.pack("<H", 20) + fields
        directory += struct.pack("<HHHII", 0, 0, 0, 0, len(body)) + encoded
        body += b"PK\x03\x04" + fields + encoded + data
    count, size = len(entries), len(directory)
    return bytes(
        body + directory + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, size, len(body), 0)
    )


def stored(members: dict[str, bytes]) -> dict[str, tuple[int, bytes, int, int]]:
    return {name: (zipfile.ZIP_STORED, data, zlib.crc32(data), len(data)) for name, data in members.items()}


def zeros(blocks: int) -> tuple[int, bytes, int, int]:
    """`blocks` x 16 MiB of zeros, deflated 1,000 times: one block compressed once and repeated
    (a full flush makes each copy stand alone), so a gigabyte takes milliseconds to make."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 24)) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return zipfile.ZIP_DEFLATED, block * blocks + final, ZEROS_CRC[blocks], blocks << 24


def _edit_directory(data: bytes, name: str, offset: int, edit: Callable[[int], int]) -> bytes:
    """`data` (a zip) with the 32-bit (offset 24: sizes) or 16-bit (offset 8: flags) field at
    `offset` of `name`'s central directory entry replaced by `edit(old value)`."""
    out, encoded, layout = bytearray(data), name.encode(), "<I" if offset >= 16 else "<H"
    start = out.find(b"PK\x01\x02")
    while start != -1:
        if out[start + 46 : start + 46 + len(encoded)] == encoded:
            struct.pack_into(
                layout, out, start + offset, edit(*struct.unpack_from(layout, out, start + offset))
            )
        start = out.find(b"PK\x01\x02", start + 4)
    return bytes(out)


def archive_cases() -> list[ModelCase]:
    """.keras files that would inflate far beyond a model, or cannot be inflated safely."""
    members = shipped_members()
    many = {**members, **{f"assets/{i}": b"" for i in range(1000)}}
    directory = {**members, **{f"assets/{i}": b"" for i in range(30_000)}}
    big_card = {**members, CARD_MEMBER: json.dumps(seed_card(metrics={"pad": "x" * 2_000_000})).encode()}
    return [
        ModelCase(
            "bomb_1gib.keras",
            raw_zip({**stored(members), "assets/zeros": zeros(64)}),
            r"inflates to 1,07[\d,]+ bytes, over the 268,435,456",
        ),
        ModelCase(
            "ratio_1000x.keras",
            raw_zip({**stored(members), "assets/zeros": zeros(2)}),
            r"inflates [\d,]+ times \(over 100\)",
        ),
        ModelCase("members_1004.keras", keras_file(many), r"refused: 1,004 members"),
        ModelCase(
            "directory_30k.keras",
            raw_zip(stored(directory)),
            r"zip directory is zip64 or over 1,048,576 bytes",
        ),
        ModelCase("zip64.keras", zip64_file(members), r"zip directory is zip64"),
        ModelCase(
            "lzma.keras", keras_file(members, compress_type=zipfile.ZIP_LZMA), r"compression method 14"
        ),
        ModelCase(
            "bzip2.keras", keras_file(members, compress_type=zipfile.ZIP_BZIP2), r"compression method 12"
        ),
        ModelCase(
            "encrypted.keras",
            _edit_directory(keras_file(members), CARD_MEMBER, 8, lambda flags: flags | 0x1),
            r"is encrypted",
        ),
        ModelCase(
            "card_member_2mb.keras", keras_file(big_card), r"model card is over the 1,048,576-byte limit"
        ),
        ModelCase(
            "card_understated.keras",
            _edit_directory(
                keras_file(big_card, compress_type=zipfile.ZIP_DEFLATED), CARD_MEMBER, 24, lambda _: 100
            ),
            r"not a readable fakelens \.keras model",
        ),
        ModelCase("not_a_zip.keras", b"PK\x03\x04" + bytes(100), r"not a readable fakelens \.keras model"),
        ModelCase(
            "no_card.keras",
            keras_file({k: v for k, v in members.items() if k != CARD_MEMBER}),
            "no fakelens model card",
        ),
        ModelCase(
            "no_config.keras",
            keras_file({k: v for k, v in members.items() if k != "config.json"}),
            r"no config\.json: not a Keras model",
        ),
    ]


def with_config(name: str, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """The shipped `name`.keras with its config.json changed by `edit(layers by name)`."""
    members = shipped_members(name)
    config = json.loads(members["config.json"])
    edit({layer["name"]: layer for layer in config["config"]["layers"]})
    return keras_file({**members, "config.json": json.dumps(config).encode()})


def h5_bomb() -> bytes:
    """The seed model whose weights file declares a 6 GB kernel, stored as a few bytes."""
    import h5py

    members = shipped_members()
    weights = io.BytesIO(members["model.weights.h5"])
    with h5py.File(weights, "r+") as store:
        del store["layers/dense/vars/0"]
        store.create_dataset("layers/dense/vars/0", (40_000, 40_000), "float32", compression="gzip")
    return keras_file({**members, "model.weights.h5": weights.getvalue()})


def graph_cases_keras() -> list[ModelCase]:
    """Keras architectures (config.json) that disagree with their cards, or would take
    gigabytes to build or to run."""

    def input_shape(batch_shape: list[int | None]) -> Callable[[dict[str, Any]], None]:
        return lambda layers: layers["image"]["config"].update(batch_shape=batch_shape)

    def dense_units(layers: dict[str, Any]) -> None:
        layers["dense"]["config"]["units"] = 10_000_000
        layers["dense_1"]["build_config"]["input_shape"] = [None, 10_000_000]

    def resize_to(layers: dict[str, Any]) -> None:
        layers["resize"]["config"].update(height=30_000, width=30_000)

    unreadable = r"Keras could not load the model"
    return [
        ModelCase(
            "keras_input_64.keras",
            with_config("seed", input_shape([None, 64, 64, 3])),
            r"disagrees with its card: it takes input of shape \[None, 64, 64, 3\], not the card's",
        ),
        ModelCase(
            "keras_batch_of_1.keras",
            with_config("seed", input_shape([1, None, None, 3])),
            r"it takes batches of exactly 1 image",
        ),
        ModelCase(
            "keras_dense_10m_units.keras",
            with_config("seed", dense_units),
            r"refused: its architecture has 660,009,713 weights \(at most 32,000,000\)",
        ),
        ModelCase(
            "keras_resize_30000.keras",
            with_config("patchres", resize_to),
            r"a layer of 7,200,000,000 values per image \(at most 16,777,216\)",
        ),
        ModelCase("keras_weights_h5_bomb.keras", h5_bomb(), unreadable + r".*declares 5.96 GB"),
        ModelCase(
            "keras_config_nested.keras",
            keras_file({**shipped_members(), "config.json": nested(200_000).encode()}),
            r"its Keras config is " + TOO_DEEP,
        ),
        ModelCase(
            "keras_config_a_list.keras",
            keras_file({**shipped_members(), "config.json": b"[]"}),
            unreadable + r": config.json holds \[\], not a Keras model config",
        ),
    ]


# === .onnx graphs ===

UINT8, FLOAT = 2, 1  # onnx.TensorProto element types


def onnx_file(
    card: bytes | None,
    *,
    input_shape: tuple[int | str, ...] = ("N", 32, 32, 3),
    input_type: int = UINT8,
    output_shape: tuple[int | str, ...] = ("N", 1),
    axes: tuple[int, ...] = (1, 2, 3),
    extra_input: bool = False,
) -> bytes:
    """A tiny graph, images -> mean brightness over `axes` as P(AI), declaring the given
    inputs and outputs."""
    from onnx import helper

    inputs = [helper.make_tensor_value_info("image", input_type, list(input_shape))]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", FLOAT, ["N", 1]))
    nodes = [
        helper.make_node("Cast", ["image"], ["pixels"], to=FLOAT),
        helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=list(axes), keepdims=1),
        helper.make_node("Flatten", ["mean"], ["flat"], axis=1),
        helper.make_node("Div", ["flat", "scale"], ["score"]),
    ]
    scale = helper.make_tensor("scale", FLOAT, [], [255.0])
    output = helper.make_tensor_value_info("score", FLOAT, list(output_shape))
    graph = helper.make_graph(nodes, "brightness", inputs, [output], initializer=[scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if card is not None:
        helper.set_model_props(model, {CARD_KEY: card.decode("utf-8", "surrogateescape")})
    return model.SerializeToString()


def good_onnx() -> bytes:
    """A graph that agrees with its card: it loads and scores (the cases below differ in one thing)."""
    return onnx_file(json.dumps(seed_card()).encode())


def card_cases_onnx() -> list[ModelCase]:
    return [
        ModelCase(f"{name}.onnx", onnx_file(text), rule)
        for name, text, rule in card_texts()
        if b"\xff" not in text
    ]


def graph_cases_onnx() -> list[ModelCase]:
    """Graphs whose inputs or outputs disagree with their cards, and files that are too large."""
    card = json.dumps(seed_card()).encode()
    mismatch = "refused: the graph disagrees with its card: "
    return [
        ModelCase(
            "input_64.onnx",
            onnx_file(card, input_shape=("N", 64, 64, 3)),
            mismatch + r"it takes input of shape \[None, 64, 64, 3\]",
        ),
        ModelCase(
            "input_nchw.onnx",
            onnx_file(card, input_shape=("N", 3, 32, 32)),
            mismatch + r"it takes input of shape \[None, 3, 32, 32\]",
        ),
        ModelCase(
            "input_rank_3.onnx",
            onnx_file(card, input_shape=("N", 32, 32), axes=(1, 2)),
            mismatch + r"it takes input of shape \[None, 32, 32\], not the card's \(batch, 32, 32, 3\)",
        ),
        ModelCase(
            "input_float.onnx",
            onnx_file(card, input_type=FLOAT),
            mismatch + r"it takes tensor\(float\), not the tensor\(uint8\)",
        ),
        ModelCase(
            "batch_of_1.onnx",
            onnx_file(card, input_shape=(1, 32, 32, 3)),
            mismatch + r"it takes batches of exactly 1 image",
        ),
        ModelCase(
            "output_3.onnx",
            onnx_file(card, output_shape=("N", 3), axes=(1, 2)),
            mismatch + r"its output has shape \[None, 3\], not one score per image",
        ),
        ModelCase("two_inputs.onnx", onnx_file(card, extra_input=True), mismatch + r"it has 2 input\(s\)"),
        ModelCase("no_card.onnx", onnx_file(None), r"has no fakelens model card"),
        ModelCase("not_onnx.onnx", b"\x08\x07" + bytes(64), r"onnxruntime could not load the model"),
        ModelCase("sparse_300mb.onnx", good_onnx(), r"over the 268,435,456-byte model limit", size=300 << 20),
    ]


# === Probe models (.json) ===


@functools.cache
def shipped_probe() -> dict[str, Any]:
    return json.loads((WEIGHTS_DIR / "clipprobe.json").read_text(encoding="utf-8"))


def probe_file(**changes: Any) -> bytes:
    """clipprobe.json with top-level `changes`; "head.coef"-style keys reach one level down."""
    record = json.loads(json.dumps(shipped_probe()))
    for key, value in changes.items():
        *parents, last = key.split(".")
        target = record
        for parent in parents:
            target = target[parent]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return json.dumps(record).encode()


def probe_cases() -> list[ModelCase]:
    coef = shipped_probe()["head"]["coef"]
    malformed = "malformed probe model"
    cases = {
        "coef_511": (probe_file(**{"head.coef": coef[:-1]}), r"511 features; this one has .* 512 features"),
        "coef_strings": (
            probe_file(**{"head.coef": ["nan"] * 512}),
            malformed + r".*expected a list of numbers",
        ),
        "coef_nan": (probe_file(**{"head.coef": [math.nan] * 512}), malformed + r".*all finite"),
        "coef_overflow": (
            probe_file(**{"head.coef": [0.5] * 511}).replace(b"[0.5", b"[1e400, 0.5"),
            malformed + r".*all finite",
        ),
        "coef_huge": (probe_file(**{"head.coef": [1e9] * 512}), malformed + r".*within \+-10000"),
        "coef_bools": (
            probe_file(**{"head.coef": [True] * 512}),
            malformed + r".*expected a list of numbers",
        ),
        "coef_empty": (probe_file(**{"head.coef": []}), malformed + r".*one or more weights"),
        "coef_object": (probe_file(**{"head.coef": {"0": 1.0}}), malformed + r".*expected a list of numbers"),
        "intercept_10e400": (probe_file(**{"head.intercept": 10**400}), malformed + r".*OverflowError"),
        "intercept_missing": (
            probe_file(**{"head.intercept": DELETE}),
            malformed + r".*KeyError\('intercept'\)",
        ),
        "head_a_list": (probe_file(head=[1, 2]), malformed),
        "backbone_unknown": (
            probe_file(**{"backbone.name": "clip-vit-b32"}),
            r"Unknown backbone 'clip-vit-b32'",
        ),
        "backbone_name_list": (
            probe_file(**{"backbone.name": ["clip-vit-b16-int8"]}),
            malformed + r".*backbone name",
        ),
        "backbone_sha_mismatch": (probe_file(**{"backbone.sha256": "0" * 64}), r"fitted on another version"),
        "card_input_64": (
            probe_file(**{"card.input_size": [64, 64]}),
            r"do not match its backbone clip-vit-b16-int8",
        ),
        "card_architecture": (
            probe_file(**{"card.architecture": "probe:other"}),
            r"do not match its backbone",
        ),
        "card_input_huge": (probe_file(**{"card.input_size": [30000, 30000]}), r"input_size must be"),
        "card_temperature_nan": (probe_file(**{"card.temperature": math.nan}), r"temperature must be"),
        "card_missing": (probe_file(card=DELETE), r"its model card must be a JSON object; received None"),
        "format_wrong": (
            probe_file(format="fakelens-probe/9"),
            r"not a fakelens probe model \(format 'fakelens-probe/9'\)",
        ),
        "a_list": (b"[" + b"1," * 1000 + b"1]", r"not a fakelens probe model \(format \[1, 1, 1"),
        "nested_200k": (nested(200_000).encode(), r"the probe model file is " + TOO_DEEP),
        "card_nested_200k": (probe_file(card="CARD").replace(b'"CARD"', nested(200_000).encode()), TOO_DEEP),
        "coef_3mb": (
            probe_file(**{"head.coef": [0.123456789] * 300_000}),
            r"the probe model file is over the 1,048,576-byte limit",
        ),
        "not_utf8": (b'{"format": "\xff"}', r"the probe model file is not valid JSON"),
        "empty": (b"", r"the probe model file is not valid JSON"),
    }
    return [ModelCase(f"{name}.json", data, rule) for name, (data, rule) in cases.items()]


#: Every class: its name -> the function making its cases.
CLASSES = {
    "card_keras": card_cases_keras,
    "card_onnx": card_cases_onnx,
    "archive": archive_cases,
    "graph_keras": graph_cases_keras,
    "graph_onnx": graph_cases_onnx,
    "probe": probe_cases,
}
