"""`bwc publish` on a simulated department written as a real store: suppression against an attacker who solves the
published margins, no identifiers or words anywhere in the portal folder, the package valid by Frictionless'
own command, a second release's changelog, and who may release."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from bwc.publish.release import PublishError, prepare, read_draft, release
from bwc.publish.suppression import suppress
from bwc.publish.tables import MEASURES, PublishInputError, PublishSettings, load_stops
from bwc.research.simulate_department import LINES, simulate_department, simulate_stop_data, write_department_store
from bwc.review.db import ReviewDatabase
from bwc.store import Store

MIN_CELL, MIN_OFFICERS = 11, 3
BY = ("district", "stop_reason", "time_of_day", "race")
FIRST_THROUGH, SECOND_THROUGH = date(2025, 4, 30), date(2025, 5, 31)
NAMED_REASON = "Complaint by John Q. Smithers at 12 Elm St"  # a free-text stop reason no portal may show
SMALL_UNIT = ("B1000", "B1001")  # two officers who alone patrol the harbor in January
PASSWORD = "correct horse battery staple"


def bwc(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bwc.cli", *args], capture_output=True, text=True, timeout=600,
                          input=stdin)  # fmt: skip


@pytest.fixture(scope="module")
def department(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A store of 30 officers over 6 months, stop data with a two-officer district and a named free-text reason."""
    root = tmp_path_factory.mktemp("publish")
    simulated = simulate_department(n_officers=30, n_months=6, encounters_per_month=5, n_units=5, seed=7)
    store = write_department_store(simulated, root / "store")
    stops = simulate_stop_data(simulated, seed=7)
    encounters = simulated.encounters
    january = encounters["recorded_at"] < pd.Timestamp("2025-02-01", tz="UTC")
    harbor = encounters["officer_id"].isin(SMALL_UNIT) & january
    assert harbor.sum() >= MIN_CELL  # big enough on count alone: only the officers rule can suppress it
    stops.loc[harbor.to_numpy(), "district"] = "harbor"
    stops.loc[stops.index[5], "stop_reason"] = NAMED_REASON
    stops_path = root / "stops.csv"
    stops.to_csv(stops_path, index=False)
    database = ReviewDatabase.for_store(store)
    database.add_user("sup", "supervisor", PASSWORD)
    database.add_user("trainer", "trainer", PASSWORD)
    database.close()
    return {"root": root, "store": store, "stops": stops_path}


@pytest.fixture(scope="module")
def first_release(department: dict[str, Path]) -> dict[str, object]:
    out = department["root"] / "portal"
    database = ReviewDatabase.for_store(department["store"])
    settings = PublishSettings(by=BY, through=FIRST_THROUGH)
    draft = prepare(department["store"], out, settings, department["stops"], database=database)
    released = release(department["store"], draft.draft_id, database=database)
    return {"out": out, "draft": draft, "release": released, "database": database}


def published_tables(folder: Path) -> dict[str, pd.DataFrame]:
    names = [path for path in sorted(folder.glob("*.csv")) if path.stem == "overall" or path.stem.startswith("by_")]
    return {path.stem: pd.read_csv(path, dtype=str, keep_default_na=False) for path in names}


