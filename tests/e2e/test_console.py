"""The care-manager console in a real browser: Debian's Chromium, driven by Playwright, against the API
served by a real uvicorn on a database of its own.

The story: a care manager signs in, sees her queue, watches a smoke alarm arrive without the page
reloading, opens an alert, acknowledges it, notes and resolves it, sees the history; her other alert
changes while its page is open; she ticks off a call. A second care manager sees none of it and gets a
403 page for her alert. Screenshots for the README are saved under docs/console/.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from alerts.actions import act
from api.app import create_app
from api.console.session import COOKIE
from tests.integration.console_world import (
    World,
    raise_alert,
    run_async,
    run_first_step,
    seed_world,
    smoke_alert,
)
from tests.integration.databases import fresh_database
from vigil.alerting.lifecycle import Acknowledge, AddNote, Command
from vigil.settings import Settings

pytestmark = pytest.mark.infra

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# The live queue must show a new alert well within this (the feed is LISTEN/NOTIFY: it takes milliseconds).
LIVE_WITHIN_MS = 5000


class _Accounts:
    """Device registration's broker side, which the console never uses."""

    def ensure_device(self, device_id: str, password: str) -> str:
        return device_id

    def ensure_gateway(self, gateway_id: str, device_ids: list[str], password: str) -> str:
        return gateway_id


class Server:
    """The API app under a real uvicorn in a thread, on a free port."""

    def __init__(self, database_url: str) -> None:
        settings = Settings(_env_file=None, DATABASE_URL=database_url, VIGIL_ADMIN_TOKEN="console-admin-0123456789")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(create_app(settings, _Accounts()), host="127.0.0.1", port=self.port, log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="console-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def world() -> World:
    url = fresh_database("console_e2e")
    return seed_world(url, datetime.now(UTC))


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Server]:
    running = Server(world.database_url)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def laptop(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=LAPTOP, base_url=server.url)
    try:
        yield context
    finally:
        context.close()


def sign_in(page: Page, token: str) -> None:
    page.goto("/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("#alerts-heading")).to_be_visible()


def act_elsewhere(database_url: str, alert_id: str, command: Command) -> None:
    """Someone acting through another console or the API: a change the open page did not make."""

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await act(conn, alert_id, command, datetime.now(UTC))

    run_async(run())


def test_a_care_manager_works_an_alert_from_sign_in_to_resolution(
    laptop: BrowserContext, browser: Browser, server: Server, world: World
) -> None:
    page = laptop.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto("/")
    page.fill("#token", "vgl_not-a-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("That token was not accepted: the API token is unknown")

    sign_in(page, world.token_a)
    queue = page.locator("table.queue tbody tr")
    expect(queue).to_have_count(3)
    expect(page.locator(f'tr[data-alert-id="{world.tachycardia_id}"]')).to_contain_text("Fast heart rate")
    expect(page.locator(f'tr[data-alert-id="{world.tachycardia_id}"]')).to_contain_text("Care manager in ")
    expect(page.locator("table.queue")).not_to_contain_text("Beatrice")
    expect(page.locator(".live")).to_have_text("Live")

    # A smoke alarm raised now appears in the open queue, first (critical), without the page reloading.
    page.evaluate("window.notReloaded = true")
    smoke = smoke_alert(datetime.now(UTC))
    raise_alert(world.database_url, smoke, datetime.now(UTC))
    expect(page.locator(f'tr[data-alert-id="{smoke.alert_id}"]')).to_be_visible(timeout=LIVE_WITHIN_MS)
    expect(queue.first).to_contain_text("Smoke alarm")
    expect(queue.first).to_contain_text("Critical")
    # The scheduler runs its first step: the row moves on to the next one, again without a reload.
    run_first_step(world.database_url, smoke.alert_id)
    expect(queue.first).to_contain_text("Care manager in 0:", timeout=LIVE_WITHIN_MS)
    assert page.evaluate("window.notReloaded") is True
    page.wait_for_timeout(2600)  # the arrival highlight fades before the picture is taken
    page.screenshot(path=str(SCREENSHOTS / "queue.png"))

    page.locator(f'tr[data-alert-id="{world.tachycardia_id}"] a').click()
    expect(page.locator("h1")).to_contain_text("Fast heart rate")
    card = page.locator(".member-card")
    expect(card).to_contain_text("Margaret Hale")
    expect(card).to_contain_text("years")
    expect(card).to_contain_text("Edith Lennox")
    expect(card).to_contain_text("+44 20 7946 0312")
    expect(card).to_contain_text("above 130 bpm for 10 min")
    expect(card).to_contain_text("Battery: 64 %")
    expect(page.locator(".area-evidence")).to_contain_text("stayed above 130 bpm for 10 minutes in a row")
    assert len(page.locator("svg polyline.series").get_attribute("points").split()) > 100

    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".flash-ok")).to_have_text("Acknowledged: the ladder has stopped.")
    expect(page.locator(".summary")).to_contain_text("Acknowledged")
    expect(page.locator(".record")).to_contain_text("Stopped")
    page.fill("#note-text", "Called Margaret: she is resting and has taken her medication.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".timeline")).to_contain_text("she is resting")
    page.screenshot(path=str(SCREENSHOTS / "alert.png"), full_page=True)

    page.select_option("#outcome", "member_ok")
    page.fill("#resolve-note", "Heart rate back under 100 by 10:40.")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".flash-ok")).to_have_text("Resolved.")
    history = page.locator(".timeline li")
    expect(history.first).to_contain_text("Resolved")
    expect(history.first).to_contain_text("The member is OK")
    expect(history.first).to_contain_text("by Grace Hopper")
    expect(page.locator(".timeline")).to_contain_text("Acknowledged")
    expect(page.locator(".timeline")).to_contain_text("Raised")

    # A resolved alert refuses another acknowledgement: the page says why, it is no error page.
    page.evaluate(
        """id => { const f = document.createElement('form'); f.method = 'post';
                   f.action = '/alerts/' + id + '/acknowledge'; document.body.append(f); f.submit(); }""",
        world.tachycardia_id,
    )
    expect(page.locator(".flash-error")).to_contain_text("The alert is resolved already")

    # The water leak's page follows a change made elsewhere, without reloading.
    page.goto(f"/alerts/{world.leak_id}")
    expect(page.locator(".summary")).to_contain_text("Open")
    page.evaluate("window.notReloaded = true")
    act_elsewhere(world.database_url, world.leak_id, Acknowledge(by="care_manager:cm-grace"))
    expect(page.locator(".summary")).to_contain_text("Acknowledged", timeout=LIVE_WITHIN_MS)
    assert page.evaluate("window.notReloaded") is True

    page.get_by_role("link", name="← Queue").click()
    expect(page.locator(f'tr[data-alert-id="{world.tachycardia_id}"]')).to_have_count(0)
    task = page.locator(".task")
    expect(task).to_contain_text("call him about the water leak")
    task.get_by_role("button", name="Done").click()
    expect(page.locator(".flash-ok")).to_have_text("Call done.")
    expect(page.locator(".task")).to_have_count(0)
    assert errors == []


