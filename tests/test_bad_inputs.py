"""Robustness and chain of custody: a corpus of bad inputs through ``bwc run`` beside good files, with the network
and writes to the intake made to fail; originals byte-identical afterwards; custody logs that verify, and that fail
verification once tampered with; the limits in the configuration.

The corpus run goes through Ray (the default executor) with the tiny checkpoints. Every case must end processed, or
in ``STORE/failures`` with its specific reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from bwc.audio import SAMPLE_RATE, sha256_file, write_audio
from bwc.catalog import Catalog
from bwc.config import load_config, setting_overrides
from bwc.custody import CustodyLog
from bwc.demo import Line, render_scene, write_video
from bwc.ingest import MetadataTable, ingest_file
from pipelines.run import verify_originals
from pipelines.speech import SpeechStage
from tests.conftest import encode

pytestmark = pytest.mark.slow

GUARD = Path(__file__).parent / "guard"  # sitecustomize.py: network and intake writes fail, attempts recorded
VICTIM = "zz-deleted-mid-run.wav"  # sorts last: speech reaches it well after the test has deleted it
MAX_DURATION_S = 3700.0  # the hour of silence fits; too-long.flac does not
MAX_FILE_SIZE = "20 MB"  # too-big.wav (24 MB) is over it
# Expected failures: file name -> (stage, what the reason must say).
EXPECTED_FAILURES = {
    "empty.wav": ("ingest", "empty file (0 bytes)"),
    "random-bytes.wav": ("ingest", "not a readable audio/video file"),
    "notes.mp4": ("ingest", "not a readable audio/video file"),
    "no-audio-track.mp4": ("ingest", "file has no audio stream"),
    "truncated.mp4": ("ingest", "moov atom not found"),
    "truncated.mp3": ("speech", "truncated or damaged: its container says"),
    "truncated-faststart.mp4": ("speech", "truncated or damaged: its container says"),
    "unreadable.wav": ("ingest", "permission denied: cannot read unreadable.wav"),
    "loop-a.wav": ("ingest", "symbolic link loop: loop-a.wav -> loop-b.wav"),
    "loop-b.wav": ("ingest", "symbolic link loop: loop-b.wav -> loop-a.wav"),
    "dangling.wav": ("ingest", "broken symbolic link: dangling.wav -> gone.wav does not exist"),
    "camera-pipe.mp4": ("ingest", "not a regular file (a named pipe): not read"),
    "too-long.flac": ("ingest", "over the configured maximum 3700 s (run.max_duration_s)"),
    "too-big.wav": ("ingest", "size 24.0 MB is over the configured maximum 20.0 MB (run.max_file_size)"),
    VICTIM: ("speech", "the original disappeared after ingest"),
}
# Files made from the same scene that must be processed, and their speech found, whatever their format.
SPEECH_FILES = (
    "reference.wav", "ulaw-8k.wav", "six-channel-48k.wav", "pcm24.wav", "float32.wav", "nan-inf.wav",
    """stop 7 "quoted" o'brien – café ü.wav""", "dup b.wav",
)  # fmt: skip


