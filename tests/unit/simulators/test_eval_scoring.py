"""Scoring a run against its labels, on hand-made observations: TP, FP, FN, precision, recall, latency."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from simulators.eval_cli import evaluate
from simulators.evaluation.scoring import Observation, RuleScore, SeenAlert, judge_observation, percentile, score
from simulators.labelled.model import Expected, spanned, sustained

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ACKED = START.timestamp() + 3600  # the replay was published an hour after its event-time start


def alert(kind: str, severity: str, at_s: float, raised_after_ack_ms: float = 200) -> SeenAlert:
    return SeenAlert(type=kind, severity=severity, triggered_at=START + timedelta(seconds=at_s),
                     raised_at=datetime.fromtimestamp(ACKED + raised_after_ack_ms / 1000, UTC))


def observed(name: str, expected: tuple[Expected, ...], alerts: list[SeenAlert], absent: tuple[str, ...] = (),
             role: str = "positive") -> Observation:
    rules = tuple(sorted({e.type for e in expected} | set(absent)))
    return Observation(scenario=name, role=role, rules=rules, expected=expected, start=START, alerts=tuple(alerts),
                       completed_at=tuple(ACKED for _ in expected))


TACHY = sustained("tachycardia", "high", 3, 10)  # at 780 s, ±60 s
LEAK = spanned("water_leak", "high", 180, 60, 5)  # at 240 s, ±15 s


def outcomes(observation: Observation) -> list[tuple[str, str]]:
    return [(v.type, v.outcome) for v in judge_observation(observation)]


def test_an_expected_alert_on_time_with_its_severity_is_a_true_positive():
    (verdict,) = judge_observation(observed("t", (TACHY,), [alert("tachycardia", "high", 780, 350)]))
    assert verdict.outcome == "tp"
    assert verdict.latency_ms == pytest.approx(350)
    assert verdict.expected == "tachycardia/high at +13:00 (+12:00..+14:00)"


@pytest.mark.parametrize("at_s", [720, 840])
def test_the_tolerance_is_inclusive(at_s: float):
    assert outcomes(observed("t", (TACHY,), [alert("tachycardia", "high", at_s)])) == [("tachycardia", "tp")]


def test_nothing_raised_is_a_miss():
    (verdict,) = judge_observation(observed("t", (TACHY,), []))
    assert (verdict.outcome, verdict.seen) == ("fn", "nothing")


def test_wrong_severity_is_a_miss_and_not_also_a_false_alert():
    (verdict,) = judge_observation(observed("s", (sustained("low_spo2", "critical", 3, 2),),
                                            [alert("low_spo2", "high", 300)]))
    assert verdict.outcome == "fn"
    assert "severity high, not critical" in verdict.seen


def test_triggered_at_out_of_tolerance_is_a_miss_with_the_offset():
    (verdict,) = judge_observation(observed("late", (TACHY,), [alert("tachycardia", "high", 780 + 3 * 3600)]))
    assert verdict.outcome == "fn"
    assert "triggered_at +10800 s off" in verdict.seen


def test_a_second_alert_for_one_episode_is_a_false_positive():
    result = outcomes(observed("dip", (TACHY,), [alert("tachycardia", "high", 780),
                                                 alert("tachycardia", "high", 1560)]))
    assert sorted(result) == [("tachycardia", "fp"), ("tachycardia", "tp")]
    fp = next(v for v in judge_observation(observed("dip", (TACHY,), [alert("tachycardia", "high", 780),
                                                                      alert("tachycardia", "high", 1560)]))
              if v.outcome == "fp")
    assert fp.expected == "one alert per episode"


def test_an_alert_where_none_is_expected_is_a_false_positive_of_its_own_type():
    verdicts = judge_observation(observed("shower", (), [alert("overheat", "critical", 400),
                                                         alert("device_offline", "medium", 900)],
                                          absent=("overheat",), role="confounder"))
    assert [(v.type, v.outcome, v.expected) for v in verdicts] == [
        ("device_offline", "fp", "no alert of this type"),
        ("overheat", "fp", "no alert of this type (labelled)"),
    ]


def test_two_episodes_match_two_alerts_by_time():
    second = spanned("water_leak", "high", 800, 60, 5)
    both = observed("two", (LEAK, second), [alert("water_leak", "high", 862), alert("water_leak", "high", 240)])
    assert outcomes(both) == [("water_leak", "tp"), ("water_leak", "tp")]
    one = observed("two", (LEAK, second), [alert("water_leak", "high", 240)])
    assert sorted(outcomes(one)) == [("water_leak", "fn"), ("water_leak", "tp")]


def test_a_missing_acknowledgement_leaves_the_latency_unknown():
    observation = observed("t", (TACHY,), [alert("tachycardia", "high", 780)])
    unacked = Observation(**{**{f: getattr(observation, f) for f in observation.__dataclass_fields__},
                             "completed_at": (None,)})
    (verdict,) = judge_observation(unacked)
    assert verdict.outcome == "tp" and verdict.latency_ms is None


def test_scores_per_rule():
    observations = [
        observed("a", (TACHY,), [alert("tachycardia", "high", 780, 100)]),
        observed("b", (TACHY,), [alert("tachycardia", "high", 790, 300)]),
        observed("c", (TACHY,), []),
        observed("d", (), [alert("tachycardia", "high", 780)], absent=("tachycardia",), role="confounder"),
        observed("e", (), [], absent=("tachycardia",), role="outside"),
        observed("f", (LEAK,), [alert("water_leak", "high", 240, 50)]),
    ]
    result = score(observations)
    tachy, leak = result.rules
    assert (tachy.type, tachy.scenarios, tachy.expected, tachy.tp, tachy.fp, tachy.fn) == ("tachycardia", 5, 3, 2,
                                                                                           1, 1)
    assert tachy.precision == pytest.approx(2 / 3) and tachy.recall == pytest.approx(2 / 3)
    assert tachy.p50_ms == pytest.approx(200) and tachy.p95_ms == pytest.approx(290)
    assert (leak.precision, leak.recall) == (1.0, 1.0)
    assert [r.type for r in result.failing(0.95, 0.95)] == ["tachycardia"]
    assert [(v.scenario, v.outcome) for v in result.failures] == [("c", "fn"), ("d", "fp")]


def test_rules_come_in_rules_md_order_and_include_types_only_seen_as_false():
    result = score([observed("x", (LEAK,), [alert("water_leak", "high", 240), alert("smoke", "critical", 50)]),
                    observed("y", (TACHY,), [alert("tachycardia", "high", 780)])])
    assert [r.type for r in result.rules] == ["tachycardia", "smoke", "water_leak"]
    smoke = result.rules[1]
    assert (smoke.scenarios, smoke.expected, smoke.precision, smoke.recall) == (0, 0, 0.0, None)


def test_a_rule_with_nothing_to_measure_passes_and_a_silent_rule_fails_recall():
    quiet = RuleScore(type="bradycardia", scenarios=2, expected=0, tp=0, fp=0, fn=0)
    assert quiet.precision is None and quiet.recall is None and quiet.passes(0.95, 0.95)
    silent = RuleScore(type="co", scenarios=3, expected=2, tp=0, fp=0, fn=2)
    assert silent.precision is None and silent.recall == 0.0 and not silent.passes(0.95, 0.95)
    exact = RuleScore(type="smoke", scenarios=20, expected=20, tp=19, fp=1, fn=1)
    assert exact.passes(0.95, 0.95) and not exact.passes(0.96, 0.95)


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 50, None),
    ([7.0], 95, 7.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
    ([4.0, 1.0, 3.0, 2.0], 50, 2.5),
    (list(range(1, 101)), 95, 95.05),
    ([10.0, 20.0], 95, 19.5),
    ([10.0, 20.0, 30.0], 100, 30.0),
    ([10.0, 20.0, 30.0], 0, 10.0),
])
def test_percentile_interpolates_between_ranks(values, q, expected):
    result = percentile([float(v) for v in values], q)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_the_report_json_is_plain_json():
    from simulators.evaluation import report
    from simulators.evaluation.runner import Device, Played, RunResult
    from simulators.labelled import BY_NAME
    from simulators.labelled.messages import plan_messages

    scenario = BY_NAME["water_leak_60s"]
    messages = plan_messages(scenario, device_id="ev-x-water_leak_60s", start=START, sent_at=START)
    played = Played(Device(scenario, "ev-x-water_leak_60s", "m-1", "u", "p"), START, messages,
                    list(range(len(messages))), acked_at=dict.fromkeys(range(len(messages)), ACKED),
                    alerts=[alert("water_leak", "high", 240)])
    result = RunResult(run_id="x", played=(played,), started_at=START, elapsed_s=12.5)
    scored = score(result.observations)
    data = json.loads(json.dumps(report.to_json(result, scored, min_precision=0.95, min_recall=0.95)))
    assert data["passes"] is True
    assert data["rules"][0] == {"type": "water_leak", "scenarios": 1, "expected": 1, "tp": 1, "fp": 0, "fn": 0,
                                "precision": 1.0, "recall": 1.0, "latency_p50_ms": pytest.approx(200),
                                "latency_p95_ms": pytest.approx(200), "passes": True}
    assert data["scenarios"][0]["seen"][0]["as_offset"] == "water_leak/high at +4:00"


def test_the_latency_runs_from_the_ack_of_the_last_message_carrying_the_condition():
    from simulators.evaluation.runner import Device, Played
    from simulators.labelled import BY_NAME
    from simulators.labelled.messages import delivery_order, plan_messages

    scenario = BY_NAME["water_leak_out_of_order"]  # wet from 3:00 to 6:00, 2-minute blocks reversed
    messages = plan_messages(scenario, device_id="d", start=START, sent_at=START)
    order = delivery_order(scenario, messages)
    acked = {index: 1000.0 + position for position, index in enumerate(order)}
    played = Played(Device(scenario, "d", "m", "u", "p"), START, messages, order, acked_at=acked)
    carrying_240 = next(i for i, m in enumerate(messages) if 240 in m.offsets)
    # Readings 3:00..4:00 make the condition; of their messages, the one with 4:00 is delivered last.
    assert played.completed_at() == (acked[carrying_240],)
    assert acked[carrying_240] == max(acked[i] for i, m in enumerate(messages) if m.offsets[-1] >= 180
                                      and m.first_s <= 240)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("eval")(evaluate)
    return app


def test_eval_lists_the_selected_scenarios_without_touching_the_pipeline():
    result = CliRunner().invoke(_cli(), ["--list", "--only", "co", "--scenario", "co_400_*"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "co_400_for_4min" in result.output and "co_400_for_3min" in result.output
    assert "co_150" not in result.output


@pytest.mark.parametrize("args", [["--only", "heartburn", "--list"], ["--scenario", "nothing_like_it", "--list"]])
def test_eval_refuses_an_unknown_rule_or_scenario(args: list[str]):
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2
