"""The trainer review app: flagged encounters, their audio and transcripts, decisions, exemplar packs, accounts and
the audit log, as server-rendered pages (FastAPI + Jinja2).

Rules every route follows:

- anonymous requests get the login page (a redirect for page views, 401 otherwise); only ``/login`` and the
  static assets are public;
- each route names the permission it needs; a role without it gets 403 (:data:`PERMISSIONS`);
- every form post carries the session's CSRF token (the login form a cookie-bound one) and comes from this site
  (``Origin`` / ``Sec-Fetch-Site``), or is refused with 403; bodies over ``review.max_form_kb`` get 413 unread;
- no request path maps to a file: recordings, clips and packs are looked up by id in the store's tables, and ids
  must match :data:`bwc.review.data.ID_PATTERN` before anything is read;
- researchers see de-identified views only: pseudonymous officer and encounter ids (the research export's), no
  evidence, incident or recording ids, no audio, no words (reasons are rendered from a version built without them,
  not redacted by pattern), speakers as "speaker 1, 2, ...", dates no finer than ``review.researcher_date_resolution``;
- trainers hear only recordings of flagged or exemplar-tagged encounters unless ``review.trainers_hear_unflagged``;
- officer trends (``/officers``, early intervention; shaped and drawn in :mod:`bwc.review.officers`) are for
  supervisors and admins (identified) and researchers (pseudonyms, in the pages and in the plots alike); their
  alerts are advisory, for a supervisor's conversation, not discipline and not a performance rating;
- open data releases (``/releases``: drafts that ``bwc publish --draft`` prepared, previewed as they would go out,
  and released from there) are for supervisors and admins; :func:`bwc.publish.release.release` checks the role again
  and writes the release, or its refusal, to the audit log with the package's SHA-256;
- every request but served static assets is written to the tamper-evident audit log (user, time, action, object,
  outcome), under the session's user even when the path or method matched nothing.

Example
-------
>>> app = create_app(Path("/data/bwc-store"), BwcConfig())                     # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8765)                             # doctest: +SKIP
"""

from __future__ import annotations

import io
import ipaddress
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import HTTPConnection

from bwc.catalog import Catalog
from bwc.config import BwcConfig
from bwc.custody import PACK_EXPORTED, VIEWED, CustodyError, CustodyLog
from bwc.pseudonym import store_pseudonymizer
from bwc.publish.package import CHECKSUMS
from bwc.publish.release import (
    CHANGELOG,
    PUBLISHING_ROLES,
    Draft,
    PublishError,
    draft_table,
    list_drafts,
    list_releases,
    read_draft,
    release,
    stale,
)
from bwc.research.export import coarse_date
from bwc.review.audit import write_csv
from bwc.review.data import PAGE_SIZE, NotFound, OriginalChanged, QueueFilter, ReviewData
from bwc.review.db import (
    AUDIT_COLUMNS,
    DECISIONS,
    ROLES,
    AccountError,
    LoginLimits,
    LoginSession,
    ReviewDatabase,
    User,
)
from bwc.review.officers import BadQuery, Disclosure, OfficerTrends, Selection
from bwc.review.packs import PackError, build_pack, clock
from bwc.store import Store

SESSION_COOKIE = "bwc_session"
LOGIN_CSRF_COOKIE = "bwc_login_csrf"  # binds the login form to the browser that loaded it
PERMISSIONS: dict[str, frozenset[str]] = {  # permission -> roles that have it
    "view_queue": frozenset({"trainer", "supervisor", "researcher"}),
    "view_identified": frozenset({"trainer", "supervisor"}),  # officer ids, evidence ids, words
    "listen": frozenset({"trainer", "supervisor"}),  # recordings and clips
    "review": frozenset({"trainer", "supervisor"}),  # confirm or reject flags, tag exemplars
    "export_pack": frozenset({"trainer", "supervisor"}),
    "manage_users": frozenset({"admin"}),
    "read_audit": frozenset({"admin"}),
    "view_officers": frozenset({"supervisor", "admin", "researcher"}),  # officer trends (early intervention)
    "identify_officers": frozenset({"supervisor", "admin"}),  # real officer and encounter ids on those pages
    "publish": frozenset(PUBLISHING_ROLES),  # open data releases: preview drafts and release them
}
HOME_BY_ROLE = {"admin": "/admin/users"}  # where a login lands; the queue for everyone else
STATIC_ASSETS = {"review.css": "text/css", "review.js": "text/javascript"}  # name -> media type; nothing else served
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send "Origin: null" on our own posts
}
OUTCOMES = {2: "ok", 3: "ok", 401: "refused", 403: "refused", 404: "not_found", 409: "conflict", 413: "refused"}
SAFE_NEXT = re.compile(r"/[A-Za-z0-9/_.?=&%:-]*")  # where the login may send a browser back to: local paths only
LOGIN_ERRORS = {  # ?error= code -> what the login page says; nothing else is ever shown from the URL
    "wrong": "Wrong username or password.",
    "locked": "Too many failed logins: try again later.",
}
USER_ACTIONS = {"add": "added", "role": "role changed", "disable": "disabled", "enable": "enabled"}
SAME_SITE = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values a form post may carry
_T = TypeVar("_T")
WITHHELD_REASONS = "reasons withheld (flags from before de-identified reasons: run `bwc flag` again)"
PREVIEW_ROWS = 24  # rows of each table a release draft's preview shows


