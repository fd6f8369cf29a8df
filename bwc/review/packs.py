"""Exemplar packs: the clips of chosen encounters, their transcript excerpts and a manifest, in one zip for training.

A pack is written into the store (``STORE/exports/<pack_id>.zip``) before it is handed out, so what left the
building can be shown later: the audit log records the pack's SHA-256, and the manifest records every clip's
SHA-256 and the SHA-256 of the original it was cut from.

Example
-------
>>> pack = build_pack(data, ["3f2a…"], notes={"3f2a…": "textbook introduction"}, username="avery")  # doctest: +SKIP
>>> pack.path.name                                                                                     # doctest: +SKIP
'pack-20261122T101500Z-3f9c1a2b.zip'
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bwc.audio import sha256_file
from bwc.review.data import ReviewData

EXPORTS_DIR = "exports"  # inside the store


class PackError(RuntimeError):
    """A pack that cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Pack:
    """A written exemplar pack."""

    pack_id: str  # "pack-<UTC time>-<random>"
    path: Path  # STORE/exports/<pack_id>.zip
    sha256: str  # of the zip
    encounter_ids: tuple[str, ...]  # what it holds
    n_clips: int  # clip files inside


def build_pack(data: ReviewData, encounter_ids: list[str], notes: dict[str, str], username: str) -> Pack:
    """Write a pack of ``encounter_ids`` (their clips, excerpts and a manifest); raises :class:`PackError`."""
    if not encounter_ids:
        raise PackError("choose at least one encounter for the pack")
    created = datetime.now(UTC)
    pack_id = f"pack-{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    folder = data.store.root / EXPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pack_id}.zip"
    temporary = folder / f".{pack_id}.zip.tmp"
    items: list[dict[str, Any]] = []
    n_clips = 0
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for encounter_id in dict.fromkeys(encounter_ids):
                view = data.encounter(encounter_id)
                clips = []
                for clip in view.clips:
                    source = data.clip_file(clip)
                    if sha256_file(source) != clip["sha256"]:  # a clip altered on disk must not go out as evidence
                        raise PackError(f"clip {clip['clip_id']} no longer matches its recorded SHA-256")
                    name = f"clips/{encounter_id}/{clip['clip_id']}{source.suffix}"
                    archive.write(source, name, compress_type=zipfile.ZIP_STORED)  # already compressed media
                    n_clips += 1
                    clips.append(
                        {
                            "file": name,
                            "kind": clip["kind"],
                            "start_s": round(float(clip["start"]), 3),
                            "end_s": round(float(clip["end"]), 3),
                            "sha256": clip["sha256"],
                            "original_sha256": clip["original_sha256"],
                            "utterance_ids": json.loads(clip["utterance_ids"] or "[]"),
                        }
                    )
                excerpt_name = f"transcripts/{encounter_id}.txt"
                archive.writestr(excerpt_name, excerpt(view))
                items.append(
                    {
                        "encounter_id": encounter_id,
                        "recording_id": view.recording["recording_id"] if view.recording else None,
                        "officer_id": view.score["officer_id"] if view.score else None,
                        "recorded_at": str(view.score["recorded_at"]) if view.score else None,
                        "note": notes.get(encounter_id, ""),
                        "flags": [
                            {
                                "flag": row["flag"],
                                "score": row["score"],
                                "percentile": row["percentile"],
                                "reasons": row["reasons"],
                                "model_version": row["model_version"],
                            }
                            for row in view.flags
                        ],
                        "transcript_excerpt": excerpt_name,
                        "clips": clips,
                    }
                )
            manifest = {
                "pack_id": pack_id,
                "created_at": created.isoformat(),
                "created_by": username,
                "store": str(data.store.root),
                "encounters": items,
            }
            archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False, default=str))
        digest = sha256_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return Pack(pack_id, path, digest, tuple(dict.fromkeys(encounter_ids)), n_clips)


def excerpt(view: Any) -> str:
    """The flagged stretches of the transcript as a trainer reads them: time, role, words, respect, acts."""
    spans = {span["utterance_id"] for row in view.flags for span in row["spans"] if span.get("utterance_id")}
    turns = {span.get("turn") for row in view.flags for span in row["spans"]}
    lines = [f"Encounter {view.encounter_id}"]
    for row in view.flags:
        lines.append(f"{row['flag']} (percentile {row['percentile']:.0f}): {row['reasons']}")
    lines.append("")
    for utterance in view.utterances:
        flagged = utterance.get("utterance_id") in spans or utterance.get("turn") in turns
        stamp = clock(utterance.get("start"))
        respect = f"  respect {utterance['respect']:+.2f}" if utterance.get("respect") is not None else ""
        acts = f"  [{', '.join(sorted(utterance['acts']))}]" if utterance.get("acts") else ""
        marker = "» " if flagged else "  "
        lines.append(f"{marker}{stamp} {utterance['role']:<9} {utterance['text']}{respect}{acts}")
    return "\n".join(lines) + "\n"


def clock(seconds: float | None) -> str:
    """``h:mm:ss`` (or ``--:--`` when the time is unknown)."""
    if seconds is None or seconds != seconds:
        return "--:--"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
