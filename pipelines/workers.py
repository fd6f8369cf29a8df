"""The Ray side of a run: the actors that hold the models, and the streaming pass that feeds them.

One pass is a Ray Data pipeline of two actor pools:

- **speech** actors (:class:`SpeechWorker`): VAD, whisper and pyannote loaded once per actor; the GPU-hungry part, so
  its CPUs, GPUs and custom resources are configuration (``run.*_speech_*``);
- **language** actors (:class:`LanguageWorker`): role attribution and language scoring, on CPUs
  (``run.*_scoring_*``), so a GPU never waits on the text encoder.

A pass takes recordings (speech, then language) or stored transcripts (language only, when rescoring) and yields one
output per input as soon as it is ready. Each actor catches a recording's own failure and returns it as a
:class:`~bwc.records.Failure`; what escapes a pass is the infrastructure failing (a node lost), and the caller
resubmits what did not come back.

Example
-------
>>> with ray_session(None, console):                                              # doctest: +SKIP
...     for item, scored, versions in stream(recordings, config, models):          # doctest: +SKIP
...         ...
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import ray
from rich.console import Console

from bwc.config import BwcConfig
from bwc.records import Encounter, Failure, Recording, RecordingError, ScoredEncounter, SpeechResult
from models.locate import ResolvedModels

RUNTIME_ENV_VARS = {
    "HF_HUB_OFFLINE": "1",  # runs never download: weights come from the models directory
    "TRANSFORMERS_OFFLINE": "1",  # the same for transformers' own look-ups
    "PYANNOTE_METRICS_ENABLED": "0",  # pyannote telemetry off
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray's usage reports off
    "TOKENIZERS_PARALLELISM": "false",
}
# Ray's head (its dashboard process, started even without the dashboard) asks the cloud metadata services
# (169.254.169.254, metadata.google.internal) which cloud it runs on, with `requests`, whether or not usage stats
# are enabled (ray-project/ray#51793). While bwc starts a local Ray, `requests` in Ray's processes is pointed at a
# closed port on this host, so those questions fail at once and no packet leaves the machine.
NO_NETWORK_PROXY = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
SPEECH_MODELS = ("vad", "asr", "diarization")  # what the speech stage's catalog version is made of


@dataclass(frozen=True)
class StoredTranscript:
    """A recording's transcript as the store has it, going back through attribution and scoring."""

    recording: Recording  # the original (path, hash, metadata)
    encounter: Encounter  # its utterances as lines, roles not yet attributed


Item = Recording | StoredTranscript  # what a pass takes
Output = tuple[SpeechResult | Failure | StoredTranscript, ScoredEncounter | Failure | None, dict[str, str]]


def speech_version(versions: dict[str, str]) -> str:
    """The speech stage's model version as the catalog records it, from the models' own versions."""
    return "; ".join(f"{name}={versions[name]}" for name in SPEECH_MODELS if name in versions)


def item_key(item: SpeechResult | Failure | StoredTranscript | Recording) -> str:
    """The original an input or output belongs to (its SHA-256)."""
    if isinstance(item, SpeechResult | StoredTranscript):
        return item.recording.sha256
    return item.sha256 or item.path


class SpeechWorker:
    """Ray Data actor: one speech stage per actor, a few recordings per call (their speech shares whisper batches);
    yields ``(outcome, versions)`` per recording."""

    def __init__(self, config_json: str, models: ResolvedModels, threads: int) -> None:
        torch_threads(threads)
        config = BwcConfig.model_validate_json(config_json)
        from pipelines.speech import SpeechStage

        self.stage = SpeechStage(config, models, device=_actor_device(config))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        recordings: list[Recording] = [pickle.loads(payload) for payload in batch["item"]]
        outputs = []
        # the batch's speech shares whisper batches; one recording's failure does not stop the others
        for recording, result in zip(recordings, self.stage.process_batch(recordings), strict=True):
            outcome: SpeechResult | Failure = (
                failure(recording.path, recording.sha256, "speech", result, with_type=True)
                if isinstance(result, Exception)
                else result
            )
            outputs.append(pickle.dumps((outcome, self.stage.model_versions)))
        return {"item": np.array(outputs, dtype=object)}


