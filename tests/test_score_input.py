"""`bwc score` validates its transcript table before anything else happens (issue 19, findings 6 and 7).

Every attack an outside probe found accepted is reproduced through the real command line: each is refused with exit
status 2 and one line naming the file, the row and the column, and the store is left as it was (not even created).
Validation comes before any model loads, so these run in seconds; that a valid table still scores end to end is
``tests/test_scoring.py::test_bwc_score_writes_both_tables``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bwc.cli import EXIT_BAD_INPUT, app
from bwc.config import ScoringConfig
from bwc.store import Store
from scoring.table import TranscriptTableError, read_transcripts, store_recording_ids

KNOWN_RECORDING = "0123456789abcdef"  # in the store's recordings table (see ``ingested_store``)
COLUMNS = ("encounter_id", "turn", "role", "text", "start", "end", "officer_id", "recorded_at", "speaker")
VALID_ROWS: tuple[dict[str, str], ...] = (
    {"encounter_id": "E1", "turn": "1", "role": "officer", "text": "Good evening, sir.", "start": "0.0",
     "end": "1.5", "officer_id": "007", "recorded_at": "2026-03-01T22:15:00-05:00", "speaker": "A"},
    {"encounter_id": "E1", "turn": "2", "role": "civilian", "text": "Evening.", "start": "1.8", "end": "2.4",
     "officer_id": "007", "recorded_at": "2026-03-01T22:15:00-05:00", "speaker": "B"},
    {"encounter_id": "E2", "turn": "1", "role": "Officer ", "text": "License, please.", "start": "", "end": "",
     "officer_id": "", "recorded_at": "", "speaker": ""},
)  # fmt: skip


def write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def with_cell(index: int, column: str, value: str) -> list[dict[str, str]]:
    """The valid rows with one cell changed."""
    rows = [dict(row) for row in VALID_ROWS]
    rows[index][column] = value
    return rows


def score(table: Path, store: Path, *extra: str) -> Any:
    """`bwc score` in this process (the real command, through typer), stderr kept apart."""
    return CliRunner().invoke(app, ["score", str(table), "--store", str(store), *extra])


def assert_refused(result: Any, message: str) -> None:
    """Exit 2 with exactly one line on stderr, and that line is ``error: <message>``."""
    assert result.exit_code == EXIT_BAD_INPUT, (result.exit_code, result.stderr, result.exception)
    assert result.stderr.splitlines() == [f"error: {message}"]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns) for path in root.rglob("*")}


@pytest.fixture()
def ingested_store(tmp_path: Path) -> Path:
    """A store whose recordings table holds one recording (as `bwc run` leaves it, less the columns not needed)."""
    store = Store(tmp_path / "ingested")
    store.write_rows("recordings", f"part-{KNOWN_RECORDING}", [{"recording_id": KNOWN_RECORDING}])
    return store.root


def test_the_valid_table_reads_so_each_attack_below_changes_one_cell(tmp_path: Path, ingested_store: Path) -> None:
    table = write_csv(tmp_path / "stops.csv", [*VALID_ROWS, {**VALID_ROWS[0], "encounter_id": "E3"}])
    first, second, third = read_transcripts(table, ScoringConfig(), store_recording_ids(ingested_store))
    assert [line.text for line in first.lines] == ["Good evening, sir.", "Evening."]
    assert first.officer_id == "007" and first.recorded_at.isoformat() == "2026-03-02T03:15:00+00:00"
    assert (first.lines[1].start, first.lines[1].end, first.lines[1].speaker) == (1.8, 2.4, "B")
    assert second.lines[0].role == "officer" and second.officer_id is None and second.lines[0].start is None
    assert third.encounter_id == "E3"
    with_recording = write_csv(
        tmp_path / "linked.csv", [{**VALID_ROWS[0], "recording_id": KNOWN_RECORDING}], (*COLUMNS, "recording_id")
    )
    (linked,) = read_transcripts(with_recording, ScoringConfig(), store_recording_ids(ingested_store))
    assert linked.recording_id == KNOWN_RECORDING


# One cell changed in the valid table -> the message after "<file>: row N, column C: ".
CELL_ATTACKS = [
    ("turn-fraction", 0, "turn", "1.5", "must be a whole number, got '1.5'"),
    ("turn-fraction-2", 1, "turn", "1.9", "must be a whole number, got '1.9'"),
    ("turn-inf", 0, "turn", "inf", "must be a whole number, got 'inf'"),
    ("turn-nan", 0, "turn", "nan", "must be a whole number, got 'nan'"),
    ("turn-1e30", 0, "turn", "1e30", "must be a whole number from 0 to 1,000,000, got '1e30'"),
    ("turn-negative", 0, "turn", "-1", "must be a whole number from 0 to 1,000,000, got '-1'"),
    ("turn-text", 0, "turn", "first", "must be a whole number, got 'first'"),
    ("turn-empty", 1, "turn", "", "must not be empty"),
    ("recorded-at", 1, "recorded_at", "last Tuesday",
     "must be an ISO 8601 date and time (e.g. 2026-03-01T22:15:00-05:00), got 'last Tuesday'"),
    ("recorded-at-year", 0, "recorded_at", "0001-01-01T00:00:00", "must be between 1900 and 2199, "
     "got '0001-01-01T00:00:00'"),
    ("path-id", 1, "encounter_id", "../../etc/passwd", "must be 1 to 128 letters, digits and . _ : - starting with "
     "a letter or digit (what the review app can open), got '../../etc/passwd'"),
    ("markup-id", 0, "encounter_id", "<b>x</b>", "must be 1 to 128 letters, digits and . _ : - starting with a "
     "letter or digit (what the review app can open), got '<b>x</b>'"),
    ("long-id", 0, "encounter_id", "E" * 129, "must be 1 to 128 letters, digits and . _ : - starting with a letter "
     "or digit (what the review app can open), got '" + "E" * 56 + "..."),
    ("empty-id", 2, "encounter_id", "", "must not be empty"),
    ("officer-control", 0, "officer_id", "B1\x1b[31m", "must not contain control characters, got 'B1\\x1b[31m'"),
    ("officer-bidi", 0, "officer_id", "B1\u202e", "must not contain control characters, got 'B1\\u202e'"),
    ("officer-long", 0, "officer_id", "B" * 129, "is 129 characters long, over 128: '" + "B" * 56 + "..."),
    ("speaker-newline", 1, "speaker", "A\u2028B", "must not contain control characters, got 'A\\u2028B'"),
    ("start-text", 0, "start", "abc", "must be a number of seconds, got 'abc'"),
    ("start-inf", 0, "start", "inf", "must be a finite number of seconds, got 'inf'"),
    ("start-nan", 0, "start", "nan", "must be a finite number of seconds, got 'nan'"),
    ("start-negative", 0, "start", "-0.5", "must not be negative, got '-0.5'"),
    ("end-before-start", 1, "end", "1.0", "must not be before start (1.8 s), got '1.0'"),
    ("role", 1, "role", "suspect", "must be one of officer, civilian, other, got 'suspect'"),
    ("text-empty", 1, "text", "", "must not be empty"),
    ("text-blank", 1, "text", "   ", "must not be empty"),
    ("text-long", 2, "text", "word " * 1001, "is 5,005 characters long, over the limit of 5,000 "
     "(scoring.max_utterance_chars; one utterance is rarely over 1,000)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("index", "column", "value", "problem"),
    [case[1:] for case in CELL_ATTACKS],
    ids=[case[0] for case in CELL_ATTACKS],
)
def test_a_bad_cell_is_refused_naming_file_row_and_column(
    tmp_path: Path, index: int, column: str, value: str, problem: str
) -> None:
    table = write_csv(tmp_path / "stops.csv", with_cell(index, column, value))
    result = score(table, tmp_path / "store")
    assert_refused(result, f"{table}: row {index + 1}, column {column}: {problem}")
    assert not (tmp_path / "store").exists()


def test_duplicate_turns_name_both_rows(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "stops.csv", [*VALID_ROWS, {**VALID_ROWS[1], "text": "Again."}])
    assert_refused(
        score(table, tmp_path / "store"),
        f"{table}: rows 2 and 4 are both turn 2 of encounter E1: each (encounter_id, turn) must appear once",
    )
    assert not (tmp_path / "store").exists()


def test_turns_that_round_to_the_same_number_are_not_merged(tmp_path: Path) -> None:
    """1.5 and 1.9 both became turn 1 before; now the first is refused, and "3.0" (a whole number) is 3."""
    table = write_csv(tmp_path / "stops.csv", [{**VALID_ROWS[0], "turn": "3.0"}, *VALID_ROWS[1:]])
    assert [line.turn for line in read_transcripts(table)[0].lines] == [2, 3]
    table = write_csv(tmp_path / "stops.csv", [*with_cell(0, "turn", "1.5")[:1], {**VALID_ROWS[1], "turn": "1.9"}])
    assert_refused(score(table, tmp_path / "store"), f"{table}: row 1, column turn: must be a whole number, got '1.5'")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (pa.array([b"Good evening", b"Evening", None]), "row 1, column text: must be text, got bytes b'Good evening'"),
        (pa.array([42, 7, 1]), "row 1, column text: must be text, got a number 42"),
        (pa.array([1.5, 2.0, None]), "row 1, column text: must be text, got a number 1.5"),
        # A list column is refused from its type, before any of it is read (see the next test for why).
        (
            pa.array([["a", "b"], ["c"], ["d"]]),
            "column text (every row): must hold one value per row, got a Parquet list<element: string> column",
        ),
    ],
    ids=["bytes", "integer", "float", "list"],
)
def test_parquet_text_that_is_not_text_is_refused(tmp_path: Path, text: pa.Array, problem: str) -> None:
    columns = {column: [row[column] for row in VALID_ROWS] for column in ("encounter_id", "role")}
    table = tmp_path / "stops.parquet"
    pq.write_table(pa.table({**columns, "turn": pa.array([1, 2, 1]), "text": text}), table)
    assert_refused(score(table, tmp_path / "store"), f"{table}: {problem}")
    assert not (tmp_path / "store").exists()


def test_a_tiny_parquet_that_decodes_to_gigabytes_is_refused_from_arrow(tmp_path: Path) -> None:
    """One 100,000-character value repeated 20,000 times: 50 kB on disk, 2 GB as strings. The footer counts the
    value once, so only measuring the dictionary-encoded column catches it; the row named is the first such."""
    path = tmp_path / "stops.parquet"
    rows = 20_000
    # Built dictionary-encoded, so the test itself never holds the 2 GB; written without the Arrow schema, the
    # file says plain "string", as one from any other Parquet writer would.
    text = pa.DictionaryArray.from_arrays(
        pa.array([0] * 7 + [1] * (rows - 7), pa.int32()), pa.array(["Good evening.", "y" * 100_000])
    )
    pq.write_table(
        pa.table({"encounter_id": [f"E{i}" for i in range(rows)], "turn": [1] * rows, "role": ["officer"] * rows,
                  "text": text}),
        path,
        compression="zstd",
        store_schema=False,
    )  # fmt: skip
    assert pq.ParquetFile(path).schema_arrow.field("text").type == pa.string()
    assert path.stat().st_size < 200_000
    assert_refused(
        score(path, tmp_path / "store"),
        f"{path}: row 8, column text: is 100,000 characters long, over the limit of 5,000 "
        "(scoring.max_utterance_chars; one utterance is rarely over 1,000)",
    )


def test_parquet_types_a_department_may_have_are_read(tmp_path: Path) -> None:
    """Integer badge numbers, float turns that are whole, native timestamps: what pandas writes."""
    path = tmp_path / "stops.parquet"
    pq.write_table(
        pa.table(
            {
                "encounter_id": ["E1", "E1"],
                "turn": pa.array([2.0, 1.0]),
                "role": ["civilian", "officer"],
                "text": ["Evening.", "Good evening."],
                "officer_id": pa.array([4711, 4711]),
                "recorded_at": pa.array([None, 1772406900_000_000_000], pa.timestamp("ns")),
                "start": pa.array([1.0, 0.0]),
            }
        ),
        path,
    )
    (encounter,) = read_transcripts(path)
    assert [line.text for line in encounter.lines] == ["Good evening.", "Evening."]
    assert encounter.officer_id == "4711" and encounter.recorded_at.isoformat() == "2026-03-01T23:15:00+00:00"


def test_an_unknown_recording_is_refused_and_the_store_untouched(tmp_path: Path, ingested_store: Path) -> None:
    before = snapshot(ingested_store)
    table = write_csv(
        tmp_path / "stops.csv",
        [{**row, "recording_id": KNOWN_RECORDING} for row in VALID_ROWS[:2]]
        + [{**VALID_ROWS[2], "recording_id": "feedfacefeedface"}],
        (*COLUMNS, "recording_id"),
    )
    assert_refused(
        score(table, ingested_store),
        f"{table}: row 3, column recording_id: 'feedfacefeedface' is not a recording in the store (its recordings "
        "table): name a recording `bwc run` ingested into this store, or leave recording_id empty",
    )
    assert snapshot(ingested_store) == before
    # A store that does not exist yet has no recordings either; and it is still not created.
    assert score(table, tmp_path / "new-store").exit_code == EXIT_BAD_INPUT
    assert not (tmp_path / "new-store").exists()


def test_a_recording_id_the_review_app_cannot_open_is_refused(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "stops.csv", [{**VALID_ROWS[0], "recording_id": "../x"}], (*COLUMNS, "recording_id"))
    assert_refused(
        score(table, tmp_path / "store"),
        f"{table}: row 1, column recording_id: must be 1 to 128 letters, digits and . _ : - starting with a letter "
        "or digit (what the review app can open), got '../x'",
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("encounter_id,turn,role,text\n", "no rows: the table has a header but nothing under it"),
        ("encounter_id,turn,role,text\n\n\n", "no rows: the table has a header but nothing under it"),
        ("", "empty file: a transcript table needs a header line and rows under it"),
        (
            "encounter_id,speaker,text\nE1,A,hello\n",
            "missing column(s) turn, role; a transcript table needs encounter_id, turn, role, text (optional: start, "
            "end, officer_id, recorded_at, speaker, recording_id)",
        ),
        (
            "encounter_id,turn,role,text, Text \nE1,1,officer,Hi,Hi\n",
            "columns 'text' and ' Text ' are both text: keep one",
        ),
        (
            "encounter_id,turn,role,text\nE1,1,officer,Hi\nE1,2,officer,Stop, right there\n",
            "row 2: has 5 fields where the header has 4 (a ',' in an unquoted cell?)",
        ),
    ],
    ids=["header-only", "header-and-blank-lines", "empty-file", "missing-columns", "column-twice", "extra-field"],
)
def test_table_level_problems_are_one_line(tmp_path: Path, content: str, problem: str) -> None:
    table = tmp_path / "stops.csv"
    table.write_text(content, encoding="utf-8")
    assert_refused(score(table, tmp_path / "store"), f"{table}: {problem}")
    assert not (tmp_path / "store").exists()


def test_rows_are_counted_as_data_rows_header_and_blank_lines_excluded(tmp_path: Path) -> None:
    """A multi-line quoted cell is one row, a blank line is none: row 4 is the fourth row under the header."""
    table = tmp_path / "stops.csv"
    table.write_text(
        "encounter_id,turn,role,text\r\n"
        'E1,1,officer,"Good evening.\nLicense, please."\r\n'
        "\r\n"
        "E1,2,civilian,Here.\r\n"
        "E1,3,officer,Thanks.\r\n"
        "E1,four,officer,Drive safe.\r\n",
        encoding="utf-8",
    )
    assert_refused(score(table, tmp_path / "store"), f"{table}: row 4, column turn: must be a whole number, got 'four'")


def test_a_cell_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    table = tmp_path / "stops.csv"
    table.write_bytes(b"encounter_id,turn,role,text\nE1,1,officer,Hi\nE1,2,civilian,Se\xf1or\n")
    assert_refused(
        score(table, tmp_path / "store"),
        f"{table}: row 2, column text: is not UTF-8 text (save the table as UTF-8): b'Se\\xf1or'",
    )


def test_a_50_mb_line_is_refused_at_once_by_the_installed_command(tmp_path: Path) -> None:
    """The probe's 50 MB line took 485 s and 8.7 GB; now pyarrow refuses the row at its first block (1 MiB), so
    memory stays flat. Through a real process: what a department runs."""
    table = tmp_path / "stops.csv"
    with open(table, "w", encoding="utf-8") as handle:
        handle.write("encounter_id,turn,role,text\nE1,1,officer,Good evening.\nE1,2,civilian,")
        handle.write("x" * 50_000_000)
        handle.write("\nE1,3,officer,Thanks.\n")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "score", str(table), "--store", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    print(f"50 MB line refused in {time.perf_counter() - started:.2f} s (process start included)")
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {table}: row 2: longer than pyarrow's 1,048,576-byte block, far over the 5,000 characters of text "
        "a row may hold (scoring.max_utterance_chars): not read further"
    ]
    assert not (tmp_path / "store").exists()


def test_a_header_line_longer_than_a_block_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "stops.csv"
    table.write_text("encounter_id,turn,role,text" + ",x" * 1_000_000 + "\n", encoding="utf-8")
    assert_refused(
        score(table, tmp_path / "store"),
        f"{table}: the header line is longer than 1,048,576 bytes: not a transcript table",
    )


def test_limits_come_from_the_configuration(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "stops.csv", list(VALID_ROWS))
    tight = tmp_path / "tight.yaml"
    tight.write_text("scoring:\n  max_utterance_chars: 10\n", encoding="utf-8")
    assert_refused(
        score(table, tmp_path / "store", "--config", str(tight)),
        f"{table}: row 1, column text: is 18 characters long, over the limit of 10 (scoring.max_utterance_chars; one "
        "utterance is rarely over 1,000)",
    )
    tight.write_text("scoring:\n  max_table_rows: 2\n", encoding="utf-8")
    assert_refused(
        score(table, tmp_path / "store", "--config", str(tight)),
        f"{table}: more than 2 rows, over the limit (scoring.max_table_rows): split the table, or raise the limit",
    )
    tight.write_text("scoring:\n  max_table_mb: 0.0001\n", encoding="utf-8")
    size = table.stat().st_size
    assert_refused(
        score(table, tmp_path / "store", "--config", str(tight)),
        f"{table}: {size / 1e6:g} MB is over the limit of 0.0001 MB (scoring.max_table_mb): split the table, or "
        "raise the limit",
    )
    assert not (tmp_path / "store").exists()
    # Raised, the same long text passes validation.
    long_text = write_csv(tmp_path / "long.csv", with_cell(0, "text", "word " * 2000))
    with pytest.raises(TranscriptTableError, match="over the limit of 5,000"):
        read_transcripts(long_text)
    assert len(read_transcripts(long_text, ScoringConfig(max_utterance_chars=20_000))[0].lines[0].text) == 10_000


def test_parquet_larger_uncompressed_than_the_limit_is_refused_before_its_rows_are_read(tmp_path: Path) -> None:
    path = tmp_path / "stops.parquet"
    rows = 2000
    pq.write_table(
        pa.table(
            {
                "encounter_id": [f"E{i}" for i in range(rows)],
                "turn": [1] * rows,
                "role": ["officer"] * rows,
                "text": ["Good evening, sir. " * 200] * rows,  # 7.6 MB of text that compresses to almost nothing
            }
        ),
        path,
        compression="zstd",
        use_dictionary=False,  # plain pages: the footer's uncompressed size is the whole 7.6 MB
    )
    assert path.stat().st_size < 1e6
    with pytest.raises(TranscriptTableError) as refused:
        read_transcripts(path, ScoringConfig(max_table_mb=1.0))
    assert str(refused.value).startswith(f"{path}: its columns take ")
    assert str(refused.value).endswith("MB uncompressed, over the limit of 1.0 MB (scoring.max_table_mb): split the "
                                       "table, or raise the limit")  # fmt: skip


def test_what_is_not_a_table_file_is_refused(tmp_path: Path) -> None:
    assert_refused(score(tmp_path / "missing.csv", tmp_path / "store"), f"{tmp_path / 'missing.csv'}: no such file")
    (tmp_path / "stops.xlsx").write_bytes(b"PK\x03\x04")
    assert_refused(
        score(tmp_path / "stops.xlsx", tmp_path / "store"),
        f"{tmp_path / 'stops.xlsx'}: expected a .csv, .tsv or .parquet transcript table",
    )
    (tmp_path / "fake.parquet").write_text("encounter_id,turn,role,text\n", encoding="utf-8")
    result = score(tmp_path / "fake.parquet", tmp_path / "store")
    assert result.exit_code == EXIT_BAD_INPUT and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'fake.parquet'}: cannot read it as Parquet: ")
    assert not (tmp_path / "store").exists()


def test_a_parquet_directory_names_the_file_of_each_row(tmp_path: Path) -> None:
    folder = tmp_path / "stops"
    folder.mkdir()
    for name, texts in (("a.parquet", ["Good evening.", "Evening."]), ("b.parquet", ["Hello.", "Hi."])):
        pq.write_table(
            pa.table({"encounter_id": ["E1", "E2"], "turn": [1, 1], "role": ["officer"] * 2, "text": texts}),
            folder / name,
        )
    assert_refused(
        score(folder, tmp_path / "store"),
        f"{folder / 'b.parquet'}: row 1 and row 1 of {folder / 'a.parquet'} are both turn 1 of encounter E1: each "
        "(encounter_id, turn) must appear once",
    )
    (folder / "b.parquet").unlink()
    assert [encounter.encounter_id for encounter in read_transcripts(folder)] == ["E1", "E2"]
