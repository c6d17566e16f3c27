"""The MQTT broker: reuse the one at VIGIL_MQTT_URL when Vigil's admin can log in, else start Mosquitto.

The project's Mosquitto listens on loopback and keeps everything under `state_dir/mosquitto`: the
dynamic-security plugin's logins and ACLs, persistent sessions with their queued messages, its log.
"""

from __future__ import annotations

import glob
import os
import pwd
import resource
import shutil
import subprocess
from pathlib import Path
from string import Template

from stack.process import StackError, log_tail, port_open, read_pid, stop_pid, wait_until
from vigil.broker_accounts import (
    ADMIN_USERNAME,
    BrokerAccountError,
    BrokerAccounts,
    BrokerUnreachable,
    can_log_in,
)
from vigil.broker_secrets import BrokerSecrets, ensure_secrets, secrets_file, stored_admin_password
from vigil.settings import Settings

START_TIMEOUT_S = 10
# Devices and gateways each hold one connection; the compose configuration uses the same number.
MAX_CONNECTIONS = 10_000
_RESERVED_FILES = 64
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_PLUGIN_PATHS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)
def _folder(settings: Settings) -> Path:
    return (settings.state_dir / "mosquitto").resolve()


def _executable(name: str) -> str:
    # Debian puts the broker in /usr/sbin, which is not on an ordinary user's PATH.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise StackError(f"{name} is not installed; install the Debian packages mosquitto and "
                         "mosquitto-clients, or point VIGIL_MQTT_URL at a broker")
    return found


def _plugin() -> str:
    for pattern in _PLUGIN_PATHS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise StackError("Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) is not "
                     "installed; install the Debian package mosquitto (2.0 or newer)")


def _pid(settings: Settings) -> int | None:
    """The pid of the Mosquitto this project started, when it still runs."""
    folder = _folder(settings)
    pid = read_pid(folder / "mosquitto.pid")
    if pid is None:
        return None
    # After a reboot the stale pid may belong to an unrelated process.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if str(folder / "mosquitto.conf").encode() in cmdline else None


def _write_config(settings: Settings, folder: Path) -> Path:
    if any(c.isspace() for c in str(folder)):
        raise StackError(f"Mosquitto cannot use a state folder whose path has spaces: {folder}; "
                         "set VIGIL_STATE_DIR to another folder")
    template = Template(Path(__file__).with_name("mosquitto.conf").read_text())
    host = "127.0.0.1" if settings.mqtt_host == "localhost" else settings.mqtt_host
    conf = folder / "mosquitto.conf"
    conf.write_text(template.substitute(user=pwd.getpwuid(os.geteuid()).pw_name, host=host,
                                        port=settings.mqtt_port, plugin=_plugin(), folder=folder,
                                        max_connections=max_connections()))
    return conf


def max_connections() -> int:
    """The broker's connection limit: MAX_CONNECTIONS, or less when the open-file limit is lower.

    Past the open-file limit Mosquitto cannot accept at all; a limit it knows refuses cleanly and
    leaves descriptors for its log, persistence file and the admin's own connection.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - _RESERVED_FILES))


def _init_dynsec(folder: Path, admin_password: str) -> None:
    """Create the plugin's JSON with the admin login, unless an earlier start left one."""
    dynsec = folder / "dynamic-security.json"
    if dynsec.exists():
        return
    # The password goes in on stdin (asked twice), so it never shows in the process list.
    result = subprocess.run([_executable("mosquitto_ctrl"), "dynsec", "init", str(dynsec), ADMIN_USERNAME],
                            input=f"{admin_password}\n{admin_password}\n", capture_output=True, text=True,
                            umask=0o077)
    if result.returncode != 0 or not dynsec.exists():
        raise StackError(f"mosquitto_ctrl could not create {dynsec}: {result.stderr.strip() or result.stdout}")


