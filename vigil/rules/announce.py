"""What of a replay's findings is news: the alert and incident events to send, each once.

A replay finds every change since the checkpoint again on each call; `announced` remembers the
changes already sent (by episode id, change and event time) until the checkpoint moves past the
reading that found them. `told` is what the alerts service holds open, per alert type: the alert
id it knows, and the episode of the replay that alert stands for.

Sending before the lateness allowance has passed is a bet, and a straggler can change what the
replay sees: the completing reading of a leak arrives after a later one (the episode now starts
at 06:00, not 06:15), or a dry reading lands inside a wet run. The alerts service is then kept in
step with the replay rather than told about every revision:
- an open alert stands for the episode the replay now shows (same alert, fresh evidence), so a
  revised start never makes a second alert; its id never changes (it was derived from the first
  verdict's `triggered_at`);
- when that episode's condition was in fact met earlier than the alert says (the straggler
  completes it sooner, as in-order delivery would have), the alert's `triggered_at` is corrected:
  an `updated` event for the same alert carries the earlier moment, and the alerts service keeps
  the earliest it was told. A revision to a later moment leaves `triggered_at` where it was: it
  only ever moves back, so once the stragglers within the allowance are in, it is no later than
  in-order delivery's (and equal to it unless an earlier verdict was overturned);
- an alert whose condition the replay no longer shows at all is cleared, with the reason in its
  evidence ("withdrawn");
- an episode the replay shows open while its alert was cleared on an earlier, overturned verdict is
  raised again under a new id (the alerts service never reopens a resolved alert).
Incidents are sent once per alert the service knows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vigil.events import AlertChanged, IncidentOpened, alert_id
from vigil.rules.episodes import Episode, IncidentFound, Transition
from vigil.rules.evidence import parameters
from vigil.rules.incidents import incident_id
from vigil.rules.spec import Rule

WITHDRAWN = "withdrawn: readings that arrived late show the condition did not hold"
REOPENED = "reopened: readings that arrived late show the condition still held when its alert was cleared"
CORRECTED = "corrected: readings that arrived late show the condition was met earlier than the alert said"
FOUND_LATE = "found late: readings that arrived after the lateness allowance show this episode, over before they came"
# Alert type -> [alert id sent, severity sent, triggered_at_ms sent, id of the replay's episode it stands for].
Told = dict[str, list]


class Announcer:
    """Turns findings into events for one device, keeping `announced` and `told` up to date."""

    def __init__(self, *, announced: dict[str, int], told: Told, rules: Mapping[str, Rule], device_id: str,
                 member_id: str, now_ms: int, location: str | None) -> None:
        self.announced = announced
        self.told = told
        self.rules = rules
        self.device_id = device_id
        self.member_id = member_id
        self.now_ms = now_ms
        self.location = location
        # Episode id -> the id of the alert standing for it, for the incidents of an alert cleared in the same call.
        self.sent_as: dict[str, str] = {}

    def _first_time(self, key: str, found_ms: int) -> bool:
        """Whether `key` is news; remembers it until the latest reading that found it is settled."""
        seen = self.announced.get(key)
        self.announced[key] = found_ms if seen is None else max(seen, found_ms)
        return seen is None

    def alerts(self, transitions: Sequence[Transition], open_now: Mapping[str, Episode], last_ms: int, *,
               keep_open: bool = False) -> tuple[list[AlertChanged], dict[str, Episode]]:
        """The alert events to send, in event-time order, ending with the alerts service in step.

        With `keep_open` (the rules just changed), an open alert the replay no longer shows is not
        withdrawn: it is returned, for the caller to keep open under the new rules.
        """
        events: list[AlertChanged] = []
        kept: dict[str, Episode] = {}
        told = self.told
        for t in sorted(transitions, key=lambda t: t.at_ms):
            if not self._first_time(t.key, t.found_ms):
                continue
            kind = t.rule.type
            known = told.get(kind)
            if t.change == "raised":
                if known is None:
                    events.append(self._event(t, t.alert_id, t.triggered_at_ms))
                    told[kind] = [t.alert_id, t.severity, t.triggered_at_ms, t.alert_id]
                elif known[3] != t.alert_id:
                    known[3] = t.alert_id  # the open alert stands for the episode as now seen
                    self.sent_as[t.alert_id] = known[0]
                    known[2] = min(known[2], t.triggered_at_ms)  # met earlier than said: corrected
                    events.append(self._event(t, known[0], known[2], change="updated"))
                    known[1] = t.severity
            elif known is None or known[3] != t.alert_id:
                continue  # an episode the alerts service does not follow (any more)
            elif t.change == "updated":
                events.append(self._event(t, known[0], known[2]))
                known[1] = t.severity
            else:
                if t.change == "cleared":
                    events.append(self._event(t, known[0], known[2]))
                del told[kind]
        for kind, known in list(told.items()):
            episode = open_now.get(kind)
            if episode is None and keep_open:
                kept[kind] = Episode(alert_id=known[3], triggered_at_ms=known[2], severity=known[1],
                                     started_at_ms=known[2], active_ms=last_ms, updated_ms=last_ms)
            elif episode is None:
                events.append(self._withdrawn(kind, known, last_ms))
                del told[kind]
            elif episode.alert_id != known[3]:
                known[3] = episode.alert_id
                self.sent_as[episode.alert_id] = known[0]
                if episode.triggered_at_ms < known[2]:
                    known[2] = episode.triggered_at_ms
                    events.append(self._restated("updated", kind, episode, known[0], CORRECTED,
                                                 triggered_at_ms=known[2]))
        for kind, episode in open_now.items():
            known = told.get(kind)
            if known is None:
                reopened = alert_id(self.device_id, f"{kind}|reopened|{last_ms}", episode.triggered_at_ms)
                events.append(self._restated("raised", kind, episode, reopened, REOPENED))
                told[kind] = [reopened, episode.severity, episode.triggered_at_ms, episode.alert_id]
                self.sent_as[episode.alert_id] = reopened
            elif known[1] != episode.severity:
                known[1] = episode.severity
                events.append(self._restated("updated", kind, episode, known[0], "the severity the readings show",
                                             triggered_at_ms=known[2]))
        return events, kept

    def past(self, transitions: Sequence[Transition]) -> list[AlertChanged]:
        """Episodes that began and ended before the settled time, found by stragglers: sent as they happened.

        They leave `told` alone: the alerts service holds them open only until their clear, which
        follows at once (see `vigil.rules.stragglers` for when it is left out).
        """
        return [self._event(t, t.alert_id, t.triggered_at_ms, extra={"found_late": FOUND_LATE})
                for t in sorted(transitions, key=lambda t: t.at_ms) if self._first_time(t.key, t.found_ms)]

    def incidents(self, found: Sequence[IncidentFound]) -> list[IncidentOpened]:
        """The incidents not sent before: one per alert the alerts service knows."""
        events = []
        for incident in found:
            spec = incident.rule.incident
            known = self.told.get(incident.rule.type)
            if known is not None and known[3] == incident.alert_id:
                sent_id = known[0]
            else:
                sent_id = self.sent_as.get(incident.alert_id, incident.alert_id)
            if not self._first_time(f"incident|{sent_id}", incident.found_ms):
                continue
            events.append(IncidentOpened(
                incident_id=incident_id(self.device_id, spec.kind, incident.started_at_ms), kind=spec.kind,
                covered_by=spec.covered_by, member_id=self.member_id, device_id=self.device_id,
                location=self.location, alert_id=sent_id, alert_type=incident.rule.type,
                started_at_ms=incident.started_at_ms, condition_met_at_ms=incident.at_ms,
                detected_at_ms=self.now_ms,
                evidence={"rule": incident.rule.type, "parameters": parameters(incident.rule), **incident.evidence},
            ))
        return events

    def _event(self, t: Transition, sent_id: str, triggered_at_ms: int, change: str | None = None,
               extra: dict | None = None) -> AlertChanged:
        return AlertChanged(
            change=change or t.change, alert_id=sent_id, type=t.rule.type, severity=t.severity,
            member_id=self.member_id, device_id=self.device_id, triggered_at_ms=triggered_at_ms,
            detected_at_ms=self.now_ms, cleared_at_ms=t.at_ms if t.change == "cleared" else None,
            opens_incident=t.rule.incident is not None,
            evidence={"rule": t.rule.type, "parameters": parameters(t.rule), **t.evidence, **(extra or {})},
        )

    def _withdrawn(self, kind: str, known: list, last_ms: int) -> AlertChanged:
        rule = self.rules.get(kind)
        return AlertChanged(
            change="cleared", alert_id=known[0], type=kind, severity=known[1], member_id=self.member_id,
            device_id=self.device_id, triggered_at_ms=known[2], detected_at_ms=self.now_ms,
            cleared_at_ms=max(last_ms, known[2]), opens_incident=bool(rule and rule.incident),
            evidence=self._evidence(kind, {"withdrawn": WITHDRAWN}),
        )

    def _restated(self, change: str, kind: str, episode: Episode, sent_id: str, reason: str, *,
                  triggered_at_ms: int | None = None) -> AlertChanged:
        rule = self.rules.get(kind)
        return AlertChanged(
            change=change, alert_id=sent_id, type=kind, severity=episode.severity, member_id=self.member_id,
            device_id=self.device_id, triggered_at_ms=triggered_at_ms or episode.triggered_at_ms,
            detected_at_ms=self.now_ms, opens_incident=bool(rule and rule.incident),
            evidence=self._evidence(kind, {"restated": reason}),
        )

    def _evidence(self, kind: str, extra: dict) -> dict:
        rule = self.rules.get(kind)
        return {"rule": kind, **({"parameters": parameters(rule)} if rule else {}), **extra}
