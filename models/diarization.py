"""Speaker diarization with a pyannote.audio pipeline loaded from a local directory.

The pipeline is data: a directory with ``config.yaml`` (pyannote's own format) naming its segmentation model,
embedding model and PLDA, as pyannote's hub repositories are laid out. The waveform is handed to pyannote in memory.

Long recordings are diarized by :meth:`PyannoteDiarizer.diarize_regions`: only the speech the VAD found, packed into
segments of at most ``max_segment_s`` seconds (one segment's audio in memory at a time), with the speakers of the
segments linked into one set of recording-wide speakers by their embedding centroids (:func:`link_speakers`).

pyannote embeds every (10 s chunk, local speaker) pair by running the whole chunk through the embedding network once
per local speaker (3 times for community-1). When the embedding model is a WeSpeaker ResNet (it can pool frame-wise
features with masks), :class:`SharedTrunkEmbedding` runs the ResNet trunk once per chunk and pools it per speaker:
the same numbers, about 3.5 times faster.

Example
-------
>>> pipeline_dir = Path("/models/pyannote/speaker-diarization-community-1")
>>> diarizer = PyannoteDiarizer(DiarizationConfig(), pipeline_dir)  # doctest: +SKIP
>>> diarization = diarizer.diarize(audio)                                                            # doctest: +SKIP
>>> read = lambda start, end: read_pcm(path, start, end - start)                                     # doctest: +SKIP
>>> diarization = diarizer.diarize_regions(read, regions, gap_s=0.5)                                 # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bwc.audio import SAMPLE_RATE
from bwc.config import DiarizationConfig
from bwc.records import Diarization, SpeakerTurn, SpeechRegion
from models.forward_clock import ForwardClock
from models.locate import pyannote_version

# Before pyannote is imported: no telemetry, and no hub look-ups at run time.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MIN_DIARIZATION_SAMPLES = SAMPLE_RATE // 2  # pyannote's models need at least this much audio
SPEAKER_LABEL = "SPEAKER_{:02d}"  # pyannote's own label format, kept for recording-wide speakers
MIN_PIECE_S = 1e-6  # turn pieces shorter than this (rounding slivers at region boundaries) are dropped
CENTROID_EPS = 1e-12  # a centroid with a smaller norm is "no centroid": it never links


class _TimedEmbedding:
    """pyannote's speaker-embedding inference with its calls timed; every other attribute is the original's.

    Set as ``pipeline._embedding``, it shadows the original, which stays in pyannote's registry of inferences:
    ``pipeline.to(device)`` still moves the (shared) model, and the wrapper reads the device from the original.
    """

    def __init__(self, inner: Any, clock: ForwardClock | None) -> None:
        self._inner = inner
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this wrapper does not define: sample_rate, dimension, min_num_samples, model_...
        inner = self.__dict__.get("_inner")
        if inner is None:  # not initialised yet (copy, unpickling): no attribute, rather than endless recursion
            raise AttributeError(name)
        return getattr(inner, name)

    def to(self, device: Any) -> _TimedEmbedding:
        self._inner.to(device)
        return self

    def __call__(self, waveforms: Any, masks: Any = None) -> np.ndarray:
        if self._clock is None:
            return self._embed(waveforms, masks)
        with self._clock.timing():
            return self._embed(waveforms, masks)

    def _embed(self, waveforms: Any, masks: Any) -> np.ndarray:
        return self._inner(waveforms, masks=masks)


class SharedTrunkEmbedding(_TimedEmbedding):
    """A WeSpeaker embedding inference that runs the ResNet trunk once per distinct waveform of a batch.

    pyannote's ``get_embeddings`` puts a chunk's waveform in the batch once per local speaker, each with that
    speaker's mask; only the masked statistics pooling differs between those rows. Consecutive identical rows are
    found with ``torch.equal``, the frame-wise features computed once for each, and expanded back to the batch
    before the per-row weighted pooling. A chunk whose rows straddle two batches is computed once in each: results
    never depend on the batch size.

    Parameters
    ----------
    inner
        pyannote's ``PyannoteAudioPretrainedSpeakerEmbedding``; its ``model_`` must have ``forward_frames`` and
        ``forward_embedding`` (see :func:`supports_shared_trunk`).
    clock
        Adds the seconds spent embedding, when given.
    """

    def _embed(self, waveforms: Any, masks: Any) -> np.ndarray:
        import torch

        if masks is None:  # no per-speaker pooling to share a trunk between
            return self._inner(waveforms, masks=masks)
        model, device = self._inner.model_, self._inner.device
        # index[i] = which distinct waveform row i is; a new one starts wherever a row differs from the previous.
        starts = [0]
        index = [0]
        for row in range(1, waveforms.shape[0]):
            if not torch.equal(waveforms[row], waveforms[row - 1]):
                starts.append(row)
            index.append(len(starts) - 1)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as pyannote's own call: pooling warns about masks that are all zero
            frames = model.forward_frames(waveforms[starts].to(device))
            expanded = frames[torch.tensor(index, device=frames.device)]
            embeddings = model.forward_embedding(expanded, weights=masks.to(device))
        return embeddings.cpu().numpy()


def supports_shared_trunk(embedding: Any) -> bool:
    """Whether pyannote's embedding inference has a model that can pool frame-wise features (WeSpeaker ResNets)."""
    model = getattr(embedding, "model_", None)
    return callable(getattr(model, "forward_frames", None)) and callable(getattr(model, "forward_embedding", None))