def attack(tables: dict[str, pd.DataFrame]) -> tuple[list[tuple[str, str, str, float]], list[str]]:
    """An attacker who knows only the CSVs: for every period, the linear programme over the suppressed counts
    (each table adds up to the period total, counts ≥ 0) gives each suppressed count's interval; and the published
    shares give, per table and measure, how many suppressed encounters had it."""
    widths, exposed_shares = [], []
    overall = tables["overall"].set_index("period")
    for period in overall.index:
        cells = []  # (table, group, count or None)
        for name, frame in tables.items():
            group = "period" if name == "overall" else name.removeprefix("by_")
            for row in frame[frame["period"] == period].to_dict("records"):
                count = None if row["suppressed"] == "true" else int(row["encounters"])
                cells.append((name, row[group], count, row))
        unknown = [i for i, cell in enumerate(cells) if cell[2] is None]
        if not unknown:
            continue
        position = {cell: p for p, cell in enumerate(unknown)}
        total = next(i for i, cell in enumerate(cells) if cell[0] == "overall")
        a_eq, b_eq = [], []
        for name in tables:
            if name == "overall":
                continue
            row, rhs = np.zeros(len(unknown)), 0.0
            for i, cell in enumerate(cells):
                if cell[0] == name:
                    if cell[2] is None:
                        row[position[i]] += 1
                    else:
                        rhs -= cell[2]
            if cells[total][2] is None:
                row[position[total]] -= 1
            else:
                rhs += cells[total][2]
            a_eq.append(row)
            b_eq.append(rhs)
        for i in unknown:
            c = np.zeros(len(unknown))
            c[position[i]] = 1
            low = linprog(c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=(0, None), method="highs")
            high = linprog(-c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=(0, None), method="highs")
            assert low.status == 0
            width = np.inf if high.status == 3 else -high.fun - low.fun
            widths.append((cells[i][0], period, str(cells[i][1]), float(width)))
        for measure in MEASURES:
            for name, group, width in numerator_widths(cells, measure):
                widths.append((f"{name} {measure}", period, group, width))
        if cells[total][2] is None or cells[total][3][f"share_{MEASURES[0]}"] == "":
            continue
        total_count = cells[total][2]
        for name in tables:
            if name == "overall":
                continue
            members = [cell for cell in cells if cell[0] == name]
            for measure in MEASURES:
                if cells[total][3][f"share_{measure}"] == "":
                    continue
                share = float(cells[total][3][f"share_{measure}"])
                if share in (0.0, 1.0):
                    continue  # the period's own share says it for every part of it
                shown = [cell for cell in members if cell[2] is not None and cell[3][f"share_{measure}"] != ""]
                if len(shown) == len(members) or all(cell[2] is not None for cell in members):
                    continue  # no suppressed row whose share could be given away
                hidden_count = total_count - sum(cell[2] for cell in shown)
                hidden_with = round(share * total_count) - sum(
                    round(float(cell[3][f"share_{measure}"]) * cell[2]) for cell in shown
                )
                if (
                    hidden_with in (0, hidden_count)
                    or 0 < hidden_with < MIN_CELL
                    or 0 < hidden_count - hidden_with < 11
                ):
                    exposed_shares.append(f"{name} {period} {measure}")  # none, all or a few: a derived small count
    return widths, exposed_shares


def numerator_widths(cells: list[tuple], measure: str) -> list[tuple[str, str, float]]:
    """The attacker's interval width for every withheld share's numerator in a published row: a linear programme
    over suppressed counts x and hidden numerators y, each table adding up to the total in both, 0 ≤ y ≤ x."""
    hidden_x = [i for i, cell in enumerate(cells) if cell[2] is None]
    hidden_y = [i for i, cell in enumerate(cells) if cell[2] is None or cell[3][f"share_{measure}"] == ""]
    wanted = [i for i in hidden_y if cells[i][2] is not None]
    if not wanted:
        return []
    variables = [("x", i) for i in hidden_x] + [("y", i) for i in hidden_y]
    column = {variable: p for p, variable in enumerate(variables)}
    total = next(i for i, cell in enumerate(cells) if cell[0] == "overall")

    def numerator(cell: tuple) -> float:
        return round(float(cell[3][f"share_{measure}"]) * cell[2])

    a_eq, b_eq = [], []
    for name in {cell[0] for cell in cells} - {"overall"}:
        for kind, hidden, value in (("x", hidden_x, lambda cell: cell[2]), ("y", hidden_y, numerator)):
            row, rhs = np.zeros(len(variables)), 0.0
            for i, cell in enumerate(cells):
                if cell[0] == name:
                    if i in hidden:
                        row[column[(kind, i)]] += 1
                    else:
                        rhs -= value(cell)
            if total in hidden:
                row[column[(kind, total)]] -= 1
            else:
                rhs += value(cells[total])
            a_eq.append(row)
            b_eq.append(rhs)
    a_ub, bounds = [], [(0, None)] * len(variables)
    for i in hidden_y:
        if i in hidden_x:
            row = np.zeros(len(variables))
            row[column[("y", i)]], row[column[("x", i)]] = 1, -1
            a_ub.append(row)
        else:
            bounds[column[("y", i)]] = (0, cells[i][2])
    out = []
    for i in wanted:
        c = np.zeros(len(variables))
        c[column[("y", i)]] = 1
        kwargs = {"A_eq": np.array(a_eq), "b_eq": np.array(b_eq), "bounds": bounds, "method": "highs"}
        if a_ub:
            kwargs |= {"A_ub": np.array(a_ub), "b_ub": np.zeros(len(a_ub))}
        low, high = linprog(c, **kwargs), linprog(-c, **kwargs)
        assert low.status == 0
        out.append((cells[i][0], str(cells[i][1]), np.inf if high.status == 3 else float(-high.fun - low.fun)))
    return out


