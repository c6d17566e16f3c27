"""`python -m scheduler`: Vigil's periodic jobs (APScheduler), run by `vigil run`."""

from __future__ import annotations

import contextlib
import signal
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from confluent_kafka import Producer

from scheduler.jobs import OFFLINE_EVERY_S, PUBLISH_TIMEOUT_S, check_offline, trim_telemetry
from vigil.logs import configure_logging
from vigil.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    scheduler = BlockingScheduler(timezone="UTC")
    producer = Producer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": "vigil-scheduler",
        "acks": "all",
        # The hashing the other alert producers use, so one device's events share a partition.
        "partitioner": "murmur2_random",
        "message.timeout.ms": PUBLISH_TIMEOUT_S * 1000 // 2,
    })
    scheduler.add_job(trim_telemetry, "interval", hours=1, args=[settings], id="retention",
                      next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    scheduler.add_job(check_offline, "interval", seconds=OFFLINE_EVERY_S, args=[settings, producer],
                      id="device_offline", next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    with contextlib.suppress(KeyboardInterrupt):
        scheduler.start()
    producer.flush(5)


if __name__ == "__main__":
    main()
