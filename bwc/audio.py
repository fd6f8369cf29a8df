"""Audio I/O: inspect originals with ffprobe, decode them with ffmpeg, hash them.

Originals are only ever opened read-only (``open(path, "rb")`` for hashing, and ffmpeg/ffprobe, which read).
Decoding streams: ffmpeg writes 16 kHz mono float32 to a pipe and :func:`stream_pcm` yields it in fixed-size blocks,
so the decode step never needs a whole recording's samples in memory at once.

Example
-------
>>> info = probe("stop.mp4")                                  # doctest: +SKIP
>>> for block in stream_pcm("stop.mp4", block_s=30.0): ...   # doctest: +SKIP
>>> audio = read_pcm("stop.mp4")                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bwc.records import AudioInfo, RecordingError

SAMPLE_RATE = 16_000  # every stage after decoding works on 16 kHz mono float32
HASH_BLOCK_BYTES = 4 * 1024 * 1024  # read size for SHA-256 of originals
DEFAULT_BLOCK_S = 30.0  # decode block length; 30 s is whisper's window
PROBE_TIMEOUT_S = 60.0  # ffprobe on a damaged file can hang on some containers
SCRATCH_PREFIX = "bwc-pcm-"  # scratch files: bwc-pcm-<host>-<pid>-<random>.f32, so that a dead writer's can be found
SCRATCH_SUFFIX = ".f32"


class AudioError(RecordingError):
    """A file could not be inspected or decoded; the message says why in one line."""


def require_ffmpeg() -> None:
    """Fail with a clear message when the ffmpeg binaries are missing."""
    for binary in ("ffmpeg", "ffprobe"):
        if shutil.which(binary) is None:
            raise AudioError(f"'{binary}' not found on PATH: install FFmpeg (Debian: apt-get install ffmpeg)")


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex, reading it read-only in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def probe(path: str | Path) -> AudioInfo:
    """Describe a file's first audio stream with ffprobe.

    Raises
    ------
    AudioError
        When ffprobe cannot read the file or it has no audio stream.
    """
    command = [
        "ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "--", str(path),
    ]  # fmt: skip
    try:
        completed = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise AudioError(f"ffprobe did not finish within {PROBE_TIMEOUT_S:.0f} s") from error
    if completed.returncode != 0:
        detail = _ffmpeg_reason(completed.stderr, path) or f"exit status {completed.returncode}"
        raise AudioError(f"not a readable audio/video file: {detail}")
    report = json.loads(completed.stdout or b"{}")
    streams = report.get("streams", [])
    audio_streams = [stream for stream in streams if stream.get("codec_type") == "audio"]
    if not audio_streams:
        raise AudioError("file has no audio stream")
    stream = audio_streams[0]
    container = report.get("format", {})
    # Matroska keeps a stream's length in a DURATION tag ("HH:MM:SS.nnnnnnnnn"), not in "duration".
    duration = _first_float(
        stream.get("duration"), _clock_seconds(stream.get("tags", {}).get("DURATION")), container.get("duration")
    )
    if duration is None or not np.isfinite(duration):
        raise AudioError("duration unknown: the file is truncated or its container is damaged")
    has_video = any(
        s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic") for s in streams
    )
    return AudioInfo(
        duration_s=float(duration),
        sample_rate=int(stream.get("sample_rate") or 0),
        channels=int(stream.get("channels") or 0),
        format=str(container.get("format_name", "unknown")).split(",")[0],
        codec=str(stream.get("codec_name", "unknown")),
        has_video=has_video,
    )


def stream_pcm(
    path: str | Path,
    block_s: float = DEFAULT_BLOCK_S,
    start_s: float = 0.0,
    duration_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Decode a file's first audio stream to 16 kHz mono float32, yielding blocks of ``block_s`` seconds.

    Channels are down-mixed by ffmpeg, resampling uses its default (swr) resampler. The last block may be shorter.

    Raises
    ------
    AudioError
        When ffmpeg fails; blocks already yielded are valid audio.
    """
    command = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "0"]
    if start_s > 0:
        command += ["-ss", f"{start_s:.3f}"]
    command += ["-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn"]
    if duration_s is not None:
        command += ["-t", f"{duration_s:.3f}"]
    command += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    block_bytes = int(block_s * SAMPLE_RATE) * 4
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    try:
        pending = b""
        while chunk := process.stdout.read(block_bytes - len(pending)):
            pending += chunk
            if len(pending) == block_bytes:
                yield _to_float32(pending)
                pending = b""
        if pending:
            yield _to_float32(pending[: len(pending) - len(pending) % 4])
        stderr = process.stderr.read()
        if process.wait() != 0:
            raise AudioError(f"ffmpeg could not decode the audio: {_last_line(stderr) or 'unknown error'}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def read_pcm(path: str | Path, start_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """A whole file (or a span of it) as one 16 kHz mono float32 array.

    Non-finite samples (NaN/Inf in float WAVs) are replaced by silence so that no model sees them.
    """
    blocks = list(stream_pcm(path, start_s=start_s, duration_s=duration_s))
    audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if not np.isfinite(audio).all():
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    return audio


class DecodedAudio:
    """A recording decoded once to 16 kHz mono float32 in a scratch file on local disk, read back span by span.

    Long recordings are never held in memory whole: stages read the spans they need (a 30 s whisper window, a
    diarization segment, an utterance) with :meth:`read`. The scratch file is deleted by :meth:`close` (or on
    leaving a ``with`` block). It takes 64 kB per second of audio (230 MB per hour).

    Parameters
    ----------
    path
        The scratch file (raw little-endian float32 samples).
    samples
        How many samples it holds.
    """

    def __init__(self, path: Path, samples: int) -> None:
        self.path = path
        self.samples = samples

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

    def read(self, start_s: float, end_s: float) -> np.ndarray:
        """Samples of [start_s, end_s), clipped to the recording."""
        first = min(max(0, round(start_s * SAMPLE_RATE)), self.samples)
        last = min(max(first, round(end_s * SAMPLE_RATE)), self.samples)
        with open(self.path, "rb") as scratch:
            scratch.seek(first * 4)
            return np.frombuffer(scratch.read((last - first) * 4), dtype="<f4").copy()

    def close(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> DecodedAudio:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def decode_to_scratch(
    path: str | Path,
    scratch_dir: str | Path | None = None,
    block_s: float = DEFAULT_BLOCK_S,
    on_block: Callable[[np.ndarray, float], None] | None = None,
    max_s: float | None = None,
) -> DecodedAudio:
    """Decode ``path`` once into a scratch file, handing each block to ``on_block(samples, start_s)`` on the way.

    Memory holds one block at a time whatever the recording's length. Non-finite samples (NaN/Inf in float WAVs)
    become silence, as in :func:`read_pcm`. With ``max_s``, decoding stops with an error once the audio runs past
    it, so that a container that lies about its length cannot fill the disk.

    Raises
    ------
    AudioError
        When ffmpeg fails or the audio runs past ``max_s``; no scratch file is left behind.

    Examples
    --------
    >>> with decode_to_scratch("stop.mp4", on_block=lambda block, start: None) as decoded:   # doctest: +SKIP
    ...     first_minute = decoded.read(0.0, 60.0)
    """
    handle, name = tempfile.mkstemp(prefix=_scratch_prefix(), suffix=SCRATCH_SUFFIX, dir=scratch_dir)
    scratch = Path(name)
    samples = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for block in stream_pcm(path, block_s=block_s):
                if not np.isfinite(block).all():
                    block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
                if max_s is not None and samples + len(block) > max_s * SAMPLE_RATE:
                    raise AudioError(
                        f"the audio runs past {max_s:.0f} s, longer than its container said: decoding stopped"
                    )
                out.write(block.astype("<f4", copy=False).tobytes())
                if on_block is not None:
                    on_block(block, samples / SAMPLE_RATE)
                samples += len(block)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    return DecodedAudio(scratch, samples)


def _scratch_prefix(pid: int | None = None) -> str:
    # "-" in a host name is harmless: the pid is read after the exact prefix of this host (sweep_stale_scratch)
    return f"{SCRATCH_PREFIX}{socket.gethostname()}-{os.getpid() if pid is None else pid}-"


def sweep_stale_scratch(scratch_dir: str | Path | None = None) -> list[Path]:
    """Delete the scratch files that processes of this host which no longer run left in ``scratch_dir``.

    A worker killed while it held a recording (out of memory, a node's shutdown, ``kill -9``) cannot delete its
    scratch file (230 MB per hour of audio); this is run when a speech stage starts. Only files named by
    :func:`decode_to_scratch` on this host are considered, and only those whose process is gone: a scratch directory
    shared by several nodes or several live workers loses nothing it still needs.

    Returns
    -------
    list[Path]
        The files deleted.
    """
    directory = Path(scratch_dir) if scratch_dir is not None else Path(tempfile.gettempdir())
    mine = f"{SCRATCH_PREFIX}{socket.gethostname()}-"
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        if not (entry.name.startswith(mine) and entry.name.endswith(SCRATCH_SUFFIX) and entry.is_file()):
            continue
        pid_text = entry.name[len(mine) :].split("-", 1)[0]
        if not pid_text.isdigit() or _process_runs(int(pid_text)):
            continue
        try:
            os.unlink(entry.path)
        except OSError:  # gone already, or not ours to delete
            continue
        removed.append(Path(entry.path))
    return removed


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, *args: str) -> None:
    """Encode float32 samples, shape (samples,) or (samples, channels), to ``path`` with ffmpeg.

    Extra ``args`` (more inputs, codecs, options) go between the piped input and the output name. Used to write
    synthetic footage and test material, never originals.
    """
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    command = [
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels),
        "-i", "pipe:0", *args, str(path),
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        input=np.ascontiguousarray(audio, dtype=np.float32).tobytes(),
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        raise AudioError(f"ffmpeg could not write {path}: {_last_line(completed.stderr)}")


def _to_float32(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4").copy()


def _first_float(*values: object) -> float | None:
    for value in values:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return None


def _clock_seconds(value: object) -> float | None:
    if not isinstance(value, str) or value.count(":") != 2:
        return None
    hours, minutes, seconds = value.split(":")
    try:
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _ffmpeg_reason(stderr: bytes, path: str | Path, lines: int = 3) -> str:
    """ffmpeg's last few distinct messages, without its "[demuxer @ 0x…]" and file-name prefixes.

    >>> _ffmpeg_reason(b"[mov,mp4 @ 0x55f4] moov atom not found\\n/x/a.mp4: Invalid data found\\n", "/x/a.mp4")
    'moov atom not found; Invalid data found'
    """
    found: list[str] = []
    for line in stderr.decode("utf-8", "replace").splitlines():
        text = re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*", "", line.strip()).removeprefix(f"{path}: ").strip()
        if text and text not in found:
            found.append(text)
    return "; ".join(found[-lines:])


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""
