"""The incidents-topic consumer: `IncidentOpened` events in, rows in the incidents table out.

The loop, its delivery guarantee and its retries are `vigil.topic_consumer`'s, made exactly once in
effect by the incident's natural id; a record that can never be stored is refused by
`claims_bridge.incident_decoding`, then logged, counted and skipped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from claims_bridge.incident_decoding import MalformedIncident, decode_incident
from claims_bridge.incident_store import insert_incidents
from claims_bridge.metrics import INCIDENT_STORE_RETRIES, INCIDENTS_RECEIVED, MALFORMED_INCIDENTS
from vigil.events import IncidentOpened
from vigil.settings import Settings
from vigil.topic_consumer import ConsumerSpec, TopicConsumer
from vigil.topics import INCIDENTS

log = logging.getLogger(__name__)
GROUP_ID = "vigil-claims"


def _count(events: list[IncidentOpened], inserted: list[str]) -> None:
    INCIDENTS_RECEIVED.labels("new").inc(len(inserted))
    INCIDENTS_RECEIVED.labels("redelivered").inc(len(events) - len(inserted))


class IncidentConsumer(TopicConsumer[IncidentOpened, list[str]]):
    """The consume-write-commit loop over `vigil.incidents`; `run` returns when `stopping` is set."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, stopping: asyncio.Event, *,
                 alive: Callable[[], None]) -> None:
        spec = ConsumerSpec(
            name="incident consumer",
            noun="incident",
            topic=INCIDENTS,
            group_id=GROUP_ID,
            decode=decode_incident,
            refused=MalformedIncident,
            write=functools.partial(insert_incidents, settle_s=settings.claim_settle_s),
            written=_count,
            count_refused=MALFORMED_INCIDENTS.inc,
            count_retry=INCIDENT_STORE_RETRIES.inc,
            log=log,
        )
        super().__init__(spec, pool, settings.kafka_bootstrap, stopping, alive=alive)
