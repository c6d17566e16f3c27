"""Members' care plans as the stream worker sees them: the compacted care-plans topic, read whole.

Every worker needs every member's plan (telemetry is partitioned by device, plans are keyed by
member), so each worker reads the topic from the beginning with a consumer outside any group and
keeps following it; detection waits until the plans that existed at start-up have been read.
A plain consumer rather than a Faust GlobalTable: the table would add a changelog of its own for
data that already lives, compacted, in one topic.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from vigil.care_plan_events import MalformedCarePlan, decode_care_plan
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.overrides import rules_with_overrides
from vigil.rules.spec import Rule
from vigil.topics import CARE_PLANS

log = logging.getLogger(__name__)


class CarePlans:
    """The latest plan of every member, and the rules it makes, cached per (member, version)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._overrides: dict[str, tuple[int, dict]] = {}
        self._rules: dict[str, tuple[int, tuple[Rule, ...]]] = {}
        self.ready = asyncio.Event()

    def rules_for(self, member_id: str) -> tuple[tuple[Rule, ...], int]:
        """The member's rules and the plan version they come from (0: the defaults)."""
        plan = self._overrides.get(member_id)
        if plan is None:
            return DEFAULT_RULES, 0
        version, overrides = plan
        cached = self._rules.get(member_id)
        if cached is None or cached[0] != version:
            try:
                rules = rules_with_overrides(DEFAULT_RULES, overrides)
            except ValueError as e:
                # A plan written for an older catalog: judge by the defaults, as the API shows.
                log.error("care plan v%d of member %s no longer fits the rules (%s); using defaults",
                          version, member_id, e)
                rules = DEFAULT_RULES
            cached = (version, rules)
            self._rules[member_id] = cached
        return cached[1], version

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            event = decode_care_plan(value, key)
        except MalformedCarePlan as e:
            log.error("skipping a malformed care-plan record: %s", e)
            return
        if event is None:
            if key is not None:
                self._overrides.pop(key.decode(), None)
            return
        self._overrides[event.member_id] = (event.version, dict(event.overrides))

    async def follow(self) -> None:
        """Read the topic from the start, then keep following it; meant to run as a worker task."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(CARE_PLANS) or {0}
            tps = [TopicPartition(CARE_PLANS, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                if not self.ready.is_set() and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                    log.info("care plans loaded: %d members with a plan", len(self._overrides))
                    self.ready.set()
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    for message in messages:
                        self.apply(message.key, message.value)
        finally:
            await consumer.stop()