def scene() -> np.ndarray:
    audio, _ = render_scene(
        [
            Line("officer", "Good evening. The reason I stopped you is your brake light.", 0.0),
            Line("civilian", "Oh, thank you officer. I did not know.", 0.8),
        ],
        lead_in_s=2.0,
        tail_s=2.0,
        seed=11,
    )
    return audio


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def make_corpus(intake: Path) -> None:
    """Every case of the issue, generated (nothing downloaded)."""
    audio = scene()
    encode(intake / "reference.wav", audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
    # Formats a camera or an export may produce.
    encode(intake / "ulaw-8k.wav", audio, SAMPLE_RATE, "-c:a", "pcm_mulaw", "-ar", "8000")
    six = np.repeat(audio[:, None], 6, axis=1) * np.array([1.0, 0.9, 0.8, 0.5, 0.3, 0.2], dtype=np.float32)
    encode(intake / "six-channel-48k.wav", six, SAMPLE_RATE, "-c:a", "pcm_s16le", "-ar", "48000")
    encode(intake / "pcm24.wav", audio, SAMPLE_RATE, "-c:a", "pcm_s24le")
    encode(intake / "float32.wav", audio, SAMPLE_RATE, "-c:a", "pcm_f32le")
    poisoned = audio.copy()
    poisoned[SAMPLE_RATE : SAMPLE_RATE + 400] = np.nan
    poisoned[2 * SAMPLE_RATE : 2 * SAMPLE_RATE + 50] = np.inf
    poisoned[3 * SAMPLE_RATE] = -np.inf
    encode(intake / "nan-inf.wav", poisoned, SAMPLE_RATE, "-c:a", "pcm_f32le")
    encode(intake / """stop 7 "quoted" o'brien – café ü.wav""", audio * 0.9, SAMPLE_RATE, "-c:a", "pcm_s16le")
    # The same content under two names.
    encode(intake / "dup-a.wav", audio * 0.8, SAMPLE_RATE, "-c:a", "pcm_s16le")
    shutil.copy(intake / "dup-a.wav", intake / "dup b.wav")
    # An hour of digital silence (a muted camera), and a file over the duration limit.
    for name, rate, seconds, codec in (
        ("silence-1h.flac", 8000, 3600, "flac"), ("too-long.flac", 8000, 4000, "flac"),
        ("too-big.wav", 16000, 750, "pcm_s16le"),
    ):  # fmt: skip
        ffmpeg("-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=mono", "-t", str(seconds), "-c:a", codec, str(intake / name))
    # Broken files.
    (intake / "empty.wav").touch()
    (intake / "random-bytes.wav").write_bytes(np.random.default_rng(5).bytes(64_000))
    (intake / "notes.mp4").write_text("Shift notes, not a video.\n" * 40, encoding="utf-8")
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=5", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(intake / "no-audio-track.mp4"))  # fmt: skip
    encode(intake / "truncated.mp3", audio, SAMPLE_RATE, "-c:a", "libmp3lame")
    truncate(intake / "truncated.mp3", 0.5)
    write_video(intake / "truncated.mp4", audio)  # moov atom at the end: cut, the file has no index
    truncate(intake / "truncated.mp4", 0.5)
    write_video(intake / "truncated-faststart.mp4", audio)
    ffmpeg("-i", str(intake / "truncated-faststart.mp4"), "-c", "copy", "-movflags", "+faststart",
           str(intake / "faststart.tmp.mp4"))  # fmt: skip
    (intake / "faststart.tmp.mp4").replace(intake / "truncated-faststart.mp4")
    truncate(intake / "truncated-faststart.mp4", 0.5)
    encode(intake / "unreadable.wav", audio * 0.7, SAMPLE_RATE, "-c:a", "pcm_s16le")
    (intake / "unreadable.wav").chmod(0)
    # Links: a file loop, a dangling link, and a folder linking back to the intake.
    os.symlink("loop-b.wav", intake / "loop-a.wav")
    os.symlink("loop-a.wav", intake / "loop-b.wav")
    os.symlink("gone.wav", intake / "dangling.wav")
    os.symlink(".", intake / "folder-loop")
    os.mkfifo(intake / "camera-pipe.mp4")  # opening it for reading would wait for a writer forever
    encode(intake / VICTIM, audio * 0.6, SAMPLE_RATE, "-c:a", "pcm_s16le")


def unprivileged(command: list[str]) -> list[str]:
    """``command`` without the root's power to read any file, so that a mode-000 file is unreadable as in production
    (CI runs as root). Where that cannot be arranged the unreadable case is left out by the caller."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", *command]


def can_drop_root_reads() -> bool:
    if os.geteuid() != 0:
        return True
    if shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(unprivileged(["true"]), capture_output=True, check=False)
    return probe.returncode == 0


def snapshot(intake: Path) -> dict[str, tuple[str, int, int]]:
    """SHA-256, size and modification time of every readable regular file of the intake."""
    found = {}
    for path in sorted(intake.iterdir()):
        if path.is_symlink() or not path.is_file() or path.name == "unreadable.wav":
            continue
        stat = path.stat()
        found[path.name] = (sha256_file(path), stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def corpus_run(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory):
    """The corpus through `bwc run` on Ray, guarded; the victim deleted once the run has ingested it."""
    intake, store = tmp_path_factory.mktemp("bad-intake"), tmp_path_factory.mktemp("bad-store")
    make_corpus(intake)
    if not can_drop_root_reads():
        (intake / "unreadable.wav").unlink()
    before = snapshot(intake)
    unreadable_hash = None
    if (intake / "unreadable.wav").exists():
        (intake / "unreadable.wav").chmod(0o600)
        unreadable_hash = sha256_file(intake / "unreadable.wav")
        (intake / "unreadable.wav").chmod(0)
    config = tmp_path_factory.mktemp("bad-config") / "site.yaml"
    config.write_text(
        f"run:\n  max_duration_s: {MAX_DURATION_S}\n  max_file_size: {MAX_FILE_SIZE}\n  max_processing_s: 600\n"
        "  speech_workers: 1\n  recordings_per_speech_call: 1\n  max_attempts: 5\n"
    )
    guard_log = store.parent / f"{store.name}-guard.jsonl"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYANNOTE_", "RAY_USAGE"))}
    env |= {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(GUARD), "BWC_GUARD_LOG": str(guard_log),
            "BWC_GUARD_INTAKE": str(intake)}  # fmt: skip
    command = [sys.executable, "-m", "bwc.cli", "run", str(intake), "--store", str(store), "--models",
               str(tiny_models), "--config", str(config), "--settle", "0"]  # fmt: skip
    process = subprocess.Popen(
        unprivileged(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    victim_log = store / "custody" / f"{sha256_file(intake / VICTIM)}.jsonl"
    deleted_at_entries, peak_rss = None, 0
    deadline = time.monotonic() + 900
    while process.poll() is None and time.monotonic() < deadline:
        if deleted_at_entries is None and victim_log.is_file():  # ingested: speech has not reached it yet
            deleted_at_entries = len(victim_log.read_text().splitlines())
            (intake / VICTIM).unlink()
        peak_rss = max(peak_rss, tree_rss(process.pid))
        time.sleep(0.2)
    stdout, stderr = process.communicate(timeout=60)
    return {
        "intake": intake,
        "store": store,
        "returncode": process.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "before": before,
        "unreadable_hash": unreadable_hash,
        "guard_log": guard_log,
        "deleted_at_entries": deleted_at_entries,
        "peak_rss": peak_rss,
    }


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants (Ray's workers included), bytes."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def failures_by_name(store: Path) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for row in pd.read_parquet(store / "failures").itertuples():
        found.setdefault(Path(row.path).name, []).append((row.stage, row.reason))
    return found


def test_every_bad_input_ends_with_its_specific_reason(corpus_run) -> None:
    store, stderr = corpus_run["store"], corpus_run["stderr"]
    assert corpus_run["deleted_at_entries"] == 1, "the victim was deleted after ingest, before speech reached it"
    assert corpus_run["returncode"] == 4, stderr[-3000:]  # 4: an original disappeared during the run (custody)
    assert "Traceback" not in stderr
    failures = failures_by_name(store)
    expected = dict(EXPECTED_FAILURES)
    if corpus_run["unreadable_hash"] is None:
        expected.pop("unreadable.wav")  # root that cannot drop its read-anything capability: case left out
    for name, (stage, reason) in expected.items():
        assert name in failures, f"{name} is not in STORE/failures: {sorted(failures)}"
        stages = {found_stage: found_reason for found_stage, found_reason in failures[name]}
        assert stage in stages and reason in stages[stage], (name, failures[name])
        assert all("\n" not in text and "Traceback" not in text for _, text in failures[name])
    assert set(failures) == set(expected), set(failures) ^ set(expected)
    # The deleted original is a custody alarm as well as a speech failure.
    assert "the original disappeared during the run" in dict(failures[VICTIM])["custody"]
    assert "deleted or moved before the end of the run" in dict(failures[VICTIM])["custody"]


def test_good_files_beside_them_are_complete(corpus_run) -> None:
    store = corpus_run["store"]
    recordings = pd.read_parquet(store / "recordings")
    by_name = {Path(path).name: row for path, row in zip(recordings.path, recordings.itertuples(), strict=True)}
    assert set(by_name) == {*SPEECH_FILES, "silence-1h.flac"}
    encounters = pd.read_parquet(store / "encounter_scores")
    assert set(encounters.recording_id) == set(recordings.recording_id)
    for row in recordings.itertuples():
        assert (store / "transcripts" / f"{row.recording_id}.vtt").is_file()
        assert (store / "diarization" / f"{row.recording_id}.rttm").is_file()
    # Every format decodes to the same scene: silero finds the same speech in each (μ-law and 8 kHz lose a little).
    reference = by_name["reference.wav"].speech_s
    assert reference > 3.0
    for name in SPEECH_FILES:
        assert abs(by_name[name].speech_s - reference) < 1.0, (name, by_name[name].speech_s, reference)
    assert (by_name["six-channel-48k.wav"].channels, by_name["six-channel-48k.wav"].sample_rate) == (6, 48_000)
    assert (by_name["ulaw-8k.wav"].codec, by_name["ulaw-8k.wav"].sample_rate) == ("pcm_mulaw", 8000)
    silence = by_name["silence-1h.flac"]
    assert silence.duration_s == pytest.approx(3600.0) and silence.speech_s == 0.0
    words = pd.read_parquet(store / "words")
    assert words.start.notna().all() and np.isfinite(words.start).all()
    report = json.loads(next((store / "runs").glob("*.json")).read_text())
    assert [(Path(d["path"]).name, Path(d["same_as"]).name) for d in report["duplicates"]] == [
        ("dup-a.wav", "dup b.wav")
    ]
    # Peak memory of the whole run (driver, Ray, workers): an hour of audio is never held whole.
    assert corpus_run["peak_rss"] < 6 * 1024**3, corpus_run["peak_rss"]


def test_originals_are_byte_identical_and_never_opened_for_writing(corpus_run) -> None:
    intake, before = corpus_run["intake"], dict(corpus_run["before"])
    before.pop(VICTIM)
    assert snapshot(intake) == before  # content, size and modification time
    if corpus_run["unreadable_hash"]:
        (intake / "unreadable.wav").chmod(0o600)
        assert sha256_file(intake / "unreadable.wav") == corpus_run["unreadable_hash"]
    assert (intake / "loop-a.wav").is_symlink() and (intake / "folder-loop").is_symlink()


def test_no_network_connection_was_attempted(corpus_run) -> None:
    """Every Python process of the run had connections to other hosts (and DNS look-ups) fail and recorded."""
    log = corpus_run["guard_log"]
    attempts = log.read_text().splitlines() if log.exists() else []
    assert attempts == []
    # The guard did watch the run: the driver, Ray's own head processes and the workers that ran the models.
    armed = Path(f"{log}.armed").read_text().splitlines()
    assert any("bwc.cli run" in line for line in armed)
    assert any("dashboard" in line for line in armed)  # Ray's head process, the one that asks for cloud metadata
    assert any("default_worker.py" in line for line in armed), armed


def test_custody_logs_tell_each_originals_story(corpus_run) -> None:
    store, intake = corpus_run["store"], corpus_run["intake"]
    catalog = Catalog.for_store(store)
    try:
        custody = CustodyLog(store, catalog)

        def events(name: str, sha256: str | None = None) -> list[str]:
            digest = sha256 or corpus_run["before"][name][0]
            return [entry["event"] for entry in custody.entries(digest)]

        assert events("reference.wav") == ["ingested", "processed", "processed", "verified"]
        assert events("dup-a.wav") == ["ingested", "seen_again", "processed", "processed", "verified"]
        assert events("random-bytes.wav") == ["ingest_failed"]  # read and hashed, then refused
        assert events(VICTIM) == ["ingested", "processing_failed", "verify_failed"]
        first = custody.entries(corpus_run["before"]["reference.wav"][0])[0]
        assert first["prev"] == corpus_run["before"]["reference.wav"][0]  # the chain starts at the content's hash
        assert first["detail"]["path"] == str(intake / "reference.wav")
        processed = custody.entries(corpus_run["before"]["reference.wav"][0])[1]
        assert processed["detail"]["stage"] == "speech" and set(processed["detail"]["models"]) == {
            "vad", "asr", "diarization"
        }  # fmt: skip
    finally:
        catalog.close()


def audit_verify(store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bwc.cli", "audit", "verify", "--store", str(store)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_audit_verify_passes_untouched_and_catches_every_tampering(corpus_run, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(corpus_run["store"], store)
    intact = audit_verify(store)
    assert intact.returncode == 0, intact.stderr
    assert "intact" in intact.stderr and "NOT" not in intact.stderr
    log = store / "custody" / f"{corpus_run['before']['dup-a.wav'][0]}.jsonl"
    original = log.read_text(encoding="utf-8")
    lines = original.splitlines(keepends=True)
    assert len(lines) == 5

    edited = json.loads(lines[1])
    edited["detail"]["path"] = "/somewhere/else.wav"
    resealed = dict(edited)  # edited, and its own hash recomputed: the next entry's link still breaks
    from bwc.custody import entry_hash

    resealed["hash"] = entry_hash(resealed)
    tamperings = {
        "entry edited": (lines[0] + json.dumps(edited) + "\n" + "".join(lines[2:]), "edited"),
        "entry edited and rehashed": (
            lines[0] + json.dumps(resealed) + "\n" + "".join(lines[2:]),
            "does not follow the entry before it",
        ),
        "entry removed": (lines[0] + "".join(lines[2:]), "entries removed, inserted or reordered"),
        "entries reordered": (lines[0] + lines[2] + lines[1] + "".join(lines[3:]), "does not follow"),
        "last entry removed": ("".join(lines[:-1]), "catalog's head is entry 5"),
        "entry appended by hand": (original + lines[-1], "entries removed, inserted or reordered"),
    }
    for what, (content, message) in tamperings.items():
        log.write_text(content, encoding="utf-8")
        verdict = audit_verify(store)
        assert verdict.returncode == 4, (what, verdict.stderr)
        assert "NOT intact" in verdict.stderr and message in verdict.stderr, (what, verdict.stderr)
    log.unlink()
    deleted = audit_verify(store)
    assert deleted.returncode == 4 and "custody log missing" in deleted.stderr, deleted.stderr
    log.write_text(original, encoding="utf-8")
    assert audit_verify(store).returncode == 0
    # A tampered log is left as found: bwc refuses to extend it rather than bury the damage under new entries.
    log.write_text("".join(lines[:-1]), encoding="utf-8")
    catalog = Catalog.for_store(store)
    try:
        from bwc.custody import VIEWED, CustodyError

        with pytest.raises(CustodyError, match="changed outside bwc"):
            CustodyLog(store, catalog).append(log.stem, VIEWED, "tess (review app, trainer)", what="test")
    finally:
        catalog.close()
    assert log.read_text(encoding="utf-8") == "".join(lines[:-1])


def test_an_original_changed_during_a_run_is_a_loud_custody_failure(tmp_path: Path) -> None:
    path = encode(tmp_path / "EV9.wav", scene()[: 3 * SAMPLE_RATE], SAMPLE_RATE, "-c:a", "pcm_s16le")
    recording = ingest_file(path, MetadataTable.empty())
    store = tmp_path / "store"
    store.mkdir()
    catalog = Catalog.for_store(store)
    try:
        custody = CustodyLog(store, catalog)
        assert verify_originals([recording], custody, "tester@host", "run-1") == []
        with open(path, "r+b") as handle:  # the test, not bwc, changes one byte of the original
            handle.seek(100)
            handle.write(b"\x01")
        (failed,) = verify_originals([recording], custody, "tester@host", "run-2")
        assert failed.stage == "custody" and "the original changed during the run" in failed.reason
        assert f"ingested with SHA-256 {recording.sha256}" in failed.reason and ", now " in failed.reason
        assert [e["event"] for e in custody.entries(recording.sha256)] == ["verified", "verify_failed"]
    finally:
        catalog.close()


def test_processing_time_limit_stops_one_file_with_a_reason(tmp_path: Path, tiny_models: Path) -> None:
    path = encode(tmp_path / "EV10.wav", scene(), SAMPLE_RATE, "-c:a", "pcm_s16le")
    recording = ingest_file(path, MetadataTable.empty())
    for limit, expected in ((0.0, "stopped while decoding and detecting speech"), (600.0, None)):
        config = load_config(tiny_models, overrides={"run": {"max_processing_s": limit}})
        (outcome,) = SpeechStage.from_config(config, device="cpu").process_batch([recording])
        if expected is None:
            assert not isinstance(outcome, Exception), outcome
        else:
            assert isinstance(outcome, Exception) and expected in str(outcome)
            assert "configured maximum of 0 s (run.max_processing_s)" in str(outcome)


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    from bwc.ingest import IngestError

    big = tmp_path / "big.wav"
    write_audio(big, np.zeros(SAMPLE_RATE * 10, dtype=np.float32), SAMPLE_RATE, "-c:a", "pcm_s16le")
    with pytest.raises(IngestError, match=r"size 320.1 kB is over the configured maximum 100.0 kB") as raised:
        ingest_file(big, MetadataTable.empty(), max_size_bytes=100_000)
    assert raised.value.sha256 is None  # refused before a byte was read


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("vad.stepp_s=2.5", "vad.stepp_s: Extra inputs are not permitted"),
        ("vadd.step_s=2.5", "vadd: Extra inputs are not permitted"),
        ("vad.step_s=fast", "vad.step_s: Input should be a valid number"),
        ("whisper.engine=cuda", "whisper.engine: Input should be 'auto', 'ctranslate2' or 'openai'"),
        ("vad.step_s=[1", "its value is not YAML"),
        ("vad.step_s=", "expected SECTION.KEY=VALUE"),
        ("step_s=2.5", "expected SECTION.KEY=VALUE"),
    ],
)
def test_a_benchmark_setting_with_a_typo_is_refused_naming_it(setting: str, reason: str) -> None:
    """The benchmarks' --set / --bwc-set: refused before any work starts, the setting and the problem named."""
    with pytest.raises(ValueError, match=r"^setting ") as refused:
        setting_overrides(["vad.step_s=2.5", setting])
    assert repr(setting) in str(refused.value) and reason in str(refused.value)
    assert setting_overrides(["vad.step_s=2.5", "whisper.engine=openai"]) == {
        "vad": {"step_s": 2.5},
        "whisper": {"engine": "openai"},
    }


def test_an_append_stopped_half_way_is_completed_and_an_outside_append_is_not(tmp_path: Path) -> None:
    """kill -9 between writing a custody entry and moving the catalog's head (the next run found the log "changed
    outside bwc" and refused the recording) is completed by the next append; an entry added by anyone else is not."""
    import hashlib

    from bwc.custody import INGESTED, PROCESSED, CustodyError, entry_hash, verify_custody

    store = tmp_path / "store"
    store.mkdir()
    catalog = Catalog.for_store(store)
    log = CustodyLog(store, catalog)
    sha256 = hashlib.sha256(b"an original").hexdigest()
    catalog.add_original(sha256, str(tmp_path / "EV1.wav"))
    first = log.append(sha256, INGESTED, "test@host", path="EV1.wav")
    second = log.append(sha256, PROCESSED, "test@host", stage="speech")
    # As a kill after the write leaves it: the log holds entry 2, the catalog's head is entry 1, entry 2 pending.
    catalog.set_custody_head(sha256, 1, first["hash"])
    catalog.set_custody_pending(sha256, 2, second["hash"])
    assert verify_custody(store, catalog).problems == ()
    third = log.append(sha256, PROCESSED, "test@host", stage="scoring")
    assert third["seq"] == 3 and third["prev"] == second["hash"]
    assert catalog.custody_head(sha256) == (3, third["hash"]) and catalog.custody_pending(sha256) is None

    # A kill before the write: a pending row, nothing in the log; the next append replaces it.
    catalog.set_custody_pending(sha256, 4, "0" * 64)
    fourth = log.append(sha256, PROCESSED, "test@host", stage="flags")
    assert fourth["seq"] == 4 and catalog.custody_pending(sha256) is None

    # Someone appends a well-formed, correctly chained entry without bwc: still refused, still reported.
    forged = {"seq": 5, "at": "2026-12-01T00:00:00+00:00", "event": PROCESSED, "actor": "someone@else",
              "detail": {}, "prev": fourth["hash"]}  # fmt: skip
    forged["hash"] = entry_hash(forged)
    with open(log.path(sha256), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(forged, separators=(",", ":")) + "\n")
    with pytest.raises(CustodyError, match="changed outside bwc"):
        log.append(sha256, PROCESSED, "test@host", stage="flags")
    assert any("added outside bwc" in p.problem for p in verify_custody(store, catalog).problems)