def test_no_suppressed_cell_can_be_solved_from_the_margins(first_release: dict[str, object]) -> None:
    out = first_release["out"]
    tables = published_tables(out)
    assert set(tables) == {"overall", *(f"by_{name}" for name in BY)}
    widths, exposed = attack(tables)
    assert widths, "the simulated department must have suppressed cells, or the attack proves nothing"
    narrow = [w for w in widths if w[3] < MIN_CELL]
    assert not narrow, f"suppressed counts the margins pin down: {narrow[:5]}"
    assert not exposed, f"suppressed cells whose shares the margins give away: {exposed[:5]}"
    for name, frame in tables.items():  # no published count below the threshold; suppressed rows keep no measure
        shown = frame[frame["suppressed"] == "false"]
        assert (shown["encounters"].astype(int) >= MIN_CELL).all(), name
        for measure in MEASURES:  # nor any count a published share implies, with or without the behaviour
            given = shown[shown[f"share_{measure}"] != ""]
            count = given["encounters"].astype(int)
            with_it = (given[f"share_{measure}"].astype(float) * count).round().astype(int)
            small = ((with_it > 0) & (with_it < MIN_CELL)) | ((count - with_it > 0) & (count - with_it < MIN_CELL))
            assert not small.any(), f"{name} {measure}: {given[small].iloc[:, :4].to_dict('records')[:3]}"
        hidden = frame[frame["suppressed"] == "true"]
        measures = [c for c in frame.columns if c == "encounters" or c.startswith(("share_", "respect_"))]
        assert len(measures) == 1 + len(MEASURES) + 3 and (hidden[measures] == "").all(axis=None), name
        if name != "overall":  # every group in every period (a first release), so a table adds up to the total
            assert len(frame) == frame["period"].nunique() * frame.iloc[:, 3].nunique()


def test_officers_rule_and_the_internal_record(first_release: dict[str, object], department: dict[str, Path]) -> None:
    cells = pd.read_parquet(department["store"] / "publish" / "releases" / "r001" / "cells.parquet")
    harbor = cells[(cells["table"] == "by_district") & (cells["group"] == "harbor") & (cells["period"] == "2025-01")]
    assert len(harbor) == 1 and harbor["encounters"].iloc[0] >= MIN_CELL and harbor["suppressed"].iloc[0]
    assert harbor["reason"].iloc[0] == f"primary: fewer than {MIN_OFFICERS} officers"
    shown = cells[~cells["suppressed"]]
    assert (shown["officers"] >= MIN_OFFICERS).all() and (shown["top_officer_share"] <= 0.5).all()
    assert set(cells["reason"].str.split(":").str[0]) >= {"", "primary", "complementary"}
    # The reason stays inside the store: the portal never says which cells were small.
    for path in first_release["out"].rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "primary:" not in text and "complementary:" not in text, path.name


