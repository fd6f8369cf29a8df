"""Shared fixtures: tiny model checkpoints made once per session, and real media written with ffmpeg/espeak-ng."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

from bwc.audio import SAMPLE_RATE, sha256_file, write_audio
from bwc.demo import Line, load_scripts, render_scene, write_video

REQUIRED_TOOLS = ("ffmpeg", "ffprobe", "espeak-ng", "sox")
# A corrupt "media" file. Not random bytes: those are now and then taken for a stream-less container, which makes
# the expected reason flaky.
NOT_MEDIA = b"This is not a media file.\n" * 100


def pytest_configure(config: pytest.Config) -> None:
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise pytest.UsageError(f"tests need {', '.join(missing)} on PATH: run `make test`, which installs them")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with tiny random-weight whisper and pyannote checkpoints and its models.yaml."""
    from models.tiny import make_tiny_models

    directory = tmp_path_factory.mktemp("tiny-models")
    make_tiny_models(directory)
    return directory


SHARED = Path(__file__).resolve().parents[2] / "shared"  # the team's development data (not shipped, not in CI's clone)
SPEECH_DATA = SHARED / "data" / "speech"


@pytest.fixture(scope="session")
def starter_models() -> Path:
    """The installed starter set (real weights: `bwc models starter`, which `make test` runs), or a skip."""
    from bwc.config import default_models_dir
    from models.starter import installed_manifest

    directory = default_models_dir()
    if installed_manifest(directory) is None:
        pytest.skip(f"real-weights tier: no starter set in {directory} (run `bwc models starter`; make test does)")
    return directory


@pytest.fixture(scope="session")
def speech_data() -> Path:
    """Real speech for development (../shared/data/speech), or a skip where this checkout has no ../shared."""
    if not (SPEECH_DATA / "refs.tsv").is_file():
        pytest.skip(f"needs the team's development speech in {SPEECH_DATA} (../shared is absent here)")
    return SPEECH_DATA


