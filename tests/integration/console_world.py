"""A small world for the console's tests: two care managers, their members and devices, readings, and
alerts raised through `alerts.store.apply_alert_changes` (so their ladders are planned and NOTIFY fires)."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from alerts.store import apply_alert_changes
from vigil.events import AlertChanged, alert_id
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.evidence import parameters
from vigil.rules.overrides import rules_with_overrides
from vigil.telemetry import to_ms
from vigil.timefmt import utc_text
from vigil.tokens import issue_token

T = TypeVar("T")
CARE_PLAN = {"tachycardia": {"tiers.0.threshold": 130}}
# Raised less than the high ladder's 300 s ago, so its care-manager step is still counting down.
TACHYCARDIA_AGO = timedelta(minutes=3)


@dataclass(frozen=True)
class World:
    """Who and what the tests use; tokens are care-manager API tokens."""

    database_url: str
    token_a: str
    token_b: str
    tachycardia_id: str
    leak_id: str
    other_member_alert_id: str
    call_task_id: int


def _rule(alert_type: str, overrides: dict | None = None) -> dict:
    rules = rules_with_overrides(DEFAULT_RULES, overrides or {})
    return parameters(next(r for r in rules if r.type == alert_type))


def seed_world(database_url: str, now: datetime) -> World:
    """Registers everyone, stores readings, raises four alerts and runs their first ladder step by hand."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO care_managers (id, name, email, phone, timezone) VALUES "
            "('cm-grace', 'Grace Hopper', 'grace@example.org', '+44 20 7946 0100', 'Europe/London'), "
            "('cm-alan', 'Alan Turing', 'alan@example.org', '+44 20 7946 0200', 'Europe/London')"
        )
        for member in _members():
            conn.execute(
                "INSERT INTO members (id, name, birth_date, phone, email, address, timezone, policy, care_manager_id, "
                "emergency_contacts, consent, care_plan, outreach_urls, quiet_hours, contact_by_call) "
                "VALUES (%(id)s, %(name)s, %(birth_date)s, %(phone)s, %(email)s, %(address)s, 'Europe/London', "
                "%(policy)s, %(cm)s, %(contacts)s, %(consent)s, %(care_plan)s, %(urls)s, %(quiet)s, %(by_call)s)",
                member,
            )
        for device_id, kind, member_id, location in (
            ("wb-margaret", "wearable", "m-margaret", None),
            ("leak-arthur", "home", "m-arthur", "Kitchen"),
            ("hub-arthur", "home", "m-arthur", "Hallway"),
            ("wb-beatrice", "wearable", "m-beatrice", None),
        ):
            conn.execute(
                "INSERT INTO devices (device_id, kind, member_id, location, mqtt_username) VALUES (%s, %s, %s, %s, %s)",
                (device_id, kind, member_id, location, device_id),
            )
            conn.execute("INSERT INTO device_liveness (device_id, last_message_at) VALUES (%s, %s)",
                         (device_id, now - timedelta(seconds=40)))
        conn.cursor().executemany(
            "INSERT INTO readings (device_id, ts, metric, value, seq) VALUES (%s, %s, %s, %s, %s)",
            _readings(now),
        )
    events = [
        _tachycardia(now - TACHYCARDIA_AGO),
        _leak(now - timedelta(minutes=2)),
        _fall(now - timedelta(minutes=3)),
        _low_battery(now - timedelta(minutes=50)),
    ]
    # Each raised a moment after its condition was met, as the pipeline does.
    for event in events:
        run_async(_raise(database_url, [event], datetime.fromtimestamp(event.triggered_at_ms / 1000 + 1, UTC)))
    tachycardia_id, leak_id, fall_id, low_battery_id = (e.alert_id for e in events)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE alert_steps SET state = 'done', done_at = %s WHERE alert_id = %s",
                     (now - timedelta(minutes=49), low_battery_id))
        # The scheduler would have run each ladder's first step (the member, at once) and sent its message.
        for alert, who in ((tachycardia_id, "Margaret Hale"), (leak_id, "Arthur Dent")):
            conn.execute("UPDATE alert_steps SET state = 'done', done_at = %s WHERE alert_id = %s AND step = 1",
                         (now - timedelta(minutes=1), alert))
            conn.execute(
                "INSERT INTO outreach (alert_id, step, to_role, recipient_key, recipient_name, channel, target, "
                "target_digest, title, body, status, attempts, sent_at) VALUES (%s, 1, 'member', %s, %s, 'json', "
                "'json://127.0.0.1:9/in', %s, 'Are you OK?', '...', 'sent', 1, %s)",
                (alert, f"member:{alert}", who, hashlib.sha256(alert.encode()).hexdigest(), now - timedelta(minutes=1)),
            )
        [(task_id,)] = conn.execute(
            "INSERT INTO tasks (kind, alert_id, step, member_id, care_manager_id, due_at, reason) "
            "VALUES ('call', %s, 1, 'm-arthur', 'cm-grace', %s, 'Arthur does not use apps: call him about the "
            "water leak') RETURNING id",
            (leak_id, now - timedelta(minutes=1)),
        ).fetchall()
    return World(
        database_url=database_url,
        token_a=issue_token(database_url, "care_manager", "cm-grace"),
        token_b=issue_token(database_url, "care_manager", "cm-alan"),
        tachycardia_id=tachycardia_id,
        leak_id=leak_id,
        other_member_alert_id=fall_id,
        call_task_id=task_id,
    )


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a thread of its own (Playwright's sync API keeps a loop on the test's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _raise(database_url: str, events: list[AlertChanged], now: datetime) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await apply_alert_changes(conn, events, now)


def raise_alert(database_url: str, event: AlertChanged, now: datetime) -> None:
    """Raise one more alert as the alert consumer does, on a real connection, so that NOTIFY fires at commit."""
    run_async(_raise(database_url, [event], now))


def smoke_alert(now: datetime) -> AlertChanged:
    """A smoke alarm in Arthur's hallway, for the alert that arrives while the queue is open."""
    triggered = now - timedelta(seconds=30)
    return AlertChanged(
        change="raised", alert_id=alert_id("hub-arthur", "smoke", to_ms(triggered)), type="smoke",
        severity="critical", member_id="m-arthur", device_id="hub-arthur", triggered_at_ms=to_ms(triggered),
        detected_at_ms=to_ms(now),
        evidence={"rule": "smoke", "parameters": _rule("smoke"), "metric": "smoke",
                  "first_at": utc_text(triggered - timedelta(seconds=35)), "last_at": utc_text(triggered),
                  "readings": 8, "span_s": 35.0, "peak": 1},
    )


def run_first_step(database_url: str, alert: str) -> None:
    """What the scheduler does when an alert's first step falls due: the step is done, and the console hears."""
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE alert_steps SET state = 'done', done_at = now() WHERE alert_id = %s AND step = 1",
                     (alert,))
        conn.execute("SELECT pg_notify('vigil_alerts', %s)", (alert,))


