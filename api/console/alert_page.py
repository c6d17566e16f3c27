"""What the alert page shows, gathered from the database: the member card, the chart, the evidence, the record.

Reading the member card, the evidence and the readings is reading health data: each page view
writes its audit rows on the same connection, so they commit with the read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from alerts.audit import READ_ALERT, READ_MEMBER_CARD, READ_READINGS, record_read
from alerts.outreach_log import outreach_log
from api.auth import Principal
from api.care_plan_documents import effective_rules, plan_problems, stored_plan
from api.console import queries, words
from api.console.chart import Chart, build_chart

# The chart spans this much either side of the moment the rule's condition was met.
CHART_HALF_SPAN = timedelta(minutes=30)
CHART_MIN_AFTER = timedelta(minutes=5)
CONSOLE = "(console)"


async def live_part(conn: AsyncConnection, alert: dict[str, Any]) -> dict[str, Any]:
    """What changes while the page is open: the ladder, who was told, and the names in the history."""
    return {
        "alert": alert,
        "history": [(entry, *words.history_line(entry)) for entry in reversed(alert["history"] or [])],
        "steps": await queries.steps(conn, alert["id"]),
        "outreach": await outreach_log(conn, alert["id"]),
        "names": {row["id"]: row["name"] for row in await queries.care_managers(conn)},
    }


async def full_page(
    conn: AsyncConnection, alert: dict[str, Any], principal: Principal, tz: str, now: datetime
) -> dict[str, Any]:
    """Everything the alert page shows; records the reads of health data it makes."""
    member = await queries.member(conn, alert["member_id"])
    place = await queries.alert_place(conn, alert["id"]) or {}
    evidence = alert["evidence"] or {}
    chart, chart_metric, chart_note = await _chart(conn, alert, tz, now)
    live = await live_part(conn, alert)
    await record_read(conn, principal.actor, principal.role, READ_ALERT, alert["member_id"],
                      f"alert {alert['id']} {CONSOLE}")
    if member is not None:
        await record_read(conn, principal.actor, principal.role, READ_MEMBER_CARD, alert["member_id"],
                          f"member {alert['member_id']} {CONSOLE}")
    if chart_metric is not None:
        await record_read(conn, principal.actor, principal.role, READ_READINGS, alert["member_id"],
                          f"device {alert['device_id']}?metric={chart_metric} {CONSOLE}")
    return {
        **live,
        "place": place,
        "member": _member_card(member, now) if member else None,
        "devices": await queries.devices(conn, alert["member_id"]) if member else [],
        "explanation": words.explain(alert["type"], evidence, tz, now),
        "evidence": evidence,
        "chart": chart,
        "chart_metric": chart_metric and words.metric_words(chart_metric),
        "chart_note": chart_note,
        "care_managers": sorted(live["names"].items(), key=lambda kv: (kv[1], kv[0])),
        "member_name": member["name"] if member else None,
    }


async def _chart(
    conn: AsyncConnection, alert: dict[str, Any], tz: str, now: datetime
) -> tuple[Chart | None, str | None, str]:
    """The chart of the metric the rule watched (a fall: the activity after it), or why there is none."""
    evidence = alert["evidence"] or {}
    metric = evidence.get("activity_metric") if alert["type"] == "fall" else evidence.get("metric")
    if not isinstance(metric, str):
        return None, None, "This alert is about a device falling silent: there are no readings to chart."
    start, end = alert["triggered_at"] - CHART_HALF_SPAN, alert["triggered_at"] + CHART_HALF_SPAN
    # Nothing can have been read after now: a recent alert's chart ends at now, the marker kept off the edge.
    end = min(end, max(now, alert["triggered_at"] + CHART_MIN_AFTER))
    points = await queries.readings(conn, alert["device_id"], metric, start, end)
    if not points:
        return None, metric, "No readings of this metric were stored in the hour around the alert."
    chart = build_chart(points, start=start, end=end, marker=alert["triggered_at"],
                        thresholds=_thresholds(alert["type"], evidence), flag=words.is_flag(metric), tz=tz)
    return chart, metric, ""


def _thresholds(alert_type: str, evidence: dict[str, Any]) -> list[float]:
    """The rule's per-reading thresholds (a count over a window is not one, nor is anything for a fall)."""
    params = evidence.get("parameters") or {}
    if alert_type == "fall" or "window_s" in params:
        return []
    if isinstance(params.get("tiers"), list):
        return sorted({t["threshold"] for t in params["tiers"] if isinstance(t.get("threshold"), int | float)})
    threshold = params.get("threshold")
    return [threshold] if isinstance(threshold, int | float) else []


def _member_card(member: dict[str, Any], now: datetime) -> dict[str, Any]:
    zone = ZoneInfo(member["timezone"] or "UTC")
    plan = stored_plan(member["care_plan"])
    problems = plan_problems(plan["overrides"])
    rules = _rule_lines({} if problems else plan["overrides"])
    return {
        **member,
        "age": words.age_years(member["birth_date"], now.astimezone(zone).date()),
        "local_time": now.astimezone(zone).strftime("%H:%M"),
        "plan": plan,
        "plan_problems": problems,
        "changed_rules": [r for r in rules if r["changed"]],
        "rules": rules,
        "contacts": [c for c in member["emergency_contacts"] or [] if isinstance(c, dict)],
    }


def _rule_lines(overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Each rule as it applies to the member, in words, with the default beside a changed one."""
    lines = []
    for kind, rule in effective_rules(overrides).items():
        line = words.rule_line(kind, rule["parameters"])
        default = _default_lines()[kind]
        lines.append({
            "type": kind,
            "enabled": rule["enabled"],
            "line": line,
            "changed": (not rule["enabled"]) or line != default,
            "default": default,
        })
    return lines


@cache
def _default_lines() -> dict[str, str]:
    return {kind: words.rule_line(kind, rule["parameters"]) for kind, rule in effective_rules({}).items()}
