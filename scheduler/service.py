"""What the leader runs: the periodic jobs, the ladder's step jobs and their planner, and the outreach sender.

Built and started only once the process holds the leader lock (`scheduler.leader`), so that with
two scheduler processes running, one does all of it and the other waits.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import psycopg
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from confluent_kafka import Producer
from sqlalchemy.engine import make_url

from alerts.outbox import expire_leases
from scheduler.jobs import OFFLINE_EVERY_S, PUBLISH_TIMEOUT_S, check_offline, trim_telemetry
from scheduler.ladder_jobs import STEP_JOBSTORE, LadderPlanner
from scheduler.sender import Sender
from vigil.settings import Settings

log = logging.getLogger(__name__)

JOB_TABLE = "scheduler_jobs"
# The periodic jobs hold a Kafka producer, which cannot be pickled into the database job store;
# they are re-added by every leader anyway.
LOCAL_JOBSTORE = "local"
JOB_THREADS = 10


def job_store_url(database_url: str) -> str:
    """The database URL in SQLAlchemy's form, on the psycopg 3 driver Vigil already uses."""
    return make_url(database_url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


class LeaderJobs:
    """Everything the leader runs, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._scheduler = BackgroundScheduler(
            jobstores={
                STEP_JOBSTORE: SQLAlchemyJobStore(url=job_store_url(settings.database_url), tablename=JOB_TABLE,
                                                  engine_options={"pool_pre_ping": True}),
                LOCAL_JOBSTORE: MemoryJobStore(),
            },
            executors={"default": ThreadPoolExecutor(JOB_THREADS)},
            timezone=UTC,
        )
        self._producer = Producer({
            "bootstrap.servers": settings.kafka_bootstrap,
            "client.id": "vigil-scheduler",
            "acks": "all",
            # The hashing the other alert producers use, so one device's events share a partition.
            "partitioner": "murmur2_random",
            "message.timeout.ms": PUBLISH_TIMEOUT_S * 1000 // 2,
        })
        self._planner = LadderPlanner(settings.database_url, self._scheduler, tip_delay_s=settings.tip_delay_s)
        self._sender = Sender(settings.database_url)

    def start(self) -> None:
        with psycopg.connect(self._settings.database_url, autocommit=True, connect_timeout=5) as conn:
            expired = expire_leases(conn)
        if expired:
            log.warning("%d outreach message(s) were being sent by the previous leader; sending them again", expired)
        self._scheduler.start()
        now = datetime.now(UTC)
        self._scheduler.add_job(trim_telemetry, "interval", hours=1, args=[self._settings], id="retention",
                                jobstore=LOCAL_JOBSTORE, next_run_time=now, max_instances=1, coalesce=True)
        self._scheduler.add_job(check_offline, "interval", seconds=OFFLINE_EVERY_S,
                                args=[self._settings, self._producer], id="device_offline",
                                jobstore=LOCAL_JOBSTORE, next_run_time=now, max_instances=1, coalesce=True)
        self._planner.start()
        self._sender.start()

    def stop(self) -> None:
        self._planner.stop()
        self._sender.stop()
        self._scheduler.shutdown(wait=True)
        self._producer.flush(5)