def test_no_identifiers_or_words_anywhere_in_the_portal(
    first_release: dict[str, object], department: dict[str, Path]
) -> None:
    store = Store(department["store"])
    encounters = store.read_parts("encounter_scores")
    identifiers = set(encounters["encounter_id"]) | set(encounters["officer_id"])
    words = [line.lower() for line in LINES.values()]
    phrases = [" ".join(line.split()[i : i + 3]).strip(".,") for line in words for i in range(len(line.split()) - 2)]
    files = [path for path in first_release["out"].rglob("*") if path.is_file()]
    assert len(files) >= 20  # the latest release at the top and releases/r001
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        lowered = text.lower()
        found = [value for value in identifiers if value in text]
        assert not found, f"{path.name}: {found[:3]}"
        assert not re.search(r"\bsim-\d+|\bB1\d{3}\b", text), path.name
        assert not [p for p in phrases if p in lowered and len(p) > 12], path.name
        assert "smithers" not in lowered and "elm st" not in lowered, path.name
        assert not re.search(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}", text) or path.name in ("datapackage.json",), path.name
    columns = set().union(*(set(frame.columns) for frame in published_tables(first_release["out"]).values()))
    assert not {c for c in columns if "officer" in c or c.endswith("_id") or "text" in c}
    overall = pd.read_csv(first_release["out"] / "by_stop_reason.csv", dtype=str)
    assert "other" in set(overall["stop_reason"])  # the named reason was too rare: counted as other


def test_the_package_validates_with_frictionless_itself(first_release: dict[str, object]) -> None:
    out = first_release["out"]
    frictionless = Path(sys.executable).with_name("frictionless")
    for package in (out / "datapackage.json", out / "releases" / "r001" / "datapackage.json"):
        completed = subprocess.run([str(frictionless), "validate", str(package)], capture_output=True, text=True,
                                   timeout=300)  # fmt: skip
        assert completed.returncode == 0, completed.stdout[-3000:]
    described = json.loads((out / "datapackage.json").read_text())
    schema = next(r for r in described["resources"] if r["path"] == "overall.csv")["schema"]
    fields = {field["name"]: field for field in schema["fields"]}
    assert fields["encounters"]["constraints"]["minimum"] == MIN_CELL and fields["share_threat"]["description"]
    assert described["bwc"]["release"] == "r001" and described["version"] == "1.1.0"
    sums = (out / "SHA256SUMS").read_text()
    assert first_release["release"].sha256 == hashlib.sha256(sums.encode()).hexdigest()
    for line in sums.splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    dictionary = (out / "data_dictionary.md").read_text()
    for needle in ("fewer than **11** encounters", "respect-", "acts-rules", "share_all_five", "Known limits"):
        assert needle in dictionary
    entries = first_release["database"].audit_entries(action="publish_release")
    assert entries and entries[0].outcome == "ok" and first_release["release"].sha256 in entries[0].detail
    assert "<svg" in (out / "index.html").read_text() and "<script" not in (out / "index.html").read_text()


