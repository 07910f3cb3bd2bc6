"""Metadata evidence from files built with each kind of metadata, and hostile files."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import bomb_png, encode, random_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metadata_files import IPTC, SD_PARAMETERS, camera_jpeg, evidence_folder, png_with_text, signed_jpeg, xmp
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from fakelens.cli import app
from fakelens.errors import ImageDecodeError
from fakelens.evidence.attach import with_evidence
from fakelens.evidence.metadata import read_evidence
from fakelens.evidence.provenance import manifest_evidence
from fakelens.record import Prediction


def found(items) -> dict[tuple[str, str], tuple[str, str, str]]:
    return {(e.kind, e.key): (e.value, e.points_to, e.strength) for e in items}


def test_camera_exif_points_weakly_to_a_real_photo():
    evidence = found(read_evidence(camera_jpeg()))
    assert evidence[("exif", "Make")] == ("Canon", "real", "weak")
    assert evidence[("exif", "Model")] == ("Canon EOS 5D Mark IV", "real", "weak")
    assert evidence[("exif", "LensModel")] == ("EF24-70mm f/2.8L II USM", "real", "weak")
    assert evidence[("exif", "DateTimeOriginal")] == ("2023:05:01 10:11:12", "real", "weak")
    assert evidence[("exif", "Software")] == ("Adobe Lightroom 7.0", "unknown", "none")
    assert not any(points == "ai" for _, points, _ in evidence.values())


def test_stable_diffusion_parameters_point_strongly_to_ai(tmp_path):
    path = tmp_path / "sd.png"
    path.write_bytes(png_with_text({"parameters": SD_PARAMETERS}))
    [item] = read_evidence(path)
    assert (item.kind, item.key, item.points_to, item.strength) == ("png_text", "parameters", "ai", "strong")
    assert item.value.startswith("a photo of a cat") and "Steps: 20" in item.value
    assert item.to_dict() == {
        "kind": "png_text",
        "key": "parameters",
        "value": item.value,
        "points_to": "ai",
        "strength": "strong",
    }


def test_comfyui_graph_names_its_models_and_novelai_software_is_a_generator():
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}
    }
    evidence = found(
        read_evidence(png_with_text({"prompt": json.dumps(prompt), "workflow": "{}", "Software": "NovelAI"}))
    )
    assert evidence[("png_text", "prompt")] == (
        "ComfyUI prompt; models: sd_xl_base_1.0.safetensors",
        "ai",
        "strong",
    )
    assert evidence[("png_text", "workflow")][1:] == ("ai", "strong")
    assert evidence[("png_text", "Software")] == ("NovelAI", "ai", "medium")


def test_a_prompt_chunk_that_is_not_a_comfyui_graph_is_not_evidence():
    assert read_evidence(png_with_text({"prompt": "just some words"})) == []


def test_sd_webui_jpeg_parameters_in_exif_user_comment():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[37510] = b"UNICODE\x00" + SD_PARAMETERS.encode("utf-16-be")
    [item] = read_evidence(encode(random_image(0), "JPEG", exif=exif))
    assert (item.key, item.points_to, item.strength) == ("UserComment (generator parameters)", "ai", "strong")
    assert "Sampler: Euler a" in item.value


@pytest.mark.parametrize(
    "source_type, element, points_to, strength",
    [
        ("trainedAlgorithmicMedia", False, "ai", "strong"),
        ("compositeWithTrainedAlgorithmicMedia", True, "ai", "medium"),
        ("digitalCapture", True, "real", "medium"),
        ("somethingNew", False, "unknown", "none"),
    ],
)
def test_xmp_digital_source_type_in_jpeg_and_png(source_type, element, points_to, strength):
    packet = xmp(source_type, element)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode())
    for data in (encode(random_image(0), "JPEG", xmp=packet), encode(random_image(0), "PNG", pnginfo=info)):
        evidence = found(read_evidence(data))
        assert evidence[("xmp", "DigitalSourceType")] == (f"{IPTC}{source_type}", points_to, strength)
        assert evidence[("xmp", "CreatorTool")] == ("Midjourney", "ai", "medium")


def test_a_plain_image_carries_no_evidence():
    assert read_evidence(encode(random_image(0), "PNG")) == []
    assert read_evidence(encode(random_image(0), "JPEG")) == []


def test_text_before_damaged_pixels_is_still_read():
    data = png_with_text({"parameters": SD_PARAMETERS})
    truncated = data[: data.index(b"IDAT") + 20]
    assert [e.key for e in read_evidence(truncated)] == ["parameters"]


def test_long_values_are_clipped():
    [item] = read_evidence(png_with_text({"parameters": "x" * 100_000 + SD_PARAMETERS}))
    assert len(item.value) <= 400


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "file is empty"),
        (b"hello, not an image", "not a recognised image format"),
        (b"\x89PNG\r\n\x1a\n", "corrupt or truncated PNG"),
        (bomb_png(), "decompression bomb refused|pixel limit"),
    ],
)
def test_hostile_files_raise_only_image_decode_error(data, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        read_evidence(data, name="hostile.png")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_damage_never_raises_anything_else(data):
    base = data.draw(
        st.sampled_from([png_with_text({"parameters": SD_PARAMETERS}), camera_jpeg(), b"GIF89a" + b"\0" * 40])
    )
    mutated = bytearray(base)
    for _ in range(data.draw(st.integers(1, 20))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(mutated)))
    try:
        items = read_evidence(bytes(mutated[:cut]))
    except ImageDecodeError:
        return
    assert all(item.points_to in ("ai", "real", "unknown") for item in items)


def test_manifest_evidence_from_a_reader_store():
    store = {
        "active_manifest": "m1",
        "manifests": {
            "m1": {
                "claim_generator_info": [{"name": "ChatGPT", "version": "1"}],
                "signature_info": {"issuer": "OpenAI", "common_name": "Truepic Lens CLI in Sora"},
                "assertions": [
                    {
                        "label": "c2pa.actions.v2",
                        "data": {
                            "actions": [
                                {
                                    "action": "c2pa.created",
                                    "digitalSourceType": f"{IPTC}trainedAlgorithmicMedia",
                                }
                            ]
                        },
                    }
                ],
            }
        },
        "validation_state": "Valid",
        "validation_status": [{"code": "signingCredential.untrusted"}],
    }
    evidence = found(manifest_evidence(store))
    assert evidence[("c2pa", "claim_generator")] == ("ChatGPT 1", "ai", "medium")
    assert evidence[("c2pa", "signer")] == ("Truepic Lens CLI in Sora, OpenAI", "unknown", "none")
    assert evidence[("c2pa", "validation_state")] == ("Valid; signingCredential.untrusted", "unknown", "none")
    assert evidence[("c2pa", "c2pa.created digitalSourceType")][1:] == ("ai", "strong")
    assert manifest_evidence({}) == [manifest_evidence({})[0]]  # only "validation_state: unknown"


def test_c2pa_manifest_is_read_with_the_extra():
    c2pa = pytest.importorskip("c2pa", reason="the `c2pa` extra (c2pa-python) is not installed")
    evidence = found(read_evidence(signed_jpeg(c2pa)))
    assert evidence[("c2pa", "claim_generator")] == ("Adobe Firefly 2.0", "ai", "medium")
    assert evidence[("c2pa", "signer")][0] == "test signer, fakelens tests"
    assert evidence[("c2pa", "validation_state")][0].startswith("Valid")
    assert "signingCredential.untrusted" in evidence[("c2pa", "validation_state")][0]
    assert evidence[("c2pa", "c2pa.created digitalSourceType")][1:] == ("ai", "strong")


def test_records_carry_evidence_only_when_asked():
    record = Prediction("x.png", "ai", 0.9, "seed")
    assert "evidence" not in record.to_dict()
    attached = with_evidence(record, png_with_text({"parameters": SD_PARAMETERS}))
    assert attached.ai_probability == 0.9  # beside the score, never merged into it
    assert [e["key"] for e in attached.to_dict()["evidence"]] == ["parameters"]
    assert with_evidence(record, b"garbage").evidence == []


def test_predict_and_scan_with_evidence(tmp_path):
    folder = evidence_folder(tmp_path / "in")
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(folder / "sd.png"), "-m", "seed", "--json", "--evidence"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["evidence"][0]["key"] == "parameters"
    plain = runner.invoke(app, ["predict", str(folder / "sd.png"), "-m", "seed", "--json"])
    assert "evidence" not in json.loads(plain.output)

    out = tmp_path / "r.csv"
    result = runner.invoke(app, ["scan", str(folder), "--out", str(out), "-m", "seed", "-q", "--evidence"])
    assert result.exit_code == 1  # the broken file
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(out.open())}
    assert [e["key"] for e in json.loads(rows["sd.png"]["evidence"])] == ["parameters"]
    assert {e["points_to"] for e in json.loads(rows["camera.jpg"]["evidence"])} >= {"real"}
    assert json.loads(rows["broken.png"]["evidence"]) == [] and rows["broken.png"]["error"]
    jsonl = tmp_path / "r.jsonl"
    runner.invoke(app, ["scan", str(folder), "--out", str(jsonl), "-m", "seed", "-q", "--evidence"])
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert all(isinstance(r["evidence"], list) for r in records)
    mismatched = runner.invoke(app, ["scan", str(folder), "--out", str(out), "-m", "seed", "-q"])
    assert mismatched.exit_code == 2 and "written with --evidence" in mismatched.output
    runner.invoke(app, ["scan", str(folder), "--out", str(out), "-m", "seed", "-q", "--fresh"])
    assert out.read_text().splitlines()[0] == "path,label,ai_probability,model,error,size,modified"