class LoginRequired(Exception):
    """No valid session: page views are sent to the login page, everything else gets 401."""


def current_session(request: Request) -> LoginSession | None:
    """The request's valid session (its expiry moved on, within its absolute lifetime), or None; remembered for the
    audit log."""
    state = request.app.state
    login = state.database.session(request.cookies.get(SESSION_COOKIE), state.session_hours, state.session_max_hours)
    request.state.user = login.user if login else None
    request.state.login = login
    return login


def check_same_site(request: Request) -> None:
    """Refuse a form post another site made the browser send: an ``Origin`` other than this server's, or a
    ``Sec-Fetch-Site`` saying cross-site. The CSRF token already stops such posts; this refuses them before any
    form field is looked at, and also stops a page on a sibling subdomain that stole nothing."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site is not None:  # every current browser sends it; it cannot be set by a page's script
        foreign = site not in SAME_SITE
        why = f"cross-site post (Sec-Fetch-Site {site})"
    else:  # older browsers and scripts: the Origin header, when there is one, must be this server
        foreign = origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", "")
        why = f"cross-site post from {origin}"
    if foreign:
        request.state.audit = getattr(request.state, "audit", {}) | {"detail": why}
        raise HTTPException(403, "cross-site form posts are refused")


def permissions_of(user: User | None) -> dict[str, bool]:
    """Permission name -> whether ``user`` has it (for templates)."""
    return {name: bool(user and user.role in roles) for name, roles in PERMISSIONS.items()}


def requires(permission: str) -> Callable[[Request], LoginSession]:
    """A dependency that yields the session when its role has ``permission``: no session → login, else 403."""

    def dependency(request: Request) -> LoginSession:
        login = current_session(request)
        if login is None:
            raise LoginRequired()
        if login.user.role not in PERMISSIONS[permission]:
            raise HTTPException(403, f"your role ({login.user.role}) may not do this")
        return login

    return dependency


# Route parameters that demand a role (at module level: FastAPI resolves annotations in the module's namespace).
Viewer = Annotated[LoginSession, Depends(requires("view_queue"))]
Listener = Annotated[LoginSession, Depends(requires("listen"))]
Reviewer = Annotated[LoginSession, Depends(requires("review"))]
Exporter = Annotated[LoginSession, Depends(requires("export_pack"))]
UserAdmin = Annotated[LoginSession, Depends(requires("manage_users"))]
Auditor = Annotated[LoginSession, Depends(requires("read_audit"))]
OfficerViewer = Annotated[LoginSession, Depends(requires("view_officers"))]
Publisher = Annotated[LoginSession, Depends(requires("publish"))]


def create_app(store_root: Path, config: BwcConfig) -> FastAPI:
    """The review app for one store.

    Parameters
    ----------
    store_root
        The store to review (flags, clips and scores written by ``bwc run``/``bwc flag``).
    config
        The configuration; ``config.review`` holds the database URL, session length and cookie settings.
    """
    store = Store(store_root)
    database = ReviewDatabase.for_store(store.root, config.review.database_url)
    data = ReviewData(store)
    trends = OfficerTrends(store, config.early_warning)
    custody = CustodyLog(store.root, Catalog.for_store(store.root, config.run.catalog_url))
    pseudonym = store_pseudonymizer(store.root, config.review.pseudonym_key_file)
    settings = config.review
    hours = settings.session_hours
    limits = LoginLimits.from_config(settings)
    environment = Environment(loader=PackageLoader("bwc.review", "templates"), autoescape=select_autoescape())
    environment.filters["clock"] = clock
    templates = Jinja2Templates(env=environment)
    publishing = threading.Lock()  # one release at a time from this app (two posts of one draft would race)
    headers = dict(SECURITY_HEADERS)
    if settings.hsts_seconds > 0:
        headers["Strict-Transport-Security"] = f"max-age={settings.hsts_seconds}; includeSubDomains"

    app = FastAPI(title="bwc review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.database = database
    app.state.session_hours = hours
    app.state.session_max_hours = settings.session_max_hours
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_form_kb * 1024)
    app.add_middleware(AuditMiddleware, database=database, session_hours=hours, max_hours=settings.session_max_hours)

    # -- helpers --------------------------------------------------------------------------------------------------
    async def checked_form(request: Request, login: LoginSession | None) -> FormData:
        """The posted form, once its CSRF token matched the session's (403 otherwise)."""
        form = await request.form()
        check_csrf(request, form, login)
        return form

    def check_csrf(request: Request, form: FormData, login: LoginSession | None) -> None:
        check_same_site(request)
        sent = str(form.get("csrf_token", ""))
        expected = login.csrf_token if login else request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not sent or not expected or not secrets.compare_digest(sent, expected):
            request.state.audit = getattr(request.state, "audit", {}) | {"detail": "CSRF token missing or wrong"}
            raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")

    def page(request: Request, name: str, login: LoginSession | None, status: int = 200, **context: Any) -> Response:
        user = login.user if login else None
        context |= {
            "user": user,
            "csrf_token": login.csrf_token if login else "",
            "can": permissions_of(user),
        }
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    def officer_label(officer_id: str | None, identified: bool) -> str | None:
        return officer_id if identified else pseudonym(officer_id)

    def encounter_label(encounter_id: str, identified: bool) -> str:
        """The id as the tables have it, or the research export's pseudonym of it."""
        return encounter_id if identified else str(pseudonym.of("encounter", encounter_id))

    def resolve_encounter(label: str, identified: bool) -> str:
        """The encounter an URL names: its id (identified views) or its pseudonym among the flagged encounters
        (de-identified views: a raw id is not found, so the URL cannot confirm one)."""
        if identified:
            return label
        flagged = data.flags()["encounter_id"].dropna().unique()
        found = next((e for e in flagged if encounter_label(e, False) == label), None)
        if found is None:
            raise HTTPException(404, f"no encounter {label}")
        return str(found)

    def shown_date(value: Any, identified: bool) -> str:
        """A recording time as a role may see it: minutes for identified views, else the configured date."""
        if value is None or value != value:
            return "—"
        if identified:
            return value.strftime("%Y-%m-%d %H:%M")
        coarse = coarse_date(value, settings.researcher_date_resolution)
        return f"{coarse} ({settings.researcher_date_resolution})" if coarse else "—"

    def may_hear(login: LoginSession, recording_id: str) -> bool:
        """Supervisors hear any recording; trainers those of flagged or exemplar-tagged encounters (configurable)."""
        if login.user.role != "trainer" or settings.trainers_hear_unflagged:
            return True
        flags = data.flags()
        if recording_id in set(flags["recording_id"].dropna()):
            return True
        tagged = {row.encounter_id for row in database.exemplars()}
        scored = data.table("encounter_scores", recording_id=recording_id)
        return bool(tagged & set(scored["encounter_id"]))

    def officer_disclosure(login: LoginSession) -> Disclosure:
        """How the officer pages show ids, dates and reasons to this user's role: supervisors and admins see ids,
        researchers pseudonyms; only roles that may read words get identified reasons; encounter pages are linked
        where the role may open them (researchers: flagged encounters, the only ones their URLs resolve)."""
        role = login.user.role
        identified = role in PERMISSIONS["identify_officers"]
        words = role in PERMISSIONS["view_identified"]
        pages = role in PERMISSIONS["view_queue"]
        flagged = set() if identified or not pages else set(data.flags()["encounter_id"].dropna())
        return Disclosure(
            identified=identified,
            officer=lambda officer_id: officer_label(officer_id, identified),
            encounter=lambda encounter_id: encounter_label(encounter_id, identified),
            date=lambda value: shown_date(value, identified),
            reasons=lambda row: row["reasons"] if words else (row.get("reasons_deidentified") or WITHHELD_REASONS),
            opens=lambda encounter_id: pages and (identified or encounter_id in flagged),
            unit=lambda unit: unit if identified else str(pseudonym.of("unit", unit)),
        )

    def officer_request(
        request: Request, login: LoginSession, officer: str, window: str, period: str, what: str
    ) -> tuple[Disclosure, str, Selection]:
        """The viewer's disclosure, the officer the URL names and the selected period, audited as the officer's id
        (with the label asked for, in de-identified views); 404 for an unknown officer, 400 for a bad period."""
        shown = officer_disclosure(login)
        asked = f"{what}, window {window or '-'} period {period or '-'}"
        audit_object(request, f"officer:{officer}", asked)
        officer_id = _or_http(lambda: trends.resolve(officer, shown))
        audit_object(request, f"officer:{officer_id}", asked if shown.identified else f"{asked}; as {officer}")
        return shown, officer_id, _or_http(lambda: trends.choose(window, period))

    def audit_object(request: Request, object_: str, detail: str = "") -> None:
        request.state.audit = {"object": object_, "detail": detail}

    def record_custody(login: LoginSession, recordings: list[dict[str, Any]], event: str, **detail: Any) -> None:
        """An entry in the custody log of each original behind what this user is about to see or take away.

        A log that cannot be extended (damaged, or changed outside bwc) stops the request: evidence is not shown
        while its custody record is in doubt.
        """
        user = login.user
        for sha256 in dict.fromkeys(row["sha256"] for row in recordings if row and row.get("sha256")):
            try:
                custody.append(sha256, event, f"{user.username} (review app, {user.role})", **detail)
            except CustodyError as error:
                raise HTTPException(409, f"custody log problem, ask an administrator: {error}") from None

    def recording_or_none(recording_id: str) -> dict[str, Any] | None:
        try:
            return data.recording(recording_id)
        except (NotFound, ValueError):
            return None

    # -- errors ---------------------------------------------------------------------------------------------------
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _error: LoginRequired) -> Response:
        request.state.audit = {"outcome": "refused", "detail": "not logged in"}
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return Response("login required", status_code=401, media_type="text/plain")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        login = getattr(request.state, "login", None)
        context = {
            "status": error.status_code,
            "message": error.detail,
            "user": login.user if login else None,
            "csrf_token": login.csrf_token if login else "",
            "can": permissions_of(login.user if login else None),
        }
        response = templates.TemplateResponse(request, "error.html", context, status_code=error.status_code)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(404)
    async def not_found(request: Request, _error: Exception) -> Response:
        # Unknown paths, including every traversal attempt, look the same whether logged in or not: there is
        # nothing behind them to protect, and a redirect to the login page would suggest otherwise.
        return Response("not found", status_code=404, media_type="text/plain")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for header, value in headers.items():
            response.headers.setdefault(header, value)
        return response

    # -- public ---------------------------------------------------------------------------------------------------
    @app.get("/static/{name}", name="static")
    def static(name: str) -> Response:
        if name not in STATIC_ASSETS:
            raise HTTPException(404, "no such asset")
        body = resources.files("bwc.review").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC_ASSETS[name], headers={"Cache-Control": "max-age=3600"})

    @app.get("/favicon.ico", name="static_favicon")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/login", name="login_page")
    def login_page(request: Request, next: str = "/", error: str = "") -> Response:
        login = current_session(request)
        if login is not None:
            return RedirectResponse(_safe_next(next, login.user.role), status_code=303)
        token = secrets.token_urlsafe(32)
        shown_next = next if SAFE_NEXT.fullmatch(next) else "/"
        response = page(
            request, "login.html", None, next=shown_next, login_csrf=token, error=LOGIN_ERRORS.get(error, "")
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=config.review.secure_cookies
        )
        return response

    @app.post("/login", name="login")
    async def login(request: Request) -> Response:
        if not request.cookies.get(LOGIN_CSRF_COOKIE):  # refused before the body is read: no form, no work
            audit_object(request, "user:?", "CSRF token missing or wrong")
            raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")
        form = await request.form()
        username = str(form.get("username", "")).strip().lower()
        password = str(form.get("password", ""))
        next_path = str(form.get("next", "/"))
        audit_object(request, f"user:{username}")
        check_csrf(request, form, None)  # a post without the token is refused here and counts for nothing
        client = request.client.host if request.client else ""
        # The attempt is counted before the password is checked: parallel guesses cannot outrun the count.
        if not await anyio.to_thread.run_sync(database.reserve_login_attempt, username, client, limits):
            request.state.audit |= {"detail": "locked: too many failed logins", "outcome": "refused"}
            return _login_again(next_path, "locked")
        user = await anyio.to_thread.run_sync(database.authenticate, username, password)
        if user is None:
            request.state.audit |= {"detail": "wrong username or password", "outcome": "refused"}
            return _login_again(next_path, "wrong")
        await anyio.to_thread.run_sync(database.clear_login_failures, username, client)
        token, _session = await anyio.to_thread.run_sync(
            database.start_session, user, hours, settings.session_max_hours
        )
        request.state.user = user
        response = RedirectResponse(_safe_next(next_path, user.role), status_code=303)
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, samesite="strict", secure=config.review.secure_cookies
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    # -- everyone logged in ---------------------------------------------------------------------------------------
    @app.post("/logout", name="logout")
    async def logout(request: Request) -> Response:
        login = await anyio.to_thread.run_sync(current_session, request)
        if login is None:
            raise LoginRequired()
        await checked_form(request, login)
        await anyio.to_thread.run_sync(database.end_session, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/", name="home")
    def home(request: Request) -> Response:
        login = current_session(request)
        if login is None:
            raise LoginRequired()
        return RedirectResponse(HOME_BY_ROLE.get(login.user.role, "/queue"), status_code=303)

    # -- review ---------------------------------------------------------------------------------------------------
    @app.get("/queue", name="view_queue")
    def queue(
        request: Request,
        login: Viewer,
        flag: str = "",
        officer: str = "",
        date_from: str = "",
        date_to: str = "",
        reviewed: str = "",
        sort: str = "percentile",
        page_number: int = 1,
    ) -> Response:
        identified = login.user.role in PERMISSIONS["view_identified"]
        decisions = database.decisions()
        query = QueueFilter(
            flag=flag if flag in ("poor", "exemplary") else None,
            date_from=_parse_date(date_from),
            date_to=_parse_date(date_to),
            reviewed={"yes": True, "no": False}.get(reviewed),
            sort=sort,
            page=max(page_number, 1),
        )
        if officer:
            # Researchers filter by pseudonym: it is matched against the pseudonyms of the officers flagged.
            rows, total = _filter_officer(data, query, decisions, officer, identified, officer_label)
        else:
            rows, total = data.queue(query, set(decisions))
        for row in rows:
            decision = decisions.get((row["encounter_id"], row["flag"]))
            row["decision"] = decision.decision if decision else ""
            row["officer"] = officer_label(row.get("officer_id"), identified)
            row["label"] = encounter_label(row["encounter_id"], identified)
            row["recorded"] = shown_date(row.get("recorded_at"), identified)
            row["why"] = row["reasons"] if identified else (row.get("reasons_deidentified") or WITHHELD_REASONS)
        officers = sorted(
            {label for label in (officer_label(o, identified) for o in data.flags()["officer_id"].dropna()) if label}
        )
        audit_object(request, "queue", f"{total} flags; filter {query}; officer {officer or '-'}")
        return page(
            request,
            "queue.html",
            login,
            rows=rows,
            total=total,
            officers=officers,
            identified=identified,
            filters={
                "flag": flag,
                "officer": officer,
                "date_from": date_from,
                "date_to": date_to,
                "reviewed": reviewed,
                "sort": sort,
            },
            page_number=query.page,
            page_size=PAGE_SIZE,
        )

    @app.get("/encounters/{encounter_id}", name="view_encounter")
    def encounter(request: Request, encounter_id: str, login: Viewer) -> Response:
        identified = login.user.role in PERMISSIONS["view_identified"]
        label = encounter_id
        audit_object(request, f"encounter:{encounter_id}")
        encounter_id = resolve_encounter(label, identified)
        audit_object(request, f"encounter:{encounter_id}", "" if identified else f"as {label}")
        try:
            view = data.encounter(encounter_id)
        except NotFound as error:
            raise HTTPException(404, str(error)) from None
        if view.recording:
            record_custody(login, [view.recording], VIEWED, what="encounter page (transcript and scores)",
                           encounter_id=encounter_id)  # fmt: skip
        decisions = database.decisions([encounter_id])
        speakers: dict[str, str] = {}
        for row in view.utterances:  # de-identified views number the speakers in order of appearance
            if row.get("speaker") and row["speaker"] not in speakers:
                speakers[row["speaker"]] = f"speaker {len(speakers) + 1}"
        for row in view.flags:
            row["why"] = row["reasons"] if identified else (row.get("reasons_deidentified") or WITHHELD_REASONS)
        exemplar = next((row for row in database.exemplars() if row.encounter_id == encounter_id), None)
        flagged = {span.get("utterance_id") or span.get("turn") for row in view.flags for span in row["spans"]}
        officer = officer_label(view.score.get("officer_id") if view.score else None, identified)
        return page(
            request,
            "encounter.html",
            login,
            view=view,
            label=label if not identified else encounter_id,
            recorded=shown_date(view.score.get("recorded_at") if view.score else None, identified),
            speakers=speakers,
            identified=identified,
            officer=officer,
            decisions={flag: row for (_, flag), row in decisions.items()},
            exemplar=exemplar,
            flagged=flagged,
            decision_choices=DECISIONS,
        )

    @app.get("/audio/{recording_id}", name="play_audio")
    def audio(request: Request, recording_id: str, login: Listener) -> Response:
        audit_object(request, f"recording:{recording_id}", f"range {request.headers.get('range', 'all')}")
        if recording_or_none(recording_id) is not None and not may_hear(login, recording_id):
            raise HTTPException(403, "trainers hear recordings of flagged or exemplar encounters only")
        if request.headers.get("range", "bytes=0-").startswith("bytes=0-"):  # a playback's first request only
            record_custody(login, [recording_or_none(recording_id) or {}], VIEWED, what="audio played",
                           recording_id=recording_id)  # fmt: skip
        try:
            path = data.rendition(recording_id)
        except NotFound as error:
            raise HTTPException(404, str(error)) from None
        except OriginalChanged as error:
            raise HTTPException(409, str(error)) from None
        return FileResponse(path, media_type="audio/ogg", headers={"Cache-Control": "private, no-store"})

    @app.get("/clips/{clip_id}", name="download_clip")
    def clip(request: Request, clip_id: str, login: Listener) -> Response:
        audit_object(request, f"clip:{clip_id}")
        try:
            row = data.clip(clip_id)
            path = data.clip_file(row)
        except NotFound as error:
            raise HTTPException(404, str(error)) from None
        if request.headers.get("range", "bytes=0-").startswith("bytes=0-"):
            original = {"sha256": row.get("original_sha256")}
            record_custody(login, [original], VIEWED, what=f"{row['kind']} clip played", clip_id=clip_id)
        media_type = "video/mp4" if row["kind"] == "video" else "audio/ogg"
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, no-store"})

    @app.post("/encounters/{encounter_id}/decision", name="decide_flag")
    async def decide(request: Request, encounter_id: str, login: Reviewer) -> Response:
        form = await checked_form(request, login)
        flag, decision, note = str(form.get("flag", "")), str(form.get("decision", "")), str(form.get("note", ""))
        audit_object(request, f"encounter:{encounter_id} flag:{flag}", f"{decision}: {note}".strip())
        view = await _encounter_or_404(data, encounter_id)
        if flag not in {row["flag"] for row in view.flags} or decision not in DECISIONS:
            raise HTTPException(400, f"{encounter_id} has no {flag or 'such'} flag to mark {decision or '?'}")
        await anyio.to_thread.run_sync(database.decide, encounter_id, flag, decision, note, login.user.username)
        return RedirectResponse(f"/encounters/{encounter_id}", status_code=303)

    @app.post("/encounters/{encounter_id}/exemplar", name="tag_exemplar")
    async def tag(request: Request, encounter_id: str, login: Reviewer) -> Response:
        form = await checked_form(request, login)
        action, note = str(form.get("action", "tag")), str(form.get("note", ""))
        audit_object(request, f"encounter:{encounter_id}", f"{action}: {note}".strip())
        await _encounter_or_404(data, encounter_id)
        if action == "untag":
            await anyio.to_thread.run_sync(database.untag_exemplar, encounter_id)
        else:
            await anyio.to_thread.run_sync(database.tag_exemplar, encounter_id, note, login.user.username)
        return RedirectResponse(f"/encounters/{encounter_id}", status_code=303)

    @app.get("/exemplars", name="view_exemplars")
    def exemplars(request: Request, login: Exporter) -> Response:
        tagged = database.exemplars()
        flags = data.flags()
        rows = []
        for row in tagged:
            mine = flags[flags["encounter_id"] == row.encounter_id]
            rows.append(
                {
                    "encounter_id": row.encounter_id,
                    "note": row.note,
                    "tagged_by": row.tagged_by,
                    "tagged_at": row.tagged_at,
                    "flags": ", ".join(sorted(mine["flag"])),
                    "officer": mine["officer_id"].iloc[0] if len(mine) else None,
                }
            )
        audit_object(request, "exemplars", f"{len(rows)} tagged")
        return page(request, "exemplars.html", login, rows=rows)

    @app.post("/exemplars/export", name="export_pack")
    async def export(request: Request, login: Exporter) -> Response:
        form = await checked_form(request, login)
        chosen = [str(value) for value in form.getlist("encounter_id")]
        audit_object(request, "pack", f"encounters {', '.join(chosen) or '-'}")
        notes = {row.encounter_id: row.note for row in database.exemplars()}
        try:
            pack = await anyio.to_thread.run_sync(lambda: build_pack(data, chosen, notes, login.user.username))
        except NotFound as error:
            raise HTTPException(404, str(error)) from None
        except PackError as error:
            raise HTTPException(400, str(error)) from None
        clips = [row for encounter_id in pack.encounter_ids for row in data.records("clips", encounter_id=encounter_id)]
        record_custody(login, [{"sha256": row["original_sha256"]} for row in clips], PACK_EXPORTED,
                       pack_id=pack.pack_id, pack_sha256=pack.sha256, encounters=list(pack.encounter_ids))  # fmt: skip
        audit_object(
            request,
            f"pack:{pack.pack_id}",
            f"sha256 {pack.sha256}; {len(pack.encounter_ids)} encounters ({', '.join(pack.encounter_ids)}); "
            f"{pack.n_clips} clips",
        )
        return FileResponse(
            pack.path,
            media_type="application/zip",
            filename=pack.path.name,
            headers={"Cache-Control": "private, no-store"},
        )

    # -- officer trends (early intervention) ----------------------------------------------------------------------
    @app.get("/officers", name="view_officers")
    def officers(
        request: Request, login: OfficerViewer, window: str = "", period: str = "", unit: str = "", sort: str = ""
    ) -> Response:
        audit_object(request, "officers", f"window {window or '-'} period {period or '-'} unit {unit or '*'}")
        selection = _or_http(lambda: trends.choose(window, period))
        shown = officer_disclosure(login)
        listing = trends.listing(selection, unit, sort, shown)
        audit_object(request, "officers", f"{len(listing.rows)} officers, {listing.alerts} alerts; {selection.window} "
                     f"{selection.period or '-'}; unit {unit or '*'}; sort {listing.sort}")  # fmt: skip
        return page(request, "officers.html", login, listing=listing, identified=shown.identified)

    @app.get("/officers/{officer}", name="view_officer")
    def officer_page(
        request: Request, officer: str, login: OfficerViewer, window: str = "", period: str = ""
    ) -> Response:
        shown, officer_id, selection = officer_request(request, login, officer, window, period, "page")
        decisions = {key: row.decision for key, row in database.decisions().items()}
        view = trends.officer(officer_id, selection, data.flags(), decisions, shown)
        return page(request, "officer.html", login, view=view, identified=shown.identified)

    @app.get("/officers/{officer}/plot/{name}.png", name="view_officer_plot")
    def officer_plot(
        request: Request, officer: str, name: str, login: OfficerViewer, window: str = "", period: str = ""
    ) -> Response:
        shown, officer_id, selection = officer_request(request, login, officer, window, period, f"{name} plot")
        png = _or_http(lambda: trends.plot(officer_id, name, selection, shown))
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})

    # -- open data releases (drafts prepared by `bwc publish --draft`) -------------------------------------------
    def drafts_and_releases() -> tuple[list[Draft], list[dict[str, Any]]]:
        try:
            return list_drafts(store.root), list_releases(store.root)
        except PublishError as error:  # a damaged draft.json, or a draft released while the list was read
            raise HTTPException(409, f"the store's drafts cannot be listed: {error}") from None

    @app.get("/releases", name="view_releases")
    def releases(request: Request, login: Publisher, done: str = "") -> Response:
        audit_object(request, "releases")
        drafts, made = drafts_and_releases()
        # Only a release this store made is named back: the URL cannot make the page say anything else.
        record = next((row for row in made if done and row.get("release_id") == done), None)
        message = f"released {record['release_id']} (sha256 {record.get('sha256', '?')})" if record else ""
        audit_object(request, "releases", f"{len(drafts)} drafts, {len(made)} releases")
        return page(request, "releases.html", login, drafts=drafts, releases=made, message=message)

    @app.get("/releases/{draft_id}", name="view_release_draft")
    def release_preview(request: Request, draft_id: str, login: Publisher) -> Response:
        audit_object(request, f"draft:{draft_id}")
        try:
            draft = read_draft(store.root, draft_id)
            changelog = (draft.package_dir / CHANGELOG).read_text(encoding="utf-8")
            checksums = (draft.package_dir / CHECKSUMS).read_text(encoding="utf-8")
            tables = [
                _preview_table(draft_table(draft, name), name) for name in [*draft.summary.get("tables", []), "changes"]
            ]
        except PublishError as error:  # not a draft id, or no such draft
            raise HTTPException(404, str(error)) from None
        except OSError:  # released (moved away) while it was being read
            raise HTTPException(404, f"no draft {draft_id} (released or removed)") from None
        audit_object(request, f"draft:{draft_id}", f"preview; sha256 {draft.sha256}; {draft.release_id} for "
                     f"{draft.out_dir}; {len(draft.warnings)} warnings")  # fmt: skip
        return page(request, "release.html", login, draft=draft, changelog=changelog, checksums=checksums,
                    tables=tables, stale=stale(draft))  # fmt: skip

    @app.post("/releases/{draft_id}/release", name="release_draft")
    async def release_now(request: Request, draft_id: str, login: Publisher) -> Response:
        form = await checked_form(request, login)
        reviewed = str(form.get("sha256", ""))  # the package the reviewer saw: released only if it is still that one
        audit_object(request, f"draft:{draft_id}", f"release; reviewed sha256 {reviewed[:64]}")
        client = request.client.host if request.client else ""

        def publish() -> Any:
            with publishing:
                return release(store.root, draft_id, database=database, user=login.user, client=client,
                               expected_sha256=reviewed)  # fmt: skip

        try:
            released = await anyio.to_thread.run_sync(publish)
        except PublishError as error:  # release() has audited the refusal (action publish_release)
            request.state.audit |= {"detail": f"release refused: {error}"}
            raise HTTPException(error.status, str(error)) from None
        audit_object(request, f"draft:{draft_id}", f"released {released.release_id}; sha256 {released.sha256}")
        return RedirectResponse(f"/releases?done={quote(released.release_id)}", status_code=303)

    # -- admin ----------------------------------------------------------------------------------------------------
    @app.get("/admin/users", name="view_users")
    def users(request: Request, login: UserAdmin, done: str = "", user: str = "") -> Response:
        audit_object(request, "users")
        accounts = database.users()
        # Only a known action on an existing account is shown back: the URL cannot make the page say anything else.
        known = done in USER_ACTIONS and any(account.username == user for account in accounts)
        message = f"{user}: {USER_ACTIONS[done]}" if known else ""
        return page(request, "users.html", login, users=accounts, roles=ROLES, message=message)

    @app.post("/admin/users", name="manage_users")
    async def change_user(request: Request, login: UserAdmin) -> Response:
        form = await checked_form(request, login)
        action = str(form.get("action", ""))
        username = str(form.get("username", "")).strip().lower()
        role = str(form.get("role", ""))
        audit_object(request, f"user:{username}", f"{action} {role}".strip())
        if username == login.user.username and action in ("disable", "role"):
            raise HTTPException(400, "you cannot disable yourself or change your own role")
        try:
            if action == "add":
                await anyio.to_thread.run_sync(database.add_user, username, role, str(form.get("password", "")))
            elif action == "role":
                await anyio.to_thread.run_sync(database.set_role, username, role)
            elif action in ("disable", "enable"):
                await anyio.to_thread.run_sync(database.set_active, username, action == "enable")
            else:
                raise HTTPException(400, f"unknown action {action!r}")
        except AccountError as error:
            raise HTTPException(400, str(error)) from None
        return RedirectResponse(f"/admin/users?done={action}&user={quote(username)}", status_code=303)

    @app.get("/admin/audit", name="view_audit")
    def audit(
        request: Request,
        login: Auditor,
        username: str = "",
        action: str = "",
    ) -> Response:
        entries = database.audit_entries(limit=500, username=username or None, action=action or None)
        audit_object(request, "audit_log", f"user {username or '*'} action {action or '*'}")
        return page(request, "audit.html", login, entries=entries, username=username, action=action)

    @app.get("/admin/audit.csv", name="export_audit")
    def audit_csv(request: Request, login: Auditor) -> Response:
        entries = database.audit_entries()
        buffer = io.StringIO()
        write_csv(
            buffer, AUDIT_COLUMNS, ([getattr(entry, column) for column in AUDIT_COLUMNS] for entry in reversed(entries))
        )
        audit_object(request, "audit_log", f"{len(entries)} entries exported")
        return Response(
            buffer.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="bwc-audit.csv"', "Cache-Control": "no-store"},
        )

    return app