def test_second_release_keeps_the_first_and_says_what_changed(
    first_release: dict[str, object], department: dict[str, Path]
) -> None:
    store_dir, out = department["store"], first_release["out"]
    first_sums = (out / "releases" / "r001" / "SHA256SUMS").read_text()
    # Rescore February with a newer model: its encounters' behaviours and respect change, the ids do not.
    store = Store(store_dir)
    encounters = store.read_parts("encounter_scores").drop(columns="part")
    utterances = store.read_parts("utterance_scores").drop(columns="part")
    february = encounters["recorded_at"].between(pd.Timestamp("2025-02-01", tz="UTC"),
                                                 pd.Timestamp("2025-02-28 23:59", tz="UTC"))  # fmt: skip
    rescored = encounters[february].copy()
    rescored["pj_reason_early"] = ~rescored["pj_reason_early"].astype(bool)
    rescored["model_version"] = "respect-test-3"
    lines = utterances[utterances["encounter_id"].isin(rescored["encounter_id"])].copy()
    lines["model_version"] = "respect-test-3"
    for table, frame in (("encounter_scores", rescored), ("utterance_scores", lines)):
        store.write_rows(table, "part-rescored", frame.astype(object).where(frame.notna(), None).to_dict("records"))
    # Stop data grows two reasons: one the first release counted under "other" (three January stops), one new in May.
    stops = pd.read_csv(department["stops"], dtype=str)
    when = encounters.set_index("encounter_id")["recorded_at"].reindex(stops["encounter_id"]).to_numpy()
    january = np.flatnonzero(when < pd.Timestamp("2025-02-01", tz="UTC"))
    may = np.flatnonzero((when >= pd.Timestamp("2025-05-01", tz="UTC")) & (when < pd.Timestamp("2025-06-01", tz="UTC")))
    stops.loc[january[:3], "stop_reason"] = "checkpoint"
    stops.loc[may[:15], "stop_reason"] = "checkpoint"
    stops.loc[may[15:27], "stop_reason"] = "parade"
    stops_path = department["root"] / "stops-grown.csv"
    stops.to_csv(stops_path, index=False)
    database = first_release["database"]
    settings = PublishSettings(by=BY, through=SECOND_THROUGH)
    draft = prepare(store_dir, out, settings, stops_path, database=database)
    assert draft.release_id == "r002" and draft.previous == "r001"
    released = release(store_dir, draft.draft_id, database=database)
    changes = pd.read_csv(out / "changes.csv", dtype=str, keep_default_na=False)
    assert set(changes["release"]) == {"r002"}
    assert changes.loc[changes["change"] == "new_period", "period"].tolist() == ["2025-05"]
    february_rows = changes[(changes["period"] == "2025-02") & (changes["change"] == "revised")]
    assert "overall" in set(february_rows["table"])
    assert february_rows["detail"].str.contains("rescored: simulated-department-1 -> respect-test-3").all()
    assert february_rows["detail"].str.contains("share_reason_early").any()
    assert not changes[changes["period"].isin(["2025-01", "2025-03"]) & changes["detail"].str.contains("rescored")].any(
        axis=None
    )
    log = (out / "CHANGELOG.md").read_text()
    assert log.index("## r002") < log.index("## r001") and "New periods: 2025-05" in log
    assert (out / "releases" / "r001" / "SHA256SUMS").read_text() == first_sums  # the first release is untouched
    assert json.loads((out / "datapackage.json").read_text())["bwc"]["previous_release"] == "r001"
    before = published_tables(out / "releases" / "r001")
    after = published_tables(out)
    for name, frame in before.items():  # a cell suppressed once stays suppressed
        group = "period" if name == "overall" else name.removeprefix("by_")
        hidden = set(map(tuple, frame.loc[frame["suppressed"] == "true", ["period", group]].to_numpy()))
        again = set(map(tuple, after[name].loc[after[name]["suppressed"] == "true", ["period", group]].to_numpy()))
        assert hidden <= again, name
    widths, exposed = attack(after)
    assert not [w for w in widths if w[3] < MIN_CELL] and not exposed
    # Three January stops changed reason: publishing that would show three encounters' measures by difference,
    # so January stays exactly as r001 published it, and the changelog says so.
    assert changes.loc[changes["change"] == "kept", "period"].tolist() == ["2025-01"]
    assert not changes[(changes["period"] == "2025-01") & (changes["change"] == "revised")].any(axis=None)
    for name, frame in before.items():
        january = frame[frame["period"] == "2025-01"].reset_index(drop=True)
        assert january.equals(after[name][after[name]["period"] == "2025-01"].reset_index(drop=True)), name
    assert any("2025-01 kept as published in r001" in warning for warning in draft.warnings)
    reasons = after["by_stop_reason"]
    assert "checkpoint" not in set(reasons["stop_reason"])  # taking it out of January's "other" would reveal 3
    assert reasons.loc[reasons["stop_reason"] == "parade", "period"].tolist() == ["2025-05"]
    for period, rows in reasons.groupby("period"):  # still adds up where nothing is suppressed
        total = after["overall"].set_index("period").loc[period]
        if (rows["suppressed"] == "false").all() and total["suppressed"] == "false":
            assert rows["encounters"].astype(int).sum() == int(total["encounters"])
    assert released.sha256 != first_release["release"].sha256