def _tachycardia(triggered: datetime) -> AlertChanged:
    first = triggered.replace(second=0, microsecond=0) - timedelta(minutes=10)
    minutes = [{"minute": utc_text(first + timedelta(minutes=i)), "mean": round(_heart_rate(first + timedelta(
        minutes=i, seconds=30), triggered), 2), "readings": 4} for i in range(10)]
    return AlertChanged(
        change="raised", alert_id=alert_id("wb-margaret", "tachycardia", to_ms(triggered)), type="tachycardia",
        severity="high", member_id="m-margaret", device_id="wb-margaret", triggered_at_ms=to_ms(triggered),
        detected_at_ms=to_ms(triggered),
        evidence={"rule": "tachycardia", "parameters": _rule("tachycardia", CARE_PLAN), "tier": 0,
                  "metric": "heart_rate", "minutes": minutes, "steps": 14},
    )


def _leak(triggered: datetime) -> AlertChanged:
    return AlertChanged(
        change="raised", alert_id=alert_id("leak-arthur", "water_leak", to_ms(triggered)), type="water_leak",
        severity="high", member_id="m-arthur", device_id="leak-arthur", triggered_at_ms=to_ms(triggered),
        detected_at_ms=to_ms(triggered),
        evidence={"rule": "water_leak", "parameters": _rule("water_leak"), "metric": "water_leak",
                  "first_at": utc_text(triggered - timedelta(seconds=75)), "last_at": utc_text(triggered),
                  "readings": 6, "span_s": 75.0, "peak": 1},
    )


def _fall(triggered: datetime) -> AlertChanged:
    return AlertChanged(
        change="raised", alert_id=alert_id("wb-beatrice", "fall", to_ms(triggered)), type="fall", severity="critical",
        member_id="m-beatrice", device_id="wb-beatrice", triggered_at_ms=to_ms(triggered),
        detected_at_ms=to_ms(triggered),
        evidence={"rule": "fall", "parameters": _rule("fall"), "metric": "fall",
                  "fall_at": utc_text(triggered - timedelta(seconds=60)), "quiet_s": 60, "activity_metric": "steps",
                  "activity_within_quiet": 0, "worn": 1},
    )


