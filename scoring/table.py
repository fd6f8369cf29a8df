"""Transcript tables a department already has, validated row by row and read into :class:`~bwc.records.Encounter`
records.

Columns (names are matched with case and surrounding spaces ignored; other columns are ignored):

- required: ``encounter_id``, ``turn``, ``role``, ``text``;
- optional: ``start``, ``end`` (seconds), ``officer_id``, ``recorded_at``, ``speaker``, ``recording_id`` (the store's
  id of the recording the transcript is of: its flags then get clips, and reviewers hear the audio).

Every row must fit :class:`TranscriptRow`: ``encounter_id`` (and ``recording_id``) 1-128 letters, digits and
``. _ : -``, starting with a letter or digit (:data:`~bwc.records.RECORD_ID_PATTERN`, what the review app can open);
``turn`` a whole number from 0 to 1,000,000, once per encounter; ``role`` officer / civilian / other (case and
surrounding spaces ignored); ``text`` non-empty text of at most ``scoring.max_utterance_chars`` characters;
``start``/``end`` finite, non-negative seconds with ``end >= start``; ``recorded_at`` ISO 8601 (values without an
offset are taken as UTC) between 1900 and 2199; ``officer_id``/``speaker`` at most 128 characters, no control
characters. Identifiers stay text: badge ``007`` is ``"007"``, never 7. An encounter's officer, time and recording
are those of its first turn's row.

The table as a whole must have at least one row, at most ``scoring.max_table_rows`` rows and at most
``scoring.max_table_mb`` MB (on disk, checked before it is read; for Parquet also uncompressed), and every
``recording_id`` must be in the store's ``recordings`` table when the caller names them. The first problem found
raises :class:`TranscriptTableError` with one line: file, row, column and what is wrong, e.g.
``stops.csv: row 7, column turn: must be a whole number, got '1.5'``. Rows are counted from 1 as data rows: a CSV's
header line is not counted, nor are blank lines (in a spreadsheet, row 7 is on line 8); Parquet rows in file order.

CSV, TSV (``.csv``/``.txt``, ``.tsv``/``.tab``) and Parquet (a file, or a directory of ``.parquet`` files) are read
by extension, as a stream, each piece validated as it comes, so memory follows the valid rows kept, not the file: CSV
in blocks of at least 1 MiB (a row longer than about a block is refused at once, without reading it whole; every cell
read as text, nothing guessed); Parquet in batches of rows, its text measured while still dictionary-encoded in Arrow
(a small file can repeat one long value a million times), list or struct columns refused from their type.

Example
-------
>>> encounters = read_transcripts(Path("stops.csv"))        # doctest: +SKIP
>>> encounters[0].lines[0].role                            # doctest: +SKIP
'officer'
"""

from __future__ import annotations

import csv
import math
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from bwc.config import ScoringConfig
from bwc.records import RECORD_ID_PATTERN, TRANSCRIPT_ROLES, Encounter, TranscriptLine

REQUIRED_COLUMNS = ("encounter_id", "turn", "role", "text")
OPTIONAL_COLUMNS = ("start", "end", "officer_id", "recorded_at", "speaker", "recording_id")
CSV_SUFFIXES = {".csv": ",", ".txt": ",", ".tsv": "\t", ".tab": "\t"}  # suffix -> delimiter
MAX_TURN = 1_000_000  # no encounter has a million utterances; the bound keeps turns inside every integer type
MAX_LABEL_CHARS = 128  # officer ids and speaker labels: as long as record ids may be
EARLIEST_YEAR, LATEST_YEAR = 1900, 2199  # recorded_at; pandas, which reads the store, holds 1677-2262 only
MIN_BLOCK_BYTES = 1 << 20  # CSV block: pyarrow refuses a row that spans more than two blocks
BYTES_PER_CHAR = 16  # block bytes per allowed text character: UTF-8 (4) with every quote doubled, other columns
PARQUET_BATCH_ROWS = 2_000  # rows converted to Python objects at a time (each text cell measured first)


class TranscriptTableError(ValueError):
    """The table cannot be scored as it is; the one-line message says where and what to change."""


