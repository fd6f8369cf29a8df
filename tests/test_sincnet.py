"""The segmentation model's SincNet with its first convolution shared across overlapping windows gives the numbers
of pyannote's own, through pyannote's sliding inference, on the tiny random checkpoint and the real starter weights."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from models.sincnet import SharedFirstConvSincNet, _window_hop, share_first_convolution

SAMPLE_RATE = 16000


def _segmentation_model(directory: Path):  # type: ignore[no-untyped-def]
    from pyannote.audio import Model

    checkpoint = sorted(directory.rglob("segmentation/pytorch_model.bin"))[0]  # the diarization pipeline's model
    model = Model.from_pretrained(checkpoint, strict=True)
    model.eval()
    return model


def _speechlike(seconds: float, seed: int, offset: float = 0.0) -> np.ndarray:
    """Bursts of harmonics in noise, with a DC ``offset``: enough structure for the filters to differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = (np.sin(2 * np.pi * 0.4 * t) > 0).astype(np.float32)
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 1200), start=1))
    return (offset + 0.2 * envelope * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _slide(model, audio: np.ndarray, step: float, batch_size: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    from pyannote.audio import Inference

    duration = float(model.specifications.duration)
    inference = Inference(model, duration=duration, step=step, batch_size=batch_size, skip_aggregation=True)
    return inference({"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE}).data


def _count_shared_blocks(sincnet: SharedFirstConvSincNet, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The hops of the batches that went through the shared first block (not only through ``forward``)."""
    hops: list[int] = []
    first_block = sincnet._first_block

    def counted(waveforms: torch.Tensor, hop: int) -> torch.Tensor | None:
        hops.append(hop)
        return first_block(waveforms, hop)

    monkeypatch.setattr(sincnet, "_first_block", counted)
    return hops


@pytest.mark.parametrize("which", ["tiny", "starter"])
def test_shared_first_convolution_gives_pyannotes_numbers(
    which: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = request.getfixturevalue("tiny_models" if which == "tiny" else "starter_models")
    original = _segmentation_model(directory)
    shared = copy.deepcopy(original)
    keys = list(shared.state_dict())
    assert share_first_convolution(shared)
    assert type(shared.sincnet) is SharedFirstConvSincNet
    assert share_first_convolution(shared)  # a second call changes nothing
    assert list(shared.state_dict()) == keys  # same parameters under the same names: checkpoints load as before
    shared.load_state_dict(original.state_dict(), strict=True)
    fields = [(f.start, f.duration, f.step) for f in (shared.receptive_field, original.receptive_field)]
    assert fields[0] == fields[1] and shared.num_frames(80000) == original.num_frames(80000)

    hops = _count_shared_blocks(shared.sincnet, monkeypatch)
    seen: list[int | None] = []
    shared.sincnet.register_forward_pre_hook(lambda module, args: seen.append(_window_hop(args[0])))
    # diarization's 0.5 s hop and the VAD's 1 s; a DC offset; 12.3 s ends in a window pyannote pads (original path)
    for seconds, step, batch, offset in ((23.3, 0.5, 16, 0.0), (31.0, 1.0, 32, 0.3), (12.3, 1.0, 3, 0.0)):
        audio = _speechlike(seconds, seed=int(seconds), offset=offset)
        expected = _slide(original, audio, step, batch)
        got = _slide(shared, audio, step, batch)
        assert got.shape == expected.shape
        # float32: the original's own rounding in the first layer (about 3e-6 of its range, against 4e-7 for the
        # shared path, both measured against float64) grows through four LSTM layers to about 2e-4 here
        np.testing.assert_allclose(got, expected, atol=1e-3)
    assert {round(step * SAMPLE_RATE) for step in (0.5, 1.0)} <= set(hops)  # the shared block did run
    assert None in seen  # and the single padded last windows took pyannote's path


# The starter checkpoint's waveform normalisation has a negative weight (-0.008) and a bias (0.31); the tiny one
# pyannote's defaults (1 and 0): both signs are checked here, whatever is installed.
@pytest.mark.parametrize("hop_s", [0.5, 1.0])
@pytest.mark.parametrize(("weight", "bias"), [(1.0, 0.0), (0.7, 0.3), (-0.5, 0.3)])
def test_in_float64_both_paths_agree_to_rounding(
    hop_s: float, weight: float, bias: float, tiny_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _segmentation_model(tiny_models).sincnet.double()
    with torch.no_grad():
        original.wav_norm1d.weight.fill_(weight)
        original.wav_norm1d.bias.fill_(bias)
    holder = torch.nn.Module()
    holder.sincnet = copy.deepcopy(original)
    assert share_first_convolution(holder)
    hops = _count_shared_blocks(holder.sincnet, monkeypatch)
    audio = torch.from_numpy(_speechlike(21.0, seed=4, offset=0.1)).double()[None]
    window, hop = 5 * SAMPLE_RATE, round(hop_s * SAMPLE_RATE)
    windows = audio.unfold(1, window, hop).permute(1, 0, 2)[3:12]
    assert _window_hop(windows) == hop
    with torch.inference_mode():
        torch.testing.assert_close(holder.sincnet(windows), original(windows), rtol=1e-9, atol=1e-9)
    assert hops == [hop]


def test_a_non_finite_sample_stays_in_its_own_windows(tiny_models: Path) -> None:
    original = _segmentation_model(tiny_models).sincnet
    holder = torch.nn.Module()
    holder.sincnet = copy.deepcopy(original)
    assert share_first_convolution(holder)
    audio = torch.from_numpy(_speechlike(14.0, seed=5))[None]
    audio[0, 100] = float("nan")  # in the first window only
    windows = audio.unfold(1, 5 * SAMPLE_RATE, SAMPLE_RATE).permute(1, 0, 2)
    with torch.inference_mode():
        got, expected = holder.sincnet(windows), original(windows)
    assert torch.isfinite(got[1:]).all()
    torch.testing.assert_close(got[1:], expected[1:])


def test_only_overlapping_views_of_one_recording_take_the_shared_path() -> None:
    audio = torch.randn(1, 10 * SAMPLE_RATE)
    windows = audio.unfold(1, 5 * SAMPLE_RATE, SAMPLE_RATE).permute(1, 0, 2)  # as pyannote's Inference cuts them
    assert _window_hop(windows) == SAMPLE_RATE
    assert _window_hop(windows[2:4]) == SAMPLE_RATE
    assert _window_hop(windows.contiguous()) is None  # a copy (e.g. on its way to a GPU): nothing shared
    assert _window_hop(windows[:1]) is None
    apart = audio.unfold(1, SAMPLE_RATE, 2 * SAMPLE_RATE).permute(1, 0, 2)  # windows that do not overlap
    assert _window_hop(apart) is None


def test_models_without_a_sincnet_are_left_alone() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert not share_first_convolution(model)
    assert not hasattr(model, "sincnet")
