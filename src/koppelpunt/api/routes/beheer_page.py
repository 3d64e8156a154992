"""The /beheer web pages: a small server-rendered overview for operators (role operator).

Login with the operator key, either per request (Authorization: Bearer …) or once through the
login form, which opens a server-side session (store/beheer_sessions.py): the cookie holds a
random id, signed (api/beheer_signing.py; HttpOnly, SameSite=Strict, Secure over https,
Path=/beheer), checked against the database and the senders file on every request; logout
revokes it. Forms carry a signed CSRF token bound to the session (synchronizer token) on top of
SameSite=Strict and an Origin check. Failed logins are throttled per address and per key
(api/auth.py AuthThrottle): 429 with Retry-After. Charts are inline SVG made here, so the page
works offline (no CDN, no script).

Shows per gemeente the signaleringen per day and type, the refused messages with their reasons,
the outbox backlog and relay state, consumer lag, records parked while the woongemeente lookup
was down, aanmeldingen with a status transition outside the legal flow, the recent replays, and
a replay form with a confirmation step. The form's dates mean what they mean on the CLI: Dutch
time (Europe/Amsterdam), `until` not included (app/moments.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.api.auth import Kind, Role, SenderRegistry, key_id
from koppelpunt.api.beheer_signing import BeheerSigning
from koppelpunt.api.deps import authenticate, runtime_of
from koppelpunt.app.moments import LOCAL, parse_moment
from koppelpunt.errors import AuthenticationError, NotFoundError, TooManyRequestsError
from koppelpunt.masking import mask_error_text
from koppelpunt.runtime import Runtime
from koppelpunt.store import beheer_sessions, leerlingen
from koppelpunt.store import outbox as outbox_repo
from koppelpunt.store import overview as overview_repo
from koppelpunt.store import parked as parked_repo
from koppelpunt.store.berichten import list_afwijzingen

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/beheer", include_in_schema=False)

COOKIE = "koppelpunt_beheer"
DAYS = 14  # the window of the signaleringen chart
LIST_LIMIT = 25  # rows shown of parked records and aanmeldingen buiten de flow
MAX_FORM_BYTES = 8 * 1024

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Fixed colours per signalering type (others get grey), readable on white and for most forms
# of colour blindness (Okabe-Ito palette).
COLOURS = {
    "PROGNOSE": "#0072B2",
    "AANMELDSTATUS": "#E69F00",
    "NIET_AANGEMELD": "#D55E00",
    "GEEN_PLAATSING": "#CC79A7",
    "NIET_INGESCHREVEN": "#009E73",
    "OVERDRACHT": "#56B4E9",
    "VERHUISD": "#F0E442",
}


# --- session ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BeheerSession:
    operator: str
    csrf: str | None  # a fresh form token; None when authenticated by header (no cookie, no CSRF)
    session_id: str | None = None  # the cookie's id; None when authenticated by header
    digest: str | None = None  # what the database keeps of the id; the form tokens' binding


def _signing(request: Request) -> BeheerSigning:
    runtime = runtime_of(request)
    return BeheerSigning(runtime.settings.beheer_secret_key.get_secret_value(), runtime.clock)


async def _authenticate(request: Request) -> BeheerSession | None:
    """The operator behind this request (header or session cookie), or None.

    A cookie is a signed random id: the signature must hold and be younger than the session's
    term, and the session must exist in the database, be neither revoked nor expired, and its
    operator must still be in the senders file with the same key."""
    header = request.headers.get("authorization")
    if header:
        try:
            sender = authenticate(request, header)
        except AuthenticationError:
            return None
        return BeheerSession(sender.name, None) if sender.role is Role.OPERATOR else None
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    runtime = runtime_of(request)
    signing = _signing(request)
    session_id = signing.session_id(cookie, runtime.settings.beheer_session_minutes * 60)
    if session_id is None:
        return None
    async with runtime.sessions() as session:
        row = await beheer_sessions.find(session, session_id, runtime.clock())
    if row is None:
        return None
    senders = cast(SenderRegistry, request.state.senders)
    if senders.operator_key_id(row.operator) != row.key_id:
        log.info("beheer_session_operator_gone", operator=row.operator)
        return None
    digest = beheer_sessions.digest(session_id)
    return BeheerSession(row.operator, signing.form_token(digest), session_id, digest)


def _to_login() -> RedirectResponse:
    return RedirectResponse("/beheer/login", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (small; no multipart needed)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _cross_origin(request: Request) -> bool:
    """A browser POST from another site (Origin header differs from this host): refused.

    Defence in depth next to SameSite=Strict and the CSRF token; also stops login CSRF.
    `Origin: null` (a sandboxed or no-referrer page) counts as another origin."""
    origin = request.headers.get("origin")
    return origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}"


def _csrf_ok(request: Request, session: BeheerSession, form: dict[str, str]) -> bool:
    """A form token of this session, signed at most an hour ago (api/beheer_signing.py)."""
    if session.digest is None:
        return True  # authenticated by header: no cookie, so nothing another site could use
    return _signing(request).form_token_valid(form.get("csrf", ""), session.digest)


def _page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            # Nothing external: no scripts at all, styles inline, images are inline SVG.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            # same-origin, not no-referrer: with no-referrer the browser sends `Origin: null`
            # on our own form posts, and "null" is what a hostile page can send too.
            "Referrer-Policy": "same-origin",
        },
    )


# --- login ------------------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _page("login.html", fout=None)


def _throttled_page(exc: TooManyRequestsError) -> HTMLResponse:
    response = _page(
        "login.html",
        status_code=429,
        fout="Te veel mislukte pogingen vanaf dit adres of met deze sleutel. Probeer het over "
        f"{exc.retry_after} seconden opnieuw.",
    )
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    if _cross_origin(request):
        return _page("message.html", status_code=403, titel="Geweigerd", tekst="Andere herkomst.")
    form = await _form(request)
    key = form.get("sleutel", "").strip()
    try:
        sender = authenticate(request, f"Bearer {key}", kind=Kind.BEHEER_LOGIN, role=Role.OPERATOR)
    except TooManyRequestsError as exc:
        return _throttled_page(exc)
    except AuthenticationError:
        log.info("beheer_login_failed")
        return _page("login.html", status_code=401, fout="Onbekende of ongeldige beheersleutel.")
    runtime = runtime_of(request)
    minutes = runtime.settings.beheer_session_minutes
    async with runtime.sessions.begin() as session:
        session_id = await beheer_sessions.create(
            session, sender.name, key_id(key), runtime.clock(), timedelta(minutes=minutes)
        )
    response = RedirectResponse("/beheer", status_code=303)
    response.set_cookie(
        COOKIE,
        _signing(request).cookie(session_id),
        max_age=minutes * 60,
        path="/beheer",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    log.info("beheer_login", operator=sender.name)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session: revoked in the database, so the old cookie opens nothing any more.

    No form token needed: ending a session is harmless, and another site can neither post
    here with the cookie (SameSite=Strict) nor with its own Origin (refused)."""
    if _cross_origin(request):
        return _page("message.html", status_code=403, titel="Geweigerd", tekst="Andere herkomst.")
    session_info = await _authenticate(request)
    if session_info is not None and session_info.session_id is not None:
        runtime = runtime_of(request)
        async with runtime.sessions.begin() as session:
            await beheer_sessions.revoke(session, session_info.session_id, runtime.clock())
        log.info("beheer_logout", operator=session_info.operator)
    response = _to_login()
    response.delete_cookie(COOKIE, path="/beheer", httponly=True, samesite="strict")
    return response


