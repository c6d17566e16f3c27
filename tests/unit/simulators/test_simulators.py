"""The simulator core: deterministic, physically plausible, valid per ingest, and each scenario shows its incident."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import typer
from typer.testing import CliRunner

from ingest.validation import RegisteredDevice, judge
from simulators.cli import simulate
from simulators.clock import AcceleratedClock
from simulators.devices import Message
from simulators.plan import MAX_SAMPLES_PER_MESSAGE, Fleet, FleetPlan
from simulators.provisioning import ProvisioningError, provision
from simulators.scenarios import SCENARIOS, Injection, parse_duration
from simulators.signals import WearableSignal
from vigil.telemetry import MAX_PAYLOAD_BYTES, METRICS, to_ms

WEARABLE_METRICS = {name for name, spec in METRICS.items() if spec.source in ("wearable", "any")}
HOME_METRICS = {name for name, spec in METRICS.items() if spec.source in ("home", "any")}
START = datetime(2026, 1, 5, tzinfo=UTC)
DAY = timedelta(days=1)

Series = list[tuple[datetime, float]]


def _messages(plan: FleetPlan, span: timedelta) -> list[Message]:
    return Fleet(plan, START).due(START + span, sent_at=START + span)


def _series(messages: list[Message], device_id: str) -> dict[str, Series]:
    series: dict[str, Series] = defaultdict(list)
    for message in messages:
        if message.device_id == device_id:
            for r in message.payload["readings"]:
                series[r["metric"]].append((datetime.fromisoformat(r["ts"]), r["value"]))
    return series


def _minute_means(points: Series) -> dict[datetime, float]:
    buckets: dict[datetime, list[float]] = defaultdict(list)
    for ts, value in points:
        buckets[ts.replace(second=0)].append(value)
    return {minute: sum(vs) / len(vs) for minute, vs in buckets.items()}


def _longest_run(points: Series, holds: Callable[[float], bool]) -> timedelta:
    """Longest stretch of consecutive readings that all satisfy `holds`, first to last timestamp."""
    best, first = timedelta(0), None
    for ts, value in sorted(points):
        if holds(value):
            first = first or ts
            best = max(best, ts - first)
        else:
            first = None
    return best


def test_same_seed_gives_identical_messages_and_another_seed_does_not():
    def run(seed: int) -> list[bytes]:
        plan = FleetPlan(run_id="t1", wearables=3, homes=3, seed=seed, injections=(Injection.parse("leak@5m"),))
        return [m.encode() for m in _messages(plan, timedelta(hours=3))]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_every_reading_names_a_metric_of_its_kind_and_stays_in_range_over_a_day():
    injections = tuple(Injection(scenario=s, offset_s=h * 3600) for h, s in enumerate(SCENARIOS.values(), 1))
    plan = FleetPlan(run_id="t2", wearables=4, homes=4, sample_interval_s=30, samples_per_message=20,
                     injections=injections)
    seen: dict[str, set[str]] = {"wb": set(), "home": set()}
    for message in _messages(plan, DAY):
        kind = "wb" if "-wb-" in message.device_id else "home"
        allowed = WEARABLE_METRICS if kind == "wb" else HOME_METRICS
        for r in message.payload["readings"]:
            spec = METRICS[r["metric"]]
            assert r["metric"] in allowed
            assert spec.low <= r["value"] <= spec.high, r
            if spec.flag or r["metric"] in ("steps", "battery", "heart_rate", "spo2"):
                assert isinstance(r["value"], int), r
            seen[kind].add(r["metric"])
    assert seen == {"wb": WEARABLE_METRICS, "home": HOME_METRICS}


def test_wearable_vitals_look_like_a_resting_adult():
    plan = FleetPlan(run_id="t3", wearables=3, homes=0)
    for i in range(1, 4):
        series = _series(_messages(plan, DAY), f"sim-t3-wb-{i:04d}")
        assert all(95 <= v <= 99 for _, v in series["spo2"])
        assert {v for _, v in series["fall"]} == {0}
        resting = [v for (ts, v), (_, s) in zip(series["heart_rate"], series["steps"], strict=False) if s == 0]
        assert 45 < sum(resting) / len(resting) < 85


@pytest.mark.parametrize("samples_per_message", [1, 4, MAX_SAMPLES_PER_MESSAGE])
def test_messages_pass_ingest_validation_whole(samples_per_message: int):
    plan = FleetPlan(run_id="t4", wearables=2, homes=2, samples_per_message=samples_per_message,
                     injections=(Injection.parse("smoke@10m"), Injection.parse("fall@20m:2")))
    span = timedelta(hours=2)
    messages = _messages(plan, span)
    assert messages
    for message in messages:
        payload = message.encode()
        assert len(payload) <= MAX_PAYLOAD_BYTES
        verdict = judge(message.topic, payload, now_ms=to_ms(START + span), retention_ms=30 * 86_400_000,
                        lookup=lambda did: RegisteredDevice(did, "member-1", True))
        assert verdict.dead_letters == []
        assert verdict.record is not None
        assert len(verdict.record.readings) == message.reading_count


def test_seq_increases_per_device_and_messages_come_in_event_time_order():
    messages = _messages(FleetPlan(run_id="t5", wearables=3, homes=2), timedelta(hours=1))
    seqs: dict[str, list[int]] = defaultdict(list)
    last_ts = [max(r["ts"] for r in m.payload["readings"]) for m in messages]
    for message in messages:
        seqs[message.device_id].append(message.seq)
    assert len(seqs) == 5
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())
    assert last_ts == sorted(last_ts)


def test_due_hands_out_at_most_limit_and_keeps_the_rest_for_later():
    plan = FleetPlan(run_id="t6", wearables=5, homes=5)
    now = START + timedelta(minutes=10)
    fleet = Fleet(plan, START)
    first = fleet.due(now, now, limit=7)
    rest = fleet.due(now, now)
    everything = Fleet(plan, START).due(now, now)
    assert len(first) == 7
    assert len(everything) > 80  # about a message a minute from each of ten devices
    assert [m.encode() for m in first + rest] == [m.encode() for m in everything]


# --- scenarios: each produces the condition it is named for -------------------------------------

def _leak_holds(series: dict[str, Series]) -> None:
    assert _longest_run(series["water_leak"], lambda v: v == 1) >= timedelta(minutes=20)


def _co_holds(series: dict[str, Series]) -> None:
    assert _longest_run(series["co_ppm"], lambda v: v >= 150) >= timedelta(minutes=10)


def _smoke_holds(series: dict[str, Series]) -> None:
    assert _longest_run(series["smoke"], lambda v: v == 1) >= timedelta(minutes=2)
    during = [t for (ts, t), (_, s) in zip(series["temperature"], series["smoke"], strict=True) if s == 1]
    assert during[-1] > during[0] + 10


def _tachycardia_holds(series: dict[str, Series]) -> None:
    """docs/rules.md: 1-minute mean > 120 for 10 consecutive minutes, worn, fewer than 100 steps in them."""
    means, worn = _minute_means(series["heart_rate"]), _minute_means(series["worn"])
    steps: dict[datetime, float] = defaultdict(float)
    for ts, v in series["steps"]:
        steps[ts.replace(second=0)] += v

    def alarming(first: datetime) -> bool:
        window = [first + timedelta(minutes=i) for i in range(10)]
        return (all(means.get(m, 0) > 120 and worn.get(m) == 1 for m in window)
                and sum(steps[m] for m in window) < 100)

    assert any(alarming(minute) for minute in sorted(means))


def _fall_holds(series: dict[str, Series]) -> None:
    fired = [ts for ts, v in series["fall"] if v == 1]
    assert len(fired) == 1
    after = [v for ts, v in series["steps"] if fired[0] <= ts <= fired[0] + timedelta(minutes=5)]
    assert len(after) >= 5
    assert set(after) == {0}


CONDITIONS = {"leak": _leak_holds, "co": _co_holds, "smoke": _smoke_holds, "tachycardia": _tachycardia_holds,
              "fall": _fall_holds}


def test_every_scenario_has_its_condition_checked():
    assert set(CONDITIONS) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("hour", [3, 10, 15])
@pytest.mark.parametrize(("seed", "sample_interval_s"), [(0, 15), (1, 60), (2, 10)])
def test_scenario_produces_its_condition(name: str, hour: int, seed: int, sample_interval_s: int):
    injection = Injection(scenario=SCENARIOS[name], offset_s=hour * 3600, device=2)
    plan = FleetPlan(run_id="t7", wearables=2, homes=2, seed=seed, sample_interval_s=sample_interval_s,
                     samples_per_message=4, injections=(injection,))
    messages = _messages(plan, timedelta(hours=hour + 1))
    CONDITIONS[name](_series(messages, plan.injected_device_id(injection)))


def test_scenarios_leave_other_devices_alone():
    plan = FleetPlan(run_id="t8", wearables=2, homes=2,
                     injections=tuple(Injection(scenario=s, offset_s=600) for s in SCENARIOS.values()))
    messages = _messages(plan, timedelta(hours=1))
    home = _series(messages, "sim-t8-home-0002")
    wearable = _series(messages, "sim-t8-wb-0002")
    assert {v for _, v in home["water_leak"]} == {v for _, v in home["smoke"]} == {0}
    assert max(v for _, v in home["co_ppm"]) <= 5
    assert {v for _, v in wearable["fall"]} == {0}
    assert max(v for _, v in wearable["heart_rate"]) < 120


# --- signals ------------------------------------------------------------------------------------

def test_activity_raises_heart_rate_with_a_lag():
    signal = WearableSignal.create(random.Random(3))
    at = START + timedelta(hours=12)
    for _ in range(40):  # settle at rest
        rest = signal.sample(at, 15)
    assert rest["steps"] == 0
    signal.walk_left_s, signal.cadence_spm = 600.0, 100.0
    walking = [signal.sample(at + timedelta(seconds=15 * i), 15) for i in range(1, 17)]
    assert all(w["steps"] > 0 for w in walking)
    assert walking[0]["heart_rate"] < walking[-1]["heart_rate"] - 15
    assert walking[-1]["heart_rate"] > rest["heart_rate"] + 20


def test_over_a_day_walking_readings_have_a_higher_heart_rate():
    plan = FleetPlan(run_id="t9", wearables=5, homes=0)
    messages = _messages(plan, DAY)
    walking, resting = [], []
    for i in range(1, 6):
        series = _series(messages, f"sim-t9-wb-{i:04d}")
        steps = dict(series["steps"])
        for ts, hr in series["heart_rate"]:
            (walking if steps[ts] > 0 else resting).append(hr)
    assert walking and resting
    assert sum(walking) / len(walking) > sum(resting) / len(resting) + 15


def test_resting_heart_rate_is_lower_at_night():
    series = _series(_messages(FleetPlan(run_id="ta", wearables=1, homes=0, seed=4), DAY), "sim-ta-wb-0001")
    steps = dict(series["steps"])
    night = [hr for ts, hr in series["heart_rate"] if 2 <= ts.hour < 5 and steps[ts] == 0]
    afternoon = [hr for ts, hr in series["heart_rate"] if 13 <= ts.hour < 17 and steps[ts] == 0]
    assert sum(night) / len(night) < sum(afternoon) / len(afternoon) - 5


def test_wearable_goes_on_the_charger_before_the_low_battery_alert():
    signal = WearableSignal.create(random.Random(5))
    signal.battery_pct = 20.0
    samples = [signal.sample(START + timedelta(hours=10, minutes=i), 60) for i in range(12 * 60)]
    battery = [s["battery"] for s in samples]
    assert min(battery) > 10
    assert max(battery) >= 95
    assert any(s["worn"] == 0 and "heart_rate" not in s for s in samples)


# --- clock --------------------------------------------------------------------------------------

class FakeWall:
    """A wall clock the test moves by hand."""

    def __init__(self, start_s: float) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s


def test_accelerated_clock_replays_the_past_faster_and_never_passes_now():
    wall = FakeWall(1_800_000_000.25)
    clock = AcceleratedClock(span_s=1800, speed=60, wall=wall)
    assert clock.start == datetime.fromtimestamp(1_800_000_000 - 1800, UTC)
    assert not clock.caught_up()
    wall.now_s += 10
    assert clock.now() == clock.start + timedelta(seconds=600)
    for _ in range(600):
        wall.now_s += 0.25
        assert clock.now() <= clock.wall_now()
    assert clock.caught_up()
    assert clock.now() == clock.wall_now()


def test_clock_at_speed_one_and_no_span_is_real_time():
    wall = FakeWall(1_800_000_000.0)
    clock = AcceleratedClock(span_s=0, wall=wall)
    wall.now_s += 42.5
    assert clock.now() == clock.wall_now()
    assert clock.caught_up()


def test_clock_refuses_a_negative_span_and_slow_motion():
    with pytest.raises(ValueError, match="span_s"):
        AcceleratedClock(span_s=-1)
    with pytest.raises(ValueError, match="speed"):
        AcceleratedClock(span_s=0, speed=0.5)


# --- parsing and plan checks --------------------------------------------------------------------

@pytest.mark.parametrize(("text", "name", "offset_s", "device"), [
    ("leak", "leak", 60, 1),
    ("co@10m", "co", 600, 1),
    ("fall@90s:3", "fall", 90, 3),
    ("tachycardia@1.5h:2", "tachycardia", 5400, 2),
])
def test_injection_parses(text: str, name: str, offset_s: float, device: int):
    injection = Injection.parse(text)
    assert (injection.scenario.name, injection.offset_s, injection.device) == (name, offset_s, device)


@pytest.mark.parametrize("text", ["flood", "leak@", "leak@soon", "leak:0", "LEAK"])
def test_injection_refuses_nonsense(text: str):
    with pytest.raises(ValueError):
        Injection.parse(text)


def test_parse_duration_names_the_bad_text():
    assert parse_duration("2h") == 7200
    with pytest.raises(ValueError, match="'ten'"):
        parse_duration("ten")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"run_id": "Bad-Id"}, "run_id"),
    ({"wearables": 0, "homes": 0}, "at least one device"),
    ({"samples_per_message": MAX_SAMPLES_PER_MESSAGE + 1}, "samples_per_message"),
    ({"sample_interval_s": 0}, "sample_interval_s"),
    ({"homes": 1, "injections": (Injection.parse("leak:2"),)}, "home 2"),
    ({"wearables": 0, "injections": (Injection.parse("fall"),)}, "wearable 1"),
])
def test_plan_refuses_what_cannot_run(kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        FleetPlan(**{"run_id": "ok", **kwargs})


# --- provisioning through the API (a fake transport stands in for Vigil) ------------------------

class FakeApi:
    """Answers the three registration calls the way docs/interface.md describes."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.bodies: dict[str, list[dict]] = defaultdict(list)
        self.fail_on = fail_on

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer secret"
        body = json.loads(request.content)
        path = request.url.path.removeprefix("/api/v1/")
        if path == self.fail_on:
            return httpx.Response(422, json={"detail": "nope"})
        self.bodies[path].append(body)
        if path == "members":
            return httpx.Response(201, json={**body, "id": f"m-{body['email']}"})
        name = body.get("device_id") or body["id"]
        return httpx.Response(201, json={**body, "mqtt_username": f"u-{name}", "mqtt_password": "pw"})


