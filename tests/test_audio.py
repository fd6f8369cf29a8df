"""Real ffprobe/ffmpeg over every supported container: probe, streamed decode to 16 kHz mono, hashing, errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from bwc.audio import SAMPLE_RATE, AudioError, probe, read_pcm, sha256_file, stream_pcm
from tests.conftest import NOT_MEDIA, dominant_frequency, encode, tone

SECONDS = 3.0

# extension: (source rate, channels, ffmpeg output args, has video, expected ffprobe format, expected codec)
FORMATS = {
    "wav": (16_000, 1, ["-c:a", "pcm_s16le"], False, "wav", "pcm_s16le"),
    "flac": (44_100, 2, ["-c:a", "flac"], False, "flac", "flac"),
    "mp3": (44_100, 2, ["-c:a", "libmp3lame", "-b:a", "128k"], False, "mp3", "mp3"),
    "m4a": (48_000, 1, ["-c:a", "aac"], False, "mov", "aac"),
    "ogg": (48_000, 2, ["-c:a", "libvorbis"], False, "ogg", "vorbis"),
    "mp4": (48_000, 2, ["-c:a", "aac"], True, "mov", "aac"),
    "mov": (44_100, 1, ["-c:a", "aac"], True, "mov", "aac"),
    "mkv": (48_000, 2, ["-c:a", "libopus"], True, "matroska", "opus"),
    "avi": (22_050, 1, ["-c:a", "libmp3lame"], True, "avi", "mp3"),
}


@pytest.mark.parametrize("extension", sorted(FORMATS))
def test_every_format_probes_and_decodes_to_16k_mono(tmp_path: Path, extension: str) -> None:
    rate, channels, args, video, expected_format, expected_codec = FORMATS[extension]
    path = encode(tmp_path / f"tone.{extension}", tone(SECONDS, 440.0, rate, channels), rate, *args, video=video)
    before = sha256_file(path)

    info = probe(path)
    assert info.format == expected_format
    assert info.codec == expected_codec
    assert info.channels == channels
    assert info.has_video is video
    assert info.duration_s == pytest.approx(SECONDS, abs=0.15)

    audio = read_pcm(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Lossy codecs add priming/padding samples; a tenth of a second is generous.
    assert len(audio) / SAMPLE_RATE == pytest.approx(SECONDS, abs=0.1)
    assert dominant_frequency(audio) == pytest.approx(440.0, abs=3.0)
    assert np.sqrt(np.mean(audio[SAMPLE_RATE // 2 : -SAMPLE_RATE // 2] ** 2)) > 0.1
    assert sha256_file(path) == before, "decoding must never change an original"


def test_stream_pcm_yields_bounded_blocks(tmp_path: Path) -> None:
    path = encode(tmp_path / "long.flac", tone(10.0, 300.0, 44_100, 2), 44_100, "-c:a", "flac")
    blocks = list(stream_pcm(path, block_s=1.5))
    assert len(blocks) == 7
    assert all(len(block) == int(1.5 * SAMPLE_RATE) for block in blocks[:-1])
    assert 0 < len(blocks[-1]) <= int(1.5 * SAMPLE_RATE)
    assert sum(len(block) for block in blocks) == pytest.approx(10 * SAMPLE_RATE, abs=SAMPLE_RATE // 50)
    assert np.array_equal(np.concatenate(blocks), read_pcm(path))


def test_decode_a_span(tmp_path: Path) -> None:
    audio = np.concatenate([tone(2.0, 200.0), tone(2.0, 1000.0)])
    path = encode(tmp_path / "two.wav", audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
    span = read_pcm(path, start_s=2.25, duration_s=1.5)
    assert len(span) == pytest.approx(1.5 * SAMPLE_RATE, abs=2)
    assert dominant_frequency(span) == pytest.approx(1000.0, abs=5.0)


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = os.urandom(5 * 1024 * 1024 + 17)  # crosses the 4 MiB read size
    path.write_bytes(payload)
    assert sha256_file(path) == hashlib.sha256(payload).hexdigest()


def test_non_finite_samples_become_silence(tmp_path: Path) -> None:
    audio = tone(1.0)
    audio[100:200] = np.nan
    audio[300] = np.inf
    path = encode(tmp_path / "nan.wav", audio, SAMPLE_RATE, "-c:a", "pcm_f32le")
    decoded = read_pcm(path)
    assert np.isfinite(decoded).all()
    assert np.all(decoded[100:200] == 0.0)


def test_bad_files_raise_one_line_reasons(tmp_path: Path) -> None:
    noise = tmp_path / "noise.wav"
    noise.write_bytes(NOT_MEDIA)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    silent_video = tmp_path / "silent.mp4"
    import subprocess

    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=64x48:r=5", "-t", "1", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", str(silent_video)],
        check=True,
    )  # fmt: skip
    for path in (noise, text):
        with pytest.raises(AudioError, match="not a readable audio/video file"):
            probe(path)
    with pytest.raises(AudioError, match="no audio stream"):
        probe(silent_video)
    with pytest.raises(AudioError, match="ffmpeg could not decode"):
        list(stream_pcm(text))
