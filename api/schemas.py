"""The JSON shapes of the v1 API (docs/interface.md): what clients send and what they get back."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    ValidationInfo,
    computed_field,
    field_validator,
)

from api.dates import FullDate
from api.storable import unstorable
from vigil.broker_accounts import client_id
from vigil.claims.lifecycle import INSURER_STATUSES, STATUSES
from vigil.events import IncidentKind, PolicyLine, Severity
from vigil.rules.catalog import ALERT_TYPES
from vigil.telemetry import DEVICE_ID_PATTERN
from vigil.timefmt import utc_text

AlertType = Literal[ALERT_TYPES]  # type: ignore[valid-type]
AlertStatus = Literal["open", "acknowledged", "escalated", "resolved"]

# Every id a client chooses (members, devices, gateways) has the shape of an MQTT topic level.
Identifier = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
# Vigil's own broker logins are named vigil-*; a device of that name would take one over.
RESERVED_PREFIX = "vigil-"
Phone = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 ().-]{2,31}$")]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
# Outreach goes through Apprise, whose targets are URLs of many schemes (mailto://, tgram://, ...).
OutreachUrl = Annotated[str, Field(max_length=2000, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
# Free text a person writes: a note on an alert, what a call was about.
NoteText = Annotated[str, Field(min_length=1, max_length=2000)]
# A wall-clock time of day, 24 h: `22:00`.
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["22:00"])]
UtcDatetime = Annotated[datetime, PlainSerializer(utc_text, return_type=str)]


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone such as 'Europe/Paris'")
    return value


def _not_reserved(value: str) -> str:
    if value.startswith(RESERVED_PREFIX):
        raise ValueError(f"ids beginning with {RESERVED_PREFIX!r} are reserved for Vigil's own broker logins")
    return value


class _Input(BaseModel):
    # A misspelt field ("consents") is refused by name rather than silently ignored.
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        """Every field of every body, present and future: what PostgreSQL would refuse is a 422 naming it.

        Nested bodies (`policy`) check their own fields; this sees the strings, lists and free-form
        JSON (`care_plan`), keys included.
        """
        if problem := unstorable(value, info.field_name or ""):
            raise ValueError(problem)
        return value


class Policy(_Input):
    number: ShortText
    line: Literal["health", "home", "both"]


class EmergencyContact(_Input):
    name: ShortText
    phone: Phone
    relation: ShortText
    # Where the escalation ladder's messages reach this contact (an Apprise URL); none: not messaged.
    outreach_url: OutreachUrl | None = None


class QuietHours(_Input):
    """When a non-critical message to the member waits, in the member's time zone; may span midnight."""

    start: ClockTime
    end: ClockTime

    @field_validator("end")
    @classmethod
    def _not_empty(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("start"):
            raise ValueError("must differ from start: quiet hours that end when they begin are no hours at all")
        return value


class Consent(_Input):
    """Each consent is given or refused explicitly: there is no default."""

    monitoring: StrictBool
    outreach: StrictBool
    auto_claims: StrictBool


class MemberIn(_Input):
    """`POST /members`; `id` is generated when absent."""

    id: Identifier | None = None
    name: ShortText
    birth_date: FullDate | None = None
    phone: Phone | None = None
    email: Email | None = None
    address: Annotated[str, Field(max_length=500)] | None = None
    timezone: str = "UTC"
    policy: Policy
    care_manager_id: Identifier | None = None
    emergency_contacts: Annotated[list[EmergencyContact], Field(max_length=20)] = []
    consent: Consent
    care_plan: dict[str, Any] = {}
    outreach_urls: Annotated[list[OutreachUrl], Field(max_length=20)] = []
    quiet_hours: QuietHours | None = Field(
        None, description="Non-critical messages to the member wait until the end of these hours (member's time)."
    )
    contact_by_call: StrictBool = Field(
        False, description="The member does not use apps: each step that would message them is also a call task."
    )

    _zone_known = field_validator("timezone")(_known_zone)

    @field_validator("birth_date")
    @classmethod
    def _born(cls, value: date | None) -> date | None:
        if value is not None and value > datetime.now(UTC).date():
            raise ValueError("is in the future")
        return value


class Member(MemberIn):
    id: str
    created_at: UtcDatetime


class CareManagerIn(_Input):
    """`POST /care_managers`; `id` is generated when absent."""

    id: Identifier | None = None
    name: ShortText
    email: Email | None = None
    phone: Phone | None = None
    timezone: str = "UTC"
    outreach_urls: Annotated[list[OutreachUrl], Field(max_length=20)] = []

    _zone_known = field_validator("timezone")(_known_zone)


class CareManager(CareManagerIn):
    id: str
    created_at: UtcDatetime


class DeviceIn(_Input):
    """`POST /devices`."""

    device_id: Identifier
    kind: Literal["wearable", "home"]
    member_id: Identifier
    location: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    report_interval_s: Annotated[int, Field(gt=0, le=86_400)] = 300

    _device_id_free = field_validator("device_id")(_not_reserved)


_CLIENT_ID_DOC = "the MQTT client id to connect with; the broker refuses this login under any other"


class Device(DeviceIn):
    enabled: bool
    mqtt_username: str
    created_at: UtcDatetime

    @computed_field(description=_CLIENT_ID_DOC)
    @property
    def mqtt_client_id(self) -> str:
        return client_id(self.mqtt_username)


class DeviceCredentials(Device):
    """A registered device with the password it connects with, shown this once only."""

    mqtt_password: str


class GatewayIn(_Input):
    """`POST /gateways`: a hub or partner cloud and the devices it may publish for."""

    id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    device_ids: Annotated[list[Identifier], Field(max_length=10_000)] = []

    _id_free = field_validator("id")(_not_reserved)


class GatewayCredentials(GatewayIn):
    mqtt_username: str
    mqtt_password: str
    created_at: UtcDatetime

    @computed_field(description=_CLIENT_ID_DOC)
    @property
    def mqtt_client_id(self) -> str:
        return client_id(self.mqtt_username)


class Reading(BaseModel):
    ts: UtcDatetime
    metric: str
    value: float
    seq: int


Outcome = Literal["false_alarm", "member_ok", "assisted", "emergency_dispatched", "no_action_needed"]
LadderRecipient = Literal["member", "care_manager", "emergency_contacts"]


class NextStep(BaseModel):
    """The escalation ladder's next pending step: who it reaches and when (a snooze pushes it back)."""

    step: int
    to: LadderRecipient
    due_at: UtcDatetime


class Alert(BaseModel):
    id: str
    type: str
    severity: Severity
    status: AlertStatus
    member_id: str
    device_id: str
    triggered_at: UtcDatetime
    raised_at: UtcDatetime
    updated_at: UtcDatetime
    cleared_at: UtcDatetime | None
    resolved_at: UtcDatetime | None
    evidence: dict[str, Any]
    history: list[dict[str, Any]]
    acknowledged_at: UtcDatetime | None = None
    # Who acknowledged it, as the history names them (`care_manager:<id>`, `admin:...`).
    acknowledged_by: str | None = None
    outcome: Outcome | None = None
    # The care manager id the alert is assigned to.
    assigned_to: str | None = None
    snoozed_until: UtcDatetime | None = None
    next_step: NextStep | None = None


class ResolveIn(_Input):
    """`POST /alerts/{id}/resolve`."""

    outcome: Outcome
    note: NoteText | None = None


class SnoozeIn(_Input):
    """`POST /alerts/{id}/snooze`: the ladder waits this long; a step falling due meanwhile runs after it."""

    minutes: Annotated[int, Field(ge=1, le=1440)]


class NoteIn(_Input):
    """`POST /alerts/{id}/notes`."""

    text: NoteText


class AssignIn(_Input):
    """`POST /alerts/{id}/assign`: a registered care manager's id."""

    care_manager_id: Identifier


class CallIn(_Input):
    """`POST /alerts/{id}/calls`: a call made about the alert; it completes the alert's open call tasks."""

    note: NoteText
    reached: StrictBool | None = Field(None, description="Whether the call reached the person called.")


class OutreachEntry(BaseModel):
    """One message sent or tried for an alert, to one channel of one recipient (never its address or text)."""

    step: int
    purpose: Literal["alert", "repeat", "tip"]
    to: Literal["member", "care_manager", "emergency_contact"]
    recipient: str
    channel: str = Field(description="The Apprise URL's scheme (`mailto`, `json`...), or `none` without one.")
    status: Literal["pending", "sent", "failed", "held", "skipped"] = Field(
        description="`pending`: queued or waiting for its next try; a message grouped into another alert's "
        "message shows that message's status."
    )
    reason: str | None
    attempts: int
    at: UtcDatetime


class Task(BaseModel):
    """A care manager's work item: a call to a member who does not use apps, a check-in after an incident, or
    a follow-up after a claim was paid."""

    id: int
    kind: Literal["call", "check_in", "claim_follow_up"]
    status: Literal["open", "done", "cancelled"]
    alert_id: str | None
    claim_id: str | None = None
    step: int
    member_id: str
    member_name: str | None
    care_manager_id: str | None
    due_at: UtcDatetime
    reason: str
    created_at: UtcDatetime
    done_at: UtcDatetime | None
    done_by: str | None
    note: str | None


class TaskDoneIn(_Input):
    """`POST /tasks/{id}/done`."""

    note: NoteText | None = None


class AuditEntry(BaseModel):
    """One read of a member's health data: who, in which role, what, when."""

    id: int
    at: UtcDatetime
    actor: str
    role: str
    action: str
    member_id: str | None
    subject: str


class Health(BaseModel):
    status: Literal["up", "down"]
    components: dict[str, Literal["up", "down"]]


_OVERRIDES_EXAMPLE = {
    "tachycardia": {"tiers.0.threshold": 130, "tiers.0.minutes": 15},
    "water_leak": {"enabled": False},
}


class CarePlanIn(_Input):
    """`PUT /members/{id}/care_plan`: the member's whole set of overrides, replacing the previous one."""

    overrides: dict[str, Any] = Field(
        description=(
            "Per alert type: `enabled` (false switches the rule off for this member) and any numeric "
            "parameter of that rule, named as `GET` lists them under `overridable`: `threshold`, `span_s`, "
            "`clear_minutes`..., and `tiers.<i>.threshold` / `tiers.<i>.minutes` for the rules with severity "
            "tiers. A rule or parameter left out keeps its default; `{}` returns the member to the defaults."
        ),
        examples=[_OVERRIDES_EXAMPLE],
    )
    note: Annotated[str, Field(max_length=2000, description="Why the plan is what it is, for the record.")] | None = (
        None
    )


class CarePlan(BaseModel):
    """A member's stored care plan; `version` 0 means it was never changed (the defaults apply)."""

    member_id: str
    version: int
    overrides: dict[str, Any]
    note: str | None = None
    updated_at: UtcDatetime | None = None
    # `admin`, or `care_manager:<id>`.
    updated_by: str | None = None


class Overridable(BaseModel):
    """A parameter a care plan may set: its type, the value in force and the default."""

    type: Literal["boolean", "integer", "number"]
    value: bool | int | float
    default: bool | int | float


class EffectiveRule(BaseModel):
    """One rule as it applies to the member: the defaults with the plan's overrides merged in."""

    enabled: bool
    # What the plan sets for this rule (`enabled` included), in the plan's naming.
    overridden: list[str]
    overridable: dict[str, Overridable]
    # The whole rule description in force (disabled rules: what would apply if switched on).
    parameters: dict[str, Any]


class CarePlanView(CarePlan):
    """`GET /members/{id}/care_plan`: the plan and every rule's effective parameters, by alert type."""

    rules: dict[str, EffectiveRule]
    # Why the stored plan does not apply, when the rules changed since it was stored (the defaults do).
    problems: list[str] = []


# Claims (CONTRACT §3, §4): the statuses are the claims core's, the types and lines the incidents'.
ClaimStatus = Literal[STATUSES]  # type: ignore[valid-type]
InsurerStatus = Literal[INSURER_STATUSES]  # type: ignore[valid-type]


class ClaimLocation(BaseModel):
    """Where the loss happened: the member's address and the device's room."""

    address: str | None
    room: str | None


class Insured(BaseModel):
    name: str
    address: str | None
    phone: str | None
    email: str | None
    birth_date: str | None = None


class ClaimEvidence(BaseModel):
    """Where the evidence package is, its digest, and the checks a claims handler wants answered."""

    url: str = Field(description="`GET` it with a token: the exact bytes whose SHA-256 is `digest`.")
    digest: str = Field(description="`sha256:` and the hex SHA-256 of the evidence package's bytes.")
    checks: dict[str, Any] = Field(
        description="Device registered before the loss, readings continuous around it, wearable worn."
    )


class Acknowledgement(BaseModel):
    by: str
    at: UtcDatetime


class DeliveryAttempt(BaseModel):
    """One POST of the claim to the insurer: when, how long, what came back (or why nothing did)."""

    attempt: int
    at: UtcDatetime
    duration_ms: int
    status_code: int | None
    error: str | None
    outcome: Literal["delivered", "retry", "failed"]


class ClaimDelivery(BaseModel):
    """The claim's way to the insurer (CONTRACT §4); `held`: no insurer endpoint is configured."""

    status: Literal["pending", "delivered", "failed", "held"]
    attempts: int
    next_attempt_at: UtcDatetime | None = Field(description="When the next try is due; null unless pending.")
    last_error: str | None
    delivered_at: UtcDatetime | None
    attempts_log: list[DeliveryAttempt]


class Claim(BaseModel):
    """A claim as Vigil pre-filled it from an incident, with its progress since."""

    # The stored document may hold fields added after this version of the API; they are not published.
    model_config = ConfigDict(extra="ignore")

    id: str
    incident_id: str
    member_id: str
    alert_id: str | None
    device_id: str
    policy_number: str
    type: IncidentKind
    line: PolicyLine = Field(description="The policy line that covers this loss.")
    status: ClaimStatus
    loss_at: UtcDatetime
    detected_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = Field(None, description="Null when the loss was still going on when built.")
    duration_s: float | None = None
    reported_at: UtcDatetime | None = None
    location: ClaimLocation
    description: str
    property_damaged: list[str] = []
    injuries: str | None = None
    fire_service_attended: str | None = Field(None, description="Fire claims only; `unknown` until someone says.")
    emergency_help_dispatched: bool | Literal["unknown"] = "unknown"
    acknowledged: Acknowledgement | None = None
    unknowns: list[str] = Field([], description="The fields Vigil could not know, each marked `unknown`.")
    insured: Insured
    reported_by: str
    evidence: ClaimEvidence
    evidence_digest: str
    green_channel: bool = Field(description="A serious loss, for a dedicated handler; listed first.")
    green_channel_reason: str | None = None
    insurer_claim_number: str | None
    status_history: list[dict[str, Any]]
    confirmed_at: UtcDatetime | None
    confirmed_by: str | None = Field(description="`member`, `consent:auto_claims`, or the care manager or admin.")
    submitted_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    delivery: ClaimDelivery | None = Field(description="Null until the claim is confirmed.")


class InsurerAnswerIn(_Input):
    """`POST /claims/{id}/status`: the insurer's answer, signed in `X-Vigil-Signature`."""

    status: InsurerStatus
    insurer_claim_number: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    note: Annotated[str, Field(max_length=2000)] | None = None
    # The signature covers the body only, so an answer naming its claim cannot be replayed onto another.
    claim_id: Annotated[str | None, Field(
        description="the claim the answer is about; when given it must be the id in the path")] = None


class Incident(BaseModel):
    """A loss the rules found (`vigil.incidents`) and what became of it: a claim, or none and why."""

    id: str
    kind: IncidentKind
    covered_by: PolicyLine = Field(description="The policy line that would have to cover it.")
    member_id: str
    device_id: str
    alert_id: str
    location: str | None
    started_at: UtcDatetime = Field(description="Event time at which the loss began.")
    detected_at: UtcDatetime
    received_at: UtcDatetime = Field(description="When the claims bridge recorded it.")
    build_due_at: UtcDatetime = Field(description="The latest its claim is built, if its alert has not ended.")
    decided_at: UtcDatetime | None = Field(None, description="Null while waiting for its alert to end.")
    claim_id: str | None = None
    decision: str | None = Field(None, description="`claim opened`, or why no claim was opened, in words.")