# --- overview ---------------------------------------------------------------------------------


async def recente_afwijzingen(session: AsyncSession, limit: int = 25) -> list[dict[str, Any]]:
    rows = await list_afwijzingen(session, limit=limit)
    out = []
    for r in rows:
        reasons = r.reasons if isinstance(r.reasons, list) else []
        # Masked again here: rows stored before reasons were masked at the source.
        redenen = [
            mask_error_text(str(x.get("reden", x)) if isinstance(x, dict) else str(x))
            for x in reasons
        ]
        out.append(
            {
                "id": r.id,
                "ontvangen": r.received_at,
                "afzender": r.sender or "?",
                "soort": r.soort or "?",
                "berichtId": r.bericht_id or "",
                "status": r.status_code,
                "redenen": redenen,
            }
        )
    return out


async def _lag(runtime: Runtime) -> list[dict[str, Any]] | None:
    """Consumer lag per gemeente topic and group; None when not available in this build."""
    try:
        from koppelpunt.app import offsets  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        return None
    try:
        rows = await offsets.consumer_lag(runtime.settings, timeout=5.0)
    except Exception as exc:  # the page must render while Kafka is down
        log.warning("beheer_lag_unavailable", error=type(exc).__name__)
        return None
    return [row.as_json() for row in rows]


