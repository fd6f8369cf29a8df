"""Clips cut with real ffmpeg from real originals: padding, clamping, merging, content, hashes, evidence integrity,
changed and missing originals, reuse, removal, and the path guard the review app relies on."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bwc.audio import SAMPLE_RATE, probe, read_pcm, sha256_file
from bwc.clips import ClipSummary, clip_id, clip_path, cut_clips, merge_spans
from bwc.config import ClipsConfig
from bwc.records import Recording
from bwc.store import Store, recording_row
from tests.conftest import dominant_frequency, encode, tone

RATE = 48_000  # originals' sample rate
SEGMENT_S = 2.0  # the long original's tone changes frequency every SEGMENT_S seconds
SEGMENTS = 10  # so it lasts 20 s
CONFIG = ClipsConfig(pad_before_s=1.0, pad_after_s=0.5, merge_gap_s=1.0, video=True)
TOLERANCE_S = 0.1  # clip durations vs the padded, clamped, merged spans


def frequency_at(seconds: float) -> float:
    """The long original's tone frequency at ``seconds``: 300 Hz, 400 Hz, ... 1200 Hz in 2 s steps."""
    return 300.0 + 100.0 * int(seconds // SEGMENT_S)


@dataclass
class Fixture:
    store: Store
    long: Path  # 20 s WAV, stepped tone: flags poor (three merged clips) and exemplary (one, clamped at the end)
    video: Path  # 6 s MP4 with a picture: flagged poor, yields an audio and a video clip
    changed: Path  # registered, then a byte appended
    missing: Path  # registered, then deleted
    ids: dict[str, str]  # name -> recording id


def span(utterance_id: str, recording_id: str | None, start: float | None, end: float | None) -> dict[str, Any]:
    return {"utterance_id": utterance_id, "recording_id": recording_id, "turn": 1, "start": start, "end": end,
            "why": "test"}  # fmt: skip


def flag_row(encounter_id: str, flag: str, recording_id: str | None, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"encounter_id": encounter_id, "flag": flag, "recording_id": recording_id, "spans": json.dumps(spans),
            "score": 2.0, "percentile": 95.0, "reasons": "test", "flagged_at": datetime.now(UTC)}  # fmt: skip


def register(store: Store, path: Path) -> str:
    """Write a recordings row for ``path`` as ingest would."""
    sha256 = sha256_file(path)
    recording = Recording(sha256[:16], str(path), sha256, path.stat().st_size, probe(path))
    row = recording_row(recording) | {"speech_s": 1.0, "language": "en", "n_speakers": 2,
                                      "processed_at": datetime.now(UTC)}  # fmt: skip
    store.write_rows("recordings", f"part-{recording.recording_id}", [row])
    return recording.recording_id


def long_flags(rid: str) -> list[dict[str, Any]]:
    poor = [span("a-1", rid, 0.3, 1.0), span("a-2", rid, 2.0, 2.5),  # overlap once padded: one clip from 0 s
            span("a-3", rid, 7.0, 7.3), span("a-4", rid, 9.0, 9.2),  # 0.2 s apart once padded: one clip
            span("a-5", rid, 12.0, 13.0)]  # fmt: skip
    exemplary = [span("a-9", rid, 19.0, 19.8)]  # padded past the end: clamped at 20 s
    return [flag_row(rid, "poor", rid, poor), flag_row(rid, "exemplary", rid, exemplary)]


def build(root: Path) -> Fixture:
    originals = root / "originals"
    originals.mkdir()
    stepped = np.concatenate([tone(SEGMENT_S, frequency_at(k * SEGMENT_S), RATE) for k in range(SEGMENTS)])
    long = encode(originals / "long.wav", stepped, RATE, "-c:a", "pcm_s16le")
    video = encode(originals / "stop.mp4", tone(6.0, 500.0, RATE, 2), RATE, "-c:a", "aac", video=True)
    changed = encode(originals / "changed.wav", tone(4.0, 700.0, RATE), RATE, "-c:a", "pcm_s16le")
    missing = encode(originals / "missing.wav", tone(4.0, 800.0, RATE), RATE, "-c:a", "pcm_s16le")
    store = Store(root / "store")
    ids = {name: register(store, path) for name, path in
           [("long", long), ("video", video), ("changed", changed), ("missing", missing)]}  # fmt: skip
    with open(changed, "ab") as handle:  # tampering after ingest
        handle.write(b"\0")
    missing.unlink()
    for path in (long, video):
        path.chmod(0o444)  # as evidence stores keep them (root ignores it, so the hashes and mtimes are what's checked)
    rows = [
        *long_flags(ids["long"]),
        flag_row(ids["video"], "poor", ids["video"], [span("v-1", ids["video"], 2.0, 3.0)]),
        flag_row(ids["changed"], "poor", ids["changed"], [span("c-1", ids["changed"], 1.0, 2.0)]),
        flag_row(ids["missing"], "exemplary", ids["missing"], [span("m-1", ids["missing"], 1.0, 2.0)]),
        # An encounter scored from a transcript table: no times, no recording, no clips and no failure.
        flag_row("table-7", "poor", None, [span("t-3", None, None, None)]),
    ]
    store.write_rows("flags", "part-current", rows)
    return Fixture(store, long, video, changed, missing, ids)


def ffprobe(path: Path) -> dict[str, Any]:
    command = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    return json.loads(subprocess.run(command, capture_output=True, check=True).stdout)


def clip_rows(store: Store) -> list[dict[str, Any]]:
    return store.read_rows("clips")


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> tuple[Fixture, ClipSummary, dict[str, tuple[int, str]]]:
    """One store, cut once; the originals' mtimes and hashes as they were before cutting."""
    fixture = build(tmp_path_factory.mktemp("clips"))
    before = {str(p): (p.stat().st_mtime_ns, sha256_file(p)) for p in (fixture.long, fixture.video, fixture.changed)}
    summary = cut_clips(fixture.store, CONFIG)
    return fixture, summary, before


def test_clips_cover_the_padded_clamped_merged_spans(cut: tuple[Fixture, ClipSummary, Any]) -> None:
    fixture, summary, _ = cut
    rows = clip_rows(fixture.store)
    long_id, video_id = fixture.ids["long"], fixture.ids["video"]
    got = sorted((r["recording_id"], r["flag"], r["kind"], r["start"], r["end"], json.loads(r["utterance_ids"]))
                 for r in rows)  # fmt: skip
    assert got == sorted([
        (long_id, "poor", "audio", 0.0, 3.0, ["a-1", "a-2"]),  # padding clamped at 0 s; overlapping spans merged
        (long_id, "poor", "audio", 6.0, 9.7, ["a-3", "a-4"]),  # closer than merge_gap_s: merged
        (long_id, "poor", "audio", 11.0, 13.5, ["a-5"]),
        (long_id, "exemplary", "audio", 18.0, 20.0, ["a-9"]),  # clamped at the recording's end
        (video_id, "poor", "audio", 1.0, 3.5, ["v-1"]),
        (video_id, "poor", "video", 1.0, 3.5, ["v-1"]),
    ])  # fmt: skip
    assert (summary.written, summary.reused, summary.rows, summary.verified) == (6, 0, 6, 4)

    for row in rows:
        path = clip_path(fixture.store, row)
        assert row["file"] == f"clips/_files/{row['clip_id']}{'.ogg' if row['kind'] == 'audio' else '.mp4'}"
        assert row["clip_id"] == clip_id(row["recording_id"], row["start"], row["end"], row["kind"])
        info = ffprobe(path)
        streams = {s["codec_type"]: s for s in info["streams"]}
        length = row["end"] - row["start"]
        assert float(streams["audio"]["duration"]) == pytest.approx(length, abs=TOLERANCE_S)
        if row["kind"] == "audio":
            assert float(info["format"]["duration"]) == pytest.approx(length, abs=TOLERANCE_S)
            assert info["format"]["format_name"] == "ogg"
            assert set(streams) == {"audio"} and streams["audio"]["codec_name"] == "opus"
            assert streams["audio"]["channels"] == 1
        else:
            assert "mp4" in info["format"]["format_name"]
            assert streams["video"]["codec_name"] == "h264" and streams["video"]["pix_fmt"] == "yuv420p"
            assert streams["audio"]["codec_name"] == "aac"
            # Frames starting before the end are kept whole, so the picture may run up to one frame longer.
            numerator, denominator = streams["video"]["avg_frame_rate"].split("/")
            frame_s = int(denominator) / int(numerator)
            assert length - TOLERANCE_S <= float(streams["video"]["duration"]) <= length + frame_s + TOLERANCE_S
        assert row["sha256"] == sha256_file(path)
        assert row["size_bytes"] == path.stat().st_size
        original = fixture.long if row["recording_id"] == long_id else fixture.video
        assert row["original_path"] == str(original)
        assert row["original_sha256"] == sha256_file(original)
        assert row["created_at"] is not None


def test_clip_content_is_the_original_at_that_time(cut: tuple[Fixture, ClipSummary, Any]) -> None:
    """The stepped tone tells where in the original a stretch of clip came from, to within a few tenths of a second."""
    fixture, _, _ = cut
    rows = [r for r in clip_rows(fixture.store) if r["recording_id"] == fixture.ids["long"]]
    assert len(rows) == 4
    half = int(0.2 * SAMPLE_RATE)
    checked = 0
    for row in rows:
        audio = read_pcm(clip_path(fixture.store, row))
        for original_s in np.arange(row["start"] + 0.3, row["end"] - 0.3, 0.25):
            if abs(original_s - SEGMENT_S * round(original_s / SEGMENT_S)) < 0.35:
                continue  # too close to a frequency step to tell
            centre = int((original_s - row["start"]) * SAMPLE_RATE)
            window = audio[centre - half : centre + half]
            assert dominant_frequency(window) == pytest.approx(frequency_at(original_s), abs=10.0), (row, original_s)
            checked += 1
    assert checked > 20

    # Where the tone steps within a clip pins down the cut to a few hundredths of a second (accurate seeking).
    window, hop = int(0.05 * SAMPLE_RATE), int(0.01 * SAMPLE_RATE)
    steps_checked = 0
    for row in rows:
        audio = read_pcm(clip_path(fixture.store, row))
        centres = np.arange(0, len(audio) - window, hop)
        track = np.array([dominant_frequency(audio[i : i + window]) for i in centres])
        for step_s in np.arange(SEGMENT_S, SEGMENTS * SEGMENT_S, SEGMENT_S):
            if not row["start"] + 0.2 < step_s < row["end"] - 0.2:
                continue
            halfway = (frequency_at(step_s - 0.1) + frequency_at(step_s)) / 2
            first_above = (centres[np.argmax(track >= halfway)] + window / 2) / SAMPLE_RATE
            assert first_above == pytest.approx(step_s - row["start"], abs=0.03), (row, step_s)
            steps_checked += 1
    assert steps_checked == 3  # at 2 s, 8 s and 12 s of the original
    video_audio = read_pcm(clip_path(fixture.store, next(r for r in clip_rows(fixture.store) if r["kind"] == "video")))
    assert dominant_frequency(video_audio[SAMPLE_RATE // 4 : -SAMPLE_RATE // 4]) == pytest.approx(500.0, abs=5.0)


def test_originals_are_untouched(cut: tuple[Fixture, ClipSummary, dict[str, tuple[int, str]]]) -> None:
    _, _, before = cut
    for path, (mtime_ns, sha256) in before.items():
        assert Path(path).stat().st_mtime_ns == mtime_ns
        assert sha256_file(path) == sha256


def test_changed_and_missing_originals_fail_loudly_and_alone(cut: tuple[Fixture, ClipSummary, Any]) -> None:
    fixture, summary, _ = cut
    reasons = {failure.path: failure for failure in summary.failures}
    assert set(reasons) == {str(fixture.changed), str(fixture.missing)}
    changed = reasons[str(fixture.changed)]
    assert changed.stage == "clips"
    assert changed.reason.startswith("the original changed since ingest (sha256 ")
    assert changed.reason.endswith("no clips cut from it")
    assert changed.sha256 == sha256_file(fixture.changed)
    assert f"recorded {fixture.ids['changed'][:12]}" in changed.reason
    assert reasons[str(fixture.missing)].reason == f"the original is missing: {fixture.missing}"
    recordings_with_clips = {row["recording_id"] for row in clip_rows(fixture.store)}
    assert recordings_with_clips == {fixture.ids["long"], fixture.ids["video"]}


def test_second_call_reuses_and_removed_flags_lose_their_clips(tmp_path: Path) -> None:
    fixture = build(tmp_path)
    first = cut_clips(fixture.store, CONFIG)
    assert first.written == 6
    rows = {row["clip_id"]: row for row in clip_rows(fixture.store)}
    mtimes = {cid: clip_path(fixture.store, row).stat().st_mtime_ns for cid, row in rows.items()}

    again = cut_clips(fixture.store, CONFIG)
    assert (again.written, again.reused, again.removed, again.rows) == (0, 6, 0, 6)
    assert {row["clip_id"]: row for row in clip_rows(fixture.store)} == rows  # created_at and hashes kept
    assert {cid: clip_path(fixture.store, row).stat().st_mtime_ns for cid, row in rows.items()} == mtimes
    assert len(again.failures) == 2  # the changed and missing originals are still reported

    # Recomputed flags without the exemplary flag: its row and file go; the others stay as they were.
    flags = [row for row in fixture.store.read_rows("flags") if row["flag"] != "exemplary"]
    fixture.store.write_rows("flags", "part-current", flags)
    (gone,) = [row for row in rows.values() if row["flag"] == "exemplary"]
    third = cut_clips(fixture.store, CONFIG)
    assert (third.written, third.reused, third.removed, third.rows) == (0, 5, 1, 5)
    assert {row["clip_id"] for row in clip_rows(fixture.store)} == set(rows) - {gone["clip_id"]}
    assert not (fixture.store.root / gone["file"]).exists()
    assert sorted(p.name for p in (fixture.store.root / "clips" / "_files").iterdir()) == sorted(
        Path(row["file"]).name for row in rows.values() if row is not gone
    )

    # A clip file that no longer matches its recorded hash is cut again, not served.
    victim = next(iter(row for row in rows.values() if row is not gone))
    path = clip_path(fixture.store, victim)
    path.write_bytes(b"not the clip")
    fourth = cut_clips(fixture.store, CONFIG)
    assert (fourth.written, fourth.reused) == (1, 4)
    assert sha256_file(path) == next(r for r in clip_rows(fixture.store) if r["clip_id"] == victim["clip_id"])["sha256"]


def test_the_same_span_gives_the_same_bytes(tmp_path: Path) -> None:
    """Cut twice from scratch, a clip has the same id and the same hash (-bitexact): recomputing never duplicates."""
    hashes = []
    for name in ("one", "two"):
        root = tmp_path / name
        root.mkdir()
        fixture = build(root)
        cut_clips(fixture.store, CONFIG)
        hashes.append({(r["clip_id"], r["sha256"]) for r in clip_rows(fixture.store)})
    assert hashes[0] == hashes[1]


def test_clip_path_refuses_files_outside_the_clips_folder(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    good = {"clip_id": "0123456789abcdef", "file": "clips/_files/0123456789abcdef.ogg"}
    assert clip_path(store, good) == (store.root / "clips" / "_files" / "0123456789abcdef.ogg").resolve()
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (store.root / "clips" / "_files").mkdir(parents=True)
    (store.root / "clips" / "_files" / "fedcba9876543210.ogg").symlink_to(outside)
    for file in ("../../etc/passwd", "/etc/passwd", str(store.root / "clips/_files/0123456789abcdef.ogg"),
                 "clips/_files/../../recordings/part-x.parquet", "clips/part-current.parquet", "",
                 "clips/_files/fedcba9876543210.ogg"):  # fmt: skip
        with pytest.raises(ValueError):
            clip_path(store, {"clip_id": "x", "file": file})


def test_merge_spans_boundaries() -> None:
    config = ClipsConfig(pad_before_s=1.0, pad_after_s=1.0, merge_gap_s=0.5)
    # Padded: [1, 4] and [4.4, 7] are 0.4 s apart (merged); [7.6, 10] is 0.6 s after (kept apart).
    spans = merge_spans([(5.4, 6.0, "b"), (2.0, 3.0, "a"), (8.6, 9.0, "c")], None, config)
    assert [(s.start, s.end, s.utterance_ids) for s in spans] == [(1.0, 7.0, ("a", "b")), (7.6, 10.0, ("c",))]
    assert merge_spans([(30.0, 31.0, "late")], 20.0, config) == []  # wholly past the end: nothing to cut
    assert merge_spans([(1.0, 2.0, "x"), (1.5, 1.8, "x")], 20.0, config)[0].utterance_ids == ("x",)
