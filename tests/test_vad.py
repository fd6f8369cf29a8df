"""Both VADs with real weights (silero-vad's bundled ones; the starter set's segmentation model, skipped where it is
not installed) find espeak-ng speech between silences and nothing in silence, hiss or road noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bwc.config import VadConfig
from bwc.demo import Line, render_scene
from bwc.records import SpeechRegion
from models.vad import SegmentationVad, SileroVad, VoiceActivityDetector, merge_regions, split_long


@pytest.fixture(scope="module", params=["silero", "segmentation"])
def vad(request: pytest.FixtureRequest) -> VoiceActivityDetector:
    if request.param == "silero":
        return SileroVad(VadConfig())
    from models.starter import STARTER_SETTINGS

    directory = request.getfixturevalue("starter_models")
    settings = STARTER_SETTINGS["vad"]
    return SegmentationVad(VadConfig(engine="segmentation"), directory / settings["model"])


def test_finds_near_and_far_speech_between_silences(vad: VoiceActivityDetector) -> None:
    lines = [
        Line("officer", "Good evening sir, license and registration please.", pause_before_s=0.0),
        Line("civilian", "Sure, it is in the glove box.", pause_before_s=6.0),
        Line("officer", "Thank you, drive safe.", pause_before_s=8.0),
    ]
    audio, truth = render_scene(lines, lead_in_s=5.0, tail_s=5.0, seed=3)
    regions = vad.detect(audio)
    assert regions, "no speech found"
    for start, end, role in truth:
        covered = sum(max(0.0, min(r.end, end) - max(r.start, start)) for r in regions)
        # espeak-ng pads each line with its own silence, so half the line's span is most of its voiced part.
        assert covered >= 0.5 * (end - start), f"{role} line at {start:.1f}-{end:.1f}s mostly missed: {regions}"
        middle = (start + end) / 2
        assert any(r.start <= middle <= r.end for r in regions), f"{role} line's middle at {middle:.1f}s missed"
    speech_truth = sum(end - start for start, end, _ in truth)
    detected = sum(region.duration for region in regions)
    assert detected < speech_truth + 2.0, "VAD marked long silences as speech"
    gaps = [(truth[0][1] + 1.0, truth[1][0] - 1.0), (truth[1][1] + 1.0, truth[2][0] - 1.0), (0.5, 4.0)]
    for gap_start, gap_end in gaps:
        inside = sum(max(0.0, min(r.end, gap_end) - max(r.start, gap_start)) for r in regions)
        assert inside == 0.0, f"speech reported in the silence {gap_start:.1f}-{gap_end:.1f}s"


def test_no_speech_in_silence_or_noise(vad: VoiceActivityDetector) -> None:
    rng = np.random.default_rng(0)
    assert vad.detect(np.zeros(16_000 * 5, dtype=np.float32)) == ()
    assert vad.detect((0.01 * rng.standard_normal(16_000 * 5)).astype(np.float32)) == ()
    assert vad.detect(np.zeros(0, dtype=np.float32)) == ()
    from bwc.demo import road_noise

    assert vad.detect(road_noise(20.0, rng)) == ()


def test_regions_keep_to_whisper_s_window_and_the_recording(vad: VoiceActivityDetector) -> None:
    lines = [Line("officer", "Good evening sir, license and registration please. " * 4, 0.0) for _ in range(3)]
    audio, _ = render_scene(lines, lead_in_s=0.2, tail_s=0.2, seed=5)  # over 30 s of speech with short pauses
    regions = vad.detect(audio, start_s=100.0)
    assert regions and all(r.end - r.start <= vad.config.max_region_s + 1e-6 for r in regions)
    assert all(100.0 <= r.start < r.end <= 100.0 + len(audio) / 16_000 for r in regions)
    assert all(a.end <= b.start for a, b in itertools.pairwise(regions)), "regions overlap"


def test_long_speech_is_cut_where_it_is_least_likely() -> None:
    probability = np.full(100, 0.9)
    probability[[30, 70]] = 0.4, 0.2
    assert split_long(probability, 0, 99, max_frames=60) == [(0, 29), (31, 69), (71, 99)]  # at the two dips
    assert all(b - a + 1 <= 40 for a, b in split_long(probability, 0, 99, max_frames=40))


def test_merge_regions_respects_gap_and_length() -> None:
    regions = (SpeechRegion(0.0, 5.0), SpeechRegion(5.5, 10.0), SpeechRegion(13.0, 20.0), SpeechRegion(20.2, 45.0))
    merged = merge_regions(regions, max_gap_s=1.0, max_region_s=30.0)
    # 13-20 and 20.2-45 are close but would make 32 s, over whisper's window.
    assert merged == (SpeechRegion(0.0, 10.0), SpeechRegion(13.0, 20.0), SpeechRegion(20.2, 45.0))
    assert merge_regions(regions[:2], max_gap_s=0.4, max_region_s=30.0) == regions[:2]
    assert merge_regions((SpeechRegion(0.0, 45.0),), 1.0, 30.0) == (SpeechRegion(0.0, 45.0),)