def fresh_store(department: dict[str, Path], folder: Path) -> Path:
    """A copy of the department's store that has released nothing (a store releases into one folder only)."""
    copy = folder / "store"
    shutil.copytree(department["store"], copy, ignore=shutil.ignore_patterns("publish"))
    return copy


def test_release_refuses_stale_tampered_and_unauthorised_drafts(
    first_release: dict[str, object], department: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(PublishError, match="this store releases into"):  # one store, one series
        prepare(
            department["store"],
            tmp_path / "elsewhere",
            PublishSettings(by=BY, through=FIRST_THROUGH),
            department["stops"],
        )
    store_dir = fresh_store(department, tmp_path)
    out = tmp_path / "portal"
    database = ReviewDatabase.for_store(store_dir)
    settings = PublishSettings(by=("time_of_day",), through=FIRST_THROUGH)
    older = prepare(store_dir, out, settings, None, database=database)
    newer = prepare(store_dir, out, settings, None, database=database)
    trainer = database.authenticate("trainer", PASSWORD)
    with pytest.raises(PublishError, match="may not publish"):
        release(store_dir, newer.draft_id, database=database, user=trainer)
    assert not out.exists()
    tampered = prepare(store_dir, out, settings, None, database=database)
    overall = tampered.package_dir / "overall.csv"
    overall.write_text(overall.read_text().replace(",false,", ",true,", 1))
    with pytest.raises(PublishError, match="changed after it was prepared"):
        release(store_dir, tampered.draft_id, database=database)
    release(store_dir, newer.draft_id, database=database, user=database.authenticate("sup", PASSWORD))
    with pytest.raises(PublishError, match="prepare it again"):
        release(store_dir, older.draft_id, database=database)
    refused = [e for e in database.audit_entries(action="publish_release") if e.outcome == "refused"]
    assert len(refused) >= 3 and any(e.username == "trainer" for e in refused)
    with pytest.raises(PublishError, match="not a draft id"):
        read_draft(store_dir, "../../etc")
    with pytest.raises(PublishError, match="periods are in UTC time"):
        prepare(store_dir, out, PublishSettings(timezone="America/Chicago", by=("time_of_day",)), None)
    with pytest.raises(PublishError, match="by month"):
        prepare(store_dir, out, PublishSettings(period="quarter", by=("time_of_day",)), None)
    with pytest.raises(PublishError, match="tables by time_of_day"):
        prepare(store_dir, out, PublishSettings(by=("time_of_day", "district")), department["stops"])
    with pytest.raises(PublishError, match="outside the store"):
        prepare(store_dir, store_dir / "portal", settings, None)


def test_the_command_line_checks_the_account_and_the_input(
    first_release: dict[str, object], department: dict[str, Path], tmp_path: Path
) -> None:
    store = str(fresh_store(department, tmp_path))
    completed = bwc("publish", "--store", store, "--out", str(tmp_path / "a"), "--as", "trainer", "--through",
                    "2025-03-31", stdin=PASSWORD + "\n")  # fmt: skip
    assert completed.returncode == 1 and "may not publish" in completed.stderr and not (tmp_path / "a").exists()
    completed = bwc("publish", "--store", store, "--out", str(tmp_path / "a"), "--as", "sup", "--through",
                    "2025-03-31", stdin=PASSWORD + "\n")  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "a" / "datapackage.json").exists() and "released r001" in completed.stderr
    completed = bwc("publish", "--store", store, "--out", str(tmp_path / "b"), "--by", "officer_id")
    assert completed.returncode == 2 and completed.stderr.strip().count("\n") == 0
    assert "--by officer_id: not a publishable field" in completed.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("id,district\nsim-0000001,north\n")
    completed = bwc("publish", "--store", store, "--out", str(tmp_path / "b"), "--stops", str(bad))
    assert completed.returncode == 2 and f"{bad}: stop data needs an encounter_id column" in completed.stderr
    assert not (tmp_path / "b").exists()


