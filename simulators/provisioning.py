"""Registering the simulated members, devices and gateways through Vigil's HTTP API, as a partner would."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from simulators.plan import FleetPlan, device_id

log = logging.getLogger(__name__)

# Above this many devices a connection per device costs too many sockets and threads,
# so the fleet publishes through gateways unless told otherwise.
DIRECT_LIMIT = 50
DEFAULT_GATEWAY_SIZE = 250
# Extra member fields by member number: the demo gives members and their contacts outreach channels.
MemberExtras = Callable[[int], dict[str, Any]]
# A hard ceiling for one connection (and one network thread) per device.
MAX_DIRECT_DEVICES = 500
_ROOMS = ("kitchen", "bathroom", "basement", "laundry", "living room")
_HTTP_WORKERS = 8


class ProvisioningError(RuntimeError):
    """The API refused or could not be reached while registering the fleet."""


@dataclass(frozen=True, slots=True)
class Link:
    """One MQTT connection: the login it uses and the devices it publishes for."""

    client_id: str
    username: str
    password: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What the registry answered: each device's member, and the connections to open."""

    members: dict[str, str]
    links: tuple[Link, ...]
    via_gateways: bool


def member_body(plan: FleetPlan, number: int, *, care_manager_id: str) -> dict[str, Any]:
    """A plausible member for the `number`-th wearable/home pair, insured for what they have."""
    has_wearable, has_home = number <= plan.wearables, number <= plan.homes
    line = "both" if has_wearable and has_home else "health" if has_wearable else "home"
    tag = f"{plan.run_id}-{number:04d}"
    return {
        "name": f"Sim Member {tag}",
        "birth_date": f"{1935 + number % 30}-{1 + number % 12:02d}-{1 + number % 28:02d}",
        "phone": f"+1555{number % 10_000_000:07d}",
        "email": f"sim-{tag}@example.org",
        "address": f"{number} Simulation Way, Testville",
        "timezone": "UTC",
        "policy": {"number": f"SIM-{tag}".upper(), "line": line},
        "care_manager_id": care_manager_id,
        "emergency_contacts": [{"name": f"Sim Contact {tag}", "phone": f"+1555{(number + 1) % 10_000_000:07d}",
                                "relation": "daughter"}],
        "consent": {"monitoring": True, "outreach": True, "auto_claims": False},
    }


def _created(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 201:
        raise ProvisioningError(f"creating {what} answered {response.status_code}: {response.text[:300]}")
    return response.json()


def _post(http: httpx.Client, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return _created(http.post(path, json=body), what)
    except httpx.HTTPError as e:
        raise ProvisioningError(f"creating {what}: {e}") from e


def _register_member(http: httpx.Client, plan: FleetPlan, number: int, care_manager_id: str,
                     extras: MemberExtras | None) -> tuple[str, list[Link]]:
    body = member_body(plan, number, care_manager_id=care_manager_id)
    if extras is not None:
        body.update(extras(number))
    member_id = _post(http, "/api/v1/members", body, f"member {number}")["id"]
    links = []
    for kind, location in (("wearable", "wrist"), ("home", _ROOMS[number % len(_ROOMS)])):
        if number > plan.count(kind):
            continue
        did = device_id(plan.run_id, kind, number)
        answer = _post(http, "/api/v1/devices", {"device_id": did, "kind": kind, "member_id": member_id,
                                                 "location": location,
                                                 "report_interval_s": plan.message_interval_s}, f"device {did}")
        links.append(Link(client_id=answer["mqtt_username"], username=answer["mqtt_username"],
                          password=answer["mqtt_password"], device_ids=(did,)))
    return member_id, links


def _gateway_size(device_count: int, gateway_size: int | None) -> int:
    if gateway_size is None:
        return 0 if device_count <= DIRECT_LIMIT else DEFAULT_GATEWAY_SIZE
    if gateway_size < 0:
        raise ValueError(f"gateway_size must be 0 (a connection per device) or more, not {gateway_size}")
    if gateway_size == 0 and device_count > MAX_DIRECT_DEVICES:
        raise ValueError(f"{device_count} devices are too many for a connection each (at most "
                         f"{MAX_DIRECT_DEVICES}); publish through gateways instead")
    return gateway_size


def provision(http: httpx.Client, plan: FleetPlan, *, care_manager_id: str,
              gateway_size: int | None = None, member_extras: MemberExtras | None = None) -> Provisioned:
    """Register a member per wearable/home pair, their devices, and gateways when the fleet is large.

    `http` carries the API's base URL and bearer token. `gateway_size` None picks direct connections
    for small fleets and a gateway per 250 devices above 50; 0 forces a connection per device.
    `member_extras(number)` adds or replaces fields of each member's registration.
    """
    device_count = plan.wearables + plan.homes
    size = _gateway_size(device_count, gateway_size)
    numbers = range(1, max(plan.wearables, plan.homes) + 1)
    with ThreadPoolExecutor(_HTTP_WORKERS) as pool:
        registered = list(pool.map(lambda n: _register_member(http, plan, n, care_manager_id, member_extras),
                                   numbers))
    members: dict[str, str] = {}
    direct: list[Link] = []
    for member_id, links in registered:
        members.update((link.device_ids[0], member_id) for link in links)
        direct.extend(links)
    log.info("registered %d members and %d devices for run %s", len(registered), len(direct), plan.run_id)
    if not size:
        return Provisioned(members=members, links=tuple(direct), via_gateways=False)

    device_ids = [link.device_ids[0] for link in direct]
    gateways = []
    for start in range(0, len(device_ids), size):
        gid = f"sim-{plan.run_id}-gw-{start // size + 1:03d}"
        bound = tuple(device_ids[start:start + size])
        answer = _post(http, "/api/v1/gateways", {"id": gid, "name": f"Simulator gateway {gid}",
                                                  "device_ids": list(bound)}, f"gateway {gid}")
        gateways.append(Link(client_id=answer["mqtt_username"], username=answer["mqtt_username"],
                             password=answer["mqtt_password"], device_ids=bound))
    log.info("registered %d gateways of up to %d devices", len(gateways), size)
    return Provisioned(members=members, links=tuple(gateways), via_gateways=True)
