"""The store: Parquet tables and per-recording files that a run writes, readable with pandas.

Layout of ``STORE/``::

    recordings/part-<recording_id>.parquet     one row per original
    utterances/part-<recording_id>.parquet     one row per utterance
    words/part-<recording_id>.parquet          one row per word
    failures/part-<run_id>.parquet             one row per file that failed in that run
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
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bwc.records import Failure, Recording, SpeechResult
from bwc.transcript import write_rttm, write_vtt

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

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
            ("stage", pa.string()),  # ingest | speech | write
            ("reason", pa.string()),  # one line
            ("attempts", pa.int32()),
            ("last_attempt_at", UTC_TIMESTAMP),
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
            for u in result.utterances
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

    def write_failures(self, run_id: str, failures: Sequence[Failure]) -> None:
        if not failures:
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

    def write_report(self, run_id: str, report: dict[str, Any]) -> Path:
        path = self.root / "runs" / f"{run_id}.json"
        self._write_file(path, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2, default=str)))
        return path

    def write_rows(self, table: str, part: str, rows: list[dict[str, Any]]) -> Path:
        """Write ``rows`` as ``STORE/<table>/<part>.parquet`` with the table's schema, atomically."""
        schema = SCHEMAS[table]
        arrow_table = pa.Table.from_pylist(rows, schema=schema)
        path = self.table_path(table) / f"{part}.parquet"
        self._write_file(path, lambda tmp: pq.write_table(arrow_table, tmp))
        return path

    @staticmethod
    def _write_file(path: Path, write: Callable[[str], None]) -> None:
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
