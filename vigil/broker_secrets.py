"""The passwords of the broker's two service logins (admin and ingest), which the services read at start.

Configured values (`VIGIL_MQTT_ADMIN_PASSWORD`, `VIGIL_MQTT_INGEST_PASSWORD`) win; otherwise they are
generated once and kept, readable by their owner only, in the state folder, where `vigil stack up`,
ingest and the API all find the same ones.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from vigil.settings import Settings

_ADMIN_KEY = "mqtt_admin_password"
_INGEST_KEY = "mqtt_ingest_password"


@dataclass(frozen=True, slots=True)
class BrokerSecrets:
    """Passwords of the broker's two service logins."""

    admin_password: str
    ingest_password: str


def secrets_file(settings: Settings) -> Path:
    """Where generated passwords are kept (other parts of the stack may keep theirs in it too)."""
    return settings.state_dir / "secrets.json"


def _stored_secrets(settings: Settings) -> dict[str, str]:
    path = secrets_file(settings)
    return json.loads(path.read_text()) if path.exists() else {}


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, replacing the old one whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def ensure_secrets(settings: Settings) -> BrokerSecrets:
    """The service passwords: configured ones win, else ones generated once and kept in the state folder."""
    stored = _stored_secrets(settings)
    configured = {_ADMIN_KEY: settings.mqtt_admin_password, _INGEST_KEY: settings.mqtt_ingest_password}
    generated = {k: secrets.token_urlsafe(24) for k, v in configured.items() if v is None and k not in stored}
    if generated:
        # Other parts of the stack may keep their secrets in the same file.
        _write_private(secrets_file(settings), json.dumps(stored | generated, indent=2))
        stored |= generated
    return BrokerSecrets(admin_password=settings.mqtt_admin_password or stored[_ADMIN_KEY],
                         ingest_password=settings.mqtt_ingest_password or stored[_INGEST_KEY])


def stored_admin_password(settings: Settings) -> str | None:
    """The admin password as configured or kept, without generating one."""
    return settings.mqtt_admin_password or _stored_secrets(settings).get(_ADMIN_KEY)
