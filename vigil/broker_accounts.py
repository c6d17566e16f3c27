"""MQTT broker accounts, kept in Mosquitto's dynamic-security plugin through its control topic.

Each device gets its own role that may publish only to its own telemetry topic; a gateway's roles
list the topics of the devices bound to it. Changes apply to the running broker at once.

The plugin rewrites its whole JSON file after every command that changes something (Mosquitto
2.0): about 70 ms with 10,000 devices registered, whatever the command. Vigil's cost is therefore
counted in such commands, and a control message holds few of them, to be answered in time.

Every device and gateway login is bound to one client id, its username: Mosquitto resumes a
session by client id alone, without looking at who logs in, so an unbound login could take over
ingest's session (and read the telemetry queued for it) or kick another device off. A bound
login also holds at most one connection: a second one with the same id replaces the first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from vigil import broker_log
from vigil.legacy_ingest_session import LegacySession, LegacySessionError
from vigil.telemetry import DEVICE_ID_RE
from vigil.topics import INGEST_PROBE_FILTER

log = logging.getLogger(__name__)

# Mosquitto 2.0 listens on the upper-case `$CONTROL`; topics are case-sensitive, so `$control` is ignored.
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"

ADMIN_USERNAME = "vigil-admin"
INGEST_USERNAME = "vigil-ingest"
# A login that exists only while ingest's old session is emptied (vigil.legacy_ingest_session).
FORWARDER_USERNAME = "vigil-forwarder"
TELEMETRY_FILTER = "devices/+/telemetry"
INGEST_SUBSCRIPTION = f"$share/{INGEST_USERNAME}/{TELEMETRY_FILTER}"
# A device registered under one of these names would take over a service account.
SERVICE_USERNAMES = frozenset({ADMIN_USERNAME, INGEST_USERNAME, FORWARDER_USERNAME})
# The roles of the logins Vigil binds to a client id (see `bind_client_ids`).
_BOUND_ROLE_PREFIXES = ("device:", "gateway:")
# A role's ACLs travel in one command, under the broker's max_packet_size (66,560 bytes, for every
# client): at most this many bytes of them, which leaves room for the message's other commands (a
# login with its password), the topic and the headers. A gateway bound to more devices gets more roles.
_ROLE_BYTES = 60_000
# Changing commands per control message (see the module's docstring): 2 s with 10,000 devices.
_BATCH = 25

# A create fails when the object exists; the modify that follows it in the same batch then
# brings it to the wanted state, and fails itself if the create failed for another reason.
# (Both run in one control message, which the plugin applies in order.)
_CREATES = frozenset({"createRole", "createClient"})
# The command that brings an existing object to the fields its create was given.
_MODIFY = {"createRole": "modifyRole", "createClient": "modifyClient"}


class BrokerAccountError(RuntimeError):
    """The broker refused an account change, or did not answer in time; the message says which."""


class BrokerUnreachable(BrokerAccountError):
    """Nothing answers MQTT at the broker's address."""


def telemetry_topic(device_id: str) -> str:
    return f"devices/{device_id}/telemetry"


def gateway_username(gateway_id: str) -> str:
    """A gateway's broker login; the dot cannot occur in a device id, so the two never collide."""
    return f"gw.{gateway_id}"


def client_id(username: str) -> str:
    """The only MQTT client id a device or gateway login may connect with: its username."""
    return username


def ingest_client_id(ingest_password: str, instance: str) -> str:
    """Ingest's client id: stable for one instance across restarts, unguessable without its password.

    Its persistent session holds every message not yet in Kafka; a client id anyone can work out
    would let a login without a bound id resume that session.
    """
    digest = hmac.new(ingest_password.encode(), f"vigil-ingest client id {instance}".encode(), hashlib.sha256)
    return f"vigil-ingest-{instance}-{digest.hexdigest()[:24]}"


def legacy_ingest_client_id(instance: str) -> str:
    """The fixed client id ingest used before it was derived from its password."""
    return f"vigil-ingest-{instance}"


def _checked_id(kind: str, value: str) -> str:
    if not DEVICE_ID_RE.match(value) or value in SERVICE_USERNAMES:
        raise ValueError(f"{kind} {value!r} is not usable as a broker account: it must match "
                         f"[A-Za-z0-9_-]{{1,64}} and not be one of {sorted(SERVICE_USERNAMES)}")
    return value