def test_stop_data_errors_name_the_file_and_row(tmp_path: Path) -> None:
    twice = tmp_path / "twice.csv"
    twice.write_text("encounter_id,district\na,north\nb,south\na,west\n")
    with pytest.raises(PublishInputError, match=r"twice.csv: row 4: encounter_id 'a' appears twice"):
        load_stops(twice)
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("encounter_id,colour\na,red\n")
    with pytest.raises(PublishInputError, match="needs at least one of district"):
        load_stops(nothing)


def test_complementary_suppression_covers_totals_and_all_zero_shares() -> None:
    """Hand-made periods: a small cell next to the total; a whole table of small cells; a share that would show a
    small count; suppressed cells that all lacked a measure (their shares would be known to be 0) get a withheld
    share beside them."""
    cells = pd.DataFrame(
        {
            "table": ["overall", "by_a", "by_a", "by_a", "by_b", "by_b"],
            "period": ["p"] * 6,
            "group": ["all", "x", "y", "z", "u", "v"],
            "encounters": [60, 5, 25, 30, 58, 2],
            "officers": [10, 3, 5, 6, 9, 2],
            "top_officer_share": [0.1, 0.2, 0.2, 0.2, 0.1, 0.5],
            "n_threat": [2, 0, 0, 2, 2, 0],
        }
    )
    protected = suppress(cells, min_cell=11, min_officers=3, max_officer_share=0.5, measures=("threat",))
    hidden = set(protected.loc[protected["suppressed"], "group"])
    assert {"x", "v"} <= hidden  # primary
    assert "y" in hidden and "u" in hidden  # one partner each (the smallest publishable cell of its table)
    z = protected.set_index("group").loc["z"]
    assert not z["suppressed"] and z["withheld_threat"]  # 2 of 30: a share that would show a count of 2
    assert not protected.loc[protected["table"] == "overall", "suppressed"].iloc[0]
    # 15 threats in the total, 0 in x and y: their shares would be known (0) unless z's is withheld with them.
    many = cells.assign(n_threat=[15, 0, 0, 15, 15, 0])
    protected = suppress(many, min_cell=11, min_officers=3, max_officer_share=0.5, measures=("threat",)).set_index(
        "group"
    )
    assert protected.at["z", "withheld_threat"].startswith("complementary") and not protected.at["z", "suppressed"]
    tiny = cells.assign(encounters=[8, 2, 3, 3, 6, 2])
    assert suppress(tiny, 11, 3, 0.5)["suppressed"].all()  # a small period: everything, the total included


def test_publishing_twice_into_a_foreign_folder_is_refused(department: dict[str, Path], tmp_path: Path) -> None:
    foreign = tmp_path / "site"
    foreign.mkdir()
    (foreign / "index.html").write_text("<p>someone else's page</p>")
    with pytest.raises(PublishError, match="holds no bwc release"):
        prepare(fresh_store(department, tmp_path), foreign, PublishSettings(through=FIRST_THROUGH), None)
    assert (foreign / "index.html").read_text() == "<p>someone else's page</p>"
    shutil.rmtree(foreign)