class LanguageWorker:
    """Ray Data actor: attribution and scoring; yields ``(item, scored encounter or failure, versions)``."""

    def __init__(self, config_json: str, threads: int) -> None:
        torch_threads(threads)
        config = BwcConfig.model_validate_json(config_json)
        from pipelines.language import LanguageStage  # transformers is imported in the actor, not by the driver

        self.language = LanguageStage.from_config(config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = []
        for payload in batch["item"]:
            item, versions = pickle.loads(payload)
            versions = versions | {"scoring": self.language.model_version}
            scored: ScoredEncounter | Failure | None = None
            clock = time.perf_counter()
            if isinstance(item, SpeechResult):
                try:
                    scored = self.language(item)
                except Exception as error:  # the transcript is still worth keeping
                    scored = failure(item.recording.path, item.recording.sha256, "scoring", error, with_type=True)
                item = replace(item, timings=replace(item.timings, scoring_s=time.perf_counter() - clock))
            elif isinstance(item, StoredTranscript):
                try:
                    scored = self.language.score(self.language.attributed(item.encounter))
                except Exception as error:
                    scored = failure(item.recording.path, item.recording.sha256, "scoring", error, with_type=True)
            outputs.append(pickle.dumps((item, scored, versions)))
        return {"item": np.array(outputs, dtype=object)}


def stream(items: Sequence[Item], config: BwcConfig, models: ResolvedModels | None) -> Iterator[Output]:
    """One pass over ``items``: recordings through speech and language, stored transcripts through language only.

    Outputs come in completion order. A lost node or worker raises :class:`ray.exceptions.RayError` out of the
    iteration; outputs already yielded stay valid.
    """
    if not items:
        return
    if config.run.executor == "local":
        yield from _stream_local(items, config, models)
        return
    run = config.run
    dataset = ray.data.from_items(
        [{"item": pickle.dumps((item, {}) if isinstance(item, StoredTranscript) else item)} for item in items],
        override_num_blocks=len(items),
    )
    if models is not None:
        dataset = dataset.map_batches(
            SpeechWorker,
            fn_constructor_kwargs={
                "config_json": config.model_dump_json(),
                "models": models,
                "threads": max(1, int(run.cpus_per_speech_worker)),
            },
            batch_size=speech_batch_size(sum(isinstance(item, Recording) for item in items), config),
            compute=_pool(run.speech_workers),
            num_cpus=run.cpus_per_speech_worker,
            num_gpus=run.gpus_per_speech_worker,
            **custom_resources(run.speech_resources),
        )
    dataset = dataset.map_batches(
        LanguageWorker,
        fn_constructor_kwargs={
            "config_json": config.model_dump_json(),
            "threads": max(1, int(run.cpus_per_scoring_worker)),
        },
        batch_size=1,
        compute=_pool(run.scoring_workers),
        num_cpus=run.cpus_per_scoring_worker,
        **custom_resources(run.scoring_resources),
    )
    for row in dataset.iter_rows():
        yield pickle.loads(row["item"])


def _stream_local(items: Sequence[Item], config: BwcConfig, models: ResolvedModels | None) -> Iterator[Output]:
    """The same workers in this process, one after the other, all of the machine's cores to each: no Ray or actor
    start-up (seconds on a workstation with a handful of files), no parallelism between recordings beyond torch's
    threads and the speech stage's scanning thread."""
    config_json, threads = config.model_dump_json(), os.cpu_count() or 1
    language = LanguageWorker(config_json, threads)
    recordings = [item for item in items if isinstance(item, Recording)]
    payloads = [pickle.dumps((item, {})) for item in items if isinstance(item, StoredTranscript)]
    if recordings and models is not None:
        speech = SpeechWorker(config_json, models, threads)
        size = max(1, config.run.recordings_per_speech_call)
        for first in range(0, len(recordings), size):
            batch = {"item": np.array([pickle.dumps(r) for r in recordings[first : first + size]], dtype=object)}
            for payload in speech(batch)["item"]:
                yield from _language_outputs(language, [payload])
    yield from _language_outputs(language, payloads)


def _language_outputs(language: LanguageWorker, payloads: list[bytes]) -> Iterator[Output]:
    for payload in payloads:
        for output in language({"item": np.array([payload], dtype=object)})["item"]:
            yield pickle.loads(output)


def speech_batch_size(recordings: int, config: BwcConfig) -> int:
    """Recordings per speech actor call: up to ``run.recordings_per_speech_call`` (their windows share whisper
    batches), but no more than keeps every speech actor busy.

    >>> config = BwcConfig.model_validate({"run": {"speech_workers": 2, "recordings_per_speech_call": 4}})
    >>> speech_batch_size(3, config), speech_batch_size(20, config)
    (2, 4)
    """
    per_actor = -(-recordings // max(1, config.run.speech_workers))
    return max(1, min(config.run.recordings_per_speech_call, per_actor))


def _pool(workers: int) -> ray.data.ActorPoolStrategy:
    """``workers`` actors from the start; the pass goes on with fewer when a node is lost.

    One call in flight per actor: recordings take minutes each, and an actor holding a queue of them while another
    sits idle would leave the end of a batch to one actor.
    """
    workers = max(1, workers)
    return ray.data.ActorPoolStrategy(
        min_size=1, max_size=workers, initial_size=workers, max_tasks_in_flight_per_actor=1
    )


def custom_resources(resources: dict[str, float]) -> dict[str, Any]:
    """Ray remote arguments for a stage's custom resources (none when the configuration names none)."""
    return {"resources": dict(resources)} if resources else {}


class ray_session:
    """Join the cluster at ``address``, or start a local Ray instance, and shut down what this run started.

    Joining a cluster with token authentication needs the cluster's ``RAY_AUTH_MODE`` and token in the driver's
    environment, exactly as on its nodes (``cluster/README.md``).
    """

    def __init__(self, address: str | None, console: Console, executor: str = "ray") -> None:
        if executor == "local" and address:
            raise ValueError(f"--address {address} joins a Ray cluster, but run.executor is 'local' (no Ray)")
        self.address = address
        self.console = console
        self.local = executor == "local"
        self.started_here = False

    def __enter__(self) -> ray_session:
        os.environ.update(RUNTIME_ENV_VARS)  # before the model libraries are imported (they read it then)
        if self.local or ray.is_initialized():
            return self
        runtime_env = {"env_vars": dict(RUNTIME_ENV_VARS)}
        if self.address:
            ray.init(address=self.address, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            with _environment(NO_NETWORK_PROXY | {name.lower(): value for name, value in NO_NETWORK_PROXY.items()}):
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


class _environment:
    """Set environment variables for the duration of a ``with`` block (processes started in it inherit them)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self.saved = {name: os.environ.get(name) for name in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc_info: object) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _actor_device(config: BwcConfig) -> str:
    import torch

    if config.run.device == "cpu" or config.run.gpus_per_speech_worker <= 0:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def failure(path: str, sha256: str | None, stage: str, error: BaseException, with_type: bool = False) -> Failure:
    """A one-line :class:`~bwc.records.Failure` for ``error`` (the type named when it is not self-explanatory)."""
    named = with_type and not isinstance(error, RecordingError)  # a RecordingError's message is the whole reason
    reason = f"{type(error).__name__}: {one_line(error)}" if named else one_line(error)
    return Failure(path=str(path), sha256=sha256, stage=stage, reason=reason, last_attempt_at=datetime.now(UTC))


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:500] or type(error).__name__
