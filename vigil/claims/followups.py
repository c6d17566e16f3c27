"""What follows a paid claim: the care manager's next step with the member, and a prevention tip for a home loss.

The service goes on after the payout: the money repairs the kitchen, not the pipe or the hip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vigil.alerting.followups import CHECK_IN_AT


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A task for the care manager (`reason`, in their words) and the alert type whose tip goes to the member."""

    reason: str
    tip_for: str | None = None


def after_payment(*, kind: str, alert_type: str) -> list[FollowUp]:
    """The follow-ups a paid claim of `kind` (from an alert of `alert_type`) asks for."""
    if kind == "water_damage":
        return [FollowUp("Plumber's check after the paid water damage claim: ask whether the leak was repaired by a "
                         "professional and offer to arrange a plumber to check the pipes and the shut-off valve",
                         tip_for="water_leak")]
    if kind == "fire":
        return [FollowUp("Home safety check after the paid fire claim: ask whether the smoke alarms work again, "
                         "whether the home is safe to live in, and offer a fire safety visit",
                         tip_for="smoke")]
    if kind == "accident" and alert_type == "fall":
        return [FollowUp("Rehabilitation check-in after the fall: ask how the recovery is going, whether "
                         "physiotherapy or help at home is in place, and whether anything at home makes another "
                         "fall likely")]
    if kind == "accident":
        return [FollowUp("Recovery check-in after the accident: ask how the recovery is going and whether any "
                         "help is needed at home")]
    raise ValueError(f"kind {kind!r} is not a claim type (water_damage, fire, accident)")


def follow_up_due(paid_at: datetime, timezone: str) -> datetime:
    """When the follow-up falls due (UTC): 10:00 in the member's zone on the day after the payment."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        # The zone was checked when the member was registered; one gone from tzdata since must not lose the task.
        zone = ZoneInfo("UTC")
    if paid_at.tzinfo is None:
        paid_at = paid_at.replace(tzinfo=UTC)
    day = paid_at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, CHECK_IN_AT, tzinfo=zone).astimezone(UTC)
