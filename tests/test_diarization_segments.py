"""Diarization in segments (speech regions only, speakers linked across segments) and the shared embedding trunk.

The tiny test pipeline embeds with XVectorSincNet, which cannot pool frame-wise features; a copy of it with a small
WeSpeaker ResNet (same class family as community-1's embedding, random weights, 32 dimensions like the tiny PLDA)
exercises the shared trunk through pyannote's own loading code.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
from pyannote.audio.core.task import Problem, Resolution, Specifications
from pyannote.audio.models.embedding.wespeaker import BaseWeSpeakerResNet
from pyannote.audio.models.embedding.wespeaker.resnet import BasicBlock, ResNet

from bwc.audio import SAMPLE_RATE
from bwc.config import DiarizationConfig
from bwc.demo import road_noise, speak
from bwc.records import Diarization, SpeechRegion
from models.diarization import (
    PyannoteDiarizer,
    SharedTrunkEmbedding,
    link_speakers,
    supports_shared_trunk,
)
from models.forward_clock import ForwardClock
from models.tiny import EMBEDDING_DIMENSION, PYANNOTE_DIR

FRAME_S = 0.02  # about one pyannote output frame (community-1: 16.9 ms)
LINES = [  # (voice, text): two voices taking turns, as at a traffic stop
    ("en-us+m3", "Good evening. I stopped you because you were going sixty in a forty zone."),
    ("en-us+f2", "I am sorry officer, I did not see the sign back there."),
    ("en-us+m3", "Can I see your license, registration and proof of insurance please?"),
    ("en-us+f2", "Sure, it is in the glove box. I am reaching for it now."),
    ("en-us+m3", "Thank you. Wait here in the car while I run your information."),
    ("en-us+f2", "Okay. How long will this take? I am late for work."),
    ("en-us+m3", "Just a few minutes. Here is a warning this time, slow down please."),
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread while these tests run: on a busy 2-core machine torch's spinning worker threads made the
    same diarization 5 to 50 times slower; the tiny models gain nothing from a second thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyWeSpeaker(BaseWeSpeakerResNet):
    """A WeSpeaker ResNet with one block per stage, 4 channels, 32 mel bins every 20 ms: cheap, but the same
    forward_frames and forward_embedding as WeSpeakerResNet34. Module-level so pyannote's loader can import it."""

    def __init__(
        self,
        sample_rate: int = 16000,
        num_channels: int = 1,
        num_mel_bins: int = 32,
        frame_length: int = 25,
        frame_shift: int = 20,
        dither: float = 0.0,
        window_type: str = "hamming",
        use_energy: bool = False,
        task: object = None,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate,
            num_channels=num_channels,
            num_mel_bins=num_mel_bins,
            frame_length=frame_length,
            frame_shift=frame_shift,
            dither=dither,
            window_type=window_type,
            use_energy=use_energy,
            task=task,  # type: ignore[arg-type]
        )
        self.resnet = ResNet(
            BasicBlock, [1, 1, 1, 1], m_channels=4, feat_dim=num_mel_bins, embed_dim=EMBEDDING_DIMENSION
        )


