"""/beheer in a real browser: headless Chromium (Debian package) driven by Playwright, against
the app on koppelpunt's HTTP server (tests/http_server.py) on a free port. Log in, see counts
change after a post, go through the replay form and its confirmation, take a screenshot."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from koppelpunt.config import Settings
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.register import upsert_woonregister
from tests.conftest import auth
from tests.http_server import serving
from tests.messages import BSN, L, prognose_xml

CHROMIUM = os.environ.get("KOPPELPUNT_TEST_CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)),
        reason=f"no Chromium at {CHROMIUM}: install the Debian package `chromium` "
        "(make system-deps does, as root)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="Python package playwright is not installed (make install)",
    ),
]


@pytest_asyncio.fixture(loop_scope="session")
async def server(settings: Settings) -> AsyncIterator[str]:
    """The app on the real HTTP server (koppelpunt.api.server, free port) in this event loop."""
    async with serving(settings) as port:
        yield f"http://127.0.0.1:{port}"


async def _total(page: Any) -> int:
    return int((await page.inner_text("#totaal-signaleringen")).strip())


class TestBeheerInBrowser:
    async def test_login_counts_replay_screenshot(
        self, server: str, settings: Settings, tmp_path: Path
    ) -> None:
        """The whole operator flow in Chromium, ending in a screenshot of the overview."""
        from playwright.async_api import async_playwright

        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine).begin() as s:
                await upsert_woonregister(s, [(BSN[0], "0363", None), (BSN[1], "0599", None)])
        finally:
            await engine.dispose()

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(server + "/beheer")
                assert page.url.endswith("/beheer/login")

                await page.fill("#sleutel", "not-the-key")
                await page.click("#inloggen")
                assert "ongeldige beheersleutel" in await page.inner_text("#fout")

                await page.fill("#sleutel", "test-operator-key")
                await page.click("#inloggen")
                await page.wait_for_selector("#totaal-signaleringen")
                assert page.url.endswith("/beheer")
                [cookie] = await context.cookies()
                assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
                before = await _total(page)
                assert before == 0

                async with httpx.AsyncClient(base_url=server) as http:
                    r = await http.post(
                        "/v1/prognoses",
                        content=prognose_xml("browser-1", [L(bsn=BSN[0]), L(bsn=BSN[1])]),
                        headers={"Content-Type": "application/xml", **auth("koppelpunt-vo")},
                    )
                    assert r.status_code == 202, r.text

                await page.reload()
                assert await _total(page) == before + 2
                assert await page.locator('tr[data-gemeente="GM0363"]').count() == 1
                assert await page.locator("#signaleringen svg rect").count() >= 1
                await page.screenshot(path=str(tmp_path / "beheer-overzicht.png"), full_page=True)

                await page.fill("#replay-gemeente", "GM0363")
                await page.fill("#replay-since", "2020-01-01")
                await page.click("#replay-verder")
                await page.wait_for_selector("#bevestigen")
                assert "GM0363" in await page.inner_text("#replay-parameters")
                # The date as the CLI reads it: midnight Amsterdam time.
                assert await page.inner_text("#replay-vanaf") == "2020-01-01 00:00 (CET, Amsterdam)"
                await page.screenshot(path=str(tmp_path / "beheer-replay.png"))
                await page.click("#bevestigen")
                melding = await page.inner_text("#melding")
                assert "gestart" in melding, melding
                replay_id = await page.inner_text("#replay-id")
                await page.screenshot(path=str(tmp_path / "beheer-replay-gestart.png"))

                # The overview lists the replay; it finishes in the background.
                row = page.locator(f'tr[data-replay="{replay_id}"] .replay-status')
                for _ in range(300):
                    await page.goto(server + "/beheer")
                    if (await row.inner_text()).startswith("done"):
                        break
                    await asyncio.sleep(0.1)
                assert (await row.inner_text()).startswith("done")
                assert "1 / 1" in await page.inner_text(f'tr[data-replay="{replay_id}"]')
            finally:
                await browser.close()
        for name in ("beheer-overzicht.png", "beheer-replay.png", "beheer-replay-gestart.png"):
            png = (tmp_path / name).read_bytes()
            assert png.startswith(b"\x89PNG") and len(png) > 1000


class TestDocsOffline:
    @pytest.mark.parametrize(
        ("path", "title"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")]
    )
    async def test_docs_render_without_network(self, server: str, path: str, title: str) -> None:
        """/docs and /redoc render in Chromium with every request outside the service refused
        (as on a closed network): their scripts and styles come from the service itself. ReDoc's
        bundle links its own logo (an image) from its CDN; without it the page is complete."""
        from playwright.async_api import Route, async_playwright

        refused: list[str] = []

        async def only_the_service(route: Route) -> None:
            if route.request.url.startswith(server):
                await route.continue_()
            else:
                refused.append(f"{route.request.resource_type} {route.request.url}")
                await route.abort()

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                context = await browser.new_context()
                await context.route("**/*", only_the_service)
                page = await context.new_page()
                await page.goto(server + path)
                heading = await page.wait_for_selector(title, timeout=15_000)
                assert heading is not None
                assert "Koppelpunt gemeenten" in await heading.inner_text()
            finally:
                await browser.close()
        assert [r for r in refused if not r.startswith("image ")] == []


# Screenshots kept after the run (var/ is not in git): the /beheer page at each width.
ARTIFACTS = (
    Path(os.environ.get("KOPPELPUNT_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "var"))
    / "test-artifacts"
)


class TestBeheerNarrowAndDetails:
    async def test_usable_at_420_and_1280_and_lists_open_details(self, server: str) -> None:
        """At 420 px and 1280 px the page never scrolls sideways (wide tables scroll inside
        their section); a rejection and a replay in the lists open their detail pages."""
        from playwright.async_api import async_playwright

        async with httpx.AsyncClient(base_url=server) as http:
            refused = await http.post(
                "/v1/prognoses",
                content=b"<prognoses xmlns='urn:vva:prognose:1'><kapot/></prognoses>",
                headers={"Content-Type": "application/xml", **auth("koppelpunt-vo")},
            )
            assert refused.status_code == 400, refused.text
            started = await http.post(
                "/v1/beheer/replays",
                json={"gemeente": "GM0363", "dryRun": True},
                headers=auth("beheer"),
            )
            assert started.status_code == 202, started.text
            replay_id = started.json()["replayId"]

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                page = await context.new_page()
                await page.goto(server + "/beheer")
                await page.fill("#sleutel", "test-operator-key")
                await page.click("#inloggen")
                await page.wait_for_selector("#totaal-signaleringen")
                for width in (1280, 420):
                    await page.set_viewport_size({"width": width, "height": 900})
                    await page.goto(server + "/beheer")
                    overflow = await page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, f"{width} px: the page is {overflow} px too wide"
                    await page.screenshot(
                        path=str(ARTIFACTS / f"beheer-{width}.png"), full_page=True
                    )

                await page.click("#afwijzingen tbody tr a")
                await page.wait_for_selector("#redenen")
                assert "Afwijzing" in await page.inner_text("#detail h2")
                assert await page.locator("#redenen tbody tr").count() >= 1
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth"
                )
                assert overflow <= 0
                await page.screenshot(path=str(ARTIFACTS / "beheer-afwijzing-420.png"))

                await page.goto(server + "/beheer")
                await page.click(f'tr[data-replay="{replay_id}"] a')
                await page.wait_for_selector("#detail")
                assert replay_id in await page.inner_text("#detail h2")
                assert "GM0363" in await page.inner_text("#detail")
            finally:
                await browser.close()
        for name in ("beheer-1280.png", "beheer-420.png", "beheer-afwijzing-420.png"):
            png = (ARTIFACTS / name).read_bytes()
            assert png.startswith(b"\x89PNG") and len(png) > 1000
