"""Wiring for the real API service: the MQTT broker session, the alert consumer, care plans, health probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from alerts.consumer import AlertConsumer
from api.app import create_app
from api.care_plan_publisher import KafkaCarePlanPublisher
from api.health import pipeline_probe, tcp_probe
from vigil.broker_accounts import ADMIN_USERNAME, BrokerAccountError, BrokerAccounts
from vigil.broker_secrets import ensure_secrets
from vigil.settings import Settings

log = logging.getLogger(__name__)
RECONNECT_PAUSE_S = 5.0


class BrokerSession:
    """Keeps the admin login to the broker for the app's lifetime, connecting in the background.

    The API starts even while the broker is down; registrations answer 503 until it is reachable
    (paho reconnects by itself once the first login has succeeded).
    """

    def __init__(self, accounts: BrokerAccounts) -> None:
        self._accounts = accounts
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="broker-accounts-connect")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._accounts.close)

    async def _connect(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._accounts.connect)
            except BrokerAccountError as e:
                log.warning(
                    "cannot administer MQTT accounts yet (%s); retrying in %.0f s", e, RECONNECT_PAUSE_S
                )
                await asyncio.sleep(RECONNECT_PAUSE_S)
            else:
                log.info("administering MQTT accounts as %s", ADMIN_USERNAME)
                return


def _host_port(bootstrap: str, default_port: int = 9092) -> tuple[str, int]:
    """The first `host:port` of a bootstrap list."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return (host, int(port)) if host else (port, default_port)


def build_app(settings: Settings) -> FastAPI:
    """The API with the alert consumer running inside it, as `vigil run` starts it."""
    accounts = BrokerAccounts(
        settings.mqtt_host, settings.mqtt_port, ADMIN_USERNAME, ensure_secrets(settings).admin_password
    )
    consumer = AlertConsumer(settings)
    care_plans = KafkaCarePlanPublisher(settings)
    probes = {
        "kafka": tcp_probe(*_host_port(settings.kafka_bootstrap)),
        "alert_consumer": consumer.probe,
        "care_plan_producer": care_plans.probe,
        "mqtt": tcp_probe(settings.mqtt_host, settings.mqtt_port),
        # Device messages flowing end to end, not just a listening broker.
        "pipeline": pipeline_probe(settings.database_url),
    }
    return create_app(
        settings,
        accounts,
        health_probes=probes,
        services=[BrokerSession(accounts), consumer, care_plans],
        care_plans=care_plans,
    )
