"""C2PA (Content Credentials) manifests, read with `c2pa-python` (the `c2pa` extra).

A manifest is signed, so unlike EXIF it cannot be edited unnoticed, but it can be removed,
and a valid signature only says who signed, not that the signer told the truth. We report
the claim generator, the signer, the validation state and any declared digital source types.
Without the extra installed, C2PA is not read (`c2pa_available()` says so).
"""

from __future__ import annotations

import io
import json
from functools import cache
from typing import Any

from fakelens.evidence.finding import Evidence, clip, software_evidence, source_type_evidence

#: The label of the JUMBF box that holds C2PA manifests, present in any file that embeds one.
_JUMBF_LABEL = b"c2pa"
#: The longest action name kept in a finding's key (keys are short; the name is the signer's text).
_MAX_ACTION_CHARS = 80


@cache
def _c2pa() -> Any:
    try:
        import c2pa
    except ImportError:
        return None
    return c2pa


def c2pa_available() -> bool:
    return _c2pa() is not None


def c2pa_evidence(raw: bytes, mime: str | None) -> list[Evidence]:
    """Findings from the active C2PA manifest of a file's bytes; [] when there is none."""
    c2pa = _c2pa()
    if c2pa is None or _JUMBF_LABEL not in raw:  # no embedded manifest: skip the reader's cost
        return []
    if mime is None or mime not in c2pa.Reader.get_supported_mime_types():
        return []
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(raw))
        if reader is None:
            return []
        with reader:
            store = json.loads(reader.json())
    except (c2pa.C2paError, ValueError, OSError) as exc:
        return [Evidence("c2pa", "manifest", clip(f"present but unreadable: {exc}"), "unknown", "none")]
    return manifest_evidence(store)


def manifest_evidence(store: dict[str, Any]) -> list[Evidence]:
    """Evidence from a manifest store as `c2pa.Reader.json()` returns it."""
    manifest = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    found = []
    generator = _claim_generator(manifest)
    if generator:
        found.append(software_evidence("c2pa", "claim_generator", generator))
    signature = manifest.get("signature_info") or {}
    signer = ", ".join(str(signature[k]) for k in ("common_name", "issuer") if signature.get(k))
    if signer:
        found.append(Evidence("c2pa", "signer", clip(signer), "unknown", "none"))
    state = store.get("validation_state") or "unknown"
    problems = [str(s.get("code")) for s in store.get("validation_status") or [] if isinstance(s, dict)]
    value = f"{state}; {', '.join(problems)}" if problems else str(state)
    found.append(Evidence("c2pa", "validation_state", clip(value), "unknown", "none"))
    found += [
        source_type_evidence(
            "c2pa",
            f"{clip(str(action.get('action', 'action')), _MAX_ACTION_CHARS)} digitalSourceType",
            source,
        )
        for action in _actions(manifest)
        if isinstance(source := action.get("digitalSourceType"), str)
    ]
    return found


def _claim_generator(manifest: dict[str, Any]) -> str:
    infos = manifest.get("claim_generator_info") or []
    named = [
        " ".join(str(info[k]) for k in ("name", "version") if info.get(k))
        for info in infos
        if isinstance(info, dict)
    ]
    return "; ".join(n for n in named if n) or str(manifest.get("claim_generator") or "")


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    actions = []
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
            listed = (assertion.get("data") or {}).get("actions") or []
            actions += [a for a in listed if isinstance(a, dict)]
    return actions