def local_speaker_count(pipeline: Any) -> int | None:
    """Speakers per chunk of the pipeline's segmentation model (3 for community-1), or None when unknown."""
    specifications = getattr(getattr(getattr(pipeline, "_segmentation", None), "model", None), "specifications", None)
    classes = getattr(specifications, "classes", None)
    return len(classes) if classes else None


def install_embedding_wrapper(pipeline: Any, share_trunk: bool, clock: ForwardClock | None = None) -> bool:
    """Replace ``pipeline._embedding`` by a :class:`SharedTrunkEmbedding` (when ``share_trunk`` and the model
    supports it) or, with a ``clock``, by a timing wrapper. Returns whether the trunk is now shared."""
    embedding = pipeline._embedding
    if share_trunk and supports_shared_trunk(embedding):
        pipeline._embedding = SharedTrunkEmbedding(embedding, clock)
        return True
    if clock is not None:
        pipeline._embedding = _TimedEmbedding(embedding, clock)
    return False


@dataclass(frozen=True)
class _Placement:
    """Where one piece of a region lies in a segment (segment seconds) and in the recording (recording seconds)."""

    segment_start: float
    segment_end: float
    recording_start: float
    recording_end: float  # the piece's end as planned: the samples read may overrun it by a rounding sample


class PyannoteDiarizer:
    """A pyannote speaker-diarization pipeline loaded once, applied to many recordings.

    Parameters
    ----------
    config
        Speaker-count hints, batch sizes, segment length, cross-segment linking threshold, trunk sharing.
    pipeline_dir
        Local pipeline directory (resolved by :func:`models.locate.resolve_pyannote`).
    device
        "cpu" or "cuda".
    clock
        Adds up the seconds spent in the segmentation and embedding models, when given (``self.clock``).
    """

    def __init__(
        self, config: DiarizationConfig, pipeline_dir: Path, device: str = "cpu", clock: ForwardClock | None = None
    ) -> None:
        import torch
        from pyannote.audio import Pipeline

        from models.sincnet import share_first_convolution

        self.config = config
        self.clock = clock
        self.pipeline = Pipeline.from_pretrained(str(pipeline_dir))
        if self.pipeline is None:
            raise RuntimeError(f"pyannote could not load the pipeline in {pipeline_dir}")
        if config.segmentation_batch_size:
            self.pipeline.segmentation_batch_size = config.segmentation_batch_size
        if config.embedding_batch_size:
            self.pipeline.embedding_batch_size = config.embedding_batch_size
        self.pipeline.to(torch.device(device))
        share_first_convolution(self.pipeline._segmentation.model)  # overlapping windows' first layer filtered once
        self.shared_trunk = install_embedding_wrapper(self.pipeline, config.share_embedding_trunk, clock)
        local = local_speaker_count(self.pipeline)
        if self.shared_trunk and not config.embedding_batch_size and local:
            # A chunk's rows (one per local speaker) then share a batch, so its trunk runs once, not twice.
            batch = int(self.pipeline.embedding_batch_size)
            self.pipeline.embedding_batch_size = max(local, batch // local * local)
        if clock is not None:
            clock.attach(self.pipeline._segmentation.model)
        self.version = pyannote_version(pipeline_dir)

    def diarize(self, audio: np.ndarray) -> Diarization:
        """Speaker turns of 16 kHz mono ``audio``."""
        output = self._run(audio)
        if output is None:
            return Diarization(turns=(), exclusive_turns=())
        # pyannote 4 returns DiarizeOutput; legacy pipelines return a bare Annotation.
        full = getattr(output, "speaker_diarization", output)
        exclusive = getattr(output, "exclusive_speaker_diarization", full)
        return Diarization(turns=_turns(full), exclusive_turns=_turns(exclusive))

    def diarize_regions(
        self, read: Callable[[float, float], np.ndarray], regions: Sequence[SpeechRegion], gap_s: float
    ) -> Diarization:
        """Speaker turns of a recording's speech regions, diarized in segments, speakers linked across segments.

        The regions' audio is packed, ``gap_s`` seconds of silence between regions, into segments of at most
        ``config.max_segment_s`` seconds (a longer region is cut into equal pieces). Each segment is read, diarized
        and dropped before the next is read: memory does not grow with the recording. Turns are mapped back to
        recording time and cut at region boundaries (nothing falls in the inserted silence); each segment's speakers
        are linked to recording-wide speakers by their centroids (:func:`link_speakers`).

        Parameters
        ----------
        read
            ``read(start_s, end_s)``: that span of the recording as 16 kHz mono float32.
        regions
            Sorted, non-overlapping speech regions, in recording seconds.
        gap_s
            Silence put between regions in a segment, seconds.

        Returns
        -------
        Diarization
            Turns in recording seconds, sorted by start, labelled ``SPEAKER_00``, ``SPEAKER_01``, ... in order of
            first appearance.

        Example
        -------
        >>> read = lambda start, end: read_pcm(path, start, end - start)               # doctest: +SKIP
        >>> diarizer.diarize_regions(read, [SpeechRegion(3.1, 9.4), SpeechRegion(61.0, 75.2)], gap_s=0.5)
        ... # doctest: +SKIP
        Diarization(turns=(SpeakerTurn(start=3.12, end=5.8, speaker='SPEAKER_00'), ...), exclusive_turns=(...))
        """
        max_segment_s = float(self.config.max_segment_s)
        if not max_segment_s > 0:
            raise ValueError(f"max_segment_s must be positive, got {max_segment_s}")
        gap_s = max(0.0, gap_s)
        gap = np.zeros(round(gap_s * SAMPLE_RATE), dtype=np.float32)
        # Per segment with speakers: its turns (local label index, recording start, end, exclusive?), centroids and
        # speaking time per local speaker.
        segment_turns: list[list[tuple[int, float, float, bool]]] = []
        segment_centroids: list[np.ndarray] = []
        segment_weights: list[np.ndarray] = []
        for pieces in _plan_segments(regions, gap_s, max_segment_s):
            parts: list[np.ndarray] = []
            placements: list[_Placement] = []
            offset = 0  # samples
            for start, end in pieces:
                audio = np.asarray(read(start, end), dtype=np.float32).reshape(-1)
                if audio.size == 0:
                    continue
                if parts:
                    parts.append(gap)
                    offset += gap.size
                parts.append(audio)
                placements.append(_Placement(offset / SAMPLE_RATE, (offset + audio.size) / SAMPLE_RATE, start, end))
                offset += audio.size
            if not parts:
                continue
            segment = np.concatenate(parts)
            del parts
            output = self._run(segment)
            del segment
            if output is None:
                continue
            full = getattr(output, "speaker_diarization", output)
            exclusive = getattr(output, "exclusive_speaker_diarization", full)
            labels = list(full.labels())
            labels += [label for label in exclusive.labels() if label not in labels]  # never expected; kept safe
            if not labels:
                continue
            local = {label: number for number, label in enumerate(labels)}
            turns = [
                (local[label], start, end, is_exclusive)
                for annotation, is_exclusive in ((full, False), (exclusive, True))
                for segment_turn, _, label in annotation.itertracks(yield_label=True)
                for start, end in _to_recording(float(segment_turn.start), float(segment_turn.end), placements)
            ]
            segment_turns.append(turns)
            segment_centroids.append(_centroids(getattr(output, "speaker_embeddings", None), len(labels)))
            segment_weights.append(np.array([full.label_duration(label) for label in labels], dtype=np.float64))
        links = link_speakers(segment_centroids, self.config.link_min_similarity, segment_weights)
        linked = [
            (links[number][speaker], start, end, is_exclusive)
            for number, turns in enumerate(segment_turns)
            for speaker, start, end, is_exclusive in turns
        ]
        # Recording-wide labels in order of first appearance (link_speakers numbers them by segment, then by local
        # label, which is not time order within a segment).
        first: dict[int, float] = {}
        for speaker, start, _, _ in linked:
            first[speaker] = min(start, first.get(speaker, math.inf))
        names = {
            speaker: SPEAKER_LABEL.format(n) for n, speaker in enumerate(sorted(first, key=lambda s: (first[s], s)))
        }

        def collect(exclusive: bool) -> tuple[SpeakerTurn, ...]:
            chosen = [
                SpeakerTurn(start=start, end=end, speaker=names[speaker])
                for speaker, start, end, is_exclusive in linked
                if is_exclusive == exclusive
            ]
            return tuple(sorted(chosen, key=lambda turn: (turn.start, turn.end, turn.speaker)))

        return Diarization(turns=collect(False), exclusive_turns=collect(True))

    def _run(self, audio: np.ndarray) -> Any:
        """pyannote's output for 16 kHz mono ``audio`` held in memory, or None when it is too short."""
        if audio.size < MIN_DIARIZATION_SAMPLES:
            return None
        import torch

        hints = {
            key: value
            for key, value in (
                ("num_speakers", self.config.num_speakers),
                ("min_speakers", self.config.min_speakers),
                ("max_speakers", self.config.max_speakers),
            )
            if value is not None
        }
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
        with torch.inference_mode():
            return self.pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **hints)


