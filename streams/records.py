"""What the stream worker reads from Kafka, checked before use: a record that is not what ingest
writes becomes a `bad_record` dead letter, never a crashed agent.

Anyone with a Kafka client can put bytes on `vigil.telemetry` or `vigil.deadletters`; one
undecodable record must cost only itself, not the batch Faust acknowledges with it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from vigil.telemetry import DeadLetter, DeviceId
from vigil.validation_errors import first_error

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
PAYLOAD_CHARS = 4096


class TelemetryRecordDict(TypedDict):
    """`vigil.telemetry.TelemetryRecord` as a plain dict: validated in one pass from JSON at half
    the cost of building the model, and what the storage and detection steps read."""

    device_id: DeviceId
    member_id: str | None
    seq: Annotated[int, Field(ge=0, le=2**63 - 1)]
    sent_at_ms: Int64
    received_at_ms: Int64
    readings: list[tuple[Int64, str, float]]


_TELEMETRY = TypeAdapter(TelemetryRecordDict)


def _first_error(e: ValidationError) -> str:
    where, message = first_error(e, whole="record")
    return f"{where}: {message}"


def bad_record(value: bytes | None, detail: str, *, topic: str, now_ms: int) -> DeadLetter:
    """The dead letter for a Kafka record that cannot be read; `topic` is the Kafka topic."""
    return DeadLetter(received_at_ms=now_ms, reason="bad_record", detail=detail, topic=topic,
                      payload=(value or b"")[:PAYLOAD_CHARS].decode("utf-8", errors="replace"))


def decode_telemetry(values: Iterable[bytes | None], *, topic: str, now_ms: int
                     ) -> tuple[list[TelemetryRecordDict], list[DeadLetter]]:
    """Telemetry records as dicts, and a dead letter for each value that is not one."""
    records: list[TelemetryRecordDict] = []
    bad: list[DeadLetter] = []
    for value in values:
        try:
            records.append(_TELEMETRY.validate_json(value))
        except ValidationError as e:
            bad.append(bad_record(value, _first_error(e), topic=topic, now_ms=now_ms))
    return records, bad


def decode_dead_letters(values: Iterable[bytes | None], *, topic: str, now_ms: int
                        ) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """Dead letters from ingest, and a `bad_record` one for each value that is not one."""
    letters: list[DeadLetter] = []
    bad: list[DeadLetter] = []
    for value in values:
        try:
            letters.append(DeadLetter.model_validate_json(value))
        except ValidationError as e:
            bad.append(bad_record(value, _first_error(e), topic=topic, now_ms=now_ms))
    return letters, bad
