"""The reading chart's geometry: inside its frame, thresholds and the alert marked, peaks never thinned away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.console.chart import HEIGHT, MAX_POINTS, PAD_B, PAD_L, PAD_R, PAD_T, WIDTH, build_chart

TRIGGERED = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
START, END = TRIGGERED - timedelta(minutes=30), TRIGGERED + timedelta(minutes=30)


def _points(chart) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in chart.points.split()]


def _build(readings, *, thresholds=(120.0,), flag=False, tz="UTC"):
    return build_chart(readings, start=START, end=END, marker=TRIGGERED, thresholds=thresholds, flag=flag, tz=tz)


def test_readings_are_drawn_inside_the_frame_left_to_right() -> None:
    readings = [(START + timedelta(minutes=m), 70.0 + m) for m in range(0, 61, 5)]
    chart = _build(readings)
    points = _points(chart)
    assert len(points) == len(readings)
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert all(PAD_L <= x <= WIDTH - PAD_R and PAD_T <= y <= HEIGHT - PAD_B for x, y in points)
    # Higher values are drawn higher up (smaller y).
    assert points[0][1] > points[-1][1]
    assert chart.marker_x == (PAD_L + WIDTH - PAD_R) / 2
    assert [t.label for t in chart.x_ticks] == ["13:30", "13:40", "13:50", "14:00", "14:10", "14:20", "14:30"]
    [threshold] = chart.thresholds
    assert threshold.label == "120" and PAD_T <= threshold.at <= HEIGHT - PAD_B


def test_axis_labels_are_in_the_viewers_zone() -> None:
    chart = _build([(TRIGGERED, 80.0)], tz="Europe/Paris")
    assert chart.x_ticks[0].label == "14:30"


def test_a_flag_is_drawn_as_steps_between_off_and_on() -> None:
    readings = [(START, 0.0), (TRIGGERED, 1.0), (END, 1.0)]
    chart = _build(readings, thresholds=(1.0,), flag=True)
    points = _points(chart)
    # Each change holds the previous value until the next reading: 3 readings, 5 corners.
    assert len(points) == 5
    assert points[1] == (points[2][0], points[0][1])
    assert [t.label for t in chart.y_ticks] == ["off", "on"]
    assert chart.thresholds == ()


def test_many_readings_are_thinned_keeping_every_peak() -> None:
    readings = [(START + timedelta(seconds=s), 70.0) for s in range(3600)]
    readings[1234] = (readings[1234][0], 190.0)
    readings[2345] = (readings[2345][0], 40.0)
    chart = _build(readings, thresholds=())
    points = _points(chart)
    assert len(points) <= MAX_POINTS
    ys = [y for _, y in points]
    baseline = max(set(ys), key=ys.count)
    # Both the one high and the one low reading survive the thinning.
    assert min(ys) < baseline < max(ys)
    assert chart.readings == 3600