def link_speakers(
    segment_centroids: list[np.ndarray],
    min_similarity: float,
    weights: Sequence[np.ndarray | None] | None = None,
) -> list[list[int]]:
    """Link each segment's local speakers to recording-wide speakers by the cosine similarity of their centroids.

    Greedy in segment order. Every global speaker keeps a running weighted mean of its linked (unit-length)
    centroids. Within a segment, local speakers are matched to distinct global speakers (two voices the pipeline
    told apart in one segment stay apart), only on pairs with similarity >= ``min_similarity``: as many pairs as
    possible, and among those the largest total similarity (``scipy.optimize.linear_sum_assignment``). Unmatched
    local speakers, and those without a usable centroid (zero, NaN, or of another dimension), become new global
    speakers.

    Parameters
    ----------
    segment_centroids
        Per segment, a (local speakers, dimension) array of centroids (rows may be zero: no centroid).
    min_similarity
        Cosine similarity at or above which a local speaker may be linked to a global one.
    weights
        Per segment, one weight per local speaker for the running means (e.g. speaking time); 1 each when
        None (for all segments, or for one).

    Returns
    -------
    list[list[int]]
        Per segment, the global speaker index of each local speaker; indices are numbered from 0 as they are first
        created.

    Example
    -------
    >>> a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    >>> link_speakers([np.stack([a, b]), np.stack([b]), np.stack([a, np.zeros(2)])], min_similarity=0.5)
    [[0, 1], [1], [0, 2]]
    """
    from scipy.optimize import linear_sum_assignment

    sums: list[np.ndarray | None] = []  # per global speaker: weighted sum of its unit centroids (None: none yet)
    dimension: int | None = None  # of the first usable centroid; others cannot be compared with it
    links: list[list[int]] = []
    for number, centroids in enumerate(segment_centroids):
        centroids = np.asarray(centroids, dtype=np.float64)
        if centroids.ndim != 2:
            raise ValueError(f"segment {number}: centroids must be (local speakers, dimension), got {centroids.shape}")
        count = centroids.shape[0]
        given = None if weights is None else weights[number]
        weight = np.ones(count) if given is None else np.asarray(given, dtype=np.float64).reshape(count)
        weight = np.where(np.isfinite(weight) & (weight > 0), weight, 1.0)  # a speaker with no time still counts
        norms = np.linalg.norm(centroids, axis=1) if centroids.shape[1] else np.zeros(count)
        usable = np.isfinite(norms) & (norms > CENTROID_EPS)
        if dimension is None and usable.any():
            dimension = centroids.shape[1]
        if centroids.shape[1] != dimension:
            usable[:] = False
        units = np.zeros_like(centroids)
        units[usable] = centroids[usable] / norms[usable, None]
        assigned = [-1] * count
        candidates = [index for index, total in enumerate(sums) if total is not None]
        if candidates and usable.any():
            means = np.stack([sums[index] for index in candidates])
            means /= np.maximum(np.linalg.norm(means, axis=1), CENTROID_EPS)[:, None]
            similarity = units @ means.T  # (local, candidate global)
            allowed = usable[:, None] & (similarity >= min_similarity)
            # Each allowed pair is worth more than any total of similarities (in [-1, 1]) of fewer pairs: the most
            # links first, then the most similar ones.
            bonus = 2.0 * count + 2.0
            gain = np.where(allowed, bonus + similarity, 0.0)
            for row, column in zip(*linear_sum_assignment(gain, maximize=True), strict=True):
                if allowed[row, column]:
                    assigned[row] = candidates[column]
        for row in range(count):
            if assigned[row] < 0:
                assigned[row] = len(sums)
                sums.append(None)
            if usable[row]:
                total = sums[assigned[row]]
                sums[assigned[row]] = weight[row] * units[row] + (0.0 if total is None else total)
        links.append(assigned)
    return links


