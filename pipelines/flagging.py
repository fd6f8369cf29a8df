"""The end of every run: department-relative flags over all scored encounters, officer measures over time
(``STORE/officer_periods``, :mod:`scoring.officers`), then clips around what drove the flags.

Flags are relative to the whole store, so they are recomputed from every scored encounter whenever scores change
(``bwc run``, ``bwc score``, ``bwc rescore``) or on demand (``bwc flag``). Clip failures (an original that changed
since ingest, or went missing) are recorded in the catalog under the stage ``clips`` and so appear in
``STORE/failures``; a later clean pass clears them.

Example
-------
>>> summary = flag_and_clip(Path("/data/bwc-store"), BwcConfig())              # doctest: +SKIP
>>> print(summary.describe())                                                   # doctest: +SKIP
flags: 31 poor, 28 exemplary of 612 encounters (k = 4.1 officer utterances, estimated); clips: 118 cut, 0 failed
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bwc.catalog import DONE, FAILED, Catalog
from bwc.clips import ClipSummary, PlannedClip, cut_clips
from bwc.config import BwcConfig
from bwc.custody import CLIP_CUT, CustodyError, CustodyLog, actor
from bwc.records import Failure
from bwc.store import Store
from scoring.flags import FlagSummary, flag_store
from scoring.officers import OfficerSummary, officer_store

CLIPS_STAGE = "clips"  # catalog stage of clip cutting, per original
CUSTODY_STAGE = "custody"  # catalog stage of custody alarms, per original


@dataclass(frozen=True)
class FlaggingSummary:
    """What flagging and clip cutting did."""

    flags: FlagSummary  # flag counts and the shrinkage used
    clips: ClipSummary | None  # None when clips were not asked for
    officers: OfficerSummary  # officer measures over time and their alerts (STORE/officer_periods)

    @property
    def failures(self) -> tuple[Failure, ...]:
        return self.clips.failures if self.clips else ()

    def describe(self) -> str:
        f = self.flags
        text = (
            f"flags: {f.poor} poor, {f.exemplary} exemplary of {f.considered} encounters with officer language "
            f"(shrinkage k = {f.shrinkage_k:.2f} officer utterances, {f.shrinkage_source})"
        )
        text += "\n" + self.officers.describe()
        if self.clips:
            c = self.clips
            text += f"; clips: {c.written} cut, {c.reused} kept, {c.removed} removed, {len(c.failures)} failed"
            text += "".join(f"\nfailed [{x.stage}] {x.path}: {x.reason}" for x in c.failures)
        return text

    def as_report(self) -> dict[str, Any]:
        f = self.flags
        report: dict[str, Any] = {
            "poor": f.poor,
            "exemplary": f.exemplary,
            "encounters_considered": f.considered,
            "shrinkage_k": f.shrinkage_k,
            "shrinkage_source": f.shrinkage_source,
            "officers": self.officers.officers,
            "officer_alerts": self.officers.alerts,
            "officer_alert_period": self.officers.latest_period,
        }
        if self.clips:
            report |= {"clips_cut": self.clips.written, "clips_kept": self.clips.reused, "clips": self.clips.rows}
        return report


def flag_and_clip(
    store_dir: Path, config: BwcConfig, cut: bool = True, catalog: Catalog | None = None, run_id: str = "flag"
) -> FlaggingSummary:
    """Recompute ``STORE/flags`` and (with ``cut``) ``STORE/clips``; clip failures go into the catalog.

    Parameters
    ----------
    store_dir
        The store.
    config
        ``config.flags`` and ``config.clips`` are used.
    cut
        Also cut clips.
    catalog
        The catalog to record clip failures in; None opens the store's own.
    run_id
        Recorded with the clip stage's state.
    """
    store = Store(store_dir)
    if catalog is not None:  # called by a run, which holds the store's lock and its catalog
        return _flag_and_clip(store, config, cut, catalog, run_id)
    from pipelines.run import failure_rows, store_lock  # here: the run module imports this one

    with store_lock(store.root, config.run.lock_wait_s):
        catalog = Catalog.for_store(store.root, config.run.catalog_url)
        try:
            summary = _flag_and_clip(store, config, cut, catalog, run_id)
            store.write_current_failures(failure_rows(catalog))
        finally:
            catalog.close()
    return summary


def _flag_and_clip(store: Store, config: BwcConfig, cut: bool, catalog: Catalog, run_id: str) -> FlaggingSummary:
    flags = flag_store(store, config.flags)
    officers = officer_store(store, config.early_warning)  # after the flags: it counts each officer's flagged share
    if not cut:
        return FlaggingSummary(flags, None, officers)
    custody, who, custody_failures = CustodyLog(store.root, catalog), actor(), []

    def record_cut(clip: PlannedClip, recording: dict[str, Any], facts: dict[str, Any]) -> None:
        custody_entry(
            custody, custody_failures, recording["sha256"], recording["path"], CLIP_CUT, who,
            clip_id=clip.clip_id, kind=clip.kind, start=clip.span.start, end=clip.span.end, flag=clip.flag,
            encounter_id=clip.encounter_id, clip_sha256=facts["sha256"], original_verified=True, run=run_id,
        )  # fmt: skip

    clips = cut_clips(store, config.clips, on_cut=record_cut)
    _record_clip_states(catalog, clips.failures, run_id)
    for failed in custody_failures:  # a custody log that could not record a cut: an alarm that stays until seen
        catalog.mark(failed.sha256 or "", CUSTODY_STAGE, FAILED, run_id, reason=failed.reason, path=failed.path)
    clips = replace(clips, failures=clips.failures + tuple(custody_failures))
    return FlaggingSummary(flags, clips, officers)


def custody_entry(
    custody: CustodyLog, failures: list[Failure], sha256: str, path: str, event: str, who: str, /, **detail: Any
) -> None:
    """Append to an original's custody log; a damaged log becomes a ``custody`` failure (loud, not fatal)."""
    try:
        custody.append(sha256, event, who, **detail)
    except CustodyError as error:
        failures.append(Failure(path=path, sha256=sha256, stage=CUSTODY_STAGE, reason=str(error),
                                last_attempt_at=datetime.now(UTC)))  # fmt: skip


def _record_clip_states(catalog: Catalog, failures: tuple[Failure, ...], run_id: str) -> None:
    failed_now = {failure.sha256 for failure in failures if failure.sha256}
    for failure in failures:
        if failure.sha256:
            catalog.mark(failure.sha256, CLIPS_STAGE, FAILED, run_id, reason=failure.reason, path=failure.path)
    for row in catalog.failures(CLIPS_STAGE):
        if row.sha256 not in failed_now:  # cut cleanly this time (or no longer needed): no longer failing
            catalog.mark(row.sha256, CLIPS_STAGE, DONE, run_id, path=row.path)
