"""The speech path on real speech, with the installed model set (the starter set by default): word error rate
against whisper.transcribe with the same weights, diarization error against a one-speaker baseline, whether words
land on the right role, and words written on noise-only audio.

Data: the development set in ``../shared/data/speech`` (real voices from public corpora, see its SOURCES.md): 56
single-speaker utterances with references, a 169 s VoxConverse excerpt (4 speakers) with its RTTM, and body-camera
scenes mixed from the utterances (:mod:`bwc.scenes`: the wearer near and loud, community members farther, a radio
burst, overlaps, road noise, a long pause). Noise-only audio is generated (:func:`bwc.scenes.noise_only`).

- **WER**: bwc's speech stage (VAD, packing, batched whisper with its fallback) against ``whisper.transcribe``
  file by file with its defaults (temperature fallback, condition_on_previous_text) and language ``en``, on the same
  audio with the same weights (the ``.pt`` of the stage's model); text normalised by whisper's English normaliser;
  pooled over files.
- **DER** (pyannote.metrics, overlap scored): bwc's diarization of speech regions against the one-speaker baseline
  (all reference speech one speaker), collar 0 and 0.25 s, pooled.
- **Roles**: on the scenes, the share of officer words attributed to the officer and of community members' words
  kept from the officer (attribution from sound and words, as ``bwc run`` does).
- **Noise**: words per minute that bwc and whisper.transcribe write on road noise, a siren, radio static, music.

    .venv/bin/python benchmarks/accuracy.py                    # about 10 minutes on 2 cores; appends to RESULTS.md
    .venv/bin/python benchmarks/accuracy.py --scenes 4 --results /tmp/results.md      # quicker look
    .venv/bin/python benchmarks/accuracy.py --scenes 8 --scene-seed 3                # scenes held out from tuning
    .venv/bin/python benchmarks/accuracy.py --set vad.step_s=1.0 --results /tmp/results.md     # another setting
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bwc.audio import SAMPLE_RATE, read_pcm
from bwc.config import BwcConfig, load_config, setting_overrides
from bwc.evaluation import RoleResult, diarization_error_rate, one_speaker, role_result, word_error_rate
from bwc.records import AudioInfo, Recording, SpeechResult
from bwc.scenes import NOISE_KINDS, Scene, load_voices, noise_only, scene_set
from bwc.transcript import read_rttm

RESULTS = Path(__file__).parent / "RESULTS.md"
DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
NOISE_S = 60.0  # seconds of each noise kind
COLLARS = (0.0, 0.25)
BATCH = 8  # recordings per speech-stage call, as run.recordings_per_speech_call would batch them


@dataclass
class Measured:
    """Everything the benchmark measured."""

    wer: dict[str, dict[str, object]] = field(default_factory=dict)  # set -> system -> WerResult
    der: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # set -> system -> (DER@0, @0.25)
    roles: RoleResult = field(default_factory=lambda: RoleResult(0, 0, 0, 0))
    roles_per_scene: list[tuple[str, RoleResult]] = field(default_factory=list)
    noise_wpm: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> system -> words per minute
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> wall seconds


def as_recording(key: str, audio: np.ndarray) -> Recording:
    info = AudioInfo(len(audio) / SAMPLE_RATE, SAMPLE_RATE, 1, "wav", "pcm_f32le", False)
    return Recording(recording_id=key, path=key, sha256=key, size_bytes=audio.nbytes, audio=info)


def run_stage(stage: object, items: list[tuple[str, np.ndarray]]) -> dict[str, SpeechResult]:
    """bwc's speech stage over ``items``, ``BATCH`` recordings per call (whisper batches across them)."""
    results: dict[str, SpeechResult] = {}
    for first in range(0, len(items), BATCH):
        chunk = items[first : first + BATCH]
        outcomes = stage.process_arrays([(as_recording(key, audio), audio) for key, audio in chunk])  # type: ignore[attr-defined]
        for (key, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise RuntimeError(f"{key}: {outcome}") from outcome
            results[key] = outcome
    return results


def baseline_text(model: object, audio: np.ndarray) -> tuple[str, int]:
    """whisper.transcribe with its defaults (language en): the text and its word count."""
    import whisper

    result = whisper.transcribe(model, audio, language="en", word_timestamps=True, verbose=None)
    words = [w for segment in result["segments"] for w in segment.get("words", [])]
    return str(result["text"]), len(words)


def bwc_text(result: SpeechResult) -> str:
    return " ".join(word.text for word in result.words)


def measure(config: BwcConfig, shared: Path, scene_count: int, log: callable, scene_seed: int = 1) -> Measured:  # type: ignore[valid-type]
    from pipelines.language import LanguageStage
    from pipelines.speech import SpeechStage

    measured = Measured()
    clock = time.perf_counter()
    stage = SpeechStage.from_config(config, device="cpu")
    language = LanguageStage.from_config(config)
    # whisper.transcribe needs openai-whisper's model: the same weights as the stage's, in their .pt format
    from models.ctranslate2_whisper import load_whisper
    from models.locate import ResolvedModels

    openai = config.merged({"whisper": {"engine": "openai"}})
    model = load_whisper(ResolvedModels.resolve(openai).whisper_checkpoint)
    measured.seconds["load models"] = time.perf_counter() - clock

    speech = shared / "data" / "speech"
    voices = load_voices(speech)
    utterances = [(voice.path.stem, voice) for own in voices.values() for voice in own]
    utterances.sort()

    log(f"WER: {len(utterances)} utterances")
    clock = time.perf_counter()
    audio_of = {key: read_pcm(voice.path) for key, voice in utterances}
    bwc_results = run_stage(stage, list(audio_of.items()))
    references = [voice.text for _, voice in utterances]
    measured.wer["utterances"] = {
        "bwc": word_error_rate(references, [bwc_text(bwc_results[key]) for key, _ in utterances]),
        "whisper.transcribe": word_error_rate(
            references, [baseline_text(model, audio_of[key])[0] for key, _ in utterances]
        ),
    }
    measured.seconds["utterances"] = time.perf_counter() - clock

    log(f"scenes: {scene_count}")
    clock = time.perf_counter()
    scenes = scene_set(voices, scene_count, seed=scene_seed)
    scene_results = run_stage(stage, [(scene.scene_id, scene.audio) for scene in scenes])
    scene_refs = [" ".join(line.text for line in scene.lines) for scene in scenes]
    measured.wer["scenes"] = {
        "bwc": word_error_rate(scene_refs, [bwc_text(scene_results[s.scene_id]) for s in scenes]),
        "whisper.transcribe": word_error_rate(scene_refs, [baseline_text(model, s.audio)[0] for s in scenes]),
    }
    der_scenes = []
    for scene in scenes:
        result = scene_results[scene.scene_id]
        reference = [(line.start, line.end, line.speaker) for line in scene.lines]
        hypothesis = [(turn.start, turn.end, turn.speaker) for turn in result.diarization.turns]
        der_scenes.append((reference, hypothesis))
        roles = scene_roles(language, result, scene)
        measured.roles = measured.roles + roles
        measured.roles_per_scene.append((scene.scene_id, roles))
    measured.der["scenes"] = pooled_der(der_scenes)
    measured.seconds["scenes"] = time.perf_counter() - clock

    log("DER: VoxConverse excerpt")
    clock = time.perf_counter()
    vox = read_pcm(speech / "diarization" / "voxconverse_aepyx_8k.wav")
    vox_result = run_stage(stage, [("aepyx", vox)])["aepyx"]
    vox_reference = [(t.start, t.end, t.speaker) for t in read_rttm(speech / "diarization" / "voxconverse_aepyx.rttm")]
    vox_hypothesis = [(t.start, t.end, t.speaker) for t in vox_result.diarization.turns]
    measured.der["voxconverse"] = pooled_der([(vox_reference, vox_hypothesis)])
    measured.seconds["voxconverse"] = time.perf_counter() - clock

    log("noise-only audio")
    clock = time.perf_counter()
    noise = [(f"noise-{kind}", noise_only(kind, NOISE_S, seed=index)) for index, kind in enumerate(NOISE_KINDS)]
    noise_results = run_stage(stage, noise)
    for (key, audio), kind in zip(noise, NOISE_KINDS, strict=True):
        minutes = len(audio) / SAMPLE_RATE / 60
        measured.noise_wpm[kind] = {
            "bwc": len(noise_results[key].words) / minutes,
            "whisper.transcribe": baseline_text(model, audio)[1] / minutes,
        }
    measured.seconds["noise"] = time.perf_counter() - clock
    return measured


def scene_roles(language: object, result: SpeechResult, scene: Scene) -> RoleResult:
    """Where the scene's words landed, after attribution as bwc run does it."""
    encounter = language.encounter(result)  # type: ignore[attr-defined]
    role_of = {role.speaker: role.role for role in encounter.roles}
    words = [(word.start, word.end, role_of.get(word.speaker or "", "unknown")) for word in result.words]
    return role_result(words, [(line.start, line.end, line.role) for line in scene.lines])


def pooled_der(pairs: list[tuple[list, list]]) -> dict[str, tuple[float, float]]:
    """Pooled DER at each collar for bwc and for the one-speaker baseline."""
    pooled: dict[str, tuple[float, float]] = {}
    for system in ("bwc", "one speaker"):
        rates = []
        for collar in COLLARS:
            errors = total = 0.0
            for reference, hypothesis in pairs:
                rate, speech_s = diarization_error_rate(
                    reference, hypothesis if system == "bwc" else one_speaker(reference), collar
                )
                errors += rate * speech_s
                total += speech_s
            rates.append(errors / total if total else float("nan"))
        pooled[system] = (rates[0], rates[1])
    return pooled


def report(measured: Measured, models: str, command: str, scene_count: int, scene_seed: int = 1) -> str:
    lines = [
        f"\n## Accuracy on real speech — {datetime.now(UTC):%Y-%m-%d}\n",
        f"`{command}` on {os.cpu_count()} cores ({sum(measured.seconds.values()):.0f} s). Models: {models}. "
        f"Development data: ../shared/data/speech (56 utterances, 27 speakers; the VoxConverse excerpt; "
        f"{scene_count} body-camera scenes mixed from the utterances, seed {scene_seed}"
        + (" (the set the VAD, resume and role rules were tuned on)" if scene_seed == 1 else " (held out)")
        + ": wearer near, community members farther, radio, overlaps, road noise, one long pause).\n",
        "| WER (pooled, whisper's English normaliser) | reference words | bwc | whisper.transcribe |",
        "|---|---|---|---|",
    ]
    for name, systems in measured.wer.items():
        ours, theirs = systems["bwc"], systems["whisper.transcribe"]
        lines.append(f"| {name} | {ours.reference_words} | {ours.wer:.3f} | {theirs.wer:.3f} |")  # type: ignore[attr-defined]
    lines += ["", "| DER (pooled) | bwc, collar 0 | one speaker, collar 0 | bwc, collar 0.25 | one speaker, 0.25 |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, systems in measured.der.items():
        ours, base = systems["bwc"], systems["one speaker"]
        lines.append(f"| {name} | {ours[0]:.3f} | {base[0]:.3f} | {ours[1]:.3f} | {base[1]:.3f} |")
    roles = measured.roles
    lines += [
        "",
        f"Roles on the scenes: {roles.officer_share:.1%} of {roles.officer_words} officer words attributed to the "
        f"officer; {roles.civilian_share:.1%} of {roles.civilian_words} community members' words kept from the "
        "officer. Per scene (officer share / civilian share): "
        + ", ".join(f"{name} {r.officer_share:.0%}/{r.civilian_share:.0%}" for name, r in measured.roles_per_scene)
        + ".",
        "",
        "| noise only (60 s each) | bwc words/min | whisper.transcribe words/min |",
        "|---|---|---|",
    ]
    for kind, systems in measured.noise_wpm.items():
        lines.append(f"| {kind} | {systems['bwc']:.1f} | {systems['whisper.transcribe']:.1f} |")
    lines += ["", "Seconds: " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in measured.seconds.items()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="models directory (default: the one bwc run uses)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the folder holding data/speech")
    parser.add_argument("--scenes", type=int, default=12, help="body-camera scenes mixed from real voices")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    parser.add_argument(
        "--scene-seed", type=int, default=1, help="scene set: 1 is the one the rules were tuned on, others are held out"
    )
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="a bwc setting")
    args = parser.parse_args()
    try:
        overrides = setting_overrides(args.set)
    except ValueError as error:
        sys.exit(f"--set: {error}")
    if not (args.shared / "data" / "speech" / "refs.tsv").is_file():
        sys.exit(f"no development data at {args.shared / 'data' / 'speech'} (pass --shared)")
    import torch

    from models.locate import ResolvedModels
    from models.starter import model_set

    torch.set_num_threads(os.cpu_count() or 1)
    config = load_config(args.models, overrides=overrides or None)
    resolved = ResolvedModels.resolve(config)
    chosen = model_set(resolved.whisper_checkpoint, resolved.pyannote_pipeline, config.tiny_models)
    models = f"{chosen} set: {resolved.whisper_checkpoint.name}, {resolved.pyannote_pipeline.name}"
    if args.set:
        models += f" (settings {', '.join(args.set)})"
    print(models, flush=True)
    measured = measure(config, args.shared, args.scenes, lambda message: print(message, flush=True), args.scene_seed)
    command = ".venv/bin/python benchmarks/accuracy.py " + " ".join(sys.argv[1:])
    text = report(measured, models, command.strip(), args.scenes, args.scene_seed)
    print(text)
    with open(args.results, "a", encoding="utf-8") as handle:
        handle.write(text)
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