def _start(settings: Settings, admin_password: str) -> None:
    if settings.mqtt_host not in _LOOPBACK:
        raise StackError(f"VIGIL_MQTT_URL={settings.mqtt_url!r} answers nothing, and Vigil starts its "
                         "own broker only on loopback")
    if port_open(settings.mqtt_host, settings.mqtt_port):
        raise StackError(f"something listens on {settings.mqtt_host}:{settings.mqtt_port} but does not "
                         "answer MQTT; stop it or set VIGIL_MQTT_URL to a free port")
    folder = _folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    conf = _write_config(settings, folder)
    _init_dynsec(folder, admin_password)
    log_file = folder / "mosquitto.log"
    log_start = log_file.stat().st_size if log_file.exists() else 0
    # umask: the broker's files (logins, queued telemetry) are for the project's user only.
    result = subprocess.run([_executable("mosquitto"), "-d", "-c", str(conf)], capture_output=True,
                            text=True, umask=0o077)
    if result.returncode != 0:
        raise StackError(f"Mosquitto refused its configuration {conf}: {result.stderr.strip()}")
    # `mosquitto -d` returns before the listener is open, so a failed start shows only in the log.
    host, port = settings.mqtt_host, settings.mqtt_port
    wait_until(lambda: port_open(host, port) or _logged_error(log_file, log_start), START_TIMEOUT_S)
    if not port_open(host, port):
        raise StackError(f"Mosquitto did not start on {host}:{port}; its log ends:\n{log_tail(log_file)}")


def _logged_error(log_file: Path, offset: int) -> bool:
    try:
        with open(log_file, errors="replace") as f:
            f.seek(offset)
            return "Error:" in f.read()
    except OSError:
        return False


def _provision(accounts: BrokerAccounts, broker_secrets: BrokerSecrets) -> None:
    try:
        accounts.ensure_default_deny()
        accounts.ensure_ingest_account(broker_secrets.ingest_password)
    except BrokerAccountError as e:
        raise StackError(f"could not set up the broker's service accounts: {e}") from e


def up(settings: Settings) -> str:
    """Reuse the broker at VIGIL_MQTT_URL when Vigil's admin can log in there, else start one."""
    broker_secrets = ensure_secrets(settings)
    accounts = BrokerAccounts(settings.mqtt_host, settings.mqtt_port, ADMIN_USERNAME,
                              broker_secrets.admin_password, timeout_s=START_TIMEOUT_S)
    try:
        accounts.connect()
        state = "reused"
    except BrokerUnreachable:
        _start(settings, broker_secrets.admin_password)
        state = "started"
        try:
            accounts.connect()
        except BrokerAccountError as e:
            folder = _folder(settings)
            raise StackError(f"Mosquitto started but {e}. Its logins are kept in {folder}/dynamic-security.json, "
                             f"made with the admin password of its first start; its log ends:\n"
                             f"{log_tail(folder / 'mosquitto.log')}") from e
    except BrokerAccountError as e:
        raise StackError(f"{e}. If that is Vigil's own broker, its admin password is VIGIL_MQTT_ADMIN_PASSWORD "
                         f"or the one kept in {secrets_file(settings)}") from e
    try:
        _provision(accounts, broker_secrets)
    finally:
        accounts.close()
    return state


def down(settings: Settings) -> bool:
    """Stop the Mosquitto this project started (never one it reused); True when one was stopped."""
    pid_file = _folder(settings) / "mosquitto.pid"
    if _pid(settings) is None:
        pid_file.unlink(missing_ok=True)
        return False
    return stop_pid(pid_file)


def status(settings: Settings) -> dict[str, str]:
    """Whether Vigil's admin can log in at VIGIL_MQTT_URL, and whose broker answers there."""
    pid = _pid(settings)
    address = f"{settings.mqtt_host}:{settings.mqtt_port}"
    owner = f"Mosquitto pid {pid}, started by vigil" if pid else "external"
    admin_password = stored_admin_password(settings)
    if admin_password and can_log_in(settings.mqtt_host, settings.mqtt_port, ADMIN_USERNAME, admin_password):
        return {"state": "up", "detail": f"mqtt://{address} ({owner})"}
    if pid:
        return {"state": "down", "detail": f"Mosquitto pid {pid} runs but does not let {ADMIN_USERNAME} log "
                                           f"in at {address}; see {_folder(settings) / 'mosquitto.log'}"}
    if port_open(settings.mqtt_host, settings.mqtt_port):
        return {"state": "down", "detail": f"something listens on {address} but does not let "
                                           f"{ADMIN_USERNAME} log in"}
    return {"state": "down", "detail": f"nothing answers at {address}"}