def test_the_queue_fits_a_phone(browser: Browser, server: Server, world: World) -> None:
    phone = browser.new_context(viewport=PHONE, base_url=server.url, device_scale_factor=2, is_mobile=True,
                                has_touch=True)
    try:
        page = phone.new_page()
        sign_in(page, world.token_a)
        expect(page.locator("table.queue tbody tr").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(SCREENSHOTS / "queue-phone.png"))
        page.goto(f"/alerts/{world.leak_id}")
        expect(page.locator(".member-card")).to_contain_text("Arthur Dent")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        phone.close()


def test_another_care_manager_sees_none_of_it(browser: Browser, server: Server, world: World) -> None:
    context = browser.new_context(viewport=LAPTOP, base_url=server.url)
    try:
        page = context.new_page()
        sign_in(page, world.token_b)
        expect(page.locator("table.queue tbody tr")).to_have_count(1)
        expect(page.locator("table.queue")).to_contain_text("Fall")
        # Her open stream hears nothing of the other care manager's alerts.
        page.evaluate("""() => { window.heard = [];
            const source = new EventSource('/console/events');
            source.addEventListener('alert', e => window.heard.push(e.data)); }""")
        page.wait_for_timeout(300)
        act_elsewhere(world.database_url, world.leak_id, AddNote(by="care_manager:cm-grace", text="Plumber booked."))
        page.wait_for_timeout(1000)
        assert page.evaluate("window.heard") == []

        response = page.goto(f"/alerts/{world.tachycardia_id}")
        assert response is not None and response.status == 403
        expect(page.locator("h1")).to_have_text("Not your member")
        expect(page.locator("main")).to_contain_text("not assigned to you")
        expect(page.locator("main")).not_to_contain_text("Margaret")
    finally:
        context.close()


def _blocks(response: httpx.Response) -> Iterator[list[str]]:
    """The event stream's blocks, each its lines up to the blank line that ends it."""
    block: list[str] = []
    for line in response.iter_lines():
        if line:
            block.append(line)
        elif block:
            yield block
            block = []


def test_the_event_stream_resyncs_only_a_page_that_may_have_missed_something(server: Server, world: World) -> None:
    with httpx.Client(base_url=server.url, cookies={COOKIE: world.token_a}, timeout=5) as grace, \
            httpx.Client(base_url=server.url, cookies={COOKIE: world.token_b}, timeout=5) as alan:
        position = re.search(r'data-feed="([^"]+)"', grace.get("/").text).group(1)
        with grace.stream("GET", f"/console/events?since={position}") as mine, \
                alan.stream("GET", "/console/events", headers={"Last-Event-ID": position}) as theirs:
            grace_events, alan_events = _blocks(mine), _blocks(theirs)
            # Both read at the feed's position: no resync, only the reconnection delay.
            assert next(grace_events) == ["retry: 500"]
            assert next(alan_events) == ["retry: 500"]
            act_elsewhere(world.database_url, world.leak_id, AddNote(by="care_manager:cm-grace", text="Dried out."))
            id_line, *event = next(grace_events)
            assert event == ["event: alert", f"data: {world.leak_id}"]
            assert id_line.startswith("id: ") and id_line != f"id: {position}"
            # The other care manager learns only that the feed moved on: no event, no alert id.
            assert next(alan_events) == [id_line]
        # A page read at a position the feed has left since is told to reload.
        with grace.stream("GET", f"/console/events?since={position}") as again:
            events = _blocks(again)
            assert next(events) == ["retry: 500"]
            assert next(events)[1:] == ["event: resync", "data: "]