class AuditMiddleware:
    """Writes one audit entry per request (static assets aside): the route's name is the action, what the handler
    named (or the path parameters) the object, the status the outcome.

    The entry is written before the answer starts to go out, so nothing is seen or downloaded without its entry;
    when the entry cannot be written the request fails instead. A pure ASGI middleware rather than a decorator on
    each route, so that refusals the route never sees (no session, wrong role, unknown path) are audited the same
    way as what it did.
    """

    def __init__(
        self, app: Callable[..., Awaitable[None]], database: ReviewDatabase, session_hours: float, max_hours: float
    ) -> None:
        self.app = app
        self.database = database
        self.session_hours = session_hours
        self.max_hours = max_hours

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        written = False

        async def audit_then_send(message: MutableMapping[str, Any]) -> None:
            nonlocal written
            if message["type"] == "http.response.start" and not written:
                written = True
                await self._write(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, audit_then_send)
        finally:
            if not written:  # the app raised before answering: the server answers 500
                await self._write(scope, 500)

    async def _write(self, scope: MutableMapping[str, Any], code: int) -> None:
        route = scope.get("route")
        state = scope.get("state", {})
        action = state.get("audit_action") or getattr(route, "name", None) or "unknown_path"
        if action.startswith("static") and code < 400:  # assets served are noise; probes for others are not
            return
        noted = state.get("audit", {})
        user = state.get("user")
        if user is None and "login" not in state:
            # No route looked at the session (no such path, wrong method, body too large): name who it was anyway.
            token = HTTPConnection(scope).cookies.get(SESSION_COOKIE)
            if token:
                found = await anyio.to_thread.run_sync(
                    lambda: self.database.session(token, self.session_hours, self.max_hours, extend=False)
                )
                user = found.user if found else None
        parameters = scope.get("path_params", {})
        outcome = (
            noted.get("outcome")
            or OUTCOMES.get(code)
            or OUTCOMES.get(code // 100)
            or ("error" if code >= 500 else "invalid")
        )
        path = scope.get("path", "")
        await anyio.to_thread.run_sync(
            lambda: self.database.audit(
                action=action,
                outcome=outcome,
                status=code,
                user=user,
                object=noted.get("object") or " ".join(f"{k}:{v}" for k, v in parameters.items()) or path,
                detail=noted.get("detail", "") if route is not None else f"{scope.get('method')} {path}",
                client=(scope.get("client") or ("", 0))[0],
            )
        )


class RequestTooLarge(Exception):
    """A request body went past the limit while it was being read."""


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413: at once when ``Content-Length`` says so, else as soon as
    the bytes read pass it, so a 50 MB post is never read (or parsed as a form) to be refused afterwards."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(scope, send, f"request body of {declared.decode('latin-1')[:20]} bytes")
            return
        seen = 0
        started = False

        async def counted_receive() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise RequestTooLarge()
            return message

        async def tracked_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except RequestTooLarge:
            if started:
                raise
            await self._refuse(scope, send, f"request body over {self.max_bytes} bytes (streamed)")

    async def _refuse(self, scope: MutableMapping[str, Any], send: Any, what: str) -> None:
        state = scope.setdefault("state", {})
        state["audit_action"] = "request_too_large"
        state["audit"] = {"detail": f"{what}: over the {self.max_bytes // 1024} KiB limit (review.max_form_kb)"}
        body = b"request body too large"
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def _login_again(next_path: str, error: str) -> Response:
    """Back to the login page with an error code (the page shows only the fixed text of a known code)."""
    return RedirectResponse(f"/login?next={quote(next_path, safe='')}&error={error}", status_code=303)


def _safe_next(next_path: str, role: str) -> str:
    """A local path to return to after login (never another site), else the role's home page."""
    if next_path and next_path != "/" and SAFE_NEXT.fullmatch(next_path) and not next_path.startswith("//"):
        return next_path
    return HOME_BY_ROLE.get(role, "/queue")


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise HTTPException(400, f"not a date (YYYY-MM-DD): {text!r}") from None


def _filter_officer(
    data: ReviewData,
    query: QueueFilter,
    decisions: dict[tuple[str, str], Any],
    officer: str,
    identified: bool,
    label: Callable[[str | None, bool], str | None],
) -> tuple[list[dict[str, Any]], int]:
    """The queue for one officer, named by id (identified views) or by pseudonym (de-identified views)."""
    flags = data.flags()
    ids = {o for o in flags["officer_id"].dropna().unique() if label(o, identified) == officer}
    if not ids:
        return [], 0
    rows: list[dict[str, Any]] = []
    total = 0
    for officer_id in sorted(ids):  # at most one id matches a pseudonym; the loop keeps id and pseudonym alike
        page_rows, count = data.queue(QueueFilter(**{**query.__dict__, "officer": officer_id}), set(decisions))
        rows += page_rows
        total += count
    return rows, total


def _preview_table(frame: Any, name: str) -> dict[str, Any]:
    """The first :data:`PREVIEW_ROWS` rows of one table of a release draft, for its preview page."""
    return {
        "name": name,
        "columns": list(frame.columns),
        "rows": frame.head(PREVIEW_ROWS).to_numpy().tolist(),
        "total": len(frame),
    }


def _or_http(call: Callable[[], _T]) -> _T:
    """``call()``, with an unknown officer or plot answered 404 and a query outside the page's choices 400."""
    try:
        return call()
    except NotFound as error:
        raise HTTPException(404, str(error)) from None
    except BadQuery as error:
        raise HTTPException(400, str(error)) from None


async def _encounter_or_404(data: ReviewData, encounter_id: str) -> Any:
    try:
        return await anyio.to_thread.run_sync(data.encounter, encounter_id)
    except NotFound as error:
        raise HTTPException(404, str(error)) from None


def serve(store_root: Path, config: BwcConfig, host: str, port: int) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    # The client address (audit log, lockout) comes from X-Forwarded-For only when the peer is a trusted proxy.
    proxies = config.review.trusted_proxies
    for address in proxies:
        ipaddress.ip_network(address, strict=False)  # a typo fails here, not by trusting the wrong peer
    uvicorn.run(
        create_app(store_root, config),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) if proxies else None,
    )
