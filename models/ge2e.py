"""Resemblyzer's GE2E speaker encoder as a pyannote.audio embedding model.

The network is resemblyzer's ``VoiceEncoder`` (Wan et al., "Generalized end-to-end loss for speaker verification",
ICASSP 2018): a 3-layer LSTM over 40-band mel power spectra (25 ms windows, 10 ms hop, 16 kHz), the last layer's
final hidden state through a linear layer and a ReLU, L2-normalised; an utterance's d-vector is the normalised mean of
the d-vectors of its 1.6 s partial utterances. :class:`GE2E` is a pyannote ``Model``, so a checkpoint written by
:func:`build_ge2e_checkpoint` (pyannote's own metadata, architecture ``models.ge2e.GE2E``) loads with
``Model.from_pretrained`` and runs inside pyannote's ``PyannoteAudioPretrainedSpeakerEmbedding`` and
``SpeakerDiarization`` unchanged.

With ``weights`` (pyannote's per-speaker frame masks), only the mel frames where the mask is on are kept, joined end
to end and cut into partials: the speaker's own speech, as resemblyzer embeds an utterance after trimming its
silences. Their level is set to :data:`TARGET_DBFS` first: the network reads power spectra, not log spectra, so its
input scales with the square of the gain, and resemblyzer normalises every utterance's volume before embedding.

Example
-------
>>> checkpoint = build_ge2e_checkpoint(Path("resemblyzer/pretrained.pt"), Path("embedding/pytorch_model.bin"))
... # doctest: +SKIP
>>> model = Model.from_pretrained(checkpoint)                                            # doctest: +SKIP
>>> model(torch.randn(2, 1, 48000)).shape                                                # doctest: +SKIP
torch.Size([2, 256])
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # before pyannote is imported: no telemetry

from pyannote.audio import Model
from pyannote.audio.core.task import Problem, Resolution, Specifications, Task

# resemblyzer's hparams.py: what the published weights were trained with.
SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms analysis window (mel_window_length); librosa's default window length is n_fft
HOP_LENGTH = 160  # 10 ms (mel_window_step)
N_MELS = 40  # mel_n_channels
HIDDEN_SIZE = 256  # model_hidden_size
NUM_LAYERS = 3  # model_num_layers
DIMENSION = 256  # model_embedding_size
PARTIAL_FRAMES = 160  # 1.6 s partial utterances (partials_n_frames), the length GE2E was trained on
# Frames between partial starts: resemblyzer's default rate of 1.3 partials per second, round(16000 / 1.3 / 160).
PARTIAL_STEP = 77
TARGET_DBFS = -30.0  # audio_norm_target_dBFS: speech level the encoder expects (full scale = 1.0)
# Shortest waveform embedded: one full analysis window. Shorter input raises, which is how pyannote's
# PyannoteAudioPretrainedSpeakerEmbedding.min_num_samples finds this value.
MIN_NUM_SAMPLES = N_FFT
MASK_ON = 0.5  # a mask frame counts when its weight is above this (pyannote passes 0/1 masks)
LEVEL_EPS = 1e-8  # RMS below this is digital silence: left as is rather than amplified without bound
STATE_DICT_KEY = "model_state"  # where resemblyzer's pretrained.pt keeps the network's weights
# Keys of pretrained.pt that belong to GE2E's training loss (the scaled-cosine similarity), not to the encoder.
LOSS_KEYS = ("similarity_weight", "similarity_bias")


def mel_filters() -> torch.Tensor:
    """(N_FFT // 2 + 1, N_MELS) filterbank equal to ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)``:
    0 Hz to Nyquist, Slaney's mel scale, Slaney's area normalisation (librosa's defaults)."""
    from torchaudio.functional import melscale_fbanks

    return melscale_fbanks(
        n_freqs=N_FFT // 2 + 1,
        f_min=0.0,
        f_max=SAMPLE_RATE / 2,
        n_mels=N_MELS,
        sample_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )


def mel_spectrogram(
    waveforms: torch.Tensor, window: torch.Tensor | None = None, filters: torch.Tensor | None = None
) -> torch.Tensor:
    """resemblyzer's ``wav_to_mel_spectrogram`` in torch: mel power spectra, not log.

    Same as ``librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40).T``: periodic Hann
    window of ``n_fft`` samples, frames centred on multiples of the hop with ``n_fft // 2`` zeros padded at both
    ends (librosa >= 0.10's ``pad_mode="constant"``), power 2.

    Parameters
    ----------
    waveforms
        (..., samples) at 16 kHz.
    window, filters
        Precomputed Hann window and :func:`mel_filters` (on the waveforms' device); computed when None.

    Returns
    -------
    torch.Tensor
        (..., 1 + samples // 160, 40).

    Example
    -------
    >>> mel_spectrogram(torch.zeros(16000)).shape
    torch.Size([101, 40])
    """
    if window is None:
        window = torch.hann_window(N_FFT, device=waveforms.device, dtype=waveforms.dtype)
    if filters is None:
        filters = mel_filters().to(device=waveforms.device, dtype=waveforms.dtype)
    shape = waveforms.shape
    spectrum = torch.stft(
        waveforms.reshape(-1, shape[-1]),
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = spectrum.real.square() + spectrum.imag.square()  # (batch, frequencies, frames)
    mel = power.transpose(1, 2) @ filters
    return mel.reshape(*shape[:-1], *mel.shape[1:])


def partial_bounds(num_frames: int) -> list[tuple[int, int]]:
    """(start, end) frames of the partial utterances that cover ``num_frames`` frames of speech.

    Partials of :data:`PARTIAL_FRAMES` start every :data:`PARTIAL_STEP` frames; when they do not reach the end, one
    more ends exactly at the last frame. Speech shorter than a partial is one shorter partial. Unlike resemblyzer
    nothing is zero-padded: the masked speech is all there is, and padding would feed the LSTM silence last.

    Example
    -------
    >>> partial_bounds(100), partial_bounds(300)
    ([(0, 100)], [(0, 160), (77, 237), (140, 300)])
    """
    if num_frames <= PARTIAL_FRAMES:
        return [(0, num_frames)]
    bounds = [(start, start + PARTIAL_FRAMES) for start in range(0, num_frames - PARTIAL_FRAMES + 1, PARTIAL_STEP)]
    if bounds[-1][1] < num_frames:
        bounds.append((num_frames - PARTIAL_FRAMES, num_frames))
    return bounds


class GE2E(Model):
    """GE2E speaker encoder (resemblyzer's ``VoiceEncoder``) with pyannote's embedding-model interface.

    Parameters
    ----------
    sample_rate
        Must be 16000: the mel frontend and the weights are for 16 kHz.
    num_channels
        Must be 1 (pyannote's models are mono).
    task
        pyannote training task; None for inference.

    Example
    -------
    >>> model = GE2E().eval()
    >>> model(torch.randn(3, 1, 32000), weights=torch.ones(3, 100)).shape
    torch.Size([3, 256])
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, num_channels: int = 1, task: Task | None = None) -> None:
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"GE2E works at {SAMPLE_RATE} Hz, got sample_rate={sample_rate}")
        super().__init__(sample_rate=sample_rate, num_channels=num_channels, task=task)
        # Module names are resemblyzer's, so its state dict loads as it is (less the loss's two scalars).
        self.lstm = nn.LSTM(N_MELS, HIDDEN_SIZE, NUM_LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN_SIZE, DIMENSION)
        self.relu = nn.ReLU()
        # Derived from constants, not learnt: kept out of the state dict.
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("filters", mel_filters(), persistent=False)

    @property
    def dimension(self) -> int:
        """Size of the d-vectors (pyannote's ``PyannoteAudioPretrainedSpeakerEmbedding.dimension`` reads it)."""
        return DIMENSION

    def embed_partials(self, partials: list[torch.Tensor]) -> torch.Tensor:
        """(partials, 256) unit d-vectors of (frames, 40) mel spectra of at most :data:`PARTIAL_FRAMES` frames.

        The LSTM state is read at each partial's own last frame, as if it were run alone. Full-length partials (most
        of them) run as one plain batch, shorter ones as a packed sequence: packing costs about 1.7 times as much
        on CPU.
        """
        full = [index for index, partial in enumerate(partials) if partial.shape[0] == PARTIAL_FRAMES]
        short = [index for index, partial in enumerate(partials) if partial.shape[0] != PARTIAL_FRAMES]
        hidden = partials[0].new_empty(len(partials), HIDDEN_SIZE)
        if full:
            _, (state, _) = self.lstm(torch.stack([partials[index] for index in full]))
            hidden[full] = state[-1]
        if short:
            lengths = torch.tensor([partials[index].shape[0] for index in short])
            padded = nn.utils.rnn.pad_sequence([partials[index] for index in short], batch_first=True)
            packed = nn.utils.rnn.pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
            _, (state, _) = self.lstm(packed)
            hidden[short] = state[-1]
        return F.normalize(self.relu(self.linear(hidden)), dim=-1)

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """d-vectors of a batch of waveforms, of the masked frames only when ``weights`` are given.

        Parameters
        ----------
        waveforms
            (batch, 1, samples) at 16 kHz; at least :data:`MIN_NUM_SAMPLES` samples.
        weights
            (batch, frames) masks over the same span at any frame rate (pyannote passes the segmentation model's
            frames): resampled to mel frames by nearest neighbour; frames above :data:`MASK_ON` count.

        Returns
        -------
        torch.Tensor
            (batch, 256) unit-length d-vectors; NaN rows where a mask selects no frame (pyannote drops those).
        """
        if waveforms.ndim != 3 or waveforms.shape[1] != 1:
            raise ValueError(f"waveforms must be (batch, 1, samples), got {tuple(waveforms.shape)}")
        batch, _, num_samples = waveforms.shape
        if num_samples < MIN_NUM_SAMPLES:
            raise ValueError(f"GE2E needs at least {MIN_NUM_SAMPLES} samples, got {num_samples}")
        audio = waveforms[:, 0].float()
        mels = mel_spectrogram(audio, self.window, self.filters)  # (batch, frames, mels)
        num_frames = mels.shape[1]
        if weights is None:
            frame_on = torch.ones(batch, num_frames, dtype=torch.bool, device=audio.device)
            sample_on = torch.ones_like(audio, dtype=torch.bool)
        else:
            weights = weights.float().reshape(batch, 1, -1)
            frame_on = F.interpolate(weights, size=num_frames, mode="nearest")[:, 0] > MASK_ON
            sample_on = F.interpolate(weights, size=num_samples, mode="nearest")[:, 0] > MASK_ON

        # Level: the RMS of the kept samples to TARGET_DBFS. Power spectra scale with the gain squared.
        kept = sample_on.sum(dim=1).clamp(min=1)
        rms = torch.sqrt((audio.square() * sample_on).sum(dim=1) / kept)
        gain = torch.where(rms > LEVEL_EPS, 10.0 ** (TARGET_DBFS / 20.0) / rms.clamp(min=LEVEL_EPS), 1.0)
        mels = mels * gain.square()[:, None, None]

        partials: list[torch.Tensor] = []
        owners: list[int] = []
        for row in range(batch):
            speech = mels[row][frame_on[row]]  # the speaker's frames, joined end to end
            for start, end in partial_bounds(speech.shape[0]) if speech.shape[0] else []:
                partials.append(speech[start:end])
                owners.append(row)
        embeddings = torch.full((batch, DIMENSION), math.nan, device=audio.device)
        if not partials:
            return embeddings
        vectors = self.embed_partials(partials)
        index = torch.tensor(owners, device=audio.device)
        sums = torch.zeros(batch, DIMENSION, device=audio.device).index_add_(0, index, vectors)
        has_speech = torch.zeros(batch, dtype=torch.bool, device=audio.device)
        has_speech[index] = True
        embeddings[has_speech] = F.normalize(sums[has_speech], dim=-1)
        return embeddings


def ge2e_specifications() -> Specifications:
    """A speaker-embedding (representation) task over 1.6 s chunks: the partial length GE2E was trained on."""
    return Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=PARTIAL_FRAMES * HOP_LENGTH / SAMPLE_RATE
    )


def load_resemblyzer_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The encoder's weights from resemblyzer's ``pretrained.pt``, under :class:`GE2E`'s parameter names."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get(STATE_DICT_KEY, checkpoint)
    return {key: value for key, value in state.items() if key not in LOSS_KEYS}


def build_ge2e_checkpoint(state_dict_path: Path, checkpoint_path: Path) -> Path:
    """Write resemblyzer's weights as a pyannote checkpoint (``pytorch_model.bin``) that ``Model.from_pretrained``
    loads as :class:`GE2E`.

    Parameters
    ----------
    state_dict_path
        resemblyzer's ``pretrained.pt`` (``{"model_state": ..., "optimizer_state": ..., "step": ...}``).
    checkpoint_path
        File to write; its parent directory is created.

    Returns
    -------
    Path
        ``checkpoint_path``.

    Example
    -------
    >>> build_ge2e_checkpoint(Path("/tmp/starter-src/resemblyzer/pretrained.pt"), Path("/tmp/ge2e.bin"))
    ... # doctest: +SKIP
    PosixPath('/tmp/ge2e.bin')
    """
    import lightning

    model = GE2E()
    model.load_state_dict(load_resemblyzer_state_dict(state_dict_path), strict=True)
    model.specifications = ge2e_specifications()
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)  # pyannote's metadata: versions, architecture models.ge2e.GE2E, specs
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, checkpoint_path)
    return checkpoint_path
