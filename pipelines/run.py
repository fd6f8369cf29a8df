"""``bwc run``: ingest and speech as a Ray Data pipeline, on a local Ray instance or an existing cluster.

Two passes over Ray Data:

1. **ingest** — Ray tasks hash and probe every original in parallel; the driver then drops repeated content (same
   SHA-256 under another name) and joins the evidence metadata.
2. **speech** — an actor pool; each actor builds one :class:`~pipelines.speech.SpeechStage` (models loaded once per
   actor) and processes recordings one at a time. Results stream back to the driver, which writes each recording's
   outputs as it arrives, so a progress bar moves and nothing waits for the whole batch.

A file that fails at any stage becomes a :class:`~bwc.records.Failure` with a one-line reason; the batch goes on.

Example
-------
>>> summary = run_batch(["/intake"], Path("/data/store"), load_config(Path("/opt/bwc-models")))   # doctest: +SKIP
>>> summary.failures                                                                                # doctest: +SKIP
()
"""

from __future__ import annotations

import logging
import os
import pickle
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bwc.audio import require_ffmpeg
from bwc.config import BwcConfig
from bwc.ingest import IngestError, MetadataTable, discover, ingest_file
from bwc.records import Failure, Recording, ScoredEncounter, SpeechResult, StageTimings
from bwc.store import Store
from models.respect.artifact import require_artifact
from pipelines.speech import ResolvedModels, SpeechStage