@pytest.fixture(scope="module")
def resnet_pipeline(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline with its embedding replaced by a :class:`TinyWeSpeaker` checkpoint."""
    directory = tmp_path_factory.mktemp("pipelines") / "tiny-resnet"  # no "wespeaker": pyannote's ONNX route
    shutil.copytree(tiny_models / PYANNOTE_DIR, directory)
    torch.manual_seed(0)
    model = TinyWeSpeaker()
    model.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0)
    model.setup()
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, directory / "embedding" / "pytorch_model.bin")
    return directory


@pytest.fixture(scope="module")
def recording() -> tuple[np.ndarray, list[SpeechRegion]]:
    """About 60 s: the lines with 2 to 5 s of road noise between them, and the lines' spans (padded) as regions.
    Lines 3 and 4 are one region, so that regions of several lengths are packed."""
    rng = np.random.default_rng(3)
    pieces, spans, cursor = [], [], 0
    for voice, text in LINES:
        pause = np.zeros(int(rng.uniform(2.0, 5.0) * SAMPLE_RATE), dtype=np.float32)
        voiced = speak(text, voice)
        pieces += [pause, voiced]
        cursor += pause.size
        spans.append((cursor / SAMPLE_RATE - 0.2, (cursor + voiced.size) / SAMPLE_RATE + 0.2))
        cursor += voiced.size
    pieces.append(np.zeros(2 * SAMPLE_RATE, dtype=np.float32))
    speech = np.concatenate(pieces)
    audio = (speech + road_noise(speech.size / SAMPLE_RATE, rng)).astype(np.float32)
    spans[2:4] = [(spans[2][0], spans[3][1])]
    return audio, [SpeechRegion(start, end) for start, end in spans]


def reader(audio: np.ndarray, calls: list[tuple[float, float]] | None = None):  # type: ignore[no-untyped-def]
    def read(start: float, end: float) -> np.ndarray:
        if calls is not None:
            calls.append((start, end))
        return audio[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)].copy()

    return read


def unit(vector: list[float]) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float64)
    return array / np.linalg.norm(array)


# -- link_speakers on synthetic centroids --


def test_link_speakers_follows_speakers_across_segments() -> None:
    rng = np.random.default_rng(0)
    a, b, c = np.eye(8)[0] * 3.0, np.eye(8)[1] * 0.5, np.eye(8)[2]

    def noisy(vector: np.ndarray) -> np.ndarray:
        return vector + rng.normal(0, 0.05, vector.shape)

    segments = [np.stack([noisy(a), noisy(b)]), np.stack([noisy(b), noisy(a)]), np.stack([noisy(a), noisy(c)])]
    links = link_speakers(segments, min_similarity=0.5)
    assert links == [[0, 1], [1, 0], [0, 2]]  # same voice, same index; the new voice a new one


def test_link_speakers_never_merges_two_speakers_of_one_segment() -> None:
    a = unit([1.0, 0.0, 0.0])
    close = unit([1.0, 0.1, 0.0])  # nearly a: the pipeline still told them apart in segment 2
    links = link_speakers([a[None], np.stack([close, a])], min_similarity=0.5)
    assert links[0] == [0]
    assert sorted(links[1]) == [0, 1]
    assert links[1][1] == 0  # the closer of the two takes the existing speaker


def test_link_speakers_maximises_total_similarity() -> None:
    x, y = unit([1.0, 0.0, 0.0]), unit([0.0, 1.0, 0.0])
    p = unit([0.9, 0.44, 0.0])  # most like x, but also like y
    q = unit([0.8, 0.1, 0.0])  # like x, not like y
    links = link_speakers([np.stack([x, y]), np.stack([p, q])], min_similarity=0.3)
    assert links[1] == [1, 0]  # p -> y and q -> x: both linked (greedy p -> x first would leave q new)


def test_link_speakers_threshold_and_missing_centroids() -> None:
    a = unit([1.0, 0.0])
    tilted = unit([0.4, np.sqrt(1 - 0.16)])  # cosine 0.4 with a
    assert link_speakers([a[None], tilted[None]], min_similarity=0.5) == [[0], [1]]
    assert link_speakers([a[None], tilted[None]], min_similarity=0.39) == [[0], [0]]
    zero, nan = np.zeros(2), np.full(2, np.nan)
    # Zero and NaN centroids never link, not even to each other; a segment without centroids (None: no columns)
    # gives new speakers too, and later segments still link to the first.
    links = link_speakers([np.stack([a, zero]), np.stack([zero, nan, a]), np.zeros((2, 0)), a[None]], 0.5)
    assert links == [[0, 1], [2, 3, 0], [4, 5], [0]]
    assert link_speakers([], 0.5) == []
    assert link_speakers([np.zeros((0, 2)), a[None]], 0.5) == [[], [0]]


def test_link_speakers_running_mean_is_weighted() -> None:
    a, mixed = unit([1.0, 0.0]), unit([1.0, 1.0])  # cosine 0.707: mixed joins a's speaker
    c = unit([0.3, 1.0])  # cosine 0.29 with a, 0.63 with the unweighted mean of a and mixed
    assert link_speakers([a[None], mixed[None], c[None]], 0.5) == [[0], [0], [0]]
    # Speaker 0 heard for 9 s as a and 1 s as mixed: its mean stays near a, and c is someone else.
    weights = [np.array([9.0]), np.array([1.0]), None]
    assert link_speakers([a[None], mixed[None], c[None]], 0.5, weights=weights) == [[0], [0], [1]]


# -- diarize_regions on real speech --


def test_diarize_regions_in_several_segments(
    resnet_pipeline: Path, recording: tuple[np.ndarray, list[SpeechRegion]]
) -> None:
    audio, regions = recording
    max_segment_s = 10.0  # one pyannote chunk per segment: several segments, and fast
    clock = ForwardClock()
    diarizer = PyannoteDiarizer(DiarizationConfig(max_segment_s=max_segment_s), resnet_pipeline, clock=clock)
    assert isinstance(diarizer.pipeline._embedding, SharedTrunkEmbedding)
    assert diarizer.pipeline.embedding_batch_size % 3 == 0  # community-1's 3 local speakers per chunk
    pipeline, handed = diarizer.pipeline, []

    def recording_pipeline(file: dict, **hints: int):  # type: ignore[no-untyped-def]
        handed.append(file["waveform"].shape[-1])
        return pipeline(file, **hints)

    diarizer.pipeline = recording_pipeline
    calls: list[tuple[float, float]] = []
    gap_s = 0.5
    result = diarizer.diarize_regions(reader(audio, calls), regions, gap_s=gap_s)

    assert len(handed) >= 3  # several segments
    assert max(handed) <= max_segment_s * SAMPLE_RATE + 1
    # read only speech, in pieces no longer than a segment, each part of the recording once
    assert all(end - start <= max_segment_s + 1e-9 for start, end in calls)
    assert all(any(r.start - 1e-9 <= s and e <= r.end + 1e-9 for r in regions) for s, e in calls)
    assert np.isclose(sum(e - s for s, e in calls), sum(r.duration for r in regions))
    assert sorted(calls) == calls
    # the region longer than a segment was read in equal pieces
    long_region = max(regions, key=lambda region: region.duration)
    assert long_region.duration > max_segment_s
    pieces = [(s, e) for s, e in calls if long_region.start - 1e-9 <= s and e <= long_region.end + 1e-9]
    assert len(pieces) == 2 and np.isclose(pieces[0][1] - pieces[0][0], pieces[1][1] - pieces[1][0])

    assert result.turns, "speech in every region, yet no turns"
    for turns in (result.turns, result.exclusive_turns):
        assert [turn.start for turn in turns] == sorted(turn.start for turn in turns)
        for turn in turns:
            assert turn.end > turn.start
            assert any(r.start - 1e-6 <= turn.start and turn.end <= r.end + 1e-6 for r in regions), turn
            assert re.fullmatch(r"SPEAKER_\d\d", turn.speaker)
    # labels numbered in order of first appearance
    order = list(dict.fromkeys(turn.speaker for turn in sorted(result.turns, key=lambda t: t.start)))
    assert order == [f"SPEAKER_{n:02d}" for n in range(len(order))]
    # the exclusive turns are one speaker at a time
    exclusive = result.exclusive_turns
    assert all(left.end <= right.start + 1e-6 for left, right in itertools.pairwise(exclusive))
    # turns reach into every region with speech (the regions are all speech)
    assert all(any(t.start < r.end and t.end > r.start for t in result.turns) for r in regions)
    assert clock.seconds > 0.0


def test_one_segment_over_the_whole_audio_is_diarize(
    resnet_pipeline: Path, recording: tuple[np.ndarray, list[SpeechRegion]]
) -> None:
    audio = recording[0][: 15 * SAMPLE_RATE]
    diarizer = PyannoteDiarizer(DiarizationConfig(max_segment_s=600.0), resnet_pipeline)
    whole = diarizer.diarize(audio)
    calls: list[tuple[float, float]] = []
    regions = [SpeechRegion(0.0, audio.size / SAMPLE_RATE)]
    segmented = diarizer.diarize_regions(reader(audio, calls), regions, gap_s=0.5)
    assert calls == [(0.0, audio.size / SAMPLE_RATE)]
    assert_same_turns(whole, segmented)


def test_too_little_speech_gives_nothing(resnet_pipeline: Path) -> None:
    diarizer = PyannoteDiarizer(DiarizationConfig(), resnet_pipeline)
    audio = np.zeros(SAMPLE_RATE, dtype=np.float32)
    empty = Diarization(turns=(), exclusive_turns=())
    assert diarizer.diarize_regions(reader(audio), [SpeechRegion(0.1, 0.3)], gap_s=0.5) == empty
    assert diarizer.diarize_regions(reader(audio), [], gap_s=0.5) == empty


def assert_same_turns(expected: Diarization, actual: Diarization) -> None:
    """Same turns up to a frame, and the same speakers up to renaming (diarize keeps pyannote's label order,
    diarize_regions numbers speakers by first appearance)."""
    renamed: dict[str, str] = {}
    for want_turns, got_turns in ((expected.turns, actual.turns), (expected.exclusive_turns, actual.exclusive_turns)):
        want = sorted(want_turns, key=lambda t: (t.start, t.end, t.speaker))
        assert len(want) == len(got_turns)
        for w, g in zip(want, got_turns, strict=True):
            assert abs(w.start - g.start) <= FRAME_S and abs(w.end - g.end) <= FRAME_S, (w, g)
            assert renamed.setdefault(w.speaker, g.speaker) == g.speaker
    assert len(set(renamed.values())) == len(renamed)


# -- the shared embedding trunk --


def test_shared_trunk_gives_pyannotes_embeddings(
    resnet_pipeline: Path, recording: tuple[np.ndarray, list[SpeechRegion]]
) -> None:
    audio = recording[0][: 14 * SAMPLE_RATE]
    file = {"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE, "uri": "test"}
    plain = PyannoteDiarizer(DiarizationConfig(share_embedding_trunk=False), resnet_pipeline)
    assert not isinstance(plain.pipeline._embedding, SharedTrunkEmbedding)
    segmentations = plain.pipeline.get_segmentations(file)
    assert segmentations.data.shape[-1] == 3
    segmentations.data[::3, :, 1] = 0.0  # some chunks with a silent local speaker: all-zero masks in the batch
    exclude_overlap = plain.pipeline.embedding_exclude_overlap
    expected = plain.pipeline.get_embeddings(file, segmentations, exclude_overlap=exclude_overlap)
    # 4 is no multiple of 3: a chunk's rows straddle batches, which must not change anything
    for batch_size in (None, 4):
        shared = PyannoteDiarizer(
            DiarizationConfig(share_embedding_trunk=True, embedding_batch_size=batch_size), resnet_pipeline
        )
        assert isinstance(shared.pipeline._embedding, SharedTrunkEmbedding)
        assert shared.pipeline._embedding.dimension == EMBEDDING_DIMENSION  # delegated to pyannote's
        embeddings = shared.pipeline.get_embeddings(file, segmentations, exclude_overlap=exclude_overlap)
        assert embeddings.shape == expected.shape
        np.testing.assert_allclose(embeddings, expected, atol=1e-5, equal_nan=True)
    # and the whole pipeline then gives the same turns
    assert shared.diarize(audio) == plain.diarize(audio)


def test_models_without_frame_pooling_are_left_to_pyannote(tiny_models: Path) -> None:
    clock = ForwardClock()
    diarizer = PyannoteDiarizer(DiarizationConfig(), tiny_models / PYANNOTE_DIR, clock=clock)
    assert not supports_shared_trunk(diarizer.pipeline._embedding)  # XVectorSincNet
    assert not diarizer.shared_trunk
    assert diarizer.pipeline.embedding_batch_size == 16  # the pipeline's own
    rng = np.random.default_rng(0)
    waveforms = torch.from_numpy(rng.normal(0, 0.1, (2, 1, 3 * SAMPLE_RATE)).astype(np.float32))
    embeddings = diarizer.pipeline._embedding(waveforms, masks=torch.ones(2, 100))
    assert embeddings.shape == (2, EMBEDDING_DIMENSION)
    assert clock.seconds > 0.0  # timed through the thin wrapper