def _http(api: FakeApi) -> httpx.Client:
    return httpx.Client(base_url="http://vigil", headers={"Authorization": "Bearer secret"},
                        transport=httpx.MockTransport(api))


def test_small_fleet_gets_a_member_per_pair_and_a_connection_per_device():
    api = FakeApi()
    plan = FleetPlan(run_id="p1", wearables=3, homes=1, sample_interval_s=30, samples_per_message=2)
    provisioned = provision(_http(api), plan, care_manager_id="cm-1")
    assert not provisioned.via_gateways
    assert sorted(provisioned.members) == ["sim-p1-home-0001", "sim-p1-wb-0001", "sim-p1-wb-0002", "sim-p1-wb-0003"]
    assert provisioned.members["sim-p1-home-0001"] == provisioned.members["sim-p1-wb-0001"]
    assert sorted(m["policy"]["line"] for m in api.bodies["members"]) == ["both", "health", "health"]
    member = api.bodies["members"][0]
    assert set(member) == {"name", "birth_date", "phone", "email", "address", "timezone", "policy",
                           "care_manager_id", "emergency_contacts", "consent"}
    assert member["consent"] == {"monitoring": True, "outreach": True, "auto_claims": False}
    assert {d["report_interval_s"] for d in api.bodies["devices"]} == {60}
    assert {link.device_ids for link in provisioned.links} == {(d,) for d in provisioned.members}
    assert all(link.username == f"u-{link.device_ids[0]}" for link in provisioned.links)


