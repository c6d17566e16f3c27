"""The console's claims in a real browser: Debian's Chromium, driven by Playwright, against the API served by a
real uvicorn on a database of its own.

The story: a care manager opens Claims from the navigation and finds the fire (green channel) above a newer
water leak; the leak's page shows its description, evidence checks and digest (the evidence link serves
exactly those bytes), the delivery attempts and the status history; she confirms the fire claim for the
member, and it is on its way. Another care manager sees none of it.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from api.app import create_app
from tests.integration.alert_api import ADMIN_TOKEN, new_case
from tests.integration.claim_rows import StoredClaim, insert_claim, insert_delivery
from tests.integration.databases import fresh_database
from vigil.settings import Settings

pytestmark = pytest.mark.infra

CHROMIUM = "/usr/bin/chromium"
# The pictures of docs/claims.md, refreshed by each run.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class _Accounts:
    """Device registration's broker side, which the console never uses."""

    def ensure_device(self, device_id: str, password: str) -> str:
        return device_id

    def ensure_gateway(self, gateway_id: str, device_ids: list[str], password: str) -> str:
        return gateway_id


class Server:
    """The API app under a real uvicorn in a thread, on a free port, with an insurer endpoint configured."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        settings = Settings(_env_file=None, DATABASE_URL=database_url, VIGIL_ADMIN_TOKEN=ADMIN_TOKEN,
                            VIGIL_CLAIMS_WEBHOOK_URL="http://127.0.0.1:9/fnol",
                            VIGIL_CLAIMS_WEBHOOK_SECRET="insurer-secret-0123456789")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(create_app(settings, _Accounts()), host="127.0.0.1", port=self.port, log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="claims-console-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@dataclass(frozen=True)
class Claims:
    database_url: str
    token: str
    other_token: str
    fire: StoredClaim
    leak: StoredClaim
    other: StoredClaim


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server(fresh_database("console_claims")) as running:
        yield running


@pytest.fixture(scope="module")
def claims(server: Server) -> Claims:
    """Grace's member has an older fire (green channel, pre-filled) and a newer leak (delivered on the third try)."""
    url = server.database_url
    now = datetime.now(UTC)
    with httpx.Client(base_url=server.url, timeout=10) as api:
        grace = new_case(api, url, member={"address": "12 Grimmauld Place, London"},
                         device={"kind": "home", "location": "kitchen"})
        alan = new_case(api, url, member={"name": "Beatrice Webb"}, device={"kind": "home", "location": "cellar"})
    fire = insert_claim(url, grace.member_id, grace.device_id, kind="fire", created_at=now - timedelta(hours=3))
    leak = insert_claim(url, grace.member_id, grace.device_id, status="submitted", created_at=now - timedelta(hours=1))
    insert_delivery(url, leak, [(503, None, "retry"), (None, "connection reset by peer", "retry"),
                                (200, None, "delivered")], status="delivered")
    other = insert_claim(url, alan.member_id, alan.device_id, created_at=now)
    token = grace.headers["Authorization"].removeprefix("Bearer ")
    return Claims(url, token, alan.headers["Authorization"].removeprefix("Bearer "), fire, leak, other)


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


