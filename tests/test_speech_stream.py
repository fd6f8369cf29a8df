"""The speech stage on batches: decoding once to scratch, block-wise VAD, packed whisper windows, words in recording
time, cross-recording batching that changes nothing, and one bad recording not stopping the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bwc.audio import SAMPLE_RATE, AudioError, decode_to_scratch, read_pcm
from bwc.config import load_config
from bwc.demo import Line, render_scene, road_noise
from bwc.ingest import MetadataTable, ingest_file
from bwc.records import Recording, SpeechRegion, SpeechResult
from models.asr import SpeechChunk
from models.vad import merge_regions, pack_regions
from pipelines.speech import SpeechStage
from tests.conftest import encode, tone

TIME_TOLERANCE_S = 0.02  # one whisper timestamp step


def _scene(path: Path, seed: int, noise_s: float) -> Path:
    """Two exchanges separated by ``noise_s`` of road noise: speech far apart, as body cameras record it."""
    rng = np.random.default_rng(seed)
    first, _ = render_scene([Line("officer", "Good evening, license and registration please.", 0.0)], 1.0, 0.5)
    second, _ = render_scene([Line("civilian", "Here you go officer, it is in the glove box.", 0.0)], 0.5, 1.0)
    audio = np.concatenate([first, road_noise(noise_s, rng) * 0.3, second])
    return encode(path, audio, SAMPLE_RATE, "-c:a", "pcm_s16le")


@pytest.fixture(scope="module")
def stage_and_recordings(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("speech-stream")
    scratch = folder / "scratch"
    scratch.mkdir()
    config = load_config(tiny_models).merged({"run": {"scratch_dir": str(scratch)}})
    stage = SpeechStage.from_config(config, device="cpu")
    recordings = [ingest_file(_scene(folder / f"scene{i}.wav", i, 12.0 + 4 * i), MetadataTable.empty()) for i in (0, 1)]
    return stage, recordings, scratch, folder


def test_decode_to_scratch_reads_spans_as_the_whole_decode(tmp_path: Path) -> None:
    signal = tone(7.3, 300.0) * np.linspace(0.1, 0.9, int(7.3 * SAMPLE_RATE), dtype=np.float32)
    path = encode(tmp_path / "tone.wav", signal, SAMPLE_RATE, "-c:a", "pcm_f32le")
    blocks: list[tuple[float, int]] = []
    whole = read_pcm(path)
    with decode_to_scratch(path, tmp_path, block_s=2.0, on_block=lambda b, s: blocks.append((s, len(b)))) as decoded:
        assert decoded.samples == len(whole)
        assert [start for start, _ in blocks] == [0.0, 2.0, 4.0, 6.0]  # one block in memory at a time
        for start, end in ((0.0, 1.5), (1.9, 2.1), (6.5, 9.0), (3.0, 3.0)):
            expected = whole[round(start * SAMPLE_RATE) : round(min(end, 7.3) * SAMPLE_RATE)]
            np.testing.assert_array_equal(decoded.read(start, end), expected)
        scratch = decoded.path
        assert scratch.exists()
    assert not scratch.exists()


def test_decode_failure_leaves_no_scratch_file(tmp_path: Path) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(50_000))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(AudioError):
        decode_to_scratch(bad, scratch)
    assert list(scratch.iterdir()) == []


def test_packed_chunk_maps_times_into_its_pieces() -> None:
    chunk = SpeechChunk(
        key="r",
        start=10.0,
        end=62.0,
        audio=np.zeros(int(9.5 * SAMPLE_RATE), dtype=np.float32),
        pieces=((0.0, 10.0, 14.0), (4.5, 57.0, 62.0)),  # 4 s, 0.5 s gap, 5 s
    )
    assert chunk.to_recording_time(1.0, 2.0) == (11.0, 12.0)
    assert chunk.to_recording_time(5.0, 6.0) == (57.5, 58.5)
    start, end = chunk.to_recording_time(3.5, 4.4)  # mostly in the first piece, ending in the gap: clamped to it
    assert (start, end) == (13.5, 14.0)
    plain = SpeechChunk("r", 5.0, 8.0, np.zeros(3 * SAMPLE_RATE, dtype=np.float32))
    assert plain.to_recording_time(1.0, 9.0) == (6.0, 8.0)


def test_pack_regions_fills_windows_and_keeps_order() -> None:
    regions = tuple(SpeechRegion(40.0 * i, 40.0 * i + 6.0) for i in range(9))
    windows = pack_regions(regions, window_s=30.0, gap_s=0.5)
    assert [len(window) for window in windows] == [4, 4, 1]  # 4 x 6 s + 3 x 0.5 s = 25.5 s fits, a 5th does not
    assert [region for window in windows for region in window] == list(regions)
    long = (SpeechRegion(0.0, 31.0), SpeechRegion(40.0, 41.0))
    assert pack_regions(long, 30.0, 0.5) == ((long[0],), (long[1],))


def test_batch_packs_speech_words_stay_in_speech_and_scratch_is_removed(stage_and_recordings) -> None:  # type: ignore[no-untyped-def]
    stage, recordings, scratch, _ = stage_and_recordings
    outcomes = stage.process_batch(recordings)
    assert all(isinstance(outcome, SpeechResult) for outcome in outcomes)
    for result in outcomes:
        assert len(result.speech_regions) >= 2, "the VAD should find both exchanges"
        merged = merge_regions(result.speech_regions, stage.config.vad.merge_gap_s, stage.config.vad.max_region_s)
        assert len(pack_regions(merged, 30.0, stage.config.vad.pack_gap_s)) < len(merged), "regions not packed"
        assert result.words
        for word in result.words:  # never in the road noise between the exchanges
            assert any(r.start - 1e-6 <= word.start <= word.end <= r.end + 1e-6 for r in merged), word
        timings = result.timings
        assert 0 < timings.forward_s <= timings.vad_s + timings.asr_s + timings.diarization_s + 1e-6
        assert len(result.acoustics) == len(result.utterances)
    assert list(scratch.iterdir()) == [], "scratch files left behind"


def test_batching_across_recordings_changes_no_word(stage_and_recordings) -> None:  # type: ignore[no-untyped-def]
    stage, recordings, _, _ = stage_and_recordings
    together = stage.process_batch(recordings)
    for recording, batched in zip(recordings, together, strict=True):
        alone = stage(recording)
        assert [w.text for w in alone.words] == [w.text for w in batched.words]
        for a, b in zip(alone.words, batched.words, strict=True):
            assert abs(a.start - b.start) <= TIME_TOLERANCE_S and abs(a.end - b.end) <= TIME_TOLERANCE_S


def test_a_bad_recording_fails_alone(stage_and_recordings) -> None:  # type: ignore[no-untyped-def]
    stage, recordings, scratch, folder = stage_and_recordings
    bad_path = folder / "truncated.wav"
    bad_path.write_bytes(Path(recordings[0].path).read_bytes()[:30])
    bad = Recording(
        recording_id="0" * 16, path=str(bad_path), sha256="0" * 64, size_bytes=30, audio=recordings[0].audio
    )
    outcomes = stage.process_batch([recordings[0], bad, recordings[1]])
    assert isinstance(outcomes[0], SpeechResult) and isinstance(outcomes[2], SpeechResult)
    assert isinstance(outcomes[1], AudioError)
    assert list(scratch.iterdir()) == []


def test_block_wise_scan_finds_the_same_speech(tiny_models: Path, stage_and_recordings) -> None:  # type: ignore[no-untyped-def]
    stage, recordings, _, _ = stage_and_recordings
    whole = stage.process(recordings[1], read_pcm(recordings[1].path))
    config = stage.config.merged({"vad": {"block_s": 3.0}})
    small_blocks = SpeechStage(config, _models(stage), device="cpu")
    blocked = small_blocks(recordings[1])
    speech = sum(r.duration for r in whole.speech_regions)
    covered = sum(
        max(0.0, min(a.end, b.end) - max(a.start, b.start))
        for a in whole.speech_regions
        for b in blocked.speech_regions
    )
    assert covered >= 0.9 * speech
    boundaries = int(whole.recording.audio.duration_s // 3.0)  # silero pads speech cut at a block's edge
    assert sum(r.duration for r in blocked.speech_regions) <= speech + 0.25 * boundaries
    assert blocked.words


def _models(stage: SpeechStage):  # type: ignore[no-untyped-def]
    from models.locate import ResolvedModels

    return ResolvedModels.resolve(stage.config)


def test_scratch_files_of_processes_that_ended_are_swept_and_no_others(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    from bwc.audio import SCRATCH_PREFIX, sweep_stale_scratch

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    host = socket.gethostname()
    files = {
        "dead": tmp_path / f"{SCRATCH_PREFIX}{host}-{dead_pid}-abc123.f32",  # its writer was killed
        "alive": tmp_path / f"{SCRATCH_PREFIX}{host}-{os.getpid()}-def456.f32",  # this process: in use
        "parent": tmp_path / f"{SCRATCH_PREFIX}{host}-{os.getppid()}-ghi789.f32",  # another live process
        "other host": tmp_path / f"{SCRATCH_PREFIX}{host}x-{dead_pid}-jkl012.f32",  # a node sharing the directory
        "old name": tmp_path / f"{SCRATCH_PREFIX}mno345.f32",  # before names held the pid: cannot tell
        "not ours": tmp_path / f"{host}-{dead_pid}-recording.f32",
    }
    for path in files.values():
        path.write_bytes(b"\0" * 16)
    assert sweep_stale_scratch(tmp_path) == [files["dead"]]
    assert {name for name, path in files.items() if path.exists()} == set(files) - {"dead"}
    assert sweep_stale_scratch(tmp_path / "missing") == []


def test_scratch_file_names_carry_host_and_process(tmp_path: Path) -> None:
    import os
    import socket

    from bwc.audio import sweep_stale_scratch, write_audio

    path = tmp_path / "tone.wav"
    write_audio(path, tone(1.0))
    with decode_to_scratch(path, tmp_path) as decoded:
        assert decoded.path.name.startswith(f"bwc-pcm-{socket.gethostname()}-{os.getpid()}-")
        assert sweep_stale_scratch(tmp_path) == []  # its writer (this process) runs: kept
        assert decoded.path.exists()
