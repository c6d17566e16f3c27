"""The bench's arithmetic and rendering: percentiles, rates, CPU shares, aims, tables."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
from rich.console import Console

from bench.report import (
    AlertLatency,
    BenchReport,
    Ceiling,
    CpuUse,
    Latency,
    Memory,
    StageLatency,
    Throughput,
    busiest,
    ceiling_notes,
    ceiling_rows,
    cpu_ms_per_message,
    cpu_notes,
    cpu_rows,
    cpu_shares,
    end_to_end_rows,
    fmt_latency,
    fmt_ms,
    fmt_rate,
    judge_aims,
    machine_share,
    percentile,
    rate,
    render,
    summarize_latency,
)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([5.0], 0.99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([10.0, 20.0], 0.25, 12.5),
        (list(range(101)), 0.95, 95.0),
        (list(range(101)), 0.99, 99.0),
    ],
)
def test_percentile_interpolates_like_percentile_cont(values, fraction, expected):
    assert percentile(values, fraction) == pytest.approx(expected)


@pytest.mark.parametrize(("values", "fraction"), [([], 0.5), ([1.0], -0.1), ([1.0], 1.5)])
def test_percentile_refuses_what_is_undefined(values, fraction):
    with pytest.raises(ValueError):
        percentile(values, fraction)


def test_latency_summary_sorts_its_input_and_keeps_the_maximum():
    summary = summarize_latency(float(v) for v in reversed(range(1, 101)))
    assert summary == Latency(count=100, p50_ms=pytest.approx(50.5), p95_ms=pytest.approx(95.05),
                              p99_ms=pytest.approx(99.01), max_ms=100.0)


def test_no_latencies_summarize_to_none():
    assert summarize_latency([]) is None


@pytest.mark.parametrize(("count", "seconds", "expected"), [(100, 2.0, 50.0), (0, 1.0, 0.0), (10, 0.0, None)])
def test_rate(count, seconds, expected):
    assert rate(count, seconds) == expected


def test_cpu_shares_count_new_processes_from_zero_and_ignore_vanished_ones():
    before = {"ingest": {10: 1_000}, "load generator": {20: 50, 21: 70}}
    after = {"ingest": {10: 1_100}, "load generator": {20: 100, 22: 50}, "api": {30: 5}}
    shares = cpu_shares(before, after, wall_s=2.0, ticks_per_s=100)
    # 100 ticks in 2 s at 100 ticks/s: half a core.
    assert shares == {"ingest": pytest.approx(50.0), "load generator": pytest.approx(50.0),
                      "api": pytest.approx(2.5)}


def test_cpu_shares_need_time_to_pass():
    with pytest.raises(ValueError):
        cpu_shares({}, {}, wall_s=0.0, ticks_per_s=100)


def test_machine_share_is_in_percent_of_one_core():
    # Busy for 150 of 200 ticks on two CPUs: one and a half cores.
    assert machine_share((1_000, 4_000), (1_150, 4_200), cpus=2) == pytest.approx(150.0)
    assert machine_share((1, 1), (1, 1), cpus=2) == 0.0


def _latency(p99_ms: float) -> Latency:
    return Latency(count=40, p50_ms=p99_ms / 2, p95_ms=p99_ms * 0.9, p99_ms=p99_ms, max_ms=p99_ms * 1.1)


def _throughput(readings: int, stored: int, pipeline_s: float) -> Throughput:
    return Throughput(readings_per_message=readings, published=stored, acked=stored, stored=stored,
                      readings_stored=stored * readings, publish_s=pipeline_s / 4, received_s=pipeline_s / 2,
                      pipeline_s=pipeline_s, to_received=_latency(100.0), latency=_latency(900.0))


def _alerts(label: str, p99_ms: float, raised: int = 40, told: int = 40) -> AlertLatency:
    return AlertLatency(label=label, leaks=40, raised=raised, background_target_per_s=1000.0 if label != "idle" else 0,
                        background_achieved_per_s=990.0 if label != "idle" else 0, to_received=_latency(5.0),
                        to_stored=_latency(p99_ms - 50), to_raised=_latency(p99_ms), told=told,
                        to_member=_latency(p99_ms * 2), raised_to_member=_latency(p99_ms * 2))


def _cpu(phase: str, *, pipeline_share: float, wall_s: float) -> CpuUse:
    """A phase in which the pipeline used `pipeline_share` % of a core (split over two processes), plus the load."""
    return CpuUse(phase=phase, wall_s=wall_s, machine=pipeline_share + 50.0,
                  shares={"ingest": pipeline_share / 4, "streams": pipeline_share * 3 / 4, "load generator": 50.0})


def _report(**changes) -> BenchReport:
    report = BenchReport(run_id="abc123", cpus=2, sizes={"messages": 60_000})
    report.throughput = [_throughput(1, 60_000, 10.0), _throughput(10, 60_000, 10.0)]
    report.alerts = [_alerts("idle", 150.0), _alerts("half load", 800.0)]
    # 1 reading/msg: 180 % of a core for 10 s = 18 CPU s over 60,000 messages = 0.3 ms each.
    # 10 readings/msg: 150 % for 20 s = 30 CPU s over 600,000 readings = 0.05 ms each.
    report.cpu = [_cpu("1 reading/msg", pipeline_share=180.0, wall_s=10.0),
                  _cpu("10 readings/msg", pipeline_share=150.0, wall_s=20.0)]
    for name, value in changes.items():
        setattr(report, name, value)
    return report


def test_throughput_rates_come_from_the_database_span():
    run = _throughput(10, 60_000, 10.0)
    assert run.messages_per_s == 6_000
    assert run.readings_per_s == 60_000
    assert run.publish_per_s == 24_000
    assert run.received_per_s == 12_000


def test_aims_are_met_when_every_figure_clears_its_bar():
    aims = judge_aims(_report())
    assert [aim.met for aim in aims] == [True, True, True, True, True]
    assert [aim.measured for aim in aims[:3]] == ["0.300 ms", "0.050 ms", "150 ms"]


def test_aims_are_not_met_below_the_bar():
    slow = _report(cpu=[_cpu("1 reading/msg", pipeline_share=180.0, wall_s=20.0),
                        _cpu("10 readings/msg", pipeline_share=150.0, wall_s=30.0)],
                   alerts=[replace(_alerts("idle", 201.0), raised_to_member=_latency(2_500.0)),
                           _alerts("half load", 1_000.0)])
    assert [aim.met for aim in judge_aims(slow)] == [False, False, False, False, False]


def test_aims_are_not_measured_without_their_run_or_with_missing_alerts():
    partial = _report(throughput=[], alerts=[_alerts("idle", 100.0, told=39, raised=39),
                                             _alerts("half load", 100.0, raised=39)])
    aims = judge_aims(partial)
    assert [aim.met for aim in aims] == [None, None, None, None, None]
    assert all(aim.measured == "—" for aim in aims)


def test_cpu_per_message_counts_every_process_but_the_load_generator():
    per = cpu_ms_per_message(_cpu("1 reading/msg", pipeline_share=180.0, wall_s=10.0), 60_000)
    assert per == {"ingest": pytest.approx(0.075), "streams": pytest.approx(0.225),
                   "load generator": pytest.approx(50 / 100 * 10 * 1000 / 60_000), "pipeline": pytest.approx(0.3)}
    assert cpu_ms_per_message(_cpu("x", pipeline_share=1.0, wall_s=1.0), 0) == {}


def test_the_cpu_per_message_table_ends_with_the_pipeline_and_shows_per_reading():
    console = Console(file=io.StringIO(), width=160)
    render(_report(), console)
    text = console.file.getvalue()
    assert "CPU milliseconds per message stored" in text
    pipeline_line = next(line for line in text.splitlines() if re.match(r"│ pipeline\s+│", line))
    assert "0.300 ms" in pipeline_line and "0.500 ms" in pipeline_line and "0.050 ms" in pipeline_line


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (0.42, "0.4 ms"), (12.4, "12 ms"), (999.0, "999 ms"), (1_234.0, "1.23 s")],
)
def test_milliseconds_are_shown_in_a_readable_unit(value, text):
    assert fmt_ms(value) == text


@pytest.mark.parametrize(("value", "text"), [(None, "—"), (12.34, "12.3 msg/s"), (12_345.6, "12,346 msg/s")])
def test_rates_are_grouped_by_thousands(value, text):
    assert fmt_rate(value, "msg/s") == text


def test_latency_reads_as_four_percentiles():
    assert fmt_latency(_latency(1_000.0)) == "p50 500 ms · p95 900 ms · p99 1.00 s · max 1.10 s"


def test_ceiling_rows_show_the_sample_and_the_rate_with_throughput_when_bytes_are_known():
    rows = ceiling_rows(
        [Ceiling(stage="Kafka produce", measure="1-reading records", count=100_000, seconds=0.5, unit="records",
                 payload_bytes=20_000_000, note="0 failed")],
        [StageLatency(stage="Kafka round trip", measure="idle", latency=_latency(8.0))],
    )
    assert rows == [
        ("Kafka produce", "1-reading records", "100,000 in 0.5 s", "200,000 records/s (40.0 MB/s)"),
        ("Kafka round trip", "idle", "40 idle", "p50 4.0 ms · p95 7.2 ms · p99 8.0 ms · max 8.8 ms"),
    ]


def test_ceiling_notes_name_their_stage():
    notes = ceiling_notes([Ceiling(stage="COPY", measure="1 reading", count=1, seconds=1.0, unit="readings",
                                   note="5 records/s"),
                           Ceiling(stage="quiet", measure="x", count=1, seconds=1.0, unit="msg")])
    assert notes == ["COPY (1 reading): 5 records/s"]


def test_end_to_end_rows_cover_both_throughput_runs_and_both_alert_runs():
    labels = [label for label, _ in end_to_end_rows(_report())]
    assert "1 reading/msg: throughput" in labels
    assert "10 readings/msg: throughput" in labels
    assert "alerts idle" in labels
    assert "alerts half load" in labels
    values = dict(end_to_end_rows(_report()))
    assert values["10 readings/msg: throughput"] == "6,000 msg/s = 60,000 readings/s"
    assert values["alerts half load"] == "40 of 40 raised, 990 msg/s background"
    assert values["alerts idle"] == "40 of 40 raised, no background load"


def test_cpu_rows_put_phases_in_columns_and_add_what_the_bench_did_not_run():
    uses = [CpuUse(phase="a", wall_s=10.0, shares={"ingest": 90.0, "streams": 60.0}, machine=180.0),
            CpuUse(phase="b", wall_s=5.0, shares={"ingest": 10.0, "tansu": 5.0}, machine=10.0)]
    assert cpu_rows(uses) == [
        ["ingest", "90 %", "10 %"],
        ["streams", "60 %", "—"],
        ["tansu", "—", "5 %"],
        ["other processes", "30 %", "0 %"],
        ["whole machine", "180 %", "10 %"],
    ]


def test_cpu_notes_name_the_busiest_and_warn_about_other_load():
    use = CpuUse(phase="1 reading/msg", wall_s=10.0, shares={"ingest": 40.0, "streams": 99.0, "api": 1.0,
                                                              "tansu": 20.0}, machine=190.0)
    assert busiest(use, top=2) == [("streams", 99.0), ("ingest", 40.0)]
    assert cpu_notes([use], cpus=2) == ["1 reading/msg: machine 190 % of 200 %; busiest streams 99 %, "
                                        "ingest 40 %, tansu 20 %; other processes 30 %"]


def test_json_carries_the_derived_rates_and_the_verdicts():
    data = json.loads(json.dumps(_report().to_json()))
    assert data["throughput"][0]["messages_per_s"] == 6_000
    assert [aim["met"] for aim in data["aims"]] == [True, True, True, True, True]
    assert data["alerts"][1]["to_raised"]["p99_ms"] == 800.0
    assert data["cpu_ms_per_message"]["1 reading/msg"]["pipeline"] == pytest.approx(0.3)
    assert data["cpu_ms_per_message"]["10 readings/msg"]["pipeline"] == pytest.approx(0.5)


def test_render_prints_the_tables_and_the_verdicts():
    report = _report(
        ceilings=[Ceiling(stage="Mosquitto fan-in", measure="4 gateways", count=60_000, seconds=6.0, unit="msg")],
        cpu=[CpuUse(phase="1 reading/msg", wall_s=10.0, shares={"ingest": 90.0}, machine=150.0)],
        memory=[Memory(component="ingest", rss_kb=60 * 1024, peak_kb=61 * 1024)],
        notes=["a note"],
    )
    out = io.StringIO()
    render(report, Console(file=out, width=250, color_system=None))
    text = out.getvalue()
    for expected in ("Ceilings (each stage alone)", "End to end", "Mosquitto fan-in", "10,000 msg/s", "Aims",
                     "met", "60 MB", "a note", "2 CPUs", "competes"):
        assert expected in text