def test_a_period_still_running_is_never_published(department: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(PublishInputError, match="must be before today"):
        prepare(department["store"], tmp_path / "portal", PublishSettings(through=date(2099, 12, 31)), None)


def test_badge_numbers_are_looked_for_in_labels_not_among_published_numbers(tmp_path: Path) -> None:
    from bwc.publish.release import _scan_for_identifiers

    frame = pd.DataFrame({"encounter_id": ["ev-20250101-0001"], "officer_id": ["4100"]})
    folder = tmp_path / "package"
    folder.mkdir()
    (folder / "overall.csv").write_text("period,encounters,suppressed\n2025-01,4100,false\n")
    (folder / "SHA256SUMS").write_text("41004100aa  overall.csv\n")
    (folder / "README.md").write_text("4100 encounters in 2025-01.\n")
    (folder / "index.html").write_text('<p>4100</p><svg><path d="M 4100 12"/></svg>')
    _scan_for_identifiers(folder, frame, None)  # counts, checksums and drawings that happen to match: no refusal
    (folder / "by_district.csv").write_text("period,district,encounters\n2025-01,beat of 4100,12\n")
    with pytest.raises(PublishError, match=r"by_district\.csv: holds an identifier"):
        _scan_for_identifiers(folder, frame, None)
    (folder / "by_district.csv").unlink()
    (folder / "README.md").write_text("see EV-20250101-0001.\n")
    with pytest.raises(PublishError, match=r"README\.md: holds an identifier"):
        _scan_for_identifiers(folder, frame, None)


def test_unlisted_labels_go_to_other_and_new_labels_are_put_before_the_reviewer(
    department: dict[str, Path], tmp_path: Path
) -> None:
    stops = pd.read_csv(department["stops"], dtype=str)
    stops.loc[stops.index[:12], "district"] = "Home of Officer Garcia"  # free text, frequent enough to be a group
    path = tmp_path / "stops.csv"
    stops.to_csv(path, index=False)
    store = fresh_store(department, tmp_path)
    draft = prepare(store, tmp_path / "portal", PublishSettings(by=("district",), through=FIRST_THROUGH), path)
    assert any("labels published for the first time" in w and "'home of officer garcia'" in w for w in draft.warnings)
    listed = {"district": ("North", "South", "East", "West", "Central", "Harbor")}
    settings = PublishSettings(by=("district",), through=FIRST_THROUGH, labels=listed)
    draft = prepare(store, tmp_path / "portal", settings, path)
    published = (draft.package_dir / "by_district.csv").read_text()
    assert "garcia" not in published and ",other," in published and ",north," in published
    assert not any("labels published for the first time" in w for w in draft.warnings)
    with pytest.raises(PublishInputError, match=r"publish\.labels: race not among the published fields"):
        prepare(store, tmp_path / "portal", PublishSettings(by=("district",), labels={"race": ("white",)}), path)


def test_a_release_interrupted_after_its_archive_is_completed_by_the_next(
    department: dict[str, Path], tmp_path: Path
) -> None:
    store = fresh_store(department, tmp_path)
    out = tmp_path / "portal"
    settings = PublishSettings(by=("time_of_day",), through=FIRST_THROUGH)
    release(store, prepare(store, out, settings, None).draft_id)
    interrupted = prepare(store, out, settings, None)
    shutil.copytree(interrupted.package_dir, out / "releases" / interrupted.release_id)  # the archive, then a crash
    assert json.loads((out / "datapackage.json").read_text())["bwc"]["release"] == "r001"
    following = prepare(store, out, settings, None)
    assert following.release_id == "r003" and following.previous == "r002"
    release(store, following.draft_id)
    assert json.loads((out / "datapackage.json").read_text())["bwc"]["release"] == "r003"
    changes = pd.read_csv(out / "changes.csv", dtype=str, keep_default_na=False)
    assert set(changes["change"]) <= {"kept", "revised", "new_period"}