def _low_battery(triggered: datetime) -> AlertChanged:
    return AlertChanged(
        change="raised", alert_id=alert_id("hub-arthur", "low_battery", to_ms(triggered)), type="low_battery",
        severity="low", member_id="m-arthur", device_id="hub-arthur", triggered_at_ms=to_ms(triggered),
        detected_at_ms=to_ms(triggered),
        evidence={"rule": "low_battery", "parameters": _rule("low_battery"), "metric": "battery",
                  "first_at": utc_text(triggered), "last_at": utc_text(triggered), "readings": 1, "span_s": 0.0,
                  "peak": 8},
    )


def _heart_rate(at: datetime, triggered: datetime) -> float:
    """Resting near 72 bpm, climbing to about 148 in the ten minutes before the alert, easing after."""
    minutes = (at - triggered).total_seconds() / 60
    if minutes < -14:
        return 72 + 3 * math.sin(minutes)
    if minutes < 0:
        return 72 + (148 - 72) * min(1.0, (minutes + 14) / 4) + 4 * math.sin(minutes * 2)
    return max(84.0, 148 - 6 * minutes) + 3 * math.sin(minutes * 3)


def _readings(now: datetime) -> list[tuple]:
    triggered = now - TACHYCARDIA_AGO
    rows: list[tuple] = []
    seq = 0
    at = triggered - timedelta(minutes=35)
    while at <= now:
        seq += 1
        rows.append(("wb-margaret", at, "heart_rate", round(_heart_rate(at, triggered), 1), seq))
        at += timedelta(seconds=15)
    leak_at = now - timedelta(minutes=2)
    for i in range(40):
        at = leak_at - timedelta(minutes=30) + timedelta(minutes=i)
        rows.append(("leak-arthur", at, "water_leak", 1.0 if at >= leak_at - timedelta(seconds=75) else 0.0, 1000 + i))
    for device_id, battery in (("wb-margaret", 64), ("leak-arthur", 91), ("hub-arthur", 8), ("wb-beatrice", 80)):
        rows.append((device_id, now - timedelta(minutes=50), "battery", battery, 5000))
    return rows


def _members() -> list[dict]:
    consent = Jsonb({"monitoring": True, "outreach": True, "auto_claims": False})
    return [
        {"id": "m-margaret", "name": "Margaret Hale", "birth_date": date(1941, 3, 14), "phone": "+44 20 7946 0311",
         "email": "margaret@example.org", "address": "4 Crampton Road, Milton", "cm": "cm-grace",
         "policy": Jsonb({"number": "POL-311", "line": "both"}), "consent": consent,
         "contacts": Jsonb([{"name": "Edith Lennox", "phone": "+44 20 7946 0312", "relation": "daughter",
                             "outreach_url": "json://127.0.0.1:9/edith"},
                            {"name": "John Thornton", "phone": "+44 20 7946 0313", "relation": "neighbour"}]),
         "care_plan": Jsonb({"version": 1, "overrides": CARE_PLAN, "note": "Atrial fibrillation; on beta blockers. "
                             "Resting heart rate runs high.", "updated_at": "2026-01-05T10:00:00Z",
                             "updated_by": "care_manager:cm-grace"}),
         "urls": Jsonb(["json://127.0.0.1:9/margaret"]), "quiet": Jsonb({"start": "22:00", "end": "07:00"}),
         "by_call": False},
        {"id": "m-arthur", "name": "Arthur Dent", "birth_date": date(1947, 6, 2), "phone": "+44 20 7946 0420",
         "email": None, "address": "155 Country Lane, Cottington", "cm": "cm-grace",
         "policy": Jsonb({"number": "POL-420", "line": "home"}), "consent": consent,
         "contacts": Jsonb([{"name": "Ford Prefect", "phone": "+44 20 7946 0421", "relation": "friend"}]),
         "care_plan": Jsonb({}), "urls": Jsonb([]), "quiet": None, "by_call": True},
        {"id": "m-beatrice", "name": "Beatrice Potter", "birth_date": date(1938, 7, 28), "phone": "+44 20 7946 0566",
         "email": None, "address": "Hill Top, Near Sawrey", "cm": "cm-alan",
         "policy": Jsonb({"number": "POL-566", "line": "health"}), "consent": consent,
         "contacts": Jsonb([]), "care_plan": Jsonb({}), "urls": Jsonb([]), "quiet": None, "by_call": False},
    ]