RUNTIME_ENV_VARS = {
    "HF_HUB_OFFLINE": "1",  # runs never download: weights come from the models directory
    "PYANNOTE_METRICS_ENABLED": "0",  # pyannote telemetry off
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the closing summary and the JSON report."""

    run_id: str  # "<UTC time>-<random>", also the report's file name
    files_seen: int  # media files found under the inputs
    processed: tuple[str, ...]  # recording ids written in this run
    duplicates: tuple[tuple[str, str], ...]  # (path, path of the same content already taken) pairs
    failures: tuple[Failure, ...]  # files that failed, with reasons
    audio_s: float  # audio seconds processed
    speech_s: float  # seconds of voice activity in them
    wall_s: float  # wall seconds of the whole run
    stage_s: dict[str, float] = field(default_factory=dict)  # summed seconds per stage over recordings
    model_versions: dict[str, str] = field(default_factory=dict)  # model name -> version and weights hash
    report_path: str = ""  # where the JSON report was written

    @property
    def realtime_factor(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_report(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "files_seen": self.files_seen,
            "processed": len(self.processed),
            "duplicates": [{"path": a, "same_as": b} for a, b in self.duplicates],
            "failed": len(self.failures),
            "failures": [
                {"path": f.path, "sha256": f.sha256, "stage": f.stage, "reason": f.reason} for f in self.failures
            ],
            "audio_hours": self.audio_s / 3600,
            "speech_hours": self.speech_s / 3600,
            "wall_s": self.wall_s,
            "x_realtime": self.realtime_factor,
            "stage_s": self.stage_s,
            "model_versions": self.model_versions,
        }


class SpeechWorker:
    """Ray Data actor: one speech stage and one language stage per actor, one recording per call.

    Each call returns ``(speech outcome, scored encounter or scoring failure, model versions)``.
    """

    def __init__(self, config_json: str, models: ResolvedModels, threads: int) -> None:
        torch_threads(threads)
        config = BwcConfig.model_validate_json(config_json)
        from pipelines.language import LanguageStage  # transformers is imported in the actor, not by the driver

        self.stage = SpeechStage(config, models, device=_actor_device(config))
        self.language = LanguageStage.from_config(config)

    @property
    def model_versions(self) -> dict[str, str]:
        return self.stage.model_versions | {"scoring": self.language.model_version}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = []
        for payload in batch["recording"]:
            recording: Recording = pickle.loads(payload)
            scored: ScoredEncounter | Failure | None = None
            try:
                outcome: SpeechResult | Failure = self.stage(recording)
            except Exception as error:  # one recording's failure must not stop the batch
                outcome = _failure(recording.path, recording.sha256, "speech", error, with_type=True)
            if isinstance(outcome, SpeechResult):
                clock = time.perf_counter()
                try:
                    scored = self.language(outcome)
                except Exception as error:  # the transcript is still worth keeping
                    scored = _failure(recording.path, recording.sha256, "scoring", error, with_type=True)
                timings = replace(outcome.timings, scoring_s=time.perf_counter() - clock)
                outcome = replace(outcome, timings=timings)
            outputs.append(pickle.dumps((outcome, scored, self.model_versions)))
        return {"outcome": np.array(outputs, dtype=object)}


def run_batch(
    inputs: Sequence[str | Path],
    store_dir: Path,
    config: BwcConfig,
    metadata_csv: Path | None = None,
    address: str | None = None,
    console: Console | None = None,
) -> RunSummary:
    """Process every media file under ``inputs`` into ``store_dir``.

    Raises
    ------
    models.locate.ModelNotFoundError
        Before anything starts, when weights are missing.
    """
    console = console or Console(stderr=True)
    started = time.perf_counter()
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    require_ffmpeg()
    models = ResolvedModels.resolve(config)  # fail in seconds, before Ray starts, when weights are missing
    require_artifact(Path(config.scoring.respect_model) if config.scoring.respect_model else None)
    metadata = MetadataTable.from_csv(metadata_csv, config.metadata) if metadata_csv else MetadataTable.empty()
    paths = discover(inputs)
    store = Store(store_dir)
    failures: list[Failure] = []
    duplicates: list[tuple[str, str]] = []
    processed: list[str] = []
    audio_s = speech_s = 0.0
    stage_totals = StageTimings()
    model_versions: dict[str, str] = {}

    with ray_session(address, console):
        recordings, ingest_failures = _ingest(paths, metadata, config)
        failures += ingest_failures
        unique: dict[str, Recording] = {}
        for recording in recordings:
            if recording.sha256 in unique:
                duplicates.append((recording.path, unique[recording.sha256].path))
            else:
                unique[recording.sha256] = recording
        for path, original in duplicates:
            console.print(f"[yellow]duplicate[/] {path} has the same content as {original}: processed once")

        with _progress(console) as progress:
            task = progress.add_task("speech", total=len(unique))
            for outcome, scored, versions in _speech(list(unique.values()), config, models):
                model_versions = versions
                if isinstance(outcome, Failure):
                    failures.append(outcome)
                    console.print(f"[red]failed[/] {outcome.path}: {outcome.reason}")
                else:
                    if isinstance(scored, Failure):
                        failures.append(scored)
                        console.print(f"[red]scoring failed[/] {scored.path}: {scored.reason}")
                    try:
                        if isinstance(scored, ScoredEncounter):
                            store.write_scores(outcome.recording.recording_id, [scored])
                        store.write_speech_result(outcome, processed_at=datetime.now(UTC))
                    except OSError as error:
                        failures.append(_failure(outcome.recording.path, outcome.recording.sha256, "write", error))
                    else:
                        processed.append(outcome.recording.recording_id)
                        audio_s += outcome.recording.audio.duration_s
                        speech_s += outcome.speech_s
                        stage_totals = _add_timings(stage_totals, outcome.timings)
                progress.advance(task)

    store.write_failures(run_id, failures)
    summary = RunSummary(
        run_id=run_id,
        files_seen=len(paths),
        processed=tuple(processed),
        duplicates=tuple(duplicates),
        failures=tuple(failures),
        audio_s=audio_s,
        speech_s=speech_s,
        wall_s=time.perf_counter() - started,
        stage_s={name: round(value, 3) for name, value in asdict(stage_totals).items()},
        model_versions=model_versions,
    )
    report_path = store.write_report(run_id, summary.as_report())
    return replace(summary, report_path=str(report_path))


def _ingest(paths: Sequence[Path], metadata: MetadataTable, config: BwcConfig) -> tuple[list[Recording], list[Failure]]:
    if not paths:
        return [], []
    dataset = ray.data.from_items([{"path": str(path)} for path in paths], override_num_blocks=len(paths)).map(
        _ingest_row,
        fn_kwargs={"metadata": metadata, "max_duration_s": config.run.max_duration_s},
        num_cpus=config.run.ingest_cpus,
    )
    recordings, failures = [], []
    for row in dataset.iter_rows():
        outcome = pickle.loads(row["outcome"])
        (failures if isinstance(outcome, Failure) else recordings).append(outcome)
    recordings.sort(key=lambda recording: recording.path)
    return recordings, failures


def _ingest_row(row: dict[str, Any], metadata: MetadataTable, max_duration_s: float | None) -> dict[str, Any]:
    try:
        outcome: Recording | Failure = ingest_file(row["path"], metadata, max_duration_s=max_duration_s)
    except IngestError as error:
        outcome = _failure(row["path"], None, "ingest", error)
    return {"outcome": pickle.dumps(outcome)}


def _speech(recordings: list[Recording], config: BwcConfig, models: ResolvedModels):  # type: ignore[no-untyped-def]
    if not recordings:
        return
    threads = max(1, int(config.run.cpus_per_speech_worker))
    dataset = ray.data.from_items(
        [{"recording": pickle.dumps(recording)} for recording in recordings],
        override_num_blocks=len(recordings),
    ).map_batches(
        SpeechWorker,
        fn_constructor_kwargs={"config_json": config.model_dump_json(), "models": models, "threads": threads},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=config.run.speech_workers),
        num_cpus=config.run.cpus_per_speech_worker,
        num_gpus=config.run.gpus_per_speech_worker,
    )
    for row in dataset.iter_rows():
        yield pickle.loads(row["outcome"])


class ray_session:
    """Join the cluster at ``address``, or start a local Ray instance, and shut down what this run started."""

    def __init__(self, address: str | None, console: Console) -> None:
        self.address = address
        self.console = console
        self.started_here = False

    def __enter__(self) -> ray_session:
        if ray.is_initialized():
            return self
        os.environ.update(RUNTIME_ENV_VARS)
        runtime_env = {"env_vars": dict(RUNTIME_ENV_VARS)}
        if self.address:
            ray.init(address=self.address, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            ray.init(
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                runtime_env=runtime_env,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        self.started_here = True
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # per-dataset "execution finished" lines
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run shows one progress bar of its own
        context.print_on_execution_start = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.started_here:
            ray.shutdown()


def torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _actor_device(config: BwcConfig) -> str:
    import torch

    if config.run.device == "cpu" or config.run.gpus_per_speech_worker <= 0:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _failure(
    path: str | Path, sha256: str | None, stage: str, error: BaseException, with_type: bool = False
) -> Failure:
    reason = f"{type(error).__name__}: {_one_line(error)}" if with_type else _one_line(error)
    return Failure(path=str(path), sha256=sha256, stage=stage, reason=reason, last_attempt_at=datetime.now(UTC))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:500] or type(error).__name__


def _add_timings(total: StageTimings, more: StageTimings) -> StageTimings:
    return StageTimings(**{name: value + getattr(more, name) for name, value in asdict(total).items()})
