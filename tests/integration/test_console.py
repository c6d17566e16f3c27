"""The console's pages and forms over HTTP against a real PostgreSQL: sign-in, access, actions, audit.

The browser story (live queue, the page script) is tests/e2e/test_console.py; this is what a page
answers, whatever runs in the browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.console.session import COOKIE, FLASH_COOKIE
from tests.integration.console_world import World, seed_world
from tests.integration.databases import fresh_database
from vigil.settings import Settings
from vigil.tokens import issue_token, revoke

pytestmark = pytest.mark.infra

ADMIN_TOKEN = "console-admin-token-0123456789abcdef"


class _Accounts:
    def ensure_device(self, device_id: str, password: str) -> str:
        return device_id

    def ensure_gateway(self, gateway_id: str, device_ids: list[str], password: str) -> str:
        return gateway_id


@pytest.fixture(scope="module")
def world() -> World:
    url = fresh_database("console")
    return seed_world(url, datetime.now(UTC))


@pytest.fixture(scope="module")
def app(world: World):
    return create_app(Settings(_env_file=None, DATABASE_URL=world.database_url, VIGIL_ADMIN_TOKEN=ADMIN_TOKEN),
                      _Accounts())


@pytest.fixture
def browser(app) -> Iterator[TestClient]:
    """A client that keeps cookies and does not follow redirects, so each answer can be looked at."""
    with TestClient(app, base_url="http://console.test", follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, token: str) -> None:
    response = client.post("/console/sign-in", data={"token": token, "next": "/"})
    assert response.status_code == 303, response.text


def flash(response) -> str:
    """The one-time message a redirect carries to the next page."""
    return unquote(response.cookies[FLASH_COOKIE])


def sql(database_url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _age(born: date) -> int:
    today = datetime.now(ZoneInfo("Europe/London")).date()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def test_the_sign_in_form_checks_the_token_as_the_api_does(browser: TestClient, world: World) -> None:
    page = browser.get("/")
    assert page.status_code == 200
    assert 'name="token"' in page.text and 'name="viewport"' in page.text

    refused = browser.post("/console/sign-in", data={"token": "vgl_nobody", "next": "/"})
    assert refused.status_code == 401
    assert "That token was not accepted: the API token is unknown." in refused.text
    assert COOKIE not in browser.cookies

    accepted = browser.post("/console/sign-in", data={"token": world.token_a, "next": f"/alerts/{world.leak_id}"})
    assert accepted.status_code == 303
    assert accepted.headers["location"] == f"/alerts/{world.leak_id}"
    cookie = accepted.headers["set-cookie"]
    assert f"{COOKIE}={world.token_a}" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "alerts"])
def test_signing_in_never_sends_anyone_to_another_site(browser: TestClient, world: World, target: str) -> None:
    response = browser.post("/console/sign-in", data={"token": world.token_a, "next": target})
    assert response.headers["location"] == "/"


def test_a_form_posted_from_another_site_is_refused(browser: TestClient, world: World) -> None:
    response = browser.post("/console/sign-in", data={"token": world.token_a}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert COOKIE not in browser.cookies
    sign_in(browser, world.token_a)
    before = sql(world.database_url, "SELECT status FROM alerts WHERE id = %s", (world.leak_id,))
    response = browser.post(f"/alerts/{world.leak_id}/escalate", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert sql(world.database_url, "SELECT status FROM alerts WHERE id = %s", (world.leak_id,)) == before


def test_a_revoked_token_ends_the_session_with_the_reason(browser: TestClient, world: World) -> None:
    token = issue_token(world.database_url, "care_manager", "cm-grace")
    sign_in(browser, token)
    assert "Open alerts" in browser.get("/").text
    revoke(world.database_url, token)
    page = browser.get("/")
    assert "You have been signed out: the API token has been revoked." in page.text
    assert COOKIE not in browser.cookies
    assert browser.get("/console/queue").status_code == 401
    assert browser.get("/console/events").status_code == 401


def test_signing_out_forgets_the_token(browser: TestClient, world: World) -> None:
    sign_in(browser, world.token_a)
    response = browser.post("/console/sign-out")
    assert response.status_code == 303 and COOKIE not in browser.cookies
    assert 'name="token"' in browser.get("/").text


def test_the_queue_holds_the_callers_members_most_severe_first(browser: TestClient, world: World) -> None:
    sign_in(browser, world.token_a)
    page = browser.get("/").text
    assert world.tachycardia_id in page and world.leak_id in page
    assert world.other_member_alert_id not in page and "Beatrice" not in page
    # Both high; the one waiting longest first, then the low battery.
    assert page.index("Fast heart rate") < page.index("Water leak") < page.index("Low battery")
    assert "call him about the water leak" in page
    fragment = browser.get("/console/queue")
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'data-part="alerts"' in fragment.text


def test_an_admin_sees_every_members_alerts(browser: TestClient, world: World) -> None:
    sign_in(browser, ADMIN_TOKEN)
    page = browser.get("/").text
    assert world.other_member_alert_id in page and world.tachycardia_id in page
    # Critical first.
    assert page.index("Fall, no movement after") < page.index("Fast heart rate")


def test_the_alert_page_shows_the_member_the_evidence_and_the_record(browser: TestClient, world: World) -> None:
    sign_in(browser, world.token_a)
    page = browser.get(f"/alerts/{world.tachycardia_id}")
    assert page.status_code == 200
    text = page.text
    for expected in (
        "Margaret Hale", f"{_age(date(1941, 3, 14))} years",
        "Atrial fibrillation", "above 130 bpm for 10 min", "Default: above 120 bpm for 10 min",
        "Edith Lennox", "+44 20 7946 0312", "Battery: 64 %", "Last contact:",
        "stayed above 130 bpm for 10 minutes in a row", "the member was at rest",
        "<polyline", "Raised", "Who was told", "Sent",
    ):
        assert expected in text, expected
    assert "json://" not in text  # an outreach URL may hold a secret; the page never shows one


def test_each_view_of_an_alert_page_is_audited(browser: TestClient, world: World) -> None:
    sign_in(browser, world.token_a)
    query = "SELECT action, subject FROM audit_log WHERE actor = 'care_manager:cm-grace' AND member_id = 'm-arthur'"
    before = sql(world.database_url, query)
    browser.get(f"/alerts/{world.leak_id}")
    added = sorted(set(sql(world.database_url, query)) - set(before))
    assert [action for action, _ in added] == ["read_alert", "read_member_card", "read_readings"]
    assert all(subject.endswith("(console)") for _, subject in added)


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/alerts/{other}", 403, "not assigned to you"),
        ("/alerts/00000000-0000-0000-0000-000000000000", 404, "There is no alert at this address"),
        ("/alerts/not-an-id", 404, "There is no alert at this address"),
    ],
)
def test_pages_say_no_in_plain_words(browser: TestClient, world: World, path: str, status: int, words: str) -> None:
    sign_in(browser, world.token_a)
    response = browser.get(path.format(other=world.other_member_alert_id))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert words in response.text
    assert "Beatrice" not in response.text


def test_another_care_managers_member_cannot_be_acted_on(browser: TestClient, world: World) -> None:
    sign_in(browser, world.token_b)
    response = browser.post(f"/alerts/{world.leak_id}/acknowledge")
    assert response.status_code == 403
    assert sql(world.database_url, "SELECT acknowledged_by FROM alerts WHERE id = %s", (world.leak_id,)) == [(None,)]
    assert browser.get(f"/alerts/{world.leak_id}/live").status_code == 403


def test_a_page_needs_a_session(browser: TestClient, world: World) -> None:
    response = browser.get(f"/alerts/{world.leak_id}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/?next=/alerts/{world.leak_id}"
    assert browser.get("/console/queue").status_code == 401


def test_actions_come_back_to_the_page_with_what_happened(browser: TestClient, world: World) -> None:
    sign_in(browser, world.token_a)
    alert = world.leak_id
    page = f"/alerts/{alert}"

    def post(action: str, **fields: str):
        response = browser.post(f"{page}/{action}", data=fields)
        assert response.status_code == 303 and response.headers["location"] == page, response.text
        return flash(response)

    assert post("resolve", note="no outcome") == "error:Choose an outcome."
    assert post("snooze", minutes="0") == "error:Snooze for 1 to 1440 minutes."
    assert post("assign", care_manager_id="cm-nobody") == "error:No care manager has the id 'cm-nobody'."
    assert post("assign", care_manager_id="cm-alan") == "ok:Assigned."
    assert post("snooze", minutes="15") == "ok:Snoozed."
    assert post("call", text="Arthur turned the water off.", reached="yes") == "ok:Call logged."
    assert post("resolve", outcome="assisted", note="Plumber on the way.") == "ok:Resolved."
    refused = post("acknowledge")
    assert refused.startswith("error:The alert is resolved already")
    assert post("note", text="Plumber fixed the pipe.") == "ok:Note added."

    shown = browser.get(page)
    assert shown.status_code == 200
    assert "The alert is resolved already" not in shown.text  # the message is shown once
    [(status, outcome, assigned, history)] = sql(
        world.database_url, "SELECT status, outcome, assigned_to, history FROM alerts WHERE id = %s", (alert,)
    )
    assert (status, outcome, assigned) == ("resolved", "assisted", "cm-alan")
    actions = [(entry["action"], entry.get("by")) for entry in history[1:]]
    assert actions == [
        ("assigned", "care_manager:cm-grace"),
        ("snoozed", "care_manager:cm-grace"),
        ("call_logged", "care_manager:cm-grace"),
        ("resolved", "care_manager:cm-grace"),
        ("note_added", "care_manager:cm-grace"),
    ]
    assert history[3].get("reached") is True
    # Logging the call ticked off the call task it answered.
    assert sql(world.database_url, "SELECT status FROM tasks WHERE id = %s", (world.call_task_id,)) == [("done",)]
    assert "Plumber fixed the pipe." in shown.text and "The member was helped" in shown.text


def test_a_message_is_shown_once(browser: TestClient, world: World) -> None:
    sign_in(browser, world.token_a)
    browser.cookies.set(FLASH_COOKIE, "error%3AThe%20alert%20is%20resolved%20already", domain="console.test")
    first = browser.get("/")
    assert "The alert is resolved already" in first.text
    assert FLASH_COOKIE not in browser.cookies
    assert "The alert is resolved already" not in browser.get("/").text