def _plan_segments(
    regions: Sequence[SpeechRegion], gap_s: float, max_segment_s: float
) -> list[list[tuple[float, float]]]:
    """Pieces (recording start, end) of each segment: regions in order, cut to at most ``max_segment_s``, packed
    with ``gap_s`` between them while the segment stays within ``max_segment_s``."""
    pieces: list[tuple[float, float]] = []
    for region in regions:
        duration = region.end - region.start
        if duration <= 0:
            continue
        # Equal pieces rather than full ones and a sliver: pyannote does poorly on a few seconds alone.
        count = max(1, math.ceil(duration / max_segment_s - 1e-9))
        bounds = [region.start + duration * k / count for k in range(count)] + [region.end]
        pieces += list(itertools.pairwise(bounds))
    segments: list[list[tuple[float, float]]] = []
    length = 0.0
    for start, end in pieces:
        if segments and length + gap_s + (end - start) <= max_segment_s + 1e-9:
            segments[-1].append((start, end))
            length += gap_s + (end - start)
        else:
            segments.append([(start, end)])
            length = end - start
    return segments


def _to_recording(start: float, end: float, placements: list[_Placement]) -> list[tuple[float, float]]:
    """A turn in segment seconds as recording-second pieces: cut at region boundaries, the gaps between dropped."""
    spans = []
    for place in placements:
        shift = place.recording_start - place.segment_start
        low = max(start, place.segment_start) + shift
        high = min(end + shift, place.recording_end, place.segment_end + shift)
        if high - low >= MIN_PIECE_S:
            spans.append((low, high))
    return spans


def _centroids(embeddings: np.ndarray | None, count: int) -> np.ndarray:
    """``count`` centroid rows from pyannote's ``speaker_embeddings`` (None or too few rows: zero rows, no link)."""
    if embeddings is None:
        return np.zeros((count, 0))
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.shape[0] < count:
        embeddings = np.pad(embeddings, ((0, count - embeddings.shape[0]), (0, 0)))
    return embeddings[:count]


def _turns(annotation) -> tuple[SpeakerTurn, ...]:  # type: ignore[no-untyped-def]
    return tuple(
        SpeakerTurn(start=float(segment.start), end=float(segment.end), speaker=str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
    )
