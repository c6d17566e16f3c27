"""Showing a scored run: the per-rule table, the failures with what was expected and seen, the JSON file."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from simulators.evaluation.runner import RunResult
from simulators.evaluation.scoring import RuleScore, Score, describe_expected, describe_seen


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def rules_table(score: Score, min_precision: float, min_recall: float) -> Table:
    table = Table("rule", "scenarios", "expected", "TP", "FP", "missed", "precision", "recall",
                  "p50 ms", "p95 ms", title=f"Alert quality per rule (latency: publish of the completing reading → "
                  f"alert raised; red: below precision {min_precision} or recall {min_recall})")
    for column in table.columns[1:]:
        column.justify = "right"
    for rule in score.rules:
        style = "green" if rule.passes(min_precision, min_recall) else "red"
        table.add_row(f"[{style}]{rule.type}[/{style}]", str(rule.scenarios), str(rule.expected), str(rule.tp),
                      str(rule.fp), str(rule.fn), _ratio(rule.precision), _ratio(rule.recall), _ms(rule.p50_ms),
                      _ms(rule.p95_ms))
    return table


def failures_table(score: Score) -> Table:
    table = Table("scenario", "rule", "verdict", "expected", "seen", title="Scenarios that went wrong")
    labels = {"fp": "[red]false alert[/red]", "fn": "[red]missed[/red]"}
    for verdict in score.failures:
        table.add_row(verdict.scenario, verdict.type, labels[verdict.outcome], verdict.expected, verdict.seen)
    return table


def show(console: Console, result: RunResult, score: Score, *, min_precision: float, min_recall: float) -> None:
    messages = sum(len(p.order) for p in result.played)
    readings = sum(p.readings for p in result.played)
    console.print(f"run {result.run_id}: {len(result.played)} scenarios, {messages:,} messages, "
                  f"{readings:,} readings, {result.elapsed_s:.0f} s")
    console.print(rules_table(score, min_precision, min_recall))
    if score.failures:
        console.print(failures_table(score))
    else:
        console.print("[green]every scenario raised exactly what its labels say[/green]")
    problems = [*result.problems, *(f"{p.device.scenario.name}: {text}" for p in result.played for text in p.problems)]
    for problem in problems:
        console.print(f"[yellow]problem:[/yellow] {problem}")


def _rule_json(rule: RuleScore, min_precision: float, min_recall: float) -> dict[str, Any]:
    return {"type": rule.type, "scenarios": rule.scenarios, "expected": rule.expected, "tp": rule.tp, "fp": rule.fp,
            "fn": rule.fn, "precision": rule.precision, "recall": rule.recall, "latency_p50_ms": rule.p50_ms,
            "latency_p95_ms": rule.p95_ms, "passes": rule.passes(min_precision, min_recall)}


def to_json(result: RunResult, score: Score, *, min_precision: float, min_recall: float) -> dict[str, Any]:
    """The run as plain JSON: thresholds, per-rule figures, verdicts, and each scenario's alerts."""
    scenarios = []
    for played in result.played:
        observation = played.observation()
        scenarios.append({
            "name": observation.scenario, "role": observation.role, "rules": list(observation.rules),
            "device_id": played.device.device_id, "start": observation.start.isoformat(),
            "messages": len(played.order), "readings": played.readings,
            "expected": [describe_expected(e) for e in observation.expected],
            "seen": [{"id": a.alert_id, "type": a.type, "severity": a.severity,
                      "triggered_at": a.triggered_at.isoformat(), "raised_at": a.raised_at.isoformat(),
                      "as_offset": describe_seen(observation, a)} for a in observation.alerts],
            "problems": list(observation.problems),
        })
    return {
        "run_id": result.run_id, "started_at": result.started_at.isoformat(), "elapsed_s": result.elapsed_s,
        "min_precision": min_precision, "min_recall": min_recall,
        "passes": not score.failing(min_precision, min_recall),
        "rules": [_rule_json(r, min_precision, min_recall) for r in score.rules],
        "verdicts": [{"scenario": v.scenario, "type": v.type, "outcome": v.outcome, "expected": v.expected,
                      "seen": v.seen, "latency_ms": v.latency_ms} for v in score.verdicts],
        "scenarios": scenarios, "problems": list(result.problems),
    }