def test_large_fleet_publishes_through_gateways():
    api = FakeApi()
    plan = FleetPlan(run_id="p2", wearables=3, homes=2)
    provisioned = provision(_http(api), plan, care_manager_id="cm-1", gateway_size=2)
    assert provisioned.via_gateways
    assert [len(link.device_ids) for link in provisioned.links] == [2, 2, 1]
    bound = [d for g in api.bodies["gateways"] for d in g["device_ids"]]
    assert sorted(bound) == sorted(provisioned.members)
    assert [g["id"] for g in api.bodies["gateways"]] == ["sim-p2-gw-001", "sim-p2-gw-002", "sim-p2-gw-003"]


def test_refusal_by_the_api_is_a_provisioning_error_with_the_answer():
    with pytest.raises(ProvisioningError, match="422"):
        provision(_http(FakeApi(fail_on="devices")), FleetPlan(run_id="p3"), care_manager_id="cm-1")


def test_direct_connections_are_capped():
    with pytest.raises(ValueError, match="too many"):
        provision(_http(FakeApi()), FleetPlan(run_id="p4", wearables=600, homes=0), care_manager_id="cm-1",
                  gateway_size=0)


# --- command line -------------------------------------------------------------------------------

def test_simulate_command_refuses_an_unknown_scenario_before_touching_anything():
    app = typer.Typer()
    app.command("simulate")(simulate)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["simulate", "--token", "t", "--scenario", "flood"])
    assert result.exit_code == 2
    assert "flood" in result.output