def _publish_acl(device_id: str) -> dict[str, Any]:
    return {"acltype": "publishClientSend", "topic": telemetry_topic(device_id), "allow": True}


def _new_role(rolename: str, acls: list[dict[str, Any]]) -> dict[str, Any]:
    """The command that creates the role holding exactly these ACLs."""
    return {"command": "createRole", "rolename": rolename, "acls": acls}


def _new_login(username: str, password: str, rolename: str, *, bound: bool = True) -> dict[str, Any]:
    """The command that creates the client with this password and this role alone, bound to its client id."""
    bind = {"clientid": client_id(username)} if bound else {}
    return {"command": "createClient", "username": username, "password": password,
            "roles": [{"rolename": rolename}], **bind}


def _modified(create: dict[str, Any]) -> dict[str, Any]:
    """The command that brings an existing object to what `create` would have made."""
    return {**create, "command": _MODIFY[create["command"]]}


def _role(rolename: str, acls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Commands that leave the role holding exactly these ACLs (a new one is created empty)."""
    return [{"command": "createRole", "rolename": rolename}, _modified(_new_role(rolename, acls))]


def _login(username: str, password: str, rolename: str, *, bound: bool = True) -> list[dict[str, Any]]:
    """Commands that leave the client with this password and this role alone, bound to its client id
    (a new one is created without either)."""
    bind = {"clientid": client_id(username)} if bound else {}
    return [{"command": "createClient", "username": username, **bind},
            _modified(_new_login(username, password, rolename, bound=bound))]


def _gateway_roles(gateway_id: str, count: int) -> list[str]:
    """The names of a gateway's roles: `gateway:<id>`, then `gateway:<id>:1` and on when it needs more.

    A gateway id has no colon, so one gateway's names never are another's.
    """
    first = f"gateway:{gateway_id}"
    return [first, *(f"{first}:{n}" for n in range(1, count))]


def _batches(items: list[Any], size: int = _BATCH) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _role_parts(acls: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The ACLs in as few parts as fit one command each: 480 ACLs of 64-character device ids or more."""
    parts: list[list[dict[str, Any]]] = [[]]
    size = 0
    for acl in acls:
        acl_bytes = len(json.dumps(acl)) + 2  # with the separator
        if size + acl_bytes > _ROLE_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(acl)
        size += acl_bytes
    return parts


def unbound_logins(clients: Iterable[dict[str, Any]]) -> list[str]:
    """Device and gateway logins (by their roles) not yet bound to their own client id."""
    return [
        c["username"] for c in clients
        if c.get("clientid") != client_id(c["username"]) and c["username"] not in SERVICE_USERNAMES
        and any(r.get("rolename", "").startswith(_BOUND_ROLE_PREFIXES) for r in c.get("roles", []))
    ]


def can_log_in(host: str, port: int, username: str, password: str, timeout_s: float = 5.0, *,
               as_client_id: str | None = None) -> bool:
    """Whether the broker accepts these credentials, tried with a throwaway client id unless given one.

    A device or gateway login is refused under any id but its own, and a check under its own id
    replaces a session it has open.
    """
    accepted: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=as_client_id or f"vigil-check-{secrets.token_hex(4)}",
                         protocol=mqtt.MQTTv5, reconnect_on_failure=False)
    client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, reason_code, _p: accepted.append(not reason_code.is_failure)
    try:
        client.connect(host, port, keepalive=10)
        deadline = time.monotonic() + timeout_s
        while not accepted and time.monotonic() < deadline:
            client.loop(0.1)
        client.disconnect()
    except OSError:
        return False
    return accepted == [True]