def tone(seconds: float, frequency: float = 440.0, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    """A sine as float32, shape (samples,) or (samples, channels)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def encode(path: Path, audio: np.ndarray, sample_rate: int, *output_args: str, video: bool = False) -> Path:
    """Encode float32 samples (mono or (samples, channels)) into ``path``, optionally beside a small H.264 picture."""
    video_args = ["-f", "lavfi", "-i", "color=c=black:s=64x48:r=5", "-shortest", "-c:v", "libx264"]
    video_args += ["-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    write_audio(path, audio, sample_rate, *(video_args if video else []), *output_args)
    return path


def dominant_frequency(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sample_rate)[np.argmax(spectrum)])


# -- the review app: a real store (tiny-model run + scored transcripts of the same footage) behind a real server --
REVIEW_PASSWORD = "correct horse battery staple"  # every review test account's password
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')  # a page's form token


@pytest.fixture
def signed_in_clients() -> Iterator[object]:
    """``sign_in(app, username)``: a TestClient of ``app`` logged in as that user and its session's CSRF token; every
    client is closed after the test."""
    from fastapi.testclient import TestClient

    clients: list[TestClient] = []

    def sign_in(app: object, username: str) -> tuple[TestClient, str]:
        client = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
        client.__enter__()
        clients.append(client)
        token = CSRF_FIELD.search(client.get("/login").text).group(1)
        answer = client.post("/login", data={"username": username, "password": REVIEW_PASSWORD, "csrf_token": token})
        assert answer.status_code == 303 and "error" not in answer.headers["location"], answer.headers
        return client, CSRF_FIELD.search(client.get(answer.headers["location"]).text).group(1)

    yield sign_in
    for client in clients:
        client.__exit__(None, None, None)


REVIEW_USERS = {"ada": "admin", "tess": "trainer", "sam": "supervisor", "rory": "researcher"}
# Ordinary encounters with no recording: the rest of the department, against which flags are relative.
ORDINARY_STOPS = [
    ["Hello. Your registration expired last month.", "Can I see your license please?", "Okay, you're free to go."],
    ["Evening. You were going a bit fast back there.", "License and insurance, please.", "Slow down, all right?"],
    ["Hi. Your headlight is out.", "Do you have your license with you?", "Get it fixed this week. Take care."],
    ["Good afternoon. You rolled through that stop sign.", "I need your license.", "Here's a warning. Thanks."],
    ["Hey there. Do you know why I pulled you over?", "You were on your phone.", "Put it away while driving."],
    ["Hello sir. License and registration.", "Wait here please.", "Here's your citation, you can pay online."],
    ["Hi. Your plates are not lit.", "License, please.", "All right, thanks for your patience."],
    ["Evening. You crossed the center line a couple of times.", "Have you been drinking tonight?", "Okay."],
]


@dataclass(frozen=True)
class ReviewServer:
    """A running ``bwc review serve`` on a store with flagged encounters."""

    url: str  # base URL, e.g. http://127.0.0.1:54321
    store: Path  # the store it serves
    footage: Path  # the intake folder of the originals
    poor: str  # encounter id of the scripted hostile stop (its recording is an .mp4 with video)
    exemplary: str  # encounter id of the scripted exemplary stop (its recording is a .wav)
    recordings: dict[str, str]  # encounter id -> recording id, for the two scripted stops


def _script_lines(script: pd.DataFrame) -> list[Line]:
    return [Line(role=row.role, text=row.text, pause_before_s=0.6) for row in script.itertuples()]


@pytest.fixture(scope="session")
def review_server(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewServer]:
    """Two stops rendered with espeak-ng (the hostile one as video), run through `bwc run` with the tiny models,
    their reference transcripts (with the recordings' ids and true times) and eight ordinary stops scored with
    `bwc score`, four accounts, and the app served on a free port."""
    footage = tmp_path_factory.mktemp("review-intake")
    store = tmp_path_factory.mktemp("review-store")
    scripts = load_scripts()
    chosen = {"demo-002": ("EV7002.mp4", "B4712"), "demo-001": ("EV7001.wav", "B4711")}
    rows, export = [], []
    for index, (encounter_id, (name, officer)) in enumerate(chosen.items()):
        script = scripts[scripts.encounter_id == encounter_id].sort_values("turn")
        audio, truth = render_scene(_script_lines(script), lead_in_s=1.5, tail_s=1.0, seed=index)
        path = footage / name
        if name.endswith(".mp4"):
            write_video(path, audio)
        else:
            write_audio(path, audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
        recording_id = sha256_file(path)[:16]
        recorded_at = f"2026-10-0{index + 1}T18:30:00Z"
        export.append({"file_name": name, "evidence_id": name[:-4], "officer_id": officer, "recorded_at": recorded_at})
        for (start, end, _), line in zip(truth, script.itertuples(), strict=True):
            rows.append(
                {"encounter_id": encounter_id, "turn": line.turn, "role": line.role, "text": line.text,
                 "start": round(start, 3), "end": round(end, 3), "recording_id": recording_id,
                 "officer_id": officer, "recorded_at": recorded_at}
            )  # fmt: skip
    for number, lines in enumerate(ORDINARY_STOPS):
        for turn, text in enumerate(lines, start=1):
            rows.append(
                {"encounter_id": f"ordinary-{number}", "turn": turn, "role": "officer", "text": text,
                 "officer_id": f"B47{number % 3}", "recorded_at": f"2026-09-{number + 10}T12:00:00Z"}
            )  # fmt: skip
    pd.DataFrame(export).to_csv(footage / "export.csv", index=False)
    transcripts = tmp_path_factory.mktemp("review-transcripts") / "transcripts.csv"
    pd.DataFrame(rows).to_csv(transcripts, index=False)
    bwc = [sys.executable, "-m", "bwc.cli"]
    for command in (
        [*bwc, "run", str(footage), "--store", str(store), "--models", str(tiny_models), "--metadata",
         str(footage / "export.csv"), "--settle", "0"],
        [*bwc, "score", str(transcripts), "--store", str(store), "--models", str(tiny_models)],
    ):  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert completed.returncode == 0, completed.stderr[-3000:]
    for username, role in REVIEW_USERS.items():
        added = subprocess.run(
            [*bwc, "users", "add", username, "--role", role, "--store", str(store)],
            input=REVIEW_PASSWORD + "\n", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    recordings = {e: r for e, r in pd.DataFrame(rows).dropna(subset=["recording_id"])[["encounter_id", "recording_id"]]
                  .drop_duplicates().itertuples(index=False)}  # fmt: skip
    with serve_review(store) as url:
        yield ReviewServer(url, store, footage, "demo-002", "demo-001", recordings)


@contextlib.contextmanager
def serve_review(store: Path) -> Iterator[str]:
    """The real ``bwc review serve`` on ``store``, on a free port, until the block ends; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    # 127.0.0.2, not 127.0.0.1: Ray rewrites 127.0.0.1 on this machine, and the app must not care either way.
    server = subprocess.Popen(
        [sys.executable, "-m", "bwc.cli", "review", "serve", "--store", str(store), "--host", "127.0.0.2",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.2:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"review server did not start: {server.stdout.read() if server.stdout else ''}")
        time.sleep(0.3)
    try:
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def hear_silence_in_zero_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the tiny whisper hear silence in all-zero windows. Its special tokens are zeroed, so it never finds
    silence itself: whisper's real results are kept and only the no-speech statistics of all-zero rows are set to
    what a real model reports on silence (tiny.en on noise: 0.84-0.95, log probability -1.2 to -1.6)."""
    import dataclasses

    import whisper

    real_decode = whisper.decode

    def decode_hearing_silence(model, mel, options):  # type: ignore[no-untyped-def]
        results = real_decode(model, mel, options)
        silent = [bool(row[:, :100].std() == 0) for row in mel]  # the zero chunk's log-mel is flat where it has audio
        return [
            dataclasses.replace(r, no_speech_prob=0.95, avg_logprob=-1.5) if quiet else r
            for r, quiet in zip(results, silent, strict=True)
        ]

    monkeypatch.setattr(whisper, "decode", decode_hearing_silence)  # the openai engine calls whisper.decode
