"""Which claims go straight to a dedicated handler (the green channel): the serious ones, first in the queue."""

from __future__ import annotations

from datetime import date

# "A fall of a member over 75", read as the over-75s are: aged 75 or older on the day of the fall.
FALL_AGE = 75


def age_on(birth_date: date | None, day: date) -> int | None:
    """Age in whole years on `day`; None when the birth date is not on file."""
    if birth_date is None:
        return None
    before_birthday = (day.month, day.day) < (birth_date.month, birth_date.day)
    return day.year - birth_date.year - before_birthday


def green_channel(*, kind: str, alert_type: str, age_at_loss: int | None, emergency_help: bool | None) -> str | None:
    """Why the claim goes to a dedicated handler, in a sentence; None when it takes the ordinary queue.

    A fire always does; an accident does when it is a fall of a member aged `FALL_AGE` or more, or when
    emergency help was sent.
    """
    if kind == "fire":
        return "A fire in the home."
    if kind != "accident":
        return None
    old_fall = alert_type == "fall" and age_at_loss is not None and age_at_loss >= FALL_AGE
    what = f"A fall of a member aged {age_at_loss}" if old_fall else "An accident"
    if emergency_help:
        return f"{what}, and emergency help was sent."
    return f"{what}." if old_fall else None
