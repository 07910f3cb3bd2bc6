"""Images whose metadata says how they were made: camera EXIF, generator PNG text, IPTC source
types in XMP, a signed C2PA manifest. Shared by the metadata, declaration and report tests."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import numpy as np
from conftest import encode, random_image
from PIL import Image, PngImagePlugin

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SD_PARAMETERS = (
    "a photo of a cat on a sofa\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model: v1-5-pruned-emaonly"
)


def png_with_text(chunks: dict[str, str], array: np.ndarray | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return encode(random_image(0) if array is None else array, "PNG", pnginfo=info)


def camera_jpeg() -> bytes:
    exif = Image.Exif()
    exif[271], exif[272], exif[305] = "Canon", "Canon EOS 5D Mark IV", "Adobe Lightroom 7.0"
    details = exif.get_ifd(0x8769)
    details[42036], details[36867] = "EF24-70mm f/2.8L II USM", "2023:05:01 10:11:12"
    return encode(random_image(0), "JPEG", exif=exif)


def xmp(source_type: str, element: bool = False) -> bytes:
    field = (
        f"<Iptc4xmpExt:DigitalSourceType>{IPTC}{source_type}</Iptc4xmpExt:DigitalSourceType>"
        if element
        else ""
    )
    attribute = "" if element else f' Iptc4xmpExt:DigitalSourceType="{IPTC}{source_type}"'
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        f' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Midjourney"{attribute}>{field}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def signed_jpeg(c2pa) -> bytes:
    """A JPEG with a C2PA manifest signed by a throwaway certificate chain (CA + signer)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fakelens tests"),
            ]
        )

    def certificate(subject, issuer, key, signing_key, ca: bool) -> x509.Certificate:
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = dict.fromkeys(
            [
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ],
            False,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name("test CA"), name("test CA"), ca_key, ca_key, ca=True)
    leaf = certificate(name("test signer"), ca.subject, key, ca_key, ca=False)
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None))
    manifest = {
        "claim_generator_info": [{"name": "Adobe Firefly", "version": "2.0"}],
        "title": "generated.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": f"{IPTC}trainedAlgorithmicMedia"}
                    ]
                },
            }
        ],
    }
    signed = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(encode(random_image(0), "JPEG")), signed)
    return signed.getvalue()


def evidence_folder(folder: Path) -> Path:
    """`folder` holding a generator's PNG (`sd.png`), a camera JPEG (`camera.jpg`) and a PNG
    with nothing after its signature (`broken.png`)."""
    folder.mkdir()
    (folder / "sd.png").write_bytes(png_with_text({"parameters": SD_PARAMETERS}))
    (folder / "camera.jpg").write_bytes(camera_jpeg())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder
