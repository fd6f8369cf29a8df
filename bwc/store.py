"""The store: Parquet tables and per-recording files that a run writes, readable with pandas.

Layout of ``STORE/``::

    recordings/part-<recording_id>.parquet     one row per original
    utterances/part-<recording_id>.parquet     one row per utterance
    words/part-<recording_id>.parquet          one row per word
    failures/part-current.parquet              one row per file failing now (attempts so far), from the catalog
    catalog.sqlite                             the catalog (bwc/catalog.py), unless a database URL is configured
    utterance_scores/part-<id>.parquet         one row per utterance: respect, acts, prosody (a recording or a table)
    encounter_scores/part-<id>.parquet         one row per encounter: respect, trajectory, behaviours, escalation
    flags/part-current.parquet                 one row per flagged encounter and flag (poor | exemplary)
    clips/part-current.parquet                 one row per clip cut around flagged spans
    clips/_files/<clip_id>.ogg|.mp4            the clips themselves (the underscore keeps Parquet readers out)
    transcripts/<recording_id>.vtt             WebVTT, one cue per utterance, <v speaker> voice tags
    diarization/<recording_id>.rttm            RTTM of the speaker turns
    runs/<run_id>.json                         run report

Each table is a folder of Parquet parts sharing one explicit Arrow schema (:data:`SCHEMAS`), so
``pandas.read_parquet("STORE/utterances")`` reads them all as one table. Every file appears atomically: it is
written under a hidden temporary name (which Parquet readers skip) and renamed into place.

Example
-------
>>> store = Store("/data/bwc-store")                         # doctest: +SKIP
>>> store.write_speech_result(result)                        # doctest: +SKIP
>>> pandas.read_parquet(store.table_path("utterances"))      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bwc.records import AudioInfo, Failure, Metadata, Recording, ScoredEncounter, SpeechResult, UtteranceAcoustics
from bwc.transcript import write_rttm, write_vtt

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
# Score columns (kept here, not imported from scoring, so the store sits below the stages that fill it).
ACT_COLUMNS = (
    "greeting", "introduction", "reason_for_stop", "explanation", "safety_concern", "reassurance", "formal_title",
    "gratitude", "apology", "command", "threat", "profanity", "insult", "informal_title", "accusation",
    "search_request", "documentation_request", "raised_voice",
)  # fmt: skip
METADATA_COLUMNS = ("evidence_id", "officer_id", "recorded_at", "incident_id", "category")  # of recordings
BEHAVIOUR_COLUMNS = ("greeting_introduction", "reason_early", "safety_concern", "reassurance", "formal_title")
# Per officer and period: share of encounters flagged, with each trained behaviour, and with a hostile act.
OFFICER_SHARES = ("poor_share", "exemplary_share", *[f"rate_{name}" for name in BEHAVIOUR_COLUMNS], "hostile_share")

SCHEMAS: dict[str, pa.Schema] = {
    "recordings": pa.schema(
        [
            ("recording_id", pa.string()),  # first 16 hex digits of sha256
            ("path", pa.string()),  # absolute path of the original
            ("sha256", pa.string()),  # SHA-256 of the original, hex
            ("size_bytes", pa.int64()),  # bytes
            ("duration_s", pa.float64()),  # seconds
            ("sample_rate", pa.int32()),  # native rate of the audio stream, Hz
            ("channels", pa.int32()),  # native channel count
            ("format", pa.string()),  # container, as ffprobe names it
            ("codec", pa.string()),  # audio codec
            ("has_video", pa.bool_()),  # the original also has video
            ("evidence_id", pa.string()),  # metadata export: evidence id
            ("officer_id", pa.string()),  # metadata export: officer / badge id
            ("recorded_at", UTC_TIMESTAMP),  # metadata export: recording start, UTC
            ("incident_id", pa.string()),  # metadata export: incident id
            ("category", pa.string()),  # metadata export: evidence category
            ("speech_s", pa.float64()),  # seconds of voice activity
            ("language", pa.string()),  # transcription language
            ("n_speakers", pa.int32()),  # distinct diarization speakers
            ("processed_at", UTC_TIMESTAMP),  # when the speech stage finished, UTC
        ]
    ),
    "utterances": pa.schema(
        [
            ("recording_id", pa.string()),
            ("utterance_id", pa.string()),  # "<recording_id>-<index>"
            ("speaker", pa.string()),  # diarization label
            ("start", pa.float64()),  # seconds from recording start
            ("end", pa.float64()),  # seconds from recording start
            ("text", pa.string()),
            ("n_words", pa.int32()),
            ("level_db", pa.float64()),  # RMS level of the loudest half of its frames, dBFS
            ("snr_db", pa.float64()),  # level above the recording's noise floor, dB
            ("high_band_ratio", pa.float64()),  # share of energy above 3 kHz
            ("low_band_ratio", pa.float64()),  # share of energy below 300 Hz
            ("pitch_hz", pa.float64()),  # median pitch of voiced frames; null when unvoiced
            ("pitch_range_st", pa.float64()),  # 10–90% pitch span, semitones
        ]
    ),
    "words": pa.schema(
        [
            ("recording_id", pa.string()),
            ("utterance_id", pa.string()),
            ("word", pa.string()),
            ("start", pa.float64()),  # seconds from recording start
            ("end", pa.float64()),  # seconds from recording start
            ("probability", pa.float32()),  # whisper word probability, 0..1
            ("speaker", pa.string()),  # diarization label
        ]
    ),
    "failures": pa.schema(
        [
            ("path", pa.string()),
            ("sha256", pa.string()),  # null when the file could not be read
            ("stage", pa.string()),  # ingest | speech | scoring | write
            ("reason", pa.string()),  # one line
            ("attempts", pa.int32()),
            ("last_attempt_at", UTC_TIMESTAMP),
        ]
    ),
    "utterance_scores": pa.schema(
        [
            ("encounter_id", pa.string()),  # recording id on the audio path, else the table's encounter id
            ("turn", pa.int32()),  # position in the encounter, from 1
            ("utterance_id", pa.string()),  # audio path: "<recording_id>-<index>"
            ("recording_id", pa.string()),  # audio path only
            ("speaker", pa.string()),  # diarization label (or the table's speaker column)
            ("role", pa.string()),  # officer | civilian | other_officer | radio | other | unknown
            ("start", pa.float64()),  # seconds from recording start, when known
            ("end", pa.float64()),  # seconds from recording start, when known
            ("text", pa.string()),
            ("respect", pa.float64()),  # officer lines: corpus SDs from the corpus mean; null for others
            ("respect_reasons", pa.string()),  # top contributions with the words behind them
            *[(f"act_{name}", pa.bool_()) for name in ACT_COLUMNS],
            ("acts_evidence", pa.string()),  # JSON: act -> words that triggered it
            ("loudness_rel_db", pa.float64()),  # audio path: level vs this officer's median, dB
            ("pitch_rel_st", pa.float64()),  # audio path: pitch vs this officer's median, semitones
            ("speech_rate_wps", pa.float64()),  # words per second, when times are known
            ("model_version", pa.string()),  # models, rules and weight hashes behind the scores
        ]
    ),
    "encounter_scores": pa.schema(
        [
            ("encounter_id", pa.string()),
            ("recording_id", pa.string()),  # audio path only
            ("officer_id", pa.string()),
            ("recorded_at", UTC_TIMESTAMP),
            ("n_officer_utterances", pa.int32()),
            ("respect", pa.float64()),  # mean officer respect
            ("respect_first", pa.float64()),  # mean over the first third of officer utterances
            ("respect_last", pa.float64()),  # mean over the last third
            ("respect_slope", pa.float64()),  # change per officer utterance (least squares)
            ("escalation", pa.float64()),  # 0..1, higher = more escalated (first 45 officer words)
            ("behaviours_present", pa.int32()),  # how many of the five trained behaviours occurred
            *[(f"pj_{name}", pa.bool_()) for name in BEHAVIOUR_COLUMNS],
            ("reasons", pa.string()),  # "; "-joined: escalation signals and behaviours, with their words
            ("officer_speaker", pa.string()),  # audio path: diarization label attributed to the officer
            ("role_confidence", pa.float64()),  # audio path: attribution confidence, 0..1
            ("model_version", pa.string()),
        ]
    ),
    "flags": pa.schema(
        [
            ("encounter_id", pa.string()),
            ("flag", pa.string()),  # poor | exemplary
            ("score", pa.float64()),  # the flag's score: weighted department z-scores of shrunk components
            ("percentile", pa.float64()),  # of that score among all scored encounters in the store, 0..100
            ("reasons", pa.string()),  # "; "-joined reasons, with the words behind them
            ("reasons_deidentified", pa.string()),  # the same reasons without any words (researchers' view)
            ("spans", pa.string()),  # JSON list: {utterance_id, recording_id, turn, start, end, why}
            ("recording_id", pa.string()),  # audio path only
            ("officer_id", pa.string()),
            ("recorded_at", UTC_TIMESTAMP),
            ("n_officer_utterances", pa.int32()),
            ("respect_shrunk", pa.float64()),  # mean officer respect shrunk towards the department mean
            ("flagged_at", UTC_TIMESTAMP),
            ("model_version", pa.string()),  # flag rules, thresholds, shrinkage and the scores' model version
        ]
    ),
    "officer_periods": pa.schema(
        [
            ("officer_id", pa.string()),
            ("unit", pa.string()),  # the officer's peer-group value from early_warning.roster; null without one
            ("peer_group", pa.string()),  # what the officer is compared with: "unit North" or "department"
            ("window", pa.string()),  # month | 90d (the 90 days before a month's end)
            ("period", pa.string()),  # "2026-03" (month) or "2026-01-01/2026-03-31" (90d, both days included)
            ("period_start", UTC_TIMESTAMP),  # first instant of the period, UTC
            ("period_end", UTC_TIMESTAMP),  # first instant after it, UTC
            ("encounters", pa.int32()),  # encounters with officer language analysed in the period
            ("peer_officers", pa.int32()),  # other officers in the peer group with encounters in the period
            ("respect_mean", pa.float64()),  # mean encounter respect, unshrunk (corpus SDs)
            ("respect_shrunk", pa.float64()),  # empirical-Bayes posterior mean, shrunk toward the peer mean
            ("respect_low", pa.float64()),  # posterior interval of the officer's true mean respect
            ("respect_high", pa.float64()),
            ("peer_respect", pa.float64()),  # mean encounter respect of the other officers of the peer group
            ("p_respect_below", pa.float64()),  # posterior probability that true respect < peers − respect_margin
            ("escalation_mean", pa.float64()),  # mean encounter escalation, 0..1, unshrunk
            ("escalation_shrunk", pa.float64()),
            ("escalation_low", pa.float64()),
            ("escalation_high", pa.float64()),
            ("peer_escalation", pa.float64()),
            ("p_escalation_above", pa.float64()),  # posterior probability that escalation > peers + margin
            *[
                (f"{measure}{suffix}", pa.float64()) for measure in OFFICER_SHARES for suffix in ("", "_low", "_high")
            ],  # share of the period's encounters, with a Wilson interval
            ("baseline_encounters", pa.int32()),  # encounters in the officer's baseline (the periods before)
            ("respect_change", pa.float64()),  # (respect − peers) now minus the same in the baseline
            ("respect_change_low", pa.float64()),
            ("respect_change_high", pa.float64()),
            ("p_respect_falling", pa.float64()),  # probability that the relative change < −respect_margin
            ("escalation_change", pa.float64()),  # (escalation − peers) now minus the same in the baseline
            ("escalation_change_low", pa.float64()),
            ("escalation_change_high", pa.float64()),
            ("alert", pa.bool_()),  # the evidence of a concern is strong (advisory: not discipline, not a rating)
            ("alert_kinds", pa.string()),  # "; "-joined: respect_below_peers | respect_falling | escalation_above_peers
            ("alert_reasons", pa.string()),  # one sentence per kind, with the numbers behind it
            ("alert_encounters", pa.string()),  # JSON list of the encounter ids that drove the alert most
            ("computed_at", UTC_TIMESTAMP),
            ("model_version", pa.string()),  # method version, settings and the scores' model versions
        ]
    ),
    "clips": pa.schema(
        [
            ("clip_id", pa.string()),  # first 16 hex digits of sha256(recording, start, end, kind)
            ("encounter_id", pa.string()),
            ("flag", pa.string()),  # poor | exemplary
            ("recording_id", pa.string()),
            ("utterance_ids", pa.string()),  # JSON list of the flagged utterances the clip covers
            ("start", pa.float64()),  # seconds from the recording's start, padding included
            ("end", pa.float64()),
            ("kind", pa.string()),  # audio | video
            ("file", pa.string()),  # path inside the store, e.g. clips/_files/<clip_id>.ogg
            ("sha256", pa.string()),  # of the clip file
            ("size_bytes", pa.int64()),
            ("original_path", pa.string()),
            ("original_sha256", pa.string()),  # verified against the original just before cutting
            ("created_at", UTC_TIMESTAMP),
        ]
    ),
}


class Store:
    """A store directory: tables, transcripts, diarization and run reports.

    Parameters
    ----------
    root
        The store directory; created when missing.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    def table_path(self, table: str) -> Path:
        return self.root / table

    def transcript_path(self, recording_id: str) -> Path:
        return self.root / "transcripts" / f"{recording_id}.vtt"

    def rttm_path(self, recording_id: str) -> Path:
        return self.root / "diarization" / f"{recording_id}.rttm"

    def write_speech_result(self, result: SpeechResult, processed_at: Any) -> None:
        """Write one recording's rows and files; the recordings row goes last, so it marks completion."""
        recording = result.recording
        rid = recording.recording_id
        utterance_rows = [
            {
                "recording_id": rid,
                "utterance_id": u.utterance_id,
                "speaker": u.speaker,
                "start": u.start,
                "end": u.end,
                "text": u.text,
                "n_words": len(u.words),
            }
            | (asdict(a) if a is not None else {})
            for u, a in zip_longest(result.utterances, result.acoustics[: len(result.utterances)])
        ]
        word_rows = [
            {
                "recording_id": rid,
                "utterance_id": u.utterance_id,
                "word": w.text,
                "start": w.start,
                "end": w.end,
                "probability": w.probability,
                "speaker": w.speaker,
            }
            for u in result.utterances
            for w in u.words
        ]
        self._write_file(self.transcript_path(rid), lambda tmp: write_vtt(tmp, result.utterances))
        self._write_file(self.rttm_path(rid), lambda tmp: write_rttm(tmp, rid, result.diarization.turns))
        self.write_rows("utterances", f"part-{rid}", utterance_rows)
        self.write_rows("words", f"part-{rid}", word_rows)
        speakers = {turn.speaker for turn in result.diarization.turns}
        row = recording_row(recording) | {
            "speech_s": result.speech_s,
            "language": result.language,
            "n_speakers": len(speakers),
            "processed_at": processed_at,
        }
        self.write_rows("recordings", f"part-{rid}", [row])

    def write_current_failures(self, failures: Sequence[Failure]) -> None:
        """Replace ``failures/`` with the files failing now (one row each, attempts so far)."""
        self.write_failures("current", failures, keep_empty=True)
        for stale in self.table_path("failures").glob("part-*.parquet"):
            if stale.name != "part-current.parquet":
                stale.unlink(missing_ok=True)

    def write_failures(self, run_id: str, failures: Sequence[Failure], keep_empty: bool = False) -> None:
        if not failures and not keep_empty:
            return
        rows = [
            {
                "path": f.path,
                "sha256": f.sha256,
                "stage": f.stage,
                "reason": f.reason,
                "attempts": f.attempts,
                "last_attempt_at": f.last_attempt_at,
            }
            for f in failures
        ]
        self.write_rows("failures", f"part-{run_id}", rows)

    def write_scores(self, part: str, scored: Sequence[ScoredEncounter]) -> None:
        """Write utterance and encounter scores as ``<table>/part-<part>.parquet`` (encounters last)."""
        utterance_rows = [row for encounter in scored for row in utterance_score_rows(encounter)]
        self.write_rows("utterance_scores", f"part-{part}", utterance_rows)
        self.write_rows("encounter_scores", f"part-{part}", [encounter_score_row(e) for e in scored])

    def write_report(self, run_id: str, report: dict[str, Any]) -> Path:
        """``runs/<run_id>.json`` and the same as readable text, ``runs/<run_id>.txt``."""
        path = self.root / "runs" / f"{run_id}.json"
        self._write_file(path.with_suffix(".txt"), lambda tmp: Path(tmp).write_text(readable_report(report)))
        self._write_file(path, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2, default=str)))
        return path

    def read_rows(self, table: str, recording_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Rows of ``table`` (all, or those of ``recording_ids``) as dicts; none when the table does not exist."""
        folder = self.table_path(table)
        if not any(folder.glob("part-*.parquet")):
            return []
        filters = [("recording_id", "in", list(recording_ids))] if recording_ids is not None else None
        arrow_table = pq.read_table(folder, schema=SCHEMAS[table], filters=filters)
        return arrow_table.to_pylist()

    def read_parts(self, table: str) -> pd.DataFrame:
        """Every part of ``table`` in one frame, oldest part first (modification time, then name), each row with its
        ``part`` name; empty (with the schema's columns) when there is none.

        When two parts hold the same key (two transcript tables scored the same encounter ids), readers keep the
        last row: the newest scoring is the one a department meant.
        """
        schema = SCHEMAS[table]
        paths = sorted(self.table_path(table).glob("part-*.parquet"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        if not paths:
            return schema.empty_table().to_pandas().assign(part=pd.Series(dtype=str))
        rank = {str(path): index for index, path in enumerate(paths)}
        batches, parts, ages = [], [], []
        # One threaded scan over every part (a store holds a part per recording); each batch names its file.
        for tagged in ds.dataset([str(p) for p in paths], schema=schema, format="parquet").scanner().scan_batches():
            batches.append(tagged.record_batch)
            parts += [Path(tagged.fragment.path).stem] * tagged.record_batch.num_rows
            ages += [rank[tagged.fragment.path]] * tagged.record_batch.num_rows
        frame = pa.Table.from_batches(batches, schema=schema).to_pandas().assign(part=parts, age=ages)
        return frame.sort_values("age", kind="stable").drop(columns="age").reset_index(drop=True)

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete hidden temporary files a killed run left behind (call only while holding the run lock)."""
        stale = [path for path in self.root.rglob(".*.tmp") if path.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def write_rows(self, table: str, part: str, rows: list[dict[str, Any]]) -> Path:
        """Write ``rows`` as ``STORE/<table>/<part>.parquet`` with the table's schema, atomically."""
        schema = SCHEMAS[table]
        arrow_table = pa.Table.from_pylist(rows, schema=schema)
        path = self.table_path(table) / f"{part}.parquet"
        self._write_file(path, lambda tmp: pq.write_table(arrow_table, tmp))
        return path

    @staticmethod
    def _write_file(path: Path, write: Callable[[str], object]) -> None:
        write_atomically(path, write)


def write_atomically(path: Path, write: Callable[[str], object]) -> None:
    """Create ``path`` through ``write(temporary_path)``: written under a hidden name (which Parquet readers and
    globs skip) in the same folder, then renamed into place, so readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def recording_row(recording: Recording) -> dict[str, Any]:
    """The ``recordings`` columns that ingest alone determines."""
    return {
        "recording_id": recording.recording_id,
        "path": recording.path,
        "sha256": recording.sha256,
        "size_bytes": recording.size_bytes,
        "duration_s": recording.audio.duration_s,
        "sample_rate": recording.audio.sample_rate,
        "channels": recording.audio.channels,
        "format": recording.audio.format,
        "codec": recording.audio.codec,
        "has_video": recording.audio.has_video,
        "evidence_id": recording.metadata.evidence_id,
        "officer_id": recording.metadata.officer_id,
        "recorded_at": recording.metadata.recorded_at,
        "incident_id": recording.metadata.incident_id,
        "category": recording.metadata.category,
    }


def recording_from_row(row: dict[str, Any]) -> Recording:
    """The :class:`~bwc.records.Recording` a ``recordings`` row was written from (the inverse of
    :func:`recording_row`)."""
    return Recording(
        recording_id=row["recording_id"],
        path=row["path"],
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
        audio=AudioInfo(
            duration_s=row["duration_s"],
            sample_rate=row["sample_rate"],
            channels=row["channels"],
            format=row["format"],
            codec=row["codec"],
            has_video=row["has_video"],
        ),
        metadata=Metadata(**{name: row[name] for name in METADATA_COLUMNS}),
    )


def acoustics_from_row(row: dict[str, Any]) -> UtteranceAcoustics | None:
    """The acoustics an ``utterances`` row carries; None when it was written without them."""
    if row.get("level_db") is None:
        return None
    return UtteranceAcoustics(**{name: row[name] for name in UtteranceAcoustics.__dataclass_fields__})


def utterance_score_rows(scored: ScoredEncounter) -> list[dict[str, Any]]:
    rows = []
    for score in scored.utterances:
        line = score.line
        row: dict[str, Any] = {
            "encounter_id": line.encounter_id,
            "turn": line.turn,
            "utterance_id": line.utterance_id,
            "recording_id": scored.encounter.recording_id,
            "speaker": line.speaker,
            "role": line.role,
            "start": line.start,
            "end": line.end,
            "text": line.text,
            "respect": score.respect,
            "respect_reasons": score.respect_reasons,
            "acts_evidence": json.dumps(score.acts, ensure_ascii=False) if score.respect is not None else None,
            "loudness_rel_db": score.loudness_rel_db,
            "pitch_rel_st": score.pitch_rel_st,
            "speech_rate_wps": score.speech_rate_wps,
            "model_version": scored.model_version,
        }
        row |= {f"act_{name}": name in score.acts for name in ACT_COLUMNS}
        rows.append(row)
    return rows


def encounter_score_row(scored: ScoredEncounter) -> dict[str, Any]:
    e = scored.encounter
    row: dict[str, Any] = {
        "encounter_id": e.encounter_id,
        "recording_id": e.recording_id,
        "officer_id": e.officer_id,
        "recorded_at": e.recorded_at,
        "n_officer_utterances": e.n_officer_utterances,
        "respect": e.respect,
        "respect_first": e.respect_first,
        "respect_last": e.respect_last,
        "respect_slope": e.respect_slope,
        "escalation": e.escalation,
        "behaviours_present": sum(e.behaviours.values()),
        "reasons": "; ".join(e.reasons),
        "officer_speaker": e.officer_speaker,
        "role_confidence": e.role_confidence,
        "model_version": scored.model_version,
    }
    return row | {f"pj_{name}": bool(e.behaviours.get(name)) for name in BEHAVIOUR_COLUMNS}


def readable_report(report: dict[str, Any]) -> str:
    """A run report as a person reads it in the morning."""
    lines = [
        f"bwc run {report.get('run_id', '')}",
        f"files seen        {report.get('files_seen', 0)}",
        f"  new             {report.get('files_new', 0)}",
        f"  already done    {report.get('already_done', 0)}",
        f"  settling        {len(report.get('settling', []))}",
        f"  given up        {len(report.get('given_up', []))}",
        f"processed         {report.get('processed', 0)}",
        f"duplicates        {len(report.get('duplicates', []))}",
        f"failed            {report.get('failed', 0)}",
        f"audio hours       {report.get('audio_hours', 0.0):.3f}",
        f"speech hours      {report.get('speech_hours', 0.0):.3f}",
        f"wall time         {report.get('wall_s', 0.0):.1f} s",
        f"x realtime        {report.get('x_realtime', 0.0):.2f}",
    ]
    lines += [f"  {stage:<15} {seconds:.1f} s" for stage, seconds in report.get("stage_s", {}).items()]
    lines += [f"failed: [{f['stage']}] {f['path']}: {f['reason']}" for f in report.get("failures", [])]
    lines += [f"duplicate: {d['path']} = {d['same_as']}" for d in report.get("duplicates", [])]
    lines += [f"settling: {path}" for path in report.get("settling", [])]
    lines += [f"given up: {path}" for path in report.get("given_up", [])]
    return "\n".join(lines) + "\n"