def _problem(message: str) -> PydanticCustomError:
    # The message goes in as context, not as the template, so braces in a table's values are never formatted.
    return PydanticCustomError("transcript_value", "{problem}", {"problem": message})


def _shown(value: Any, limit: int = 60) -> str:
    """A value as a message quotes it: repr (so control characters and newlines show escaped, on one line), cut."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "bytes"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, datetime | date):
        return "a date"
    return type(value).__name__


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, integers: bool = False) -> str | None:
    """Text of a cell, surrounding spaces stripped; None when empty. ``integers``: a Parquet integer id is taken as
    its digits (a float or anything else is refused: 7.0 is not how a badge number is written)."""
    if _blank(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if integers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _problem(f"must be text, got {_kind(value)} {_shown(value)}")


def _seconds(value: Any) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _problem(f"must be a number of seconds, got {_kind(value)} {_shown(value)}")
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        raise _problem(f"must be a number of seconds, got {_shown(value)}") from None
    if not math.isfinite(seconds):
        raise _problem(f"must be a finite number of seconds, got {_shown(value)}")
    if seconds < 0:
        raise _problem(f"must not be negative, got {_shown(value)}")
    return seconds


class TranscriptRow(BaseModel):
    """One row of a department's transcript table, as :func:`read_transcripts` accepts it.

    Values come as a reader gives them (CSV: text; Parquet: its column's type) and leave typed: each validator
    converts its column or raises with what is wrong, which :func:`read_transcripts` turns into one line naming
    the file, row and column. The context names the limits: ``{"max_utterance_chars": int}``.

    Example
    -------
    >>> row = TranscriptRow.model_validate(
    ...     {"encounter_id": "E1", "turn": "2", "role": " Officer", "text": "Hi.", "officer_id": "007"},
    ...     context={"max_utterance_chars": 5000},
    ... )
    >>> (row.turn, row.role, row.officer_id)
    (2, 'officer', '007')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    encounter_id: str
    turn: int
    role: str
    text: str
    start: float | None = None  # declared before end: end's validator compares with it
    end: float | None = None
    officer_id: str | None = None
    recorded_at: datetime | None = None
    speaker: str | None = None
    recording_id: str | None = None

    @field_validator("encounter_id", "recording_id", mode="before")
    @classmethod
    def _record_id(cls, value: Any, info: ValidationInfo) -> str | None:
        identifier = _text(value, integers=True)
        if identifier is None:
            if info.field_name == "encounter_id":
                raise _problem("must not be empty")
            return None
        if not RECORD_ID_PATTERN.fullmatch(identifier):
            raise _problem(
                "must be 1 to 128 letters, digits and . _ : - starting with a letter or digit (what the review app "
                f"can open), got {_shown(identifier)}"
            )
        return identifier

    @field_validator("officer_id", "speaker", mode="before")
    @classmethod
    def _label(cls, value: Any) -> str | None:
        label = _text(value, integers=True)
        if label is None:
            return None
        if len(label) > MAX_LABEL_CHARS:
            raise _problem(f"is {len(label):,} characters long, over {MAX_LABEL_CHARS}: {_shown(label)}")
        # Control and format characters (newlines, NUL, right-to-left overrides) would garble or disguise the label
        # wherever it is shown: the review app's queue, reports, research exports.
        if any(unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp") for char in label):
            raise _problem(f"must not contain control characters, got {_shown(label)}")
        return label

    @field_validator("turn", mode="before")
    @classmethod
    def _turn(cls, value: Any) -> int:
        if _blank(value):
            raise _problem("must not be empty")
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            number = _whole_number(value.strip())
        if number is None:
            raise _problem(f"must be a whole number, got {_shown(value)}")
        if not 0 <= number <= MAX_TURN:
            raise _problem(f"must be a whole number from 0 to {MAX_TURN:,}, got {_shown(value)}")
        return number

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: Any) -> str:
        role = value.strip().lower() if isinstance(value, str) else None
        if role not in TRANSCRIPT_ROLES:
            raise _problem(f"must be one of {', '.join(TRANSCRIPT_ROLES)}, got {_shown(value)}")
        return role

    @field_validator("text", mode="before")
    @classmethod
    def _utterance(cls, value: Any, info: ValidationInfo) -> str:
        if value is None:
            raise _problem("must not be empty")
        if not isinstance(value, str):
            raise _problem(f"must be text, got {_kind(value)} {_shown(value)}")
        if not value.strip():
            raise _problem("must not be empty")
        limit = (info.context or {}).get("max_utterance_chars", ScoringConfig().max_utterance_chars)
        if len(value) > limit:
            raise _problem(_too_long(len(value), limit))
        return value  # as written: scoring reads the words as the transcriber wrote them

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> float | None:
        return _seconds(value)

    @field_validator("end", mode="before")
    @classmethod
    def _end(cls, value: Any, info: ValidationInfo) -> float | None:
        end = _seconds(value)
        start = info.data.get("start")
        if end is not None and start is not None and end < start:
            raise _problem(f"must not be before start ({start:g} s), got {_shown(value)}")
        return end

    @field_validator("recorded_at", mode="before")
    @classmethod
    def _recorded_at(cls, value: Any) -> datetime | None:
        if _blank(value):
            return None
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise _problem(
                    f"must be an ISO 8601 date and time (e.g. 2026-03-01T22:15:00-05:00), got {_shown(value)}"
                ) from None
        elif isinstance(value, datetime):
            # pandas' Timestamp (a datetime subclass) becomes a plain datetime, as every other record holds.
            moment = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
        elif isinstance(value, date):
            moment = datetime.combine(value, time.min)
        else:
            raise _problem(f"must be a date and time, got {_kind(value)} {_shown(value)}")
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
            raise _problem(f"must be between {EARLIEST_YEAR} and {LATEST_YEAR}, got {_shown(value)}")
        return moment


def _whole_number(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)  # "3.0" and "3e2" are whole; "1.5", "inf" and "nan" are not
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


@dataclass(frozen=True)
class _Rows:
    """A stream of one file's rows: ``(row number from 1, {column: value})``, columns as normalised names."""

    source: str  # the file, as messages name it
    rows: Iterator[tuple[int, dict[str, Any]]]


def read_transcripts(
    path: Path, limits: ScoringConfig | None = None, known_recordings: Collection[str] | None = None
) -> list[Encounter]:
    """Encounters of a transcript table, lines in turn order, encounters by id, once every row is valid.

    Parameters
    ----------
    path
        A ``.csv``/``.txt``, ``.tsv``/``.tab`` or ``.parquet`` file, or a directory of ``.parquet`` files.
    limits
        Where the limits come from (``max_utterance_chars``, ``max_table_mb``, ``max_table_rows``); default
        :class:`~bwc.config.ScoringConfig`'s.
    known_recordings
        The recording ids ``recording_id`` may name (:func:`store_recording_ids`); None: not checked.

    Returns
    -------
    list[Encounter]
        One per encounter id, sorted by id.

    Raises
    ------
    TranscriptTableError
        At the first problem, with one line naming the file, the row and column where there is one, and the fix.
    """
    limits = limits or ScoringConfig()
    context = {"max_utterance_chars": limits.max_utterance_chars}
    lines: dict[str, list[TranscriptLine]] = {}
    firsts: dict[str, TranscriptRow] = {}  # each encounter's row of lowest turn: its officer, time and recording
    seen: dict[tuple[str, int], tuple[str, int]] = {}  # (encounter_id, turn) -> (file, row number)
    count = 0
    for stream in _streams(path, limits):
        for number, raw in stream.rows:
            count += 1
            if count > limits.max_table_rows:
                raise TranscriptTableError(
                    f"{path}: more than {limits.max_table_rows:,} rows, over the limit (scoring.max_table_rows): "
                    "split the table, or raise the limit"
                )
            try:
                row = TranscriptRow.model_validate(raw, context=context)
            except ValidationError as error:
                raise TranscriptTableError(_first_problem(stream.source, number, error)) from None
            key = (row.encounter_id, row.turn)
            if key in seen:
                raise TranscriptTableError(_duplicate(seen[key], (stream.source, number), row))
            seen[key] = (stream.source, number)
            if (
                row.recording_id is not None
                and known_recordings is not None
                and row.recording_id not in known_recordings
            ):
                raise TranscriptTableError(
                    f"{stream.source}: row {number}, column recording_id: {row.recording_id!r} is not a recording in "
                    "the store (its recordings table): name a recording `bwc run` ingested into this store, or leave "
                    "recording_id empty"
                )
            lines.setdefault(row.encounter_id, []).append(
                TranscriptLine(
                    encounter_id=row.encounter_id,
                    turn=row.turn,
                    role=row.role,
                    text=row.text,
                    speaker=row.speaker,
                    start=row.start,
                    end=row.end,
                )
            )
            first = firsts.get(row.encounter_id)
            if first is None or row.turn < first.turn:
                firsts[row.encounter_id] = row
    if not count:
        raise TranscriptTableError(f"{path}: no rows: the table has a header but nothing under it")
    return [
        Encounter(
            encounter_id=encounter_id,
            lines=tuple(sorted(lines[encounter_id], key=lambda line: line.turn)),
            officer_id=firsts[encounter_id].officer_id,
            recorded_at=firsts[encounter_id].recorded_at,
            recording_id=firsts[encounter_id].recording_id,
        )
        for encounter_id in sorted(lines)
    ]


def store_recording_ids(store: Path) -> set[str]:
    """Recording ids in ``STORE/recordings`` (none when the store or the table does not exist); reads, never
    creates: a refused table must leave a store untouched, not even make its directory."""
    from bwc.store import SCHEMAS

    folder = store / "recordings"  # Store.table_path without Store(), whose constructor creates the directory
    if not any(folder.glob("part-*.parquet")):
        return set()
    table = pq.read_table(folder, columns=["recording_id"], schema=SCHEMAS["recordings"])
    return {identifier for identifier in table.column("recording_id").to_pylist() if identifier is not None}


def _first_problem(source: str, number: int, error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    column = problem["loc"][0] if problem["loc"] else "?"
    return f"{source}: row {number}, column {column}: {problem['msg']}"


def _duplicate(earlier: tuple[str, int], later: tuple[str, int], row: TranscriptRow) -> str:
    where = (
        f"{later[0]}: rows {earlier[1]} and {later[1]}"
        if earlier[0] == later[0]
        else f"{later[0]}: row {later[1]} and row {earlier[1]} of {earlier[0]}"
    )
    return (
        f"{where} are both turn {row.turn} of encounter {row.encounter_id}: each (encounter_id, turn) must appear once"
    )


# -- reading --------------------------------------------------------------------------------------------------------
def _streams(path: Path, limits: ScoringConfig) -> Iterator[_Rows]:
    """The files of ``path`` as row streams, after the checks that need no reading (kind, size)."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise TranscriptTableError(f"{path}: no such file")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file() and not p.name.startswith((".", "_")))
        if not files:
            raise TranscriptTableError(f"{path}: a directory without .parquet files")
    elif not path.is_file():
        raise TranscriptTableError(f"{path}: not a regular file (a pipe or device): not read")
    elif suffix != ".parquet" and suffix not in CSV_SUFFIXES:
        raise TranscriptTableError(f"{path}: expected a .csv, .tsv or .parquet transcript table")
    else:
        files = [path]
    limit_bytes = limits.max_table_mb * 1e6
    size = sum(file.stat().st_size for file in files)
    if size > limit_bytes:
        raise TranscriptTableError(
            f"{path}: {_megabytes(size)} is over the limit of {_megabytes(limit_bytes)} (scoring.max_table_mb): "
            "split the table, or raise the limit"
        )
    for file in files:
        if file.suffix.lower() == ".parquet":
            yield _Rows(str(file), _parquet_rows(file, limit_bytes, limits.max_utterance_chars))
        else:
            block = max(MIN_BLOCK_BYTES, BYTES_PER_CHAR * limits.max_utterance_chars)
            yield _Rows(str(file), _csv_rows(file, CSV_SUFFIXES[suffix], block, limits.max_utterance_chars))


def _megabytes(size: float) -> str:
    return f"{size / 1e6:,.1f} MB" if size >= 1e5 else f"{size / 1e6:g} MB"


def _columns(source: Path, names: list[str]) -> dict[str, str]:
    """Normalised known column -> the file's own name for it; raises when one is missing or there twice."""
    found: dict[str, str] = {}
    for name in names:
        column = str(name).strip().lower()
        if column not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            continue
        if column in found:
            raise TranscriptTableError(f"{source}: columns {found[column]!r} and {name!r} are both {column}: keep one")
        found[column] = name
    missing = [column for column in REQUIRED_COLUMNS if column not in found]
    if missing:
        raise TranscriptTableError(
            f"{source}: missing column(s) {', '.join(missing)}; a transcript table needs "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)})"
        )
    return found


