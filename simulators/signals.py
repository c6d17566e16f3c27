"""Normal signals of a wearable and a home sensor: what a quiet day looks like, one sample at a time.

Values come out raw (floats, possibly a little outside what a device would report); the device
clamps and rounds them. Time of day is the UTC hour: the simulated members live on UTC.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime

# Heart rate follows a change in effort with roughly this time constant.
_HR_LAG_S = 45.0
# Extra beats per minute for each step per minute of walking cadence.
_HR_PER_CADENCE = 0.3
_WEARABLE_DRAIN_PCT_H = 2.2
_WALK_DRAIN_PCT_H = 1.0
_CHARGE_PCT_MIN = 1.2
# The member puts the wearable on the charger here, well before the 10 % low-battery alert.
_CHARGE_AT_PCT = 15.0
_CHARGED_PCT = 95.0
_HOME_DRAIN_PCT_H = 0.02
_HOME_SWAP_AT_PCT = 15.0


def _hour(at: datetime) -> float:
    return at.hour + at.minute / 60 + at.second / 3600


def _daily(at: datetime, peak_hour: float) -> float:
    """A daily wave: 1 at `peak_hour`, -1 twelve hours away."""
    return math.cos(2 * math.pi * (_hour(at) - peak_hour) / 24)


def _asleep(at: datetime) -> bool:
    return _hour(at) < 6.5 or _hour(at) >= 23


def _chance(dt_s: float, mean_gap_s: float) -> float:
    """Probability that an event with the given mean gap happens within `dt_s`."""
    return 1 - math.exp(-dt_s / mean_gap_s)


@dataclass(slots=True, kw_only=True)
class WearableSignal:
    """A wrist wearable on a member who sleeps at night, walks during the day and charges when low."""

    rng: random.Random
    resting_bpm: float
    battery_pct: float
    hr_bpm: float
    walk_left_s: float = 0.0
    cadence_spm: float = 0.0
    off_wrist_left_s: float = 0.0
    charging: bool = False

    @classmethod
    def create(cls, rng: random.Random) -> WearableSignal:
        resting = rng.uniform(58, 74)
        return cls(rng=rng, resting_bpm=resting, battery_pct=rng.uniform(45, 100), hr_bpm=resting)

    def _move(self, at: datetime, dt_s: float) -> None:
        if self.walk_left_s > 0:
            self.walk_left_s -= dt_s
            return
        self.cadence_spm = 0.0
        asleep = _asleep(at)
        if self.rng.random() < _chance(dt_s, 4 * 3600 if asleep else 80 * 60):
            # At night a short shuffle to the bathroom; by day a proper walk.
            self.walk_left_s = self.rng.uniform(60, 180) if asleep else self.rng.uniform(5 * 60, 30 * 60)
            self.cadence_spm = self.rng.uniform(60, 80) if asleep else self.rng.uniform(85, 115)

    def _wear(self, at: datetime, dt_s: float) -> None:
        if self.charging:
            self.battery_pct += _CHARGE_PCT_MIN * dt_s / 60
            self.charging = self.battery_pct < _CHARGED_PCT
        elif self.battery_pct <= _CHARGE_AT_PCT:
            self.charging = True
        elif self.off_wrist_left_s > 0:
            self.off_wrist_left_s -= dt_s
        elif _asleep(at) and self.rng.random() < _chance(dt_s, 24 * 3600):
            self.off_wrist_left_s = self.rng.uniform(20 * 60, 90 * 60)

    def sample(self, at: datetime, dt_s: float) -> dict[str, float]:
        """Advance the wearer's state by `dt_s` and return what the sensors read at `at`."""
        self._wear(at, dt_s)
        worn = not self.charging and self.off_wrist_left_s <= 0
        if worn:
            self._move(at, dt_s)
        else:
            self.walk_left_s, self.cadence_spm = 0.0, 0.0
        walking = self.cadence_spm > 0
        if not self.charging:
            drain = _WEARABLE_DRAIN_PCT_H + (_WALK_DRAIN_PCT_H if walking else 0.0)
            self.battery_pct -= drain * dt_s / 3600

        rest = self.resting_bpm + 5 * _daily(at, 15)
        target = rest + _HR_PER_CADENCE * self.cadence_spm
        self.hr_bpm += (target - self.hr_bpm) * (1 - math.exp(-dt_s / _HR_LAG_S))
        steps = self.cadence_spm * dt_s / 60 * self.rng.uniform(0.85, 1.1) if walking else 0.0
        values = {"steps": steps, "worn": float(worn), "fall": 0.0, "battery": self.battery_pct}
        if worn:
            # An optical sensor off the wrist measures nothing, so those readings are simply absent.
            asleep = _asleep(at)
            values["heart_rate"] = self.hr_bpm + self.rng.gauss(0, 1.5)
            values["spo2"] = min(max(self.rng.gauss(96.5 if asleep else 97.5, 0.8), 95), 99)
            values["skin_temp"] = 33.2 + (0.6 if asleep else 0.0) + self.rng.gauss(0, 0.15)
        return values


@dataclass(slots=True, kw_only=True)
class HomeSensor:
    """A multi-sensor in a lived-in home: room climate with a daily cycle, quiet hazards, people moving."""

    rng: random.Random
    base_c: float
    humidity_pct: float
    battery_pct: float

    @classmethod
    def create(cls, rng: random.Random) -> HomeSensor:
        return cls(rng=rng, base_c=rng.uniform(19.5, 22.5), humidity_pct=rng.uniform(38, 52),
                   battery_pct=rng.uniform(40, 100))

    def sample(self, at: datetime, dt_s: float) -> dict[str, float]:
        """Advance by `dt_s` and return what the sensors read at `at`."""
        self.battery_pct -= _HOME_DRAIN_PCT_H * dt_s / 3600
        if self.battery_pct <= _HOME_SWAP_AT_PCT:
            self.battery_pct = 100.0
        asleep = _asleep(at)
        return {
            "temperature": self.base_c + 1.2 * _daily(at, 17) + self.rng.gauss(0, 0.1),
            "humidity": self.humidity_pct + 6 * _daily(at, 6) + self.rng.gauss(0, 1),
            "co_ppm": min(max(self.rng.gauss(1.5, 1.0), 0), 5),
            "gas_lel": 0.0,
            "smoke": 0.0,
            "water_leak": 0.0,
            "arc_events": 0.0,
            "motion": float(self.rng.random() < _chance(dt_s, 4 * 3600 if asleep else 10 * 60)),
            "door_open": float(self.rng.random() < _chance(dt_s, 24 * 3600 if asleep else 90 * 60)),
            "battery": self.battery_pct,
        }
