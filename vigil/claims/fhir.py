"""The accident claim as a FHIR R4B Bundle for health insurers: the Patient, vital-sign Observations around the
loss with their LOINC codes, and the Claim.

Built with the `fhir.resources.R4B` models, so the bundle is valid against them by construction; ids are
derived from the claim id, so the same claim always gives the same bundle.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir.resources.R4B.address import Address
from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.claim import Claim, ClaimAccident, ClaimInsurance, ClaimSupportingInfo
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.contactpoint import ContactPoint
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference

# At most this many Observations, those nearest the loss: a 40-minute window of a wearable reporting every
# few seconds is thousands of readings, and a claims handler reads the minutes around the fall.
ObservationLimit = 500

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
_INFO_CATEGORY = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
_URI = "urn:ietf:rfc:3986"
# The namespace of the bundle's resource ids (uuid5 of the claim id and what the resource is).
_NS = uuid.UUID("5d0b8a52-97c1-4f0e-8a3e-2f6c1b7d9e40")


@dataclass(frozen=True, slots=True, kw_only=True)
class VitalSign:
    """How a wearable metric is said in FHIR: its LOINC code and its UCUM unit."""

    loinc: str
    display: str
    unit: str  # as people read it
    ucum: str
    method: str | None = None


VITAL_SIGNS: dict[str, VitalSign] = {
    "heart_rate": VitalSign(loinc="8867-4", display="Heart rate", unit="beats/minute", ucum="/min"),
    "spo2": VitalSign(loinc="2708-6", display="Oxygen saturation in Arterial blood", unit="%", ucum="%",
                      method="pulse oximetry by a wrist-worn wearable"),
    # Skin temperature stands in for body temperature: the method says so, for whoever reads the figure.
    "skin_temp": VitalSign(loinc="8310-5", display="Body temperature", unit="°C", ucum="Cel",
                           method="skin temperature measured by a wrist-worn wearable"),
}


def accident_bundle(document: Mapping[str, Any], evidence: Mapping[str, Any], *, timezone: str = "UTC",
                    limit: int = ObservationLimit) -> dict[str, Any]:
    """The FHIR R4B Bundle (type collection) of an accident claim, as JSON with `resourceType` and no nulls.

    `document` is the claim document (`building.build_claim`), `evidence` the evidence package; `timezone`
    is the member's, for the accident's date.
    """
    if document.get("type") != "accident":
        raise ValueError(f"a FHIR bundle is made for accident claims only, not for {document.get('type')!r}")
    claim_id = str(document["id"])
    loss_at = _moment(document["loss_at"])
    patient_id = _id(claim_id, "patient")
    patient = _patient(patient_id, document.get("insured") or {})
    observations = [_observation(claim_id, reading, patient_id, document.get("device_id"))
                    for reading in nearest(_vital_readings(evidence.get("readings") or ()), loss_at, limit)]
    incident = evidence.get("incident") or {}
    what = "fall" if incident.get("alert_type") == "fall" else "accident"
    claim = _claim(document, patient_id, observations, loss_at=loss_at, what=what, timezone=timezone)
    bundle = Bundle(
        id=_id(claim_id, "bundle"),
        type="collection",
        timestamp=_moment(document.get("reported_at") or document["loss_at"]),
        entry=[_entry(resource) for resource in (patient, *observations, claim)],
    )
    return bundle.model_dump(mode="json")


def nearest(readings: Sequence[Mapping[str, Any]], moment: datetime, limit: int) -> list[Mapping[str, Any]]:
    """At most `limit` readings, those nearest `moment`, in time order."""
    ordered = sorted(readings, key=lambda r: (abs((r["ts"] - moment).total_seconds()), r["ts"], r["metric"],
                                              r.get("seq", 0)))
    return sorted(ordered[:limit], key=lambda r: (r["ts"], r["metric"], r.get("seq", 0)))


def _vital_readings(readings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The readings FHIR has a vital sign for, with their times parsed."""
    kept = []
    for reading in readings:
        value = reading.get("value")
        if reading.get("metric") not in VITAL_SIGNS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        kept.append({**reading, "ts": _moment(reading["ts"])})
    return kept