def _parquet_rows(path: Path, limit_bytes: float, max_chars: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a Parquet file in batches. Text columns are read dictionary-encoded and measured before they become
    Python strings: a file of a few kB can repeat one long value a million times (its footer's uncompressed size
    counts the value once), which decoded in full would take gigabytes."""
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise TranscriptTableError(f"{path}: cannot read it as Parquet: {_one_line(error)}") from None
    with parquet:
        schema = parquet.schema_arrow
        columns = _columns(path, schema.names)
        for column, name in columns.items():
            kind = schema.field(name).type
            if pa.types.is_nested(kind) or pa.types.is_union(kind):
                # Refused from its type: reading a nested value at all could be the bomb described above.
                raise TranscriptTableError(
                    f"{path}: column {column} (every row): must hold one value per row, got a Parquet {kind} column"
                )
        # The footer says how large the wanted columns are once decompressed: a small file can hold gigabytes.
        metadata = parquet.metadata
        wanted = {index for index, name in enumerate(schema.names) if name in columns.values()}
        expanded = sum(
            metadata.row_group(group).column(index).total_uncompressed_size
            for group in range(metadata.num_row_groups)
            for index in range(metadata.num_columns)
            if index in wanted
        )
        if expanded > limit_bytes:
            raise TranscriptTableError(
                f"{path}: its columns take {_megabytes(expanded)} uncompressed, over the limit of "
                f"{_megabytes(limit_bytes)} (scoring.max_table_mb): split the table, or raise the limit"
            )
    text_like = [name for name in columns.values() if _binary_like(schema.field(name).type)]
    number = 0
    try:
        with pq.ParquetFile(path, read_dictionary=text_like) as parquet:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(columns.values())):
                for column, name in columns.items():
                    _refuse_oversized(path, number, column, batch.column(name), max_chars)
                values = {column: batch.column(name).to_pylist() for column, name in columns.items()}
                for index in range(batch.num_rows):
                    number += 1
                    yield number, {column: cells[index] for column, cells in values.items()}
    except (OSError, pa.ArrowException) as error:
        raise TranscriptTableError(f"{path}: cannot read the rows after row {number}: {_one_line(error)}") from None


def _binary_like(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _binary_like(kind.value_type)
    return any(
        check(kind)
        for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    )


def _refuse_oversized(path: Path, before: int, column: str, array: pa.Array, max_chars: int) -> None:
    """Raise for the first cell of a batch too long for its column, measured in Arrow (no Python string made)."""
    if not _binary_like(array.type):
        return
    values, indices = (array.dictionary, array.indices) if pa.types.is_dictionary(array.type) else (array, None)
    is_text = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    if column == "text" and is_text:
        lengths, limit = pc.utf8_length(values), max_chars  # the message then is the row validator's own
    else:
        lengths, limit = pc.binary_length(values), 4 * max(max_chars, MAX_LABEL_CHARS)  # only a memory guard
    if indices is not None:
        lengths = lengths.take(indices)
    first = pc.index(pc.greater(lengths, limit), True).as_py()
    if first < 0:
        return
    size = lengths[first].as_py()
    where = f"{path}: row {before + first + 1}, column {column}"
    if column == "text" and is_text:
        raise TranscriptTableError(f"{where}: {_too_long(size, max_chars)}")
    raise TranscriptTableError(f"{where}: is {size:,} bytes long, over the {limit:,} bytes any cell may take")


def _too_long(length: int, limit: int) -> str:
    return (
        f"is {length:,} characters long, over the limit of {limit:,} (scoring.max_utterance_chars; one utterance is "
        "rarely over 1,000)"
    )


def _csv_rows(path: Path, delimiter: str, block: int, max_chars: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV/TSV, one block at a time: every cell read as bytes (identifiers stay as written, and a cell that
    is not UTF-8 is named by row and column), empty cells as missing."""
    with open(path, "rb") as handle:
        head = handle.read(block)
    if not head:
        raise TranscriptTableError(f"{path}: empty file: a transcript table needs a header line and rows under it")
    if b"\n" not in head and b"\r" not in head and path.stat().st_size > len(head):
        raise TranscriptTableError(f"{path}: the header line is longer than {block:,} bytes: not a transcript table")
    bad_width: list[tuple[int, int]] = []  # (fields expected, fields found) of a row with the wrong number of fields

    def wrong_width(row: Any) -> str:
        bad_width.append((row.expected_columns, row.actual_columns))
        return "error"

    read = pa_csv.ReadOptions(block_size=block)
    # Quoted cells may hold line breaks (a spreadsheet's multi-line cell), as pandas allowed.
    parse = pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=wrong_width)
    number = 0
    try:
        with pa_csv.open_csv(path, read_options=read, parse_options=parse) as probe:
            names = probe.schema.names  # the header: then every column is read as bytes, nothing guessed
        columns = _columns(path, names)
        convert = pa_csv.ConvertOptions(
            column_types={name: pa.binary() for name in columns.values()},
            include_columns=list(columns.values()),
            null_values=[""],
            strings_can_be_null=True,
        )
        with pa_csv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as reader:
            for batch in reader:
                values = {column: batch.column(name).to_pylist() for column, name in columns.items()}
                for index in range(batch.num_rows):
                    number += 1
                    yield (
                        number,
                        {column: _decoded(path, number, column, cells[index]) for column, cells in values.items()},
                    )
    except pa.ArrowInvalid as error:
        raise TranscriptTableError(_csv_problem(path, delimiter, number, block, max_chars, bad_width, error)) from None


