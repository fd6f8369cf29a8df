"""The catalog on SQLite (inside the store) and on a real PostgreSQL server started on loopback for these tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwc.catalog import DONE, FAILED, PENDING, Catalog


def _postgres_binary(name: str) -> str | None:
    """Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server on 127.0.0.1 (Debian's postgresql package), stopped after the session."""
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; `make test` installs it)")
    pytest.importorskip("psycopg")
    # The server refuses to run as root: as root, run it as the package's postgres user, in a directory it owns.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="bwc-pg-"))
    if as_user:
        shutil.chown(base, user="postgres")
    data, port = base / "data", _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "bwc", "--no-sync"], check=True,
                   capture_output=True)  # fmt: skip
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql+psycopg://bwc@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        opened = Catalog.for_store(tmp_path)
        assert (tmp_path / "catalog.sqlite").is_file()
    else:
        opened = Catalog(request.getfixturevalue("postgres_url"))
        # One server serves the session: start every test from empty tables.
        from bwc.catalog import _Base

        _Base.metadata.drop_all(opened.engine)
        _Base.metadata.create_all(opened.engine)
    yield opened
    opened.close()


def test_same_content_is_one_original(catalog: Catalog) -> None:
    assert catalog.add_original("a" * 64, "/intake/EV1.wav")
    assert not catalog.add_original("a" * 64, "/intake/EV1 copy.wav")
    assert catalog.original("a" * 64) == "/intake/EV1.wav"
    assert catalog.original("b" * 64) is None


def test_unchanged_files_are_not_hashed_again(catalog: Catalog) -> None:
    catalog.record_file("/intake/EV1.wav", 1000, 1700000000.5, "a" * 64)
    assert catalog.known_hash("/intake/EV1.wav", 1000, 1700000000.5) == "a" * 64
    assert catalog.known_hash("/intake/EV1.wav", 1001, 1700000000.5) is None  # grew
    assert catalog.known_hash("/intake/EV1.wav", 1000, 1700000009.0) is None  # rewritten
    catalog.record_file("/intake/EV1.wav", 1001, 1700000009.0, "c" * 64)
    assert catalog.known_hash("/intake/EV1.wav", 1001, 1700000009.0) == "c" * 64


def test_stage_states_decide_what_to_do(catalog: Catalog) -> None:
    new, done, stale, flaky, hopeless, pending = (c * 64 for c in "abcdef")
    catalog.mark(done, "speech", DONE, "r1", model_version="whisper small 1")
    catalog.mark(stale, "speech", DONE, "r1", model_version="whisper small 0")
    catalog.mark(flaky, "speech", FAILED, "r1", reason="CUDA out of memory")
    for run in ("r1", "r2", "r3"):
        state = catalog.mark(hopeless, "speech", FAILED, run, reason="decoder error")
    assert state.attempts == 3 and state.reason == "decoder error"
    catalog.mark(pending, "speech", PENDING, "r3")
    todo = catalog.todo("speech", [new, done, stale, flaky, hopeless, pending], "whisper small 1", max_attempts=3)
    assert todo == [new, stale, flaky, pending]
    # Any version will do when none is asked for: only unfinished work remains.
    assert catalog.todo("speech", [done, stale], None, max_attempts=3) == []
    # Success after a failure keeps the record of the attempt.
    assert catalog.mark(flaky, "speech", DONE, "r2", model_version="whisper small 1").attempts == 1
    assert catalog.state(flaky, "speech").reason is None


def test_failures_name_their_path(catalog: Catalog) -> None:
    catalog.mark("a" * 64, "ingest", FAILED, "r1", reason="not a readable audio/video file", path="/intake/EV1.wav")
    catalog.mark("b" * 64, "speech", FAILED, "r1", reason="decoder error", path="/intake/EV2.wav")
    catalog.mark("b" * 64, "speech", DONE, "r2")
    (row,) = catalog.failures()
    assert (row.path, row.stage, row.attempts) == ("/intake/EV1.wav", "ingest", 1)


def test_runs_left_running_are_visible(catalog: Catalog) -> None:
    catalog.begin_run("r1", "node-1", 4242)
    catalog.begin_run("r2", "node-1", 4243)
    catalog.end_run("r2", "completed")
    assert [run.run_id for run in catalog.running()] == ["r1"]


def test_two_connections_see_each_other(catalog: Catalog) -> None:
    other = Catalog(catalog.url)
    try:
        catalog.mark("a" * 64, "speech", DONE, "r1", model_version="v1")
        assert other.state("a" * 64, "speech").state == DONE
    finally:
        other.close()
