"""MQTT broker accounts, kept in Mosquitto's dynamic-security plugin through its control topic.

Each device gets its own role that may publish only to its own telemetry topic; a gateway's role
lists the topics of the devices bound to it. Changes apply to the running broker at once.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from vigil.telemetry import DEVICE_ID_RE

log = logging.getLogger(__name__)

# Mosquitto 2.0 listens on the upper-case `$CONTROL`; topics are case-sensitive, so `$control` is ignored.
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"

ADMIN_USERNAME = "vigil-admin"
INGEST_USERNAME = "vigil-ingest"
TELEMETRY_FILTER = "devices/+/telemetry"
INGEST_SUBSCRIPTION = f"$share/{INGEST_USERNAME}/{TELEMETRY_FILTER}"
# A device registered under one of these names would take over a service account.
SERVICE_USERNAMES = frozenset({ADMIN_USERNAME, INGEST_USERNAME})

# A create fails when the object exists; the modify that follows it in the same batch then
# brings it to the wanted state, and fails itself if the create failed for another reason.
# (Both run in one control message, which the plugin applies in order.)
_CREATES = frozenset({"createRole", "createClient"})


class BrokerAccountError(RuntimeError):
    """The broker refused an account change, or did not answer in time; the message says which."""


class BrokerUnreachable(BrokerAccountError):
    """Nothing answers MQTT at the broker's address."""


def telemetry_topic(device_id: str) -> str:
    return f"devices/{device_id}/telemetry"


def gateway_username(gateway_id: str) -> str:
    """A gateway's broker login; the dot cannot occur in a device id, so the two never collide."""
    return f"gw.{gateway_id}"


def _checked_id(kind: str, value: str) -> str:
    if not DEVICE_ID_RE.match(value) or value in SERVICE_USERNAMES:
        raise ValueError(f"{kind} {value!r} is not usable as a broker account: it must match "
                         f"[A-Za-z0-9_-]{{1,64}} and not be one of {sorted(SERVICE_USERNAMES)}")
    return value


def _publish_acl(device_id: str) -> dict[str, Any]:
    return {"acltype": "publishClientSend", "topic": telemetry_topic(device_id), "allow": True}


def _role(rolename: str, acls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Commands that leave the role holding exactly these ACLs."""
    return [
        {"command": "createRole", "rolename": rolename},
        {"command": "modifyRole", "rolename": rolename, "acls": acls},
    ]


def _login(username: str, password: str, rolename: str) -> list[dict[str, Any]]:
    """Commands that leave the client with this password and this role alone."""
    return [
        {"command": "createClient", "username": username},
        {"command": "modifyClient", "username": username, "password": password,
         "roles": [{"rolename": rolename}]},
    ]


def can_log_in(host: str, port: int, username: str, password: str, timeout_s: float = 5.0) -> bool:
    """Whether the broker accepts these credentials, tried with a throwaway client id."""
    accepted: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"vigil-check-{secrets.token_hex(4)}",
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
        self._apply(_role(rolename, [_publish_acl(device_id)]) + _login(device_id, password, rolename))
        log.info("broker account for device %s is ready", device_id)
        return device_id

    def ensure_gateway(self, gateway_id: str, device_ids: Iterable[str], password: str) -> str:
        """Make a gateway login that may publish for exactly these devices; returns the username."""
        _checked_id("gateway id", gateway_id)
        if isinstance(device_ids, str):  # would otherwise bind one device per character
            raise TypeError("device_ids must be a collection of device ids, not one string")
        bound = sorted({_checked_id("device id", d) for d in device_ids})
        username = gateway_username(gateway_id)
        rolename = f"gateway:{gateway_id}"
        self._apply(_role(rolename, [_publish_acl(d) for d in bound]) + _login(username, password, rolename))
        log.info("broker account for gateway %s is ready with %d devices", gateway_id, len(bound))
        return username

    def disable(self, username: str) -> None:
        """Refuse the login from now on and disconnect any session already using it."""
        self._apply([{"command": "disableClient", "username": username}])
        log.info("broker account %s disabled", username)

    def enable(self, username: str) -> None:
        self._apply([{"command": "enableClient", "username": username}])
        log.info("broker account %s enabled", username)

    def ensure_default_deny(self) -> None:
        """Nobody publishes or subscribes unless a role allows it."""
        self._apply([{"command": "setDefaultACLAccess", "acls": [
            {"acltype": "publishClientSend", "allow": False},
            {"acltype": "publishClientReceive", "allow": True},
            {"acltype": "subscribe", "allow": False},
            {"acltype": "unsubscribe", "allow": True},
        ]}])

    def ensure_ingest_account(self, password: str) -> None:
        """The ingest login: may subscribe to all telemetry, directly or through the shared group."""
        rolename = INGEST_USERNAME
        acls = [
            # Mosquitto 2.0 checks a shared subscription's ACL against the whole `$share/...` filter.
            {"acltype": "subscribePattern", "topic": INGEST_SUBSCRIPTION, "allow": True},
            {"acltype": "subscribePattern", "topic": TELEMETRY_FILTER, "allow": True},
            {"acltype": "publishClientReceive", "topic": TELEMETRY_FILTER, "allow": True},
        ]
        # Setting a password or roles disconnects the login's sessions, so a running ingest is left
        # alone when its account already works; role changes apply without a disconnect.
        responses = self._apply([*_role(rolename, acls), {"command": "getClient", "username": INGEST_USERNAME}],
                                may_fail=_CREATES | {"getClient"})
        account = responses[2].get("data", {}).get("client", {})
        has_role = any(r.get("rolename") == rolename for r in account.get("roles", []))
        if has_role and can_log_in(self._host, self._port, INGEST_USERNAME, password, self._timeout_s):
            return
        self._apply(_login(INGEST_USERNAME, password, rolename))
        log.info("broker account %s is ready", INGEST_USERNAME)

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
        # Also after paho's automatic reconnect: a clean session has lost the subscription.
        client.subscribe(RESPONSE_TOPIC, qos=1)

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
