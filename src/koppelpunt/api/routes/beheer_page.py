"""The /beheer web pages: a small server-rendered overview for operators (role operator).

Login with the operator key, either per request (Authorization: Bearer …) or once through the
login form, which sets a signed session cookie (HMAC-SHA256, HttpOnly, SameSite=Strict, Secure
over https). Forms carry a CSRF token bound to the session (synchronizer token) on top of
SameSite=Strict. Charts are inline SVG made here, so the page works offline (no CDN, no script).

Shows per gemeente the signaleringen per day and type, the refused messages with their reasons,
the outbox backlog and relay state, consumer lag, records parked while the woongemeente lookup
was down, aanmeldingen with a status transition outside the legal flow, the recent replays, and
a replay form with a confirmation step. The form's dates mean what they mean on the CLI: Dutch
time (Europe/Amsterdam), `until` not included (operations/moments.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.api.auth import Role, SenderRegistry
from koppelpunt.api.deps import runtime_of
from koppelpunt.errors import AuthenticationError
from koppelpunt.masking import mask_error_text
from koppelpunt.operations.moments import LOCAL, parse_moment
from koppelpunt.runtime import Runtime
from koppelpunt.store import leerlingen
from koppelpunt.store import outbox as outbox_repo
from koppelpunt.store import parked as parked_repo
from koppelpunt.store.berichten import list_afwijzingen
from koppelpunt.store.tables import afwijzingen, outbox, signaleringen
from koppelpunt.store.verwerkingenlog import LogCipher

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


# --- session ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BeheerSession:
    operator: str
    csrf: str | None  # None when authenticated by header (no cookie, so no CSRF risk)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _session_key(runtime: Runtime) -> bytes:
    return LogCipher.from_settings(runtime.settings).session_key


def make_cookie(key: bytes, operator: str, minutes: int) -> str:
    payload = json.dumps(
        {"o": operator, "e": int(time.time()) + minutes * 60, "c": secrets.token_urlsafe(24)},
        separators=(",", ":"),
    ).encode("utf-8")
    body = _b64(payload)
    return body + "." + _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def read_cookie(key: bytes, value: str) -> BeheerSession | None:
    body, _, signature = value.partition(".")
    expected = _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        return None
    try:
        data = json.loads(_unb64(body))
    except ValueError:
        return None
    if not isinstance(data, dict) or int(data.get("e", 0)) < time.time():
        return None
    return BeheerSession(str(data["o"]), str(data["c"]))


def _authenticate(request: Request) -> BeheerSession | None:
    """The operator behind this request (header or session cookie), or None."""
    senders = cast(SenderRegistry, request.state.senders)
    header = request.headers.get("authorization")
    if header:
        try:
            sender = senders.authenticate(header)
        except AuthenticationError:
            return None
        return BeheerSession(sender.name, None) if sender.role is Role.OPERATOR else None
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return read_cookie(_session_key(runtime_of(request)), cookie)
    return None


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


def _csrf_ok(session: BeheerSession, form: dict[str, str]) -> bool:
    if session.csrf is None:
        return True
    return hmac.compare_digest(form.get("csrf", ""), session.csrf)


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


@router.post("/login")
async def login(request: Request) -> Response:
    if _cross_origin(request):
        return _page("message.html", status_code=403, titel="Geweigerd", tekst="Andere herkomst.")
    form = await _form(request)
    senders = cast(SenderRegistry, request.state.senders)
    try:
        sender = senders.authenticate(f"Bearer {form.get('sleutel', '').strip()}")
    except AuthenticationError:
        sender = None
    if sender is None or sender.role is not Role.OPERATOR:
        log.info("beheer_login_failed")
        return _page("login.html", status_code=401, fout="Onbekende of ongeldige beheersleutel.")
    runtime = runtime_of(request)
    minutes = runtime.settings.beheer_session_minutes
    response = RedirectResponse("/beheer", status_code=303)
    response.set_cookie(
        COOKIE,
        make_cookie(_session_key(runtime), sender.name, minutes),
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
    response = _to_login()
    response.delete_cookie(COOKIE, path="/beheer")
    return response


# --- overview ---------------------------------------------------------------------------------


async def signaleringen_per_dag(
    session: AsyncSession, since: date
) -> dict[str, dict[str, dict[str, int]]]:
    """{gemeentecode: {type: {YYYY-MM-DD: count}}} from `since` (UTC days) on."""
    day = func.date(signaleringen.c.created_at)
    rows = await session.execute(
        select(signaleringen.c.gemeentecode, signaleringen.c.type, day, func.count())
        .where(signaleringen.c.created_at >= datetime.combine(since, datetime.min.time(), UTC))
        .group_by(signaleringen.c.gemeentecode, signaleringen.c.type, day)
    )
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for gemeente, soort, dag, n in rows:
        out[gemeente][soort][str(dag)[:10]] = int(n)
    return out


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


async def _afwijzingen_per_status(session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(
        select(afwijzingen.c.status_code, func.count()).group_by(afwijzingen.c.status_code)
    )
    return {int(code): int(n) for code, n in rows}


async def _falend(session: AsyncSession) -> int:
    n = await session.scalar(
        select(func.count())
        .select_from(outbox)
        .where(outbox.c.published_at.is_(None), outbox.c.attempts > 0)
    )
    return int(n or 0)


async def _lag(runtime: Runtime) -> list[dict[str, Any]] | None:
    """Consumer lag per gemeente topic and group; None when not available in this build."""
    try:
        from koppelpunt.operations import offsets  # type: ignore[attr-defined, unused-ignore]
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
    session_info = _authenticate(request)
    if session_info is None:
        return _to_login()
    runtime = runtime_of(request)
    today = runtime.clock().astimezone(UTC).date()
    since = today - timedelta(days=DAYS - 1)
    days = [(since + timedelta(days=i)).isoformat() for i in range(DAYS)]
    async with runtime.sessions() as session:
        counts = await signaleringen_per_dag(session, since)
        refused = await recente_afwijzingen(session)
        per_status = await _afwijzingen_per_status(session)
        backlog = await outbox_repo.backlog(session)
        oldest = await outbox_repo.oldest_unpublished(session)
        falend = await _falend(session)
        geparkeerd = await parked_repo.count_parked(session)
        parked_rows = await parked_repo.list_parked(session, limit=LIST_LIMIT)
        buiten_flow = await leerlingen.list_buiten_flow(session, limit=LIST_LIMIT)
    from koppelpunt.operations.replay import list_replays

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
    session_info = _authenticate(request)
    if session_info is None:
        return _to_login()
    form = await _form(request)
    if _cross_origin(request) or not _csrf_ok(session_info, form):
        return _page(
            "message.html", status_code=403, titel="Geweigerd", tekst="Ongeldig formulier."
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
    from koppelpunt.operations.replay import ReplayRequest, start_replay

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
