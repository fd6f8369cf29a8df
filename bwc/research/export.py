"""De-identified research export: the store's score tables, safe to take out of the department.

What goes out (``OUT/``):

- ``encounter_scores.parquet``, ``utterance_scores.parquet``, ``flags.parquet``: officer ids replaced by keyed
  pseudonyms (HMAC-SHA256 under the store's key, :mod:`bwc.pseudonym`: the same pseudonyms researchers see in the
  review app), encounter and recording ids by keyed pseudonyms of their own (so rows cannot be matched to evidence
  files or their hashes), recording times cut to their UTC date (training-effect research compares days before and
  after training; the time of day adds little to it and much to re-identification against dispatch logs),
  transcript text redacted (:mod:`bwc.research.redact`), and every column that quotes words from it (respect
  reasons, act evidence, encounter and flag reasons) redacted both by the PII strings found in that encounter's
  transcript and by the redactor. Speaker labels other than diarization's ``SPEAKER_nn`` are renamed per encounter
  (a transcript table's speaker column may hold names);
- ``manifest.json``: tables, row counts, columns, the SHA-256 of every file written, what was removed or redacted
  and how, the pseudonym scheme (never the key), the source store, the time and the bwc version;
- ``README.txt`` for the recipient.

What never goes out: audio, clips, the recordings, utterances and words tables (paths, evidence and incident ids,
unredacted text), failures, the catalog, the review database, transcripts and diarization files, run reports and the
key. Every file is written under a hidden name and renamed into place; ``manifest.json`` comes last.

Example
-------
>>> summary = export_store(Path("/data/bwc-store"), Path("/media/export-2026-11"))   # doctest: +SKIP
>>> summary.rows                                                                       # doctest: +SKIP
{'encounter_scores': 812, 'utterance_scores': 40211, 'flags': 97}
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bwc.catalog import Catalog
from bwc.custody import RESEARCH_EXPORTED, CustodyError, CustodyLog, actor
from bwc.pseudonym import DEFAULT_KEY_FILE, KIND_SEPARATOR, PREFIX, Pseudonymizer, store_pseudonymizer
from bwc.research.redact import PII_TYPES, PLACEHOLDERS, REDACTION_VERSION, PiiSpan, Redactor, default_redactor
from bwc.store import SCHEMAS, Store, write_atomically

EXPORT_FORMAT = "bwc-research-export"
EXPORT_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
README = "README.txt"
TABLES = ("encounter_scores", "utterance_scores", "flags")
DATE_RESOLUTIONS = ("day", "week", "month")
DIARIZATION_LABEL = re.compile(r"SPEAKER_\d+")  # pyannote's labels name no one: kept as they are
KEY_ID_MESSAGE = "bwc-export-key-id"  # hashed under the key: tells two exports' keys apart without revealing them
SEPARATOR = KIND_SEPARATOR  # between a pseudonym's kind and the id (the review app's researcher views agree)
MIN_PROPAGATED = 3  # characters: shorter PII strings are not searched for in derived columns ("Al", "Ng" are)
PROPAGATED_TYPES_BY_WORD = ("PERSON",)  # each word of these spans is searched for too ("parker" in act evidence)
# Columns that quote transcript words; redacted.
DERIVED_TEXT = {
    "utterance_scores": ("respect_reasons", "acts_evidence"),
    "encounter_scores": ("reasons",),
    "flags": ("reasons", "spans"),
}
# Columns dropped from the export, with the reason the manifest gives.
DROPPED = {
    "encounter_scores": {"recorded_at": "replaced by recorded_date (UTC date at the export's date resolution)"},
    "utterance_scores": {"utterance_id": "holds the recording id; encounter_id and turn identify an utterance"},
    "flags": {"recorded_at": "replaced by recorded_date (UTC date at the export's date resolution)"},
}
# Store contents never exported, with the reason the manifest gives.
WITHHELD = {
    "recordings/": "paths, evidence and incident ids, content hashes",
    "utterances/": "unredacted transcript text and recording ids",
    "words/": "word-level transcript, unredacted",
    "failures/": "file paths",
    "clips/ and clips/_files/": "audio and video",
    "audio": "no audio or video leaves the department",
    "transcripts/, diarization/": "unredacted transcripts keyed by recording id",
    "runs/": "run reports with file paths",
    "catalog.sqlite": "paths and content hashes of every original",
    "review.sqlite": "reviewer accounts, decisions and the audit log",
    "secrets/": "the pseudonym key",
}


class ExportError(RuntimeError):
    """The export cannot be written; the message says why."""


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_store` wrote."""

    out_dir: Path  # the export folder
    rows: dict[str, int]  # table -> rows written
    files: dict[str, str]  # file name -> SHA-256, every file written (manifest.json aside)
    redacted: dict[str, int]  # PII type -> spans redacted from utterance text
    derived_redactions: int  # replacements made in columns that quote transcript words
    officers: int  # distinct officers (pseudonymised)
    encounters: int  # encounters exported
    key_id: str  # identifies the pseudonym key without revealing it
    seconds: float  # wall time