def bar_chart(
    days: list[str], per_type: dict[str, dict[str, int]], *, small: bool = False
) -> Markup:
    """A stacked bar chart (one bar per day, one colour per type) as inline SVG; `small` is a
    sparkline for a table row (no day labels)."""
    width, height, left, bottom = (320, 48, 24, 4) if small else (640, 180, 36, 28)
    totals = [sum(per_type[t].get(d, 0) for t in per_type) for d in days]
    top = max([*totals, 1])
    slot = (width - left) / max(len(days), 1)
    bar = max(slot * 0.7, 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="Signaleringen per dag en type">',
        f'<text x="2" y="12" font-size="10">{top}</text>',
        f'<text x="2" y="{height - bottom}" font-size="10">0</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#999"/>',
    ]
    for i, d in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        y = float(height - bottom)
        for t in sorted(per_type):
            n = per_type[t].get(d, 0)
            if not n:
                continue
            h = n / top * (height - bottom - 8)
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(t, "#999999")}"><title>{escape(d)} {escape(t)}: {n}'
                "</title></rect>"
            )
        if not small and (i % 2 == 0 or len(days) <= 7):
            parts.append(
                f'<text x="{x:.1f}" y="{height - 10}" font-size="9">{escape(d[5:])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


@router.get("")
async def overview(request: Request) -> Response:
    session_info = await _authenticate(request)
    if session_info is None:
        return _to_login()
    runtime = runtime_of(request)
    today = runtime.clock().astimezone(UTC).date()
    since = today - timedelta(days=DAYS - 1)
    days = [(since + timedelta(days=i)).isoformat() for i in range(DAYS)]
    async with runtime.sessions() as session:
        counts = await overview_repo.signaleringen_per_dag(session, since)
        refused = await recente_afwijzingen(session)
        per_status = await overview_repo.afwijzingen_per_status(session)
        backlog = await outbox_repo.backlog(session)
        oldest = await outbox_repo.oldest_unpublished(session)
        falend = await overview_repo.failing_count(session)
        geparkeerd = await parked_repo.count_parked(session)
        parked_rows = await parked_repo.list_parked(session, limit=LIST_LIMIT)
        buiten_flow = await leerlingen.list_buiten_flow(session, limit=LIST_LIMIT)
    from koppelpunt.app.replay import list_replays

    replays = await list_replays(runtime, limit=10)
    all_types: dict[str, dict[str, int]] = defaultdict(dict)
    gemeenten = []
    for code in sorted(counts):
        per_type = counts[code]
        for t, by_day in per_type.items():
            for d, n in by_day.items():
                all_types[t][d] = all_types[t].get(d, 0) + n
        gemeenten.append(
            {
                "code": code,
                "perType": {t: sum(v.values()) for t, v in sorted(per_type.items())},
                "totaal": sum(sum(v.values()) for v in per_type.values()),
                "grafiek": bar_chart(days, per_type, small=True),
            }
        )
    relay = getattr(request.state, "relay", None)
    return _page(
        "overview.html",
        operator=session_info.operator,
        csrf=session_info.csrf or "",
        days=DAYS,
        totaal=sum(g["totaal"] for g in gemeenten),
        grafiek=bar_chart(days, all_types),
        kleuren={t: COLOURS.get(t, "#999999") for t in sorted(all_types)},
        gemeenten=gemeenten,
        afwijzingen=refused,
        perStatus=per_status,
        backlog=backlog,
        oudste=oldest,
        falend=falend,
        relay={
            "actief": relay is not None,
            "laatsteFout": getattr(relay, "last_error", None),
            "laatstGepubliceerd": getattr(relay, "last_published_at", None),
        },
        lag=await _lag(runtime),
        geparkeerd=geparkeerd,
        geparkeerdeRecords=parked_rows,
        buitenFlow=buiten_flow,
        replays=replays,
        nu=runtime.clock(),
    )


# --- details: each list item of the overview opens here ----------------------------------------

# Path numbers are database keys: anything outside a BIGINT is simply not there.
_MAX_KEY = 2**63 - 1


def _not_found(what: str) -> HTMLResponse:
    return _page(
        "message.html", status_code=404, titel="Niet gevonden", tekst=f"{what} bestaat niet."
    )


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@router.get("/afwijzingen/{rejection_id}")
async def rejection_detail(request: Request, rejection_id: str) -> Response:
    """One rejected message (12) or record (R34) with every reason."""
    session_info = await _authenticate(request)
    if session_info is None:
        return _to_login()
    from koppelpunt.app.rejected import get_rejection

    digits = rejection_id.removeprefix("R")
    if not (digits.isascii() and digits.isdigit()) or int(digits) > _MAX_KEY:
        return _not_found(f"Afwijzing {rejection_id}")
    try:
        rejection, _ = await get_rejection(runtime_of(request), rejection_id)
    except NotFoundError:
        return _not_found(f"Afwijzing {rejection_id}")
    # Masked here too: rows stored before the parse step stopped quoting values may hold one.
    redenen = [
        {**r, "reden": mask_error_text(str(r.get("reden", "")))}
        if isinstance(r, dict)
        else {"reden": mask_error_text(str(r))}
        for r in rejection.reasons
    ]
    return _page(
        "detail.html",
        operator=session_info.operator,
        titel=f"Afwijzing {rejection.id}",
        terug="afwijzingen",
        velden=[
            ("Soort", "bericht" if rejection.kind == "bericht" else "record"),
            ("Ontvangen", _utc(rejection.received_at)),
            ("Afzender", rejection.sender),
            ("Berichtsoort", rejection.soort),
            ("berichtId", rejection.bericht_id),
            ("Status", rejection.status_code),
            ("Record (0-based)", rejection.record_index),
            ("Content-Type", rejection.content_type),
            ("Grootte (bytes)", rejection.raw_size),
        ],
        redenen=redenen,
    )


@router.get("/geparkeerd/{bericht_pk}/{record_index}")
async def parked_detail(request: Request, bericht_pk: str, record_index: str) -> Response:
    """One record waiting for the woongemeente lookup (no BSN: the message holds it)."""
    session_info = await _authenticate(request)
    if session_info is None:
        return _to_login()
    numbers = (bericht_pk, record_index)
    if not all(n.isascii() and n.isdigit() and int(n) <= _MAX_KEY for n in numbers):
        return _not_found("Dit geparkeerde record")
    runtime = runtime_of(request)
    async with runtime.sessions() as session:
        record = await parked_repo.get_parked(session, int(bericht_pk), int(record_index))
    if record is None:
        return _not_found("Dit geparkeerde record")
    return _page(
        "detail.html",
        operator=session_info.operator,
        titel=f"Geparkeerd record {record.record_index} van {record.bericht_id}",
        terug="geparkeerd",
        velden=[
            ("berichtId", record.bericht_id),
            ("Soort", record.soort),
            ("Record (0-based)", record.record_index),
            ("Ontvangen", _utc(record.received_at)),
            ("Regelversie", record.rules_version),
            ("Volgende stap", "de service beslist opnieuw; of `koppelpunt parked retry`"),
        ],
    )


@router.get("/replays/{replay_id}")
async def replay_detail(request: Request, replay_id: str) -> Response:
    """One replay: parameters, progress and error."""
    session_info = await _authenticate(request)
    if session_info is None:
        return _to_login()
    from koppelpunt.app.replay import get_replay

    if len(replay_id) > 64:
        return _not_found("Deze replay")
    try:
        replay = await get_replay(runtime_of(request), replay_id)
    except NotFoundError:
        return _not_found("Deze replay")
    return _page(
        "detail.html",
        operator=session_info.operator,
        titel=f"Replay {replay.replay_id}",
        terug="replays",
        velden=[
            ("Gemeente", replay.gemeentecode),
            ("Vanaf", _shown(replay.since, "het begin")),
            ("Tot", _shown(replay.until, "nu")),
            ("Type", replay.type or "alle"),
            ("Naar topic", replay.to_topic or "het topic van de gemeente"),
            ("Alleen tellen", "ja" if replay.dry_run else "nee"),
            ("Status", replay.status),
            ("Gepubliceerd", f"{replay.published} van {replay.total}"),
            ("Fout", replay.error),
            ("Aangevraagd door", replay.requested_by),
            ("Aangemaakt", _utc(replay.created_at)),
            ("Bijgewerkt", _utc(replay.updated_at)),
        ],
    )


# --- replay -----------------------------------------------------------------------------------


def _replay_params(form: dict[str, str]) -> dict[str, str]:
    return {
        k: form.get(k, "").strip()[:64]
        for k in ("gemeente", "since", "until", "type", "dry_run", "to_topic")
    }


def _parse_day(text: str) -> datetime | None:
    """A form date (or date-time) as the CLI reads it: no offset means Amsterdam time."""
    return parse_moment(text) if text else None


def _shown(moment: datetime | None, empty: str) -> str:
    if moment is None:
        return empty
    local = moment.astimezone(LOCAL)
    return local.strftime("%Y-%m-%d %H:%M") + f" ({local.tzname()}, Amsterdam)"


async def _operator_post(request: Request) -> tuple[BeheerSession, dict[str, str]] | Response:
    """An operator's form POST: logged in, same origin and a valid CSRF token; else the answer
    to send instead (the login page, or 403)."""
    session_info = await _authenticate(request)
    if session_info is None:
        return _to_login()
    form = await _form(request)
    if _cross_origin(request) or not _csrf_ok(request, session_info, form):
        return _page(
            "message.html",
            status_code=403,
            titel="Geweigerd",
            tekst="Ongeldig of verlopen formulier: open de pagina opnieuw.",
        )
    return session_info, form


@router.post("/replay")
async def replay_confirm(request: Request) -> Response:
    """Step 1: show what will be replayed and ask for confirmation (nothing happens yet)."""
    checked = await _operator_post(request)
    if isinstance(checked, Response):
        return checked
    session_info, form = checked
    params = _replay_params(form)
    if not params["gemeente"]:
        return _page(
            "message.html", status_code=400, titel="Replay", tekst="Kies een gemeente (GM0363)."
        )
    try:
        since, until = _parse_day(params["since"]), _parse_day(params["until"])
    except ValueError as exc:
        return _page("message.html", status_code=400, titel="Replay", tekst=str(exc))
    return _page(
        "replay_confirm.html",
        operator=session_info.operator,
        csrf=session_info.csrf or "",
        params=params,
        vanaf=_shown(since, "begin"),
        tot=_shown(until, "nu"),
    )


@router.post("/replay/bevestigen")
async def replay_start(request: Request) -> Response:
    """Step 2: start the replay (operations.replay.start_replay) in the background."""
    checked = await _operator_post(request)
    if isinstance(checked, Response):
        return checked
    session_info, form = checked
    params = _replay_params(form)
    from koppelpunt.app.replay import ReplayRequest, start_replay

    try:
        request_obj = ReplayRequest(
            gemeente=params["gemeente"],
            since=_parse_day(params["since"]),
            until=_parse_day(params["until"]),
            type=params["type"] or None,
            to_topic=params["to_topic"] or None,
            dry_run=params["dry_run"] == "1",
            requested_by=session_info.operator,
        )
        replay_id = await start_replay(runtime_of(request), request_obj)
    except ValueError as exc:
        return _page("message.html", status_code=400, titel="Replay", tekst=str(exc))
    return _page(
        "message.html",
        titel="Replay gestart",
        tekst=f"Replay {replay_id} voor {params['gemeente']} is gestart.",
        replay_id=replay_id,
    )


# --- RMC-effectrapportage ---------------------------------------------------------------------

AGE_LABELS = {"onder18": "< 18", "18tot23": "18-22", "23plus": "23+", "onbekend": "onbekend"}


def age_chart(title: str, jongeren: dict[str, int | str]) -> Markup:
    """Bars of distinct young people per age group (the region total) as inline SVG; a masked
    cell (<N) is drawn as an outline, so the chart shows no more than the table."""
    width, height, bottom = 360, 120, 20
    values = [v for v in jongeren.values() if isinstance(v, int)]
    groups = [g for g in AGE_LABELS if g in jongeren]
    top = max([*values, 1])
    slot = width / max(len(groups), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="360" role="img" aria-label="{escape(title)}: jongeren per leeftijdsgroep">'
    ]
    for i, g in enumerate(groups):
        value = jongeren[g]
        x = i * slot + slot * 0.15
        label = f"{AGE_LABELS[g]}: {value}"
        if isinstance(value, int):
            h = value / top * (height - bottom - 16)
            parts.append(
                f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS.get(title, "#154273")}">'
                f"<title>{escape(label)}</title></rect>"
            )
        else:
            parts.append(
                f'<rect x="{x:.1f}" y="{height - bottom - 8}" width="{slot * 0.7:.1f}" '
                f'height="8" fill="none" stroke="#999"><title>{escape(label)}</title></rect>'
            )
        parts.append(f'<text x="{x:.1f}" y="{height - 5}" font-size="10">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


@router.get("/rapportage")
async def rapportage_page(request: Request) -> Response:
    """The RMC-effectrapportage of a region and schooljaar: a table and a chart per type."""
    session_info = await _authenticate(request)
    if session_info is None:
        return _to_login()
    from koppelpunt.app.rapportage import RapportageError, rapportage
    from koppelpunt.pipeline.rapportage import report_csv_rows

    regio_text = request.query_params.get("rmcRegio", "")[:8]
    schooljaar = request.query_params.get("schooljaar", "")[:16]
    context: dict[str, Any] = {
        "operator": session_info.operator,
        "regio": regio_text,
        "schooljaar": schooljaar,
        "report": None,
        "fout": None,
    }
    if not regio_text and not schooljaar:
        return _page("rapportage.html", **context)
    if not (regio_text.isascii() and regio_text.isdigit()):
        return _page("rapportage.html", 400, **{**context, "fout": "RMC-regio is een nummer"})
    try:
        report = await rapportage(
            runtime_of(request),
            regio=int(regio_text),
            schooljaar=schooljaar,
            actor=session_info.operator,
        )
    except RapportageError as exc:
        return _page("rapportage.html", 422, **{**context, "fout": exc.detail})
    rows = report_csv_rows(report)
    charts = [
        (t, age_chart(t, measures["jongeren"]))
        for t, measures in report["totaal"].items()
        if measures["signaleringen"]["totaal"] != 0
    ]
    return _page(
        "rapportage.html",
        **{**context, "report": report, "header": rows[0], "rows": rows[1:]},
        charts=charts,
    )