def _patient(patient_id: str, insured: Mapping[str, Any]) -> Patient:
    telecom = [ContactPoint(system=system, value=insured[key])
               for system, key in (("phone", "phone"), ("email", "email")) if insured.get(key)]
    return Patient(
        id=patient_id,
        # The name as the member gave it: splitting it into given and family names would be a guess.
        name=[HumanName(text=insured["name"])] if insured.get("name") else None,
        telecom=telecom or None,
        address=[Address(text=insured["address"])] if insured.get("address") else None,
        birthDate=_day(insured.get("birth_date")),
    )


def _observation(claim_id: str, reading: Mapping[str, Any], patient_id: str, device_id: str | None) -> Observation:
    sign = VITAL_SIGNS[reading["metric"]]
    return Observation(
        id=_id(claim_id, f"observation|{reading['metric']}|{reading['ts'].isoformat()}|{reading.get('seq', '')}"),
        status="final",
        category=[CodeableConcept(coding=[Coding(system=_OBSERVATION_CATEGORY, code="vital-signs",
                                                 display="Vital Signs")])],
        code=CodeableConcept(coding=[Coding(system=LOINC, code=sign.loinc, display=sign.display)], text=sign.display),
        subject=_ref(patient_id),
        effectiveDateTime=reading["ts"],
        valueQuantity=Quantity(value=reading["value"], unit=sign.unit, system=UCUM, code=sign.ucum),
        method=CodeableConcept(text=sign.method) if sign.method else None,
        device=Reference(display=f"Vigil wearable {device_id}") if device_id else None,
    )


def _claim(document: Mapping[str, Any], patient_id: str, observations: Sequence[Observation], *, loss_at: datetime,
           what: str, timezone: str) -> Claim:
    info: list[ClaimSupportingInfo] = []
    if document.get("description"):
        info.append(ClaimSupportingInfo(sequence=1, category=_info("info"), code=CodeableConcept(text="description"),
                                        valueString=document["description"]))
    evidence = document.get("evidence") or {}
    if evidence.get("url"):
        # FHIR's Attachment.hash is SHA-1; the evidence's SHA-256 digest goes in the title instead.
        info.append(ClaimSupportingInfo(
            sequence=len(info) + 1, category=_info("attachment"),
            valueAttachment=Attachment(contentType="application/json", url=evidence["url"],
                                       title=f"Vigil evidence package, {evidence.get('digest') or 'no digest'}"),
        ))
    info += [ClaimSupportingInfo(sequence=len(info) + n, category=_info("info"), valueReference=_ref(o.id))
             for n, o in enumerate(observations, start=1)]
    location = document.get("location") or {}
    green = bool(document.get("green_channel"))
    return Claim(
        id=str(document["id"]),
        identifier=[Identifier(system=_URI, value=f"urn:uuid:{document['id']}")],
        status="active",
        type=CodeableConcept(coding=[Coding(system=_CLAIM_TYPE, code="professional", display="Professional")]),
        use="claim",
        patient=_ref(patient_id),
        created=_moment(document.get("reported_at") or document["loss_at"]),
        provider=Reference(display="Vigil, reporting on behalf of the insured"),
        # A green-channel claim goes to a dedicated handler at once.
        priority=CodeableConcept(coding=[Coding(system=_PRIORITY, code="stat", display="Immediate") if green
                                         else Coding(system=_PRIORITY, code="normal", display="Normal")]),
        insurance=[ClaimInsurance(sequence=1, focal=True, coverage=Reference(display=document["policy_number"]))],
        accident=ClaimAccident(
            date=loss_at.astimezone(_zone(timezone)).date(),
            # HL7's incident codes (motor vehicle, school, sport, workplace) have none for a fall at home.
            type=CodeableConcept(text=what),
            locationAddress=Address(text=location["address"]) if location.get("address") else None,
        ),
        supportingInfo=info or None,
    )


def _info(code: str) -> CodeableConcept:
    return CodeableConcept(coding=[Coding(system=_INFO_CATEGORY, code=code)])


def _entry(resource: Patient | Observation | Claim) -> BundleEntry:
    return BundleEntry(fullUrl=f"urn:uuid:{resource.id}", resource=resource)


def _ref(resource_id: str | None) -> Reference:
    return Reference(reference=f"urn:uuid:{resource_id}")


def _id(claim_id: str, what: str) -> str:
    return str(uuid.uuid5(_NS, f"{claim_id}|{what}"))


def _moment(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return ZoneInfo("UTC")