def _decoded(path: Path, number: int, column: str, cell: bytes | None) -> str | None:
    if cell is None:
        return None
    try:
        return cell.decode("utf-8")
    except UnicodeDecodeError:
        raise TranscriptTableError(
            f"{path}: row {number}, column {column}: is not UTF-8 text (save the table as UTF-8): {_shown(cell)}"
        ) from None


def _csv_problem(
    path: Path,
    delimiter: str,
    rows_read: int,
    block: int,
    max_chars: int,
    bad_width: list[tuple[int, int]],
    error: pa.ArrowInvalid,
) -> str:
    """One line for what pyarrow refused, with the row it was at."""
    if "straddl" in str(error):
        # pyarrow hands over every complete row before the block it cannot finish a row in, so that row is next.
        return (
            f"{path}: row {rows_read + 1}: longer than pyarrow's {block:,}-byte block, far over the "
            f"{max_chars:,} characters of text a row may hold (scoring.max_utterance_chars): not read further"
        )
    if bad_width:
        expected, found = bad_width[0]
        number = _row_of_width(path, delimiter, expected)
        where = f"row {number}" if number is not None else f"a row after row {rows_read}"
        return (
            f"{path}: {where}: has {found} fields where the header has {expected} (a {delimiter!r} in an unquoted "
            "cell?)"
        )
    where = f"the rows after row {rows_read}" if rows_read else "the table"
    return f"{path}: cannot read {where}: {_one_line(error)}"


def _row_of_width(path: Path, delimiter: str, expected: int) -> int | None:
    """The data row (counted as pyarrow counts: blank lines not) without ``expected`` fields; None if not found.
    Only reached on a refusal, after pyarrow read every row before it, so each of those was under two blocks."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            next(reader, None)
            number = 0
            for fields in reader:
                if not fields:
                    continue
                number += 1
                if len(fields) != expected:
                    return number
        except csv.Error:  # a cell over the csv module's limit: say "after row N" instead
            return None
    return None


def _one_line(error: Exception) -> str:
    """An exception's message on one line and short: pyarrow's can quote a whole row, line breaks and all."""
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."
