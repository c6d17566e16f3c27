"""What the API needs from the world outside it, as protocols: the wiring supplies real ones or fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from vigil.care_plan_events import CarePlanChanged

# A health probe answers True when its component is usable; False, an exception or a slow answer
# all count as down.
HealthProbe = Callable[[], Awaitable[bool]]


class BrokerAccounts(Protocol):
    """MQTT broker account provisioning (blocking calls; the API runs them in a worker thread)."""

    def ensure_device(self, device_id: str, password: str) -> object:
        """Create or reset a device's account (username: the device id) for its own topic only."""

    def ensure_gateway(self, gateway_id: str, device_ids: list[str], password: str) -> str:
        """Create or reset a gateway's account for its devices' topics; returns its username."""


class BackgroundService(Protocol):
    """Something that runs beside the API for the app's lifetime, e.g. the alert consumer."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class CarePlanPublisher(Protocol):
    """Puts care-plan changes on the care-plans topic for the stream worker."""

    async def publish(self, event: CarePlanChanged) -> None:
        """Return once Kafka has acknowledged the event; raise `ServiceUnavailable` when it did not."""