def test_a_care_manager_reads_the_claims_and_confirms_one(laptop: BrowserContext, claims: Claims) -> None:
    page = laptop.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, claims.token)

    page.get_by_role("navigation").get_by_role("link", name="Claims").click()
    expect(page.locator("h1")).to_contain_text("Claims")
    rows = page.locator("table.claims tbody tr")
    expect(rows).to_have_count(2)
    # The fire is older, but it goes to a dedicated handler: first, and marked.
    expect(rows.first).to_have_attribute("data-claim-id", claims.fire.id)
    expect(rows.first).to_contain_text("Green channel")
    expect(rows.first).to_contain_text("Fire")
    expect(rows.first).to_contain_text("Pre-filled")
    expect(rows.nth(1)).to_have_attribute("data-claim-id", claims.leak.id)
    expect(rows.nth(1)).to_contain_text("Water damage")
    expect(rows.nth(1)).to_contain_text("Submitted")
    expect(rows.nth(1)).not_to_contain_text("Green channel")
    expect(page.locator("table.claims")).not_to_contain_text("Beatrice")
    page.screenshot(path=str(SCREENSHOTS / "claims.png"))

    rows.nth(1).locator("a").click()
    expect(page.locator("h1")).to_contain_text("Water damage claim")
    expect(page.locator(".claim-description")).to_have_text(claims.leak.document["description"])
    evidence = page.locator(".area-evidence")
    expect(evidence).to_contain_text(claims.leak.digest)
    expect(evidence).to_contain_text("Device registered before the loss")
    attempts = page.locator("table.attempts tbody tr")
    expect(attempts).to_have_count(3)
    expect(attempts.first).to_contain_text("HTTP 200")
    expect(attempts.first).to_contain_text("Delivered")
    expect(attempts.nth(1)).to_contain_text("connection reset by peer")
    expect(attempts.nth(2)).to_contain_text("HTTP 503")
    expect(page.locator(".area-delivery")).to_contain_text("3 attempts")
    expect(page.locator(".area-history .timeline li")).to_have_count(3)
    expect(page.get_by_role("button", name="Confirm on the member's behalf")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "claim.png"), full_page=True)
    # The evidence link serves exactly the bytes of the digest.
    served = page.request.get(page.get_by_role("link", name="The evidence package (JSON)").get_attribute("href"))
    assert served.status == 200 and served.headers["content-type"] == "application/json"
    assert "sha256:" + hashlib.sha256(served.body()).hexdigest() == claims.leak.digest

    page.get_by_role("link", name="← Claims").click()
    rows.first.locator("a").click()
    expect(page.locator("h1")).to_contain_text("Fire claim")
    expect(page.locator(".green-reason")).to_be_visible()
    expect(page.locator(".area-delivery")).to_contain_text("Not sent: the claim waits for confirmation.")
    page.get_by_role("button", name="Confirm on the member's behalf").click()
    expect(page.locator(".flash-ok")).to_have_text("Confirmed: the claim is on its way to the insurer.")
    expect(page.locator(".alert-head .claim-status")).to_have_text("Confirmed")
    expect(page.locator(".area-delivery")).to_contain_text("Being delivered")
    latest = page.locator(".area-history .timeline li").first
    expect(latest).to_contain_text("Confirmed")
    expect(latest).to_contain_text("by Grace Hopper")
    expect(page.get_by_role("button", name="Confirm on the member's behalf")).to_have_count(0)

    # A second confirmation (a stale tab) is refused with the reason, on the claim's own page.
    page.evaluate(
        """id => { const f = document.createElement('form'); f.method = 'post';
                   f.action = '/claims/' + id + '/confirm'; document.body.append(f); f.submit(); }""",
        claims.fire.id,
    )
    expect(page.locator(".flash-error")).to_contain_text("confirmed already")
    assert errors == []


def test_the_claim_page_fits_a_phone(browser: Browser, server: Server, claims: Claims) -> None:
    phone = browser.new_context(viewport=PHONE, base_url=server.url, device_scale_factor=2, is_mobile=True,
                                has_touch=True)
    try:
        page = phone.new_page()
        sign_in(page, claims.token)
        for path in ("/claims", f"/claims/{claims.leak.id}"):
            page.goto(path)
            expect(page.locator("main h1")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
    finally:
        phone.close()


def test_another_care_manager_sees_none_of_it(browser: Browser, server: Server, claims: Claims) -> None:
    context = browser.new_context(viewport=LAPTOP, base_url=server.url)
    try:
        page = context.new_page()
        sign_in(page, claims.other_token)
        page.goto("/claims")
        expect(page.locator("table.claims tbody tr")).to_have_count(1)
        expect(page.locator("table.claims tbody tr")).to_have_attribute("data-claim-id", claims.other.id)
        for path in (f"/claims/{claims.leak.id}", f"/claims/{claims.leak.id}/evidence"):
            response = page.goto(path)
            assert response is not None and response.status == 403
            expect(page.locator("h1")).to_have_text("Not your member")
            expect(page.locator("main")).not_to_contain_text("Ada")
        response = page.goto("/claims/00000000-0000-0000-0000-000000000000")
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_have_text("No such claim")
    finally:
        context.close()


def test_a_claim_whose_delivery_gave_up_is_sent_again_from_its_page(laptop: BrowserContext, claims: Claims) -> None:
    with psycopg.connect(claims.database_url) as conn:
        member_id, device_id = conn.execute("SELECT member_id, device_id FROM claims WHERE id = %s",
                                            (claims.leak.id,)).fetchone()
    failed = insert_claim(claims.database_url, member_id, device_id, status="failed")
    insert_delivery(claims.database_url, failed, [(None, "connection refused", "failed")], status="failed")
    page = laptop.new_page()
    sign_in(page, claims.token)

    page.goto(f"/claims/{failed.id}")
    page.get_by_role("button", name="Send again").click()

    expect(page.locator(".flash-ok")).to_have_text("Sent again: the claim is on its way to the insurer.")
    expect(page.locator(".alert-head .claim-status")).to_have_text("Confirmed")
    expect(page.locator(".area-history .timeline li").first).to_contain_text("sent again")
    expect(page.get_by_role("button", name="Send again")).to_have_count(0)
