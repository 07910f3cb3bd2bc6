"""`declared`: what a file states about how it was made, beside the pixel score, never in it."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from conftest import encode, random_image
from metadata_files import IPTC, SD_PARAMETERS, camera_jpeg, evidence_folder, png_with_text, signed_jpeg, xmp
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.evidence.attach import with_evidence
from fakelens.evidence.declared import declaration
from fakelens.evidence.metadata import read_evidence
from fakelens.evidence.provenance import manifest_evidence
from fakelens.record import Prediction

runner = CliRunner()
SD_DECLARED = "ai: PNG text (Stable Diffusion WebUI parameters)"


def store(generator: str, *source_types: str, state: str = "Valid") -> dict:
    """A C2PA manifest store as `c2pa.Reader.json()` gives it."""
    actions = [{"action": "c2pa.created", "digitalSourceType": f"{IPTC}{t}"} for t in source_types]
    manifest = {
        "claim_generator_info": [{"name": generator}],
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
    }
    return {"active_manifest": "m", "manifests": {"m": manifest}, "validation_state": state}


def sd_webui_jpeg() -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[37510] = b"UNICODE\x00" + SD_PARAMETERS.encode("utf-16-be")
    return encode(random_image(0), "JPEG", exif=exif)


def test_generator_parameters_in_png_text_are_a_declaration():
    assert declaration(read_evidence(png_with_text({"parameters": SD_PARAMETERS}))) == SD_DECLARED
    comfy = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}
    }
    found = read_evidence(png_with_text({"prompt": json.dumps(comfy), "workflow": "{}"}))
    assert declaration(found) == "ai: PNG text (ComfyUI prompt, ComfyUI workflow)"
    assert declaration(read_evidence(sd_webui_jpeg())) == "ai: EXIF (UserComment: generator parameters)"


@pytest.mark.parametrize(
    "source_type, expected",
    [
        ("trainedAlgorithmicMedia", "ai: IPTC digital source type trainedAlgorithmicMedia (XMP)"),
        (
            "compositeWithTrainedAlgorithmicMedia",
            "ai: IPTC digital source type compositeWithTrainedAlgorithmicMedia (XMP)",
        ),
        ("digitalCapture", "real: IPTC digital source type digitalCapture (XMP)"),
        ("humanEdits", None),  # says nothing about how the image was made
        ("minorHumanEdits", None),  # weak: not a statement of origin
    ],
)
def test_xmp_digital_source_type_in_jpeg_and_png(source_type, expected):
    packet = xmp(source_type)  # also carries xmp:CreatorTool="Midjourney": a tool name, no declaration
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode())
    for data in (encode(random_image(0), "JPEG", xmp=packet), encode(random_image(0), "PNG", pnginfo=info)):
        assert declaration(read_evidence(data)) == expected


def test_plain_files_and_camera_exif_declare_nothing():
    assert declaration(read_evidence(encode(random_image(0), "PNG"))) is None
    assert declaration(read_evidence(camera_jpeg())) is None  # circumstantial, not a statement
    assert declaration(read_evidence(png_with_text({"Software": "NovelAI"}))) is None  # a tool's name only
    assert declaration([]) is None


def test_c2pa_manifests_name_the_generator_source_types_and_validation():
    assert (
        declaration(manifest_evidence(store("ChatGPT", "trainedAlgorithmicMedia")))
        == "ai: C2PA manifest (claim generator 'ChatGPT', digital source type trainedAlgorithmicMedia, "
        "validation Valid)"
    )
    assert declaration(manifest_evidence(store("DALL-E 3"))) == (
        "ai: C2PA manifest (claim generator 'DALL-E 3', validation Valid)"
    )
    edited = store(
        "Adobe Photoshop 25.0", "digitalCapture", "compositeWithTrainedAlgorithmicMedia", state="Invalid"
    )
    assert declaration(manifest_evidence(edited)) == (
        "ai: C2PA manifest (claim generator 'Adobe Photoshop 25.0', digital source types digitalCapture, "
        "compositeWithTrainedAlgorithmicMedia, validation Invalid)"
    )
    assert declaration(manifest_evidence(store("Leica M11-P", "digitalCapture", state="Trusted"))) == (
        "real: C2PA manifest (claim generator 'Leica M11-P', digital source type digitalCapture, "
        "validation Trusted)"
    )
    assert declaration(manifest_evidence(store("Adobe Photoshop 25.0"))) is None  # an editor, no statement


def test_a_signed_c2pa_manifest_read_from_the_file():
    c2pa = pytest.importorskip("c2pa", reason="the `c2pa` extra (c2pa-python) is not installed")
    assert declaration(read_evidence(signed_jpeg(c2pa))) == (
        "ai: C2PA manifest (claim generator 'Adobe Firefly 2.0', "
        "digital source type trainedAlgorithmicMedia, validation Valid)"
    )


def test_records_carry_declared_only_with_evidence_and_keep_the_pixel_score():
    record = Prediction("x.png", "real", 0.1, "seed")
    assert "declared" not in record.to_dict()
    declared = with_evidence(record, png_with_text({"parameters": SD_PARAMETERS}))
    assert declared.declared == SD_DECLARED
    assert (declared.label, declared.ai_probability) == ("real", 0.1)  # the pixels' verdict, unchanged
    assert list(declared.to_dict())[-2:] == ["declared", "evidence"]
    plain = with_evidence(record, encode(random_image(0), "PNG")).to_dict()
    assert plain["declared"] is None and plain["evidence"] == []
    assert with_evidence(record, b"garbage").declared is None


def test_predict_and_scan_write_declared_beside_the_score(tmp_path):
    folder = evidence_folder(tmp_path / "in")
    result = runner.invoke(app, ["predict", str(folder / "sd.png"), "-m", "seed", "--evidence"])
    assert result.exit_code == 0, result.output
    assert f"\tdeclared: {SD_DECLARED}\n" in result.output
    as_json = runner.invoke(app, ["predict", str(folder / "sd.png"), "-m", "seed", "--evidence", "--json"])
    assert json.loads(as_json.output)["declared"] == SD_DECLARED
    assert "declared" not in json.loads(
        runner.invoke(app, ["predict", str(folder / "sd.png"), "-m", "seed", "--json"]).output
    )

    declared = {}
    for suffix in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"r{suffix}"
        result = runner.invoke(
            app, ["scan", str(folder), "--out", str(out), "-m", "seed", "-q", "--evidence"]
        )
        assert result.exit_code == 1  # the broken file
        if suffix == ".csv":
            assert out.read_text().splitlines()[0].endswith(",modified,declared,evidence")
            rows = list(csv.DictReader(out.open()))
        elif suffix == ".jsonl":
            rows = [json.loads(line) for line in out.read_text().splitlines()]
        else:
            rows = pq.read_table(out).to_pylist()
        declared[suffix] = {r["path"].rsplit("/", 1)[-1]: r["declared"] for r in rows}
    assert declared[".csv"] == {"sd.png": SD_DECLARED, "camera.jpg": "", "broken.png": ""}
    none = {"sd.png": SD_DECLARED, "camera.jpg": None, "broken.png": None}
    assert declared[".jsonl"] == declared[".parquet"] == none