class _Call:
    """One control message waiting for the plugin's answer."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.responses: list[dict[str, Any]] = []


class BrokerAccounts:
    """Creates, changes and disables broker logins as Vigil's admin; safe to share between threads."""

    def __init__(self, host: str, port: int, admin_user: str, admin_password: str, *,
                 timeout_s: float = 10.0) -> None:
        self._host = host
        self._port = port
        self._admin_user = admin_user
        self._admin_password = admin_password
        self._timeout_s = timeout_s
        self._client: mqtt.Client | None = None
        # Guards the connection state and the calls in flight; paho's thread notifies through it.
        self._cond = threading.Condition()
        self._ready = False
        self._connecting = False
        self._failure: BrokerAccountError | None = None
        self._pending: dict[str, _Call] = {}

    @property
    def _address(self) -> str:
        return f"{self._host}:{self._port}"

    def __enter__(self) -> BrokerAccounts:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> None:
        """Log in as the admin and listen for the plugin's answers; raises when the broker refuses."""
        self.close()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"vigil-accounts-{secrets.token_hex(4)}",
                             protocol=mqtt.MQTTv5)
        client.username_pw_set(self._admin_user, self._admin_password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        with self._cond:
            self._ready, self._connecting, self._failure = False, True, None
        try:
            client.connect(self._host, self._port, keepalive=30)
        except OSError as e:
            raise BrokerUnreachable(f"no MQTT broker answers at {self._address}: {e}") from e
        self._client = client
        client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._failure is not None, self._timeout_s)
            self._connecting = False
            failure = None if self._ready else self._failure or BrokerUnreachable(
                f"nothing answered MQTT at {self._address} within {self._timeout_s:g} s")
        if failure is not None:
            self.close()
            raise failure

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        with self._cond:
            self._ready = False

    def ensure_device(self, device_id: str, password: str) -> str:
        """Make `device_id` a login that may publish only its own telemetry; returns the username."""
        _checked_id("device id", device_id)
        rolename = f"device:{device_id}"
        # Safe in any order: the role never holds anything but the device's own topic.
        self._create_or_modify([_new_role(rolename, [_publish_acl(device_id)]),
                                _new_login(device_id, password, rolename)])
        log.info("broker account for device %s is ready", device_id)
        return device_id

    def ensure_gateway(self, gateway_id: str, device_ids: Iterable[str], password: str) -> str:
        """Make a gateway login that may publish for exactly these devices; returns the username."""
        _checked_id("gateway id", gateway_id)
        if isinstance(device_ids, str):  # would otherwise bind one device per character
            raise TypeError("device_ids must be a collection of device ids, not one string")
        bound = sorted({_checked_id("device id", d) for d in device_ids})
        username = gateway_username(gateway_id)
        parts = _role_parts([_publish_acl(d) for d in bound])
        first, *others = rolenames = _gateway_roles(gateway_id, len(parts))
        # One message, applied at once: the login is left with its first role alone, refilled, so
        # it may publish for no device outside the new set from here on; the new password ends its
        # sessions. What it held before comes back with the answer.
        held = self._apply([{"command": "getClient", "username": username}, *_role(first, parts[0]),
                            *_login(username, password, first)], may_fail=_CREATES | {"getClient"})[0]
        # The other roles are filled while no login holds them, then given to the login together.
        for rolename, part in zip(others, parts[1:], strict=True):
            self._create_or_modify([_new_role(rolename, part)])
        if others:
            self._apply([{"command": "modifyClient", "username": username,
                          "roles": [{"rolename": r} for r in rolenames]}])
        # Roles of an earlier, larger binding; the login no longer holds them.
        stale = sorted({r.get("rolename", "") for r in held.get("data", {}).get("client", {}).get("roles", [])}
                       - set(rolenames))
        for part in _batches([r for r in stale if r.startswith(f"{first}:")]):
            self._apply([{"command": "deleteRole", "rolename": r} for r in part])
        log.info("broker account for gateway %s is ready with %d devices in %d roles", gateway_id, len(bound),
                 len(rolenames))
        return username

    def disable(self, username: str) -> None:
        """Refuse the login from now on and disconnect any session already using it."""
        self._apply([{"command": "disableClient", "username": username}])
        log.info("broker account %s disabled", username)

    def enable(self, username: str) -> None:
        self._apply([{"command": "enableClient", "username": username}])
        log.info("broker account %s enabled", username)

    def ensure_default_deny(self) -> None:
        """Nobody publishes, subscribes or receives unless a role allows it, and no device or gateway
        login can use another session's client id (logins made before binding are bound here)."""
        self._apply([{"command": "setDefaultACLAccess", "acls": [
            {"acltype": "publishClientSend", "allow": False},
            {"acltype": "publishClientReceive", "allow": False},
            {"acltype": "subscribe", "allow": False},
            {"acltype": "unsubscribe", "allow": True},
        ]}])
        self.bind_client_ids()

    def bind_client_ids(self) -> list[str]:
        """Bind every device and gateway login still without its client id; returns those bound.

        Binding disconnects a session that uses the login, so each is bound once: a device that
        connected with another client id is refused from then on and must use its username.
        """
        clients: list[dict[str, Any]] = []
        while True:
            page = self._apply([{"command": "listClients", "verbose": True, "count": 1000,
                                 "offset": len(clients)}])[0].get("data", {}).get("clients", [])
            clients += page
            if len(page) < 1000:
                break
        unbound = unbound_logins(clients)
        for part in _batches(unbound):
            self._apply([{"command": "modifyClient", "username": u, "clientid": client_id(u)} for u in part])
        if unbound:
            log.warning("bound %d broker logins made before client ids were bound to their own ids",
                        len(unbound))
        return unbound

    def ensure_ingest_account(self, password: str, *, instance: str = "0") -> None:
        """The ingest login: may subscribe to all telemetry, directly or through the shared group.

        Also empties the session `instance` kept under its old fixed client id, if any.
        """
        rolename = INGEST_USERNAME
        acls = [
            # Mosquitto 2.0 checks a shared subscription's ACL against the whole `$share/...` filter.
            {"acltype": "subscribePattern", "topic": INGEST_SUBSCRIPTION, "allow": True},
            {"acltype": "subscribePattern", "topic": TELEMETRY_FILTER, "allow": True},
            {"acltype": "publishClientReceive", "topic": TELEMETRY_FILTER, "allow": True},
            # Its loop probe (ingest/probe.py): a heartbeat only when the probe came back through the broker.
            {"acltype": "publishClientSend", "topic": INGEST_PROBE_FILTER, "allow": True},
            {"acltype": "subscribePattern", "topic": INGEST_PROBE_FILTER, "allow": True},
            {"acltype": "publishClientReceive", "topic": INGEST_PROBE_FILTER, "allow": True},
        ]
        # Setting a password or roles disconnects the login's sessions, so a running ingest is left
        # alone when its account already works; role changes apply without a disconnect.
        responses = self._apply([*_role(rolename, acls), {"command": "getClient", "username": INGEST_USERNAME}],
                                may_fail=_CREATES | {"getClient"})
        account = responses[2].get("data", {}).get("client", {})
        has_role = any(r.get("rolename") == rolename for r in account.get("roles", []))
        if not (has_role and can_log_in(self._host, self._port, INGEST_USERNAME, password, self._timeout_s)):
            # Unbound: each ingest instance has its own client id (`ingest_client_id`).
            self._apply(_login(INGEST_USERNAME, password, rolename, bound=False))
            log.info("broker account %s is ready", INGEST_USERNAME)
        self.empty_legacy_ingest_session(password, instance)

    def empty_legacy_ingest_session(self, password: str, instance: str) -> int:
        """Move what ingest's session under its old client id holds to the current group; returns how many.

        Run while that old ingest is stopped: a running one would take its session back.
        """
        session = LegacySession(self._host, self._port, INGEST_USERNAME, password,
                                legacy_ingest_client_id(instance), timeout_s=self._timeout_s)
        try:
            if not session.open():
                return 0
            forwarder_password = secrets.token_urlsafe(24)
            self._apply(_role(FORWARDER_USERNAME, [{"acltype": "publishClientSend", "topic": TELEMETRY_FILTER,
                                                    "allow": True}])
                        + _login(FORWARDER_USERNAME, forwarder_password, FORWARDER_USERNAME))
            try:
                forwarded = session.forward(INGEST_SUBSCRIPTION, client_id(FORWARDER_USERNAME),
                                            FORWARDER_USERNAME, forwarder_password)
            finally:
                self._apply([{"command": "deleteClient", "username": FORWARDER_USERNAME},
                             {"command": "deleteRole", "rolename": FORWARDER_USERNAME}])
        except LegacySessionError as e:
            session.close()
            raise BrokerAccountError(f"could not empty ingest's old session {session.client_id}: {e}; "
                                     "it keeps its messages, run this again with that ingest stopped") from e
        log.warning("ingest's old session %s is gone; its %d messages were published again for ingest",
                    session.client_id, forwarded)
        return forwarded

    def _create_or_modify(self, creates: list[dict[str, Any]]) -> None:
        """Make these roles and clients, or bring those that exist to the same fields.

        One file rewrite each, new or not (a create that fails writes nothing), where the create and
        modify pair of `_role` costs two for a new object. The modifies come in a second message,
        though: use it only where the objects may change in any order.
        """
        responses = self._apply(creates)
        existing = [_modified(c) for c, r in zip(creates, responses, strict=True) if r.get("error")]
        if existing:
            self._apply(existing, may_fail=frozenset())

    def _apply(self, commands: list[dict[str, Any]], *,
               may_fail: frozenset[str] = _CREATES) -> list[dict[str, Any]]:
        """Send the commands as one control message and raise unless each did its job."""
        responses = self._request(commands)
        names = [c["command"] for c in commands]
        if [r.get("command") for r in responses] != names:
            raise BrokerAccountError(f"the broker answered {names} with {responses}")
        failed = [r for r in responses if r.get("error") and r["command"] not in may_fail]
        if failed:
            errors = "; ".join(f"{r['command']}: {r['error']}" for r in responses if r.get("error"))
            raise BrokerAccountError(f"the broker refused the account change: {errors}")
        return responses

    def _request(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        correlation = secrets.token_hex(8)
        call = _Call()
        with self._cond:
            client = self._client
            if client is None:
                raise BrokerAccountError("BrokerAccounts is not connected; call connect() first")
            if not self._cond.wait_for(lambda: self._ready, self._timeout_s):
                raise BrokerAccountError(f"lost the MQTT broker at {self._address}")
            self._pending[correlation] = call
        payload = json.dumps({"commands": [{**c, "correlationData": correlation} for c in commands]})
        try:
            info = client.publish(CONTROL_TOPIC, payload, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                raise BrokerAccountError(f"could not send to the broker: {mqtt.error_string(info.rc)}")
            if not call.done.wait(self._timeout_s):
                raise BrokerAccountError(f"the broker did not answer {[c['command'] for c in commands]} "
                                         f"within {self._timeout_s:g} s")
        finally:
            with self._cond:
                self._pending.pop(correlation, None)
        return call.responses

    def _fail(self, failure: BrokerAccountError) -> None:
        """Report a failure to a waiting connect(), or log it when paho's reconnect hits it later."""
        with self._cond:
            self._ready = False
            if self._connecting:
                self._failure = self._failure or failure
                self._cond.notify_all()
                return
            closing = self._client is None
        if not closing:
            log.warning("%s; paho keeps retrying", failure)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            self._fail(BrokerAccountError(f"the MQTT broker at {self._address} refused "
                                          f"{self._admin_user}: {reason_code}"))
            return
        # Also after paho's automatic reconnect: a clean session has lost the subscription. The
        # broker's log comes along, to count its refusals (vigil.broker_log).
        client.subscribe([(RESPONSE_TOPIC, 1), *((topic, 0) for topic in broker_log.LOG_TOPICS)])

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, reason_codes: list[Any],
                      _properties: Any) -> None:
        if reason_codes[0].is_failure:
            self._fail(BrokerAccountError(f"the MQTT broker at {self._address} does not let "
                                          f"{self._admin_user} read {RESPONSE_TOPIC}: {reason_codes[0]}"))
            return
        with self._cond:
            self._ready = True
            self._cond.notify_all()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _properties: Any) -> None:
        if reason_code.is_failure:
            self._fail(BrokerUnreachable(f"lost the MQTT broker at {self._address} ({reason_code})"))
        else:
            with self._cond:
                self._ready = False

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic in broker_log.LOG_TOPICS:
            broker_log.count(message.payload.decode("utf-8", "replace"))
            return
        try:
            responses = json.loads(message.payload)["responses"]
            correlation = responses[0].get("correlationData")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            log.warning("ignoring an unreadable dynamic-security answer: %r", message.payload[:200])
            return
        # Answers to other admin sessions arrive here too; they match no call of ours.
        with self._cond:
            call = self._pending.pop(correlation, None)
        if call is not None:
            call.responses = responses
            call.done.set()