@dataclass(frozen=True)
class _Pseudonyms:
    """The keyed pseudonyms of one export."""

    keyed: Pseudonymizer  # the store's keyed hash

    def officer(self, officer_id: Any) -> str | None:
        return self.keyed(None if _missing(officer_id) else str(officer_id))

    def of(self, kind: str, identifier: Any) -> str | None:
        """``<kind>-<10 hex digits>`` for an encounter or recording id; None for none."""
        if _missing(identifier) or identifier == "":
            return None
        return self.keyed.of(kind, str(identifier))

    def key_id(self) -> str:
        return str(self.of("key", KEY_ID_MESSAGE))


def export_store(
    store: Path,
    out_dir: Path,
    key_file: Path | None = None,
    *,
    overwrite: bool = False,
    date_resolution: str = "day",
    redactor: Redactor | None = None,
    catalog_url: str | None = None,
) -> ExportSummary:
    """Write the de-identified research export of ``store`` into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    store
        The bwc store.
    out_dir
        Where to write; created when missing. Must be empty, unless ``overwrite`` and it holds a previous export.
    key_file
        The pseudonym key; default ``STORE/secrets/pseudonym.key`` (created when missing). The same key gives the
        same pseudonyms in every export and in the review app's researcher views.
    overwrite
        Replace a previous export in ``out_dir`` (never a folder holding anything else).
    date_resolution
        ``day`` (default), ``week`` (the Monday of its ISO week) or ``month`` (its first day) for recording dates.
    redactor
        A loaded :class:`~bwc.research.redact.Redactor` to use; default the process's own.

    Raises
    ------
    ExportError
        When ``out_dir`` is not empty (or holds something other than an export) or the store has no scores.
    """
    started = time.monotonic()
    if date_resolution not in DATE_RESOLUTIONS:
        raise ExportError(f"date_resolution must be one of {', '.join(DATE_RESOLUTIONS)}, not {date_resolution!r}")
    store, out_dir = Path(store).expanduser().absolute(), Path(out_dir).expanduser().absolute()
    previous = _check_out_dir(out_dir, overwrite)
    encounters, utterances = _read_scores(store)
    if encounters.empty:
        raise ExportError(f"{store}: no scored encounters to export (run `bwc run` or `bwc score` first)")
    flags = Store(store).read_parts("flags")
    flags = flags[flags["encounter_id"].isin(set(encounters["encounter_id"]))]
    pseudonyms = _Pseudonyms(store_pseudonymizer(store, str(key_file) if key_file else None))
    redactor = redactor or default_redactor()

    utterances, surfaces, redacted = _redact_utterances(utterances, redactor)
    derived = _Derived(redactor, surfaces)
    speakers = _speaker_labels(utterances, encounters)
    tables = {
        "encounter_scores": _export_encounters(encounters, pseudonyms, derived, speakers, date_resolution),
        "utterance_scores": _export_utterances(utterances, pseudonyms, derived, speakers),
        "flags": _export_flags(flags, pseudonyms, derived, date_resolution),
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    # A previous export's manifest goes first: an overwrite cut short leaves no manifest, so no export that looks whole.
    (out_dir / MANIFEST).unlink(missing_ok=True)
    files: dict[str, str] = {}
    for name, table in tables.items():
        path = out_dir / f"{name}.parquet"
        write_atomically(path, lambda temporary, table=table: pq.write_table(table, temporary))
        files[path.name] = _sha256(path)
    readme = out_dir / README
    write_atomically(readme, lambda temporary: Path(temporary).write_text(_readme(tables), encoding="utf-8"))
    files[README] = _sha256(readme)
    for stale in previous - set(files) - {MANIFEST}:
        (out_dir / stale).unlink(missing_ok=True)  # a previous export's file this one does not write

    key_id = pseudonyms.key_id()
    manifest = _manifest(
        store, out_dir, key_file, tables, files, redacted, derived.replacements, date_resolution, key_id
    )
    write_atomically(out_dir / MANIFEST, lambda temporary: Path(temporary).write_text(manifest, encoding="utf-8"))
    _record_custody(store, catalog_url, encounters, out_dir, _sha256(out_dir / MANIFEST), date_resolution, key_id)
    return ExportSummary(
        out_dir=out_dir,
        rows={name: table.num_rows for name, table in tables.items()},
        files=files,
        redacted=redacted,
        derived_redactions=derived.replacements,
        officers=int(encounters["officer_id"].dropna().nunique()),
        encounters=len(encounters),
        key_id=key_id,
        seconds=time.monotonic() - started,
    )


def _record_custody(
    store: Path,
    catalog_url: str | None,
    encounters: pd.DataFrame,
    out_dir: Path,
    manifest_sha256: str,
    date_resolution: str,
    key_id: str,
) -> None:
    """A ``research_exported`` entry in the custody log of every original whose scores the export holds.

    Raises
    ------
    ExportError
        When a log could not be extended (the export itself is complete).
    """
    ids = set(encounters["recording_id"].dropna()) if "recording_id" in encounters else set()
    originals = [row for row in Store(store).read_rows("recordings") if row["recording_id"] in ids]
    if not originals:
        return  # encounters scored from transcript tables: no original behind them
    catalog = Catalog.for_store(store, catalog_url)
    problems, who = [], actor()
    try:
        custody = CustodyLog(store, catalog)
        for row in originals:
            mine = sorted(encounters.loc[encounters["recording_id"] == row["recording_id"], "encounter_id"])
            try:
                detail = {"out_dir": str(out_dir), "encounters": mine, "manifest_sha256": manifest_sha256}
                custody.append(row["sha256"], RESEARCH_EXPORTED, who, **detail, dates=date_resolution, key_id=key_id)
            except CustodyError as error:
                problems.append(str(error))
    finally:
        catalog.close()
    if problems:
        raise ExportError(f"the export in {out_dir} is complete, but custody could not record it: {problems[0]}")


# -- reading --------------------------------------------------------------------------------------------------------
def _read_scores(store: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Encounter and utterance scores; when two parts hold one encounter, the newer part wins (as for flags)."""
    encounters = Store(store).read_parts("encounter_scores").drop_duplicates("encounter_id", keep="last")
    utterances = Store(store).read_parts("utterance_scores")
    utterances = utterances.merge(encounters[["encounter_id", "part"]], on=["encounter_id", "part"], how="inner")
    encounters = encounters.sort_values("encounter_id", kind="stable").reset_index(drop=True)
    utterances = utterances.sort_values(["encounter_id", "turn"], kind="stable").reset_index(drop=True)
    return encounters, utterances


# -- redaction ------------------------------------------------------------------------------------------------------
def _redact_utterances(
    utterances: pd.DataFrame, redactor: Redactor
) -> tuple[pd.DataFrame, dict[str, dict[str, str]], dict[str, int]]:
    """Utterances with redacted text; per encounter, the PII strings found (string -> type); counts per type."""
    texts = ["" if _missing(text) else str(text) for text in utterances["text"]]
    contexts: list[str | None] = []
    for index, encounter_id in enumerate(utterances["encounter_id"]):
        same = index > 0 and utterances["encounter_id"].iat[index - 1] == encounter_id
        contexts.append(texts[index - 1] if same else None)
    surfaces: dict[str, dict[str, str]] = {}
    counts = dict.fromkeys(PII_TYPES, 0)
    redacted_texts = []
    for text, context, encounter_id in zip(texts, contexts, utterances["encounter_id"], strict=True):
        result = redactor.redact(text, context)
        redacted_texts.append(result.text)
        found = surfaces.setdefault(str(encounter_id), {})
        for span in result.spans:
            counts[span.type] += 1
            found.update(_surfaces(text, span))
    out = utterances.copy()
    out["text"] = [
        None if _missing(original) else text for original, text in zip(utterances["text"], redacted_texts, strict=True)
    ]
    return out, surfaces, counts


def _surfaces(text: str, span: PiiSpan) -> dict[str, str]:
    """The strings to search for in derived columns: the span, and for names each of its words."""
    found = text[span.start : span.end]
    strings = {found: span.type} if len(found.strip()) >= MIN_PROPAGATED else {}
    if span.type in PROPAGATED_TYPES_BY_WORD:
        for word in re.findall(r"[A-Za-z][A-Za-z'’-]*", found):
            if len(word) >= MIN_PROPAGATED:
                strings.setdefault(word, span.type)
    return strings


class _Derived:
    """Redacts columns that quote transcript words: first by the encounter's own PII strings, then by the rules."""

    def __init__(self, redactor: Redactor, surfaces: dict[str, dict[str, str]]) -> None:
        self.redactor = redactor
        self.replacements = 0
        self.patterns: dict[str, list[tuple[re.Pattern[str], str]]] = {
            encounter_id: [
                (re.compile(rf"(?<!\w){re.escape(string)}(?!\w)", re.IGNORECASE), PLACEHOLDERS[kind])
                for string, kind in sorted(strings.items(), key=lambda item: -len(item[0]))
            ]
            for encounter_id, strings in surfaces.items()
        }

    def text(self, value: Any, encounter_id: Any) -> str | None:
        if _missing(value):
            return None
        text = str(value)
        for pattern, placeholder in self.patterns.get(str(encounter_id), []):
            text, replaced = pattern.subn(placeholder, text)
            self.replacements += replaced
        result = self.redactor.redact(text)
        self.replacements += len(result.spans)
        return result.text

    def json_values(self, value: Any, encounter_id: Any, drop: Iterable[str] = ()) -> str | None:
        """A JSON document with every string in it redacted, and the keys in ``drop`` removed from its objects."""
        if _missing(value):
            return None
        dropped = set(drop)

        def walk(node: Any) -> Any:
            if isinstance(node, str):
                return self.text(node, encounter_id)
            if isinstance(node, list):
                return [walk(item) for item in node]
            if isinstance(node, dict):
                return {key: walk(item) for key, item in node.items() if key not in dropped}
            return node

        return json.dumps(walk(json.loads(str(value))), ensure_ascii=False)


def _speaker_labels(utterances: pd.DataFrame, encounters: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(encounter id, label) -> exported label: diarization labels kept, anything else "speaker-<n>" by first turn."""
    labels: dict[tuple[str, str], str] = {}
    pairs = list(zip(utterances["encounter_id"], utterances["speaker"], strict=True))
    pairs += list(zip(encounters["encounter_id"], encounters["officer_speaker"], strict=True))
    counters: dict[str, int] = {}
    for encounter_id, label in pairs:
        if _missing(label) or (str(encounter_id), str(label)) in labels:
            continue
        if DIARIZATION_LABEL.fullmatch(str(label)):
            labels[(str(encounter_id), str(label))] = str(label)
        else:
            counters[str(encounter_id)] = counters.get(str(encounter_id), 0) + 1
            labels[(str(encounter_id), str(label))] = f"speaker-{counters[str(encounter_id)]}"
    return labels


# -- the exported tables --------------------------------------------------------------------------------------------
def export_schema(table: str) -> pa.Schema:
    """The schema of an exported table: the store's, less the dropped columns, with ``recorded_date``."""
    fields = []
    for field in SCHEMAS[table]:
        if field.name == "recorded_at":
            fields.append(pa.field("recorded_date", pa.date32()))  # UTC date at the export's resolution
        elif field.name not in DROPPED[table]:
            fields.append(field)
    return pa.schema(fields)


def _export_encounters(
    encounters: pd.DataFrame,
    pseudonyms: _Pseudonyms,
    derived: _Derived,
    speakers: dict[tuple[str, str], str],
    resolution: str,
) -> pa.Table:
    rows = []
    for row in encounters.to_dict("records"):
        encounter_id = row["encounter_id"]
        rows.append(
            row
            | {
                "encounter_id": pseudonyms.of("encounter", encounter_id),
                "recording_id": pseudonyms.of("recording", row["recording_id"]),
                "officer_id": pseudonyms.officer(row["officer_id"]),
                "recorded_date": coarse_date(row["recorded_at"], resolution),
                "reasons": derived.text(row["reasons"], encounter_id),
                "officer_speaker": _speaker(speakers, encounter_id, row["officer_speaker"]),
            }
        )
    return _arrow(rows, export_schema("encounter_scores"))


def _export_utterances(
    utterances: pd.DataFrame, pseudonyms: _Pseudonyms, derived: _Derived, speakers: dict[tuple[str, str], str]
) -> pa.Table:
    rows = []
    for row in utterances.to_dict("records"):
        encounter_id = row["encounter_id"]
        rows.append(
            row
            | {
                "encounter_id": pseudonyms.of("encounter", encounter_id),
                "recording_id": pseudonyms.of("recording", row["recording_id"]),
                "speaker": _speaker(speakers, encounter_id, row["speaker"]),
                "respect_reasons": derived.text(row["respect_reasons"], encounter_id),
                "acts_evidence": derived.json_values(row["acts_evidence"], encounter_id),
            }
        )
    return _arrow(rows, export_schema("utterance_scores"))


def _export_flags(flags: pd.DataFrame, pseudonyms: _Pseudonyms, derived: _Derived, resolution: str) -> pa.Table:
    rows = []
    for row in flags.to_dict("records"):
        encounter_id = row["encounter_id"]
        rows.append(
            row
            | {
                "encounter_id": pseudonyms.of("encounter", encounter_id),
                "recording_id": pseudonyms.of("recording", row["recording_id"]),
                "officer_id": pseudonyms.officer(row["officer_id"]),
                "recorded_date": coarse_date(row["recorded_at"], resolution),
                "reasons": derived.text(row["reasons"], encounter_id),
                # Spans keep turn, start, end and why (redacted); their utterance and recording ids go.
                "spans": derived.json_values(row["spans"], encounter_id, drop=("utterance_id", "recording_id")),
            }
        )
    return _arrow(rows, export_schema("flags"))


def _arrow(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    columns = {field.name: [_plain(row.get(field.name)) for row in rows] for field in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def _plain(value: Any) -> Any:
    """A value pyarrow takes: pandas' missing values as None, timestamps as datetimes."""
    if _missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, (str, bytes, list, dict)) and bool(pd.isna(value)))


def _speaker(speakers: dict[tuple[str, str], str], encounter_id: Any, label: Any) -> str | None:
    return None if _missing(label) else speakers[(str(encounter_id), str(label))]


def coarse_date(value: Any, resolution: str) -> date | None:
    """The UTC date of a timestamp, at ``resolution`` (day, the Monday of its week, or the first of its month)."""
    if _missing(value):
        return None
    day = pd.Timestamp(value).tz_convert(UTC).date() if pd.Timestamp(value).tzinfo else pd.Timestamp(value).date()
    if resolution == "week":
        return day - timedelta(days=day.weekday())
    if resolution == "month":
        return day.replace(day=1)
    return day


# -- files ----------------------------------------------------------------------------------------------------------
def _check_out_dir(out_dir: Path, overwrite: bool) -> set[str]:
    """The names of a previous export's files in ``out_dir`` (to replace); raises when it may not be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file, not a folder")
    entries = {entry.name for entry in out_dir.iterdir()} if out_dir.exists() else set()
    if not entries:
        return set()
    if not overwrite:
        raise ExportError(f"{out_dir} is not empty: choose an empty folder, or overwrite a previous export")
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        previous = {MANIFEST, *manifest["files"]}
        if manifest.get("format") != EXPORT_FORMAT:
            raise ValueError(manifest.get("format"))
    except (OSError, ValueError, KeyError, TypeError):
        raise ExportError(f"{out_dir} is not empty and holds no bwc research export: not overwriting it") from None
    others = {entry for entry in entries if entry not in previous and not entry.startswith(".")}
    if others:
        raise ExportError(f"{out_dir} holds files that are not part of its export ({', '.join(sorted(others))})")
    return previous


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "unknown"


def _manifest(
    store: Path,
    out_dir: Path,
    key_file: Path | None,
    tables: dict[str, pa.Table],
    files: dict[str, str],
    redacted: dict[str, int],
    derived_replacements: int,
    date_resolution: str,
    key_id: str,
) -> str:
    manifest = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "bwc_version": _version("bwc"),
        "source_store": str(store),
        "tables": {
            name: {
                "file": f"{name}.parquet",
                "rows": table.num_rows,
                "columns": {field.name: str(field.type) for field in table.schema},
                "sha256": files[f"{name}.parquet"],
            }
            for name, table in tables.items()
        },
        "files": {name: {"sha256": digest, "bytes": (out_dir / name).stat().st_size} for name, digest in files.items()},
        "pseudonyms": {
            "scheme": "HMAC-SHA256 under a secret key kept by the department, first 40 bits in hex",
            "officer_id": f"{PREFIX}<hex> = HMAC(key, officer id); the review app's researcher views use the same",
            "encounter_id": "encounter-<hex> = HMAC(key, 'encounter' + U+001F + encounter id)",
            "recording_id": "recording-<hex> = HMAC(key, 'recording' + U+001F + recording id)",
            "key": f"not exported; kept at {'the configured key file' if key_file else f'STORE/{DEFAULT_KEY_FILE}'}",
            "key_id": key_id,
            "key_id_note": "the same key_id means the same key: pseudonyms match across those exports",
            "speakers": "diarization labels (SPEAKER_nn) kept; other speaker labels renamed speaker-<n> per encounter",
        },
        "dates": {
            "recorded_date": f"UTC date of the recording's start at {date_resolution} resolution; time of day removed",
            "resolution": date_resolution,
        },
        "redaction": {
            "method": (
                "rules: presidio-analyzer AnalyzerEngine on a blank spaCy English pipeline with pattern and context "
                "recognizers, phonenumbers (phones), usaddress (street addresses), tldextract's bundled public-suffix "
                "list (email domains); spoken numbers and spelled plates normalised first"
            ),
            "version": REDACTION_VERSION,
            "libraries": {name: _version(name) for name in ("presidio-analyzer", "spacy", "usaddress", "phonenumbers")},
            "pii_types": list(PII_TYPES),
            "placeholders": PLACEHOLDERS,
            "redacted_columns": {
                "utterance_scores.text": "each utterance, with the one before it as context",
                **{
                    f"{table}.{column}": "PII strings found in the encounter's transcript (case-insensitive), then "
                    "the rules; JSON documents string by string"
                    for table, columns in DERIVED_TEXT.items()
                    for column in columns
                },
            },
            "spans_redacted": redacted,
            "derived_replacements": derived_replacements,
            "evaluation": "bwc/research/pii_eval/CARD.md: recall and precision per type on a held-out labelled set",
            "limits": "rules miss some PII (see the card): review a sample before release",
        },
        "removed": {
            "columns": {table: columns for table, columns in DROPPED.items()},
            "withheld": WITHHELD,
        },
    }
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def _readme(tables: dict[str, pa.Table]) -> str:
    counts = "\n".join(f"  {name}.parquet  {table.num_rows} rows" for name, table in tables.items())
    return f"""bwc research export (de-identified)
===================================

This folder holds officer-language scores from police body-worn-camera footage, de-identified for research.

Files
{counts}
  manifest.json  what was exported and how: tables, columns, row counts, SHA-256 of every file, the redaction
                 and pseudonym methods. Check the files with: sha256sum *.parquet README.txt

Read a table with pandas: pandas.read_parquet("encounter_scores.parquet").

Pseudonyms
  officer_id, encounter_id and recording_id are keyed hashes (HMAC-SHA256). The same officer has the same
  pseudonym in every table and in every export made with the same key (see key_id in manifest.json). The key
  stays with the department; the pseudonyms cannot be reversed without it.

Dates
  recorded_date is the UTC date of the recording (see manifest.json for its resolution). Times of day are removed.

Redaction
  Names, street addresses, phone numbers, licence plates, dates of birth, social security numbers and email
  addresses in transcript text were replaced by [PERSON], [ADDRESS], [PHONE], [PLATE], [DOB], [SSN], [EMAIL].
  Redaction is automatic and rules-based; it misses some PII (measured recall per type is in bwc's
  bwc/research/pii_eval/CARD.md). No audio, video, file paths, evidence or incident ids are included.

Your obligations
  Do not try to re-identify officers or members of the public. Report any PII you find to the department and
  delete it. Keep this export under the data-use agreement it was released under.
"""
