"""The real-weights tier: the speech stage with the starter set (whisper tiny.en, pyannote segmentation + GE2E) on real
recorded voices from the team's development data. Skips where the starter set or ../shared is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bwc.audio import SAMPLE_RATE, read_pcm
from bwc.config import BwcConfig, load_config
from bwc.demo import road_noise
from bwc.evaluation import role_result, word_error_rate
from bwc.records import AudioInfo, Recording, SpeechResult
from bwc.scenes import NOISE_KINDS, load_voices, noise_only, real_voice_scene, scene_set
from models.starter import PIPELINE_DIR, STARTER_SETTINGS, WHISPER_CHECKPOINT

UTTERANCES = ("librispeech_1272-128104-0000", "vctk16k_p226_005", "ljspeech_LJ001-0004")
MAX_UTTERANCE_WER = 0.15  # tiny.en on clean read speech: about 5% on the whole development set
MIN_OFFICER_SHARE = 0.9  # the target for officer words attributed to the officer
# The same target for civilian words is met pooled over benchmarks/accuracy.py's scenes, not on every scene: on this
# one (two VCTK voices) a civilian line can join the officer's cluster (33 of 43 words kept apart, 0.77, when measured).
MIN_CIVILIAN_SHARE = 0.7
MIN_LINE_HEARD = 0.4  # share of a line's time the VAD must call speech (utterances start and end with silence)
MIN_SCENE_HEARD = 0.85  # and of all the lines' time


def starter_config(directory: Path) -> BwcConfig:
    """The starter set's settings, whatever the directory's models.yaml currently points at."""
    return load_config(
        directory,
        overrides={
            "whisper": {"model": str(directory / WHISPER_CHECKPOINT), "language": "en"},
            "diarization": {"pipeline": str(directory / PIPELINE_DIR)},
            "vad": {**STARTER_SETTINGS["vad"], "model": str(directory / STARTER_SETTINGS["vad"]["model"])},
        },
    )


@pytest.fixture(scope="module")
def stage(starter_models: Path):  # type: ignore[no-untyped-def]
    from pipelines.speech import SpeechStage

    return SpeechStage.from_config(starter_config(starter_models), device="cpu")


def speech(stage, items: list[tuple[str, np.ndarray]]) -> dict[str, SpeechResult]:  # type: ignore[no-untyped-def]
    def recording(key: str, audio: np.ndarray) -> Recording:
        info = AudioInfo(len(audio) / SAMPLE_RATE, SAMPLE_RATE, 1, "wav", "pcm_f32le", False)
        return Recording(recording_id=key, path=key, sha256=key, size_bytes=audio.nbytes, audio=info)

    outcomes = stage.process_arrays([(recording(key, audio), audio) for key, audio in items])
    for (key, _), outcome in zip(items, outcomes, strict=True):
        assert not isinstance(outcome, BaseException), f"{key}: {outcome}"
    return {key: outcome for (key, _), outcome in zip(items, outcomes, strict=True)}


def text(result: SpeechResult) -> str:
    return " ".join(word.text for word in result.words)


def test_real_utterances_are_transcribed(stage, speech_data: Path) -> None:  # type: ignore[no-untyped-def]
    voices = {voice.path.stem: voice for own in load_voices(speech_data).values() for voice in own}
    results = speech(stage, [(key, read_pcm(voices[key].path)) for key in UTTERANCES])
    measured = word_error_rate([voices[key].text for key in UTTERANCES], [text(results[key]) for key in UTTERANCES])
    assert measured.wer <= MAX_UTTERANCE_WER, (measured, [text(results[key]) for key in UTTERANCES])
    assert all(0.0 < word.probability <= 1.0 for result in results.values() for word in result.words)


def test_speech_after_a_long_silence_is_not_lost(stage, speech_data: Path) -> None:  # type: ignore[no-untyped-def]
    voices = {voice.path.stem: voice for own in load_voices(speech_data).values() for voice in own}
    first, second = voices[UTTERANCES[0]], voices[UTTERANCES[1]]
    rng = np.random.default_rng(0)
    gap = road_noise(25.0, rng)
    audio = np.concatenate([read_pcm(first.path), gap, read_pcm(second.path)]).astype(np.float32)
    result = speech(stage, [("gap", audio)])["gap"]
    measured = word_error_rate([f"{first.text} {second.text}"], [text(result)])
    assert measured.wer <= MAX_UTTERANCE_WER, (measured, text(result))
    assert any(word.start > len(read_pcm(first.path)) / SAMPLE_RATE + 25.0 for word in result.words)


def test_the_vad_finds_far_quiet_voices(stage, speech_data: Path) -> None:  # type: ignore[no-untyped-def]
    from models.vad import SegmentationVad

    assert isinstance(stage.vad, SegmentationVad), "the starter set's VAD is its segmentation model"
    # the benchmark's scene 10: community members at -38 to -28 dBFS, low-passed and reverberant, in road noise.
    # Measured: every line at least 49% heard (a 26 s line with a long pause in it), 0.92-1.0 the others;
    # silero-vad heard 64%, three community members' lines not at all.
    scene = scene_set(load_voices(speech_data), 11, seed=1)[10]
    regions = stage.vad.detect(scene.audio)
    heard = [sum(max(0.0, min(r.end, line.end) - max(r.start, line.start)) for r in regions) for line in scene.lines]
    for line, seconds in zip(scene.lines, heard, strict=True):
        assert seconds >= MIN_LINE_HEARD * (line.end - line.start), (line, regions)
    assert sum(heard) >= MIN_SCENE_HEARD * sum(line.end - line.start for line in scene.lines)


def test_noise_only_audio_gives_no_words(stage) -> None:  # type: ignore[no-untyped-def]
    results = speech(stage, [(kind, noise_only(kind, 20.0, seed=index)) for index, kind in enumerate(NOISE_KINDS)])
    written = {kind: text(result) for kind, result in results.items() if result.words}
    assert not written, f"words on noise-only audio: {written}"


def test_two_real_voices_officer_near_civilian_far(stage, speech_data: Path, starter_models: Path) -> None:  # type: ignore[no-untyped-def]
    from pipelines.language import LanguageStage

    voices = load_voices(speech_data)
    scene = real_voice_scene(
        voices, officer="vctk_p226", civilians=["vctk_p225"], seed=5, lines_per_speaker=3, overlap_share=0.0
    )  # overlaps are measured in benchmarks/accuracy.py
    result = speech(stage, [(scene.scene_id, scene.audio)])[scene.scene_id]
    assert len({turn.speaker for turn in result.diarization.turns}) >= 2, "two real voices, two speakers"
    encounter = LanguageStage.from_config(starter_config(starter_models)).encounter(result)
    role_of = {role.speaker: role.role for role in encounter.roles}
    roles = role_result(
        [(word.start, word.end, role_of.get(word.speaker or "", "unknown")) for word in result.words],
        [(line.start, line.end, line.role) for line in scene.lines],
    )
    assert roles.officer_share >= MIN_OFFICER_SHARE, (roles, encounter.roles)
    assert roles.civilian_share >= MIN_CIVILIAN_SHARE, (roles, encounter.roles)
