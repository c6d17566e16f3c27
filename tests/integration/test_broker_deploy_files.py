"""The deploy broker files on the system's Mosquitto: `deploy/mosquitto/mosquitto.conf` and its first-start script.

A real broker is started here (paths and port moved into tmp_path), which is why this is not a unit test.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MOSQUITTO_ENTRYPOINT = ROOT / "deploy" / "mosquitto" / "entrypoint.sh"

HEALTH_SUB = "-t $SYS/broker/uptime -C 1 -W 3"  # what the compose healthcheck subscribes to


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dynsec_plugin() -> str | None:
    found = glob.glob("/usr/lib/*/mosquitto_dynamic_security.so") + glob.glob("/usr/lib/mosquitto_dynamic_security.so")
    return found[0] if found else None


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("mosquitto", "mosquitto_ctrl", "mosquitto_sub")) or not _dynsec_plugin(),
    reason="mosquitto, mosquitto_ctrl, mosquitto_sub or the dynamic-security plugin is not installed",
)
def test_mosquitto_config_and_first_start_script_run_for_real(tmp_path: Path) -> None:
    """The deploy files on the system's mosquitto: paths and port moved into tmp_path."""
    port, data = _free_port(), tmp_path / "data"
    text = MOSQUITTO_CONF.read_text()
    text = re.sub(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", text)
    text = text.replace("/usr/lib/mosquitto_dynamic_security.so", _dynsec_plugin() or "")
    text = text.replace("/mosquitto/data/", f"{data}/").replace("log_dest stdout", "log_dest stderr")
    if os.geteuid() == 0:
        text += "\nuser root\n"  # else the broker drops to `mosquitto`, which cannot enter tmp_path
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    password = "pw with 'quotes' and $ign"
    env = {
        "PATH": os.environ["PATH"],
        "VIGIL_MQTT_ADMIN_PASSWORD": password,
        "VIGIL_DYNSEC_FILE": str(data / "dynamic-security.json"),
    }

    def sub(*auth: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), *auth, *HEALTH_SUB.split()],
            capture_output=True,
            text=True,
            timeout=10,
        )

    log = tmp_path / "broker.log"
    with log.open("w") as out:
        broker = subprocess.Popen(
            ["sh", str(MOSQUITTO_ENTRYPOINT), "mosquitto", "-c", str(conf)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            result = sub("-u", "vigil-admin", "-P", password)
            if result.returncode == 0 or time.monotonic() > deadline or broker.poll() is not None:
                break
            time.sleep(0.2)
        assert result.returncode == 0, f"healthcheck failed: {result.stderr}\n{log.read_text()}"
        assert (data / "dynamic-security.json").stat().st_mode & 0o077 == 0, "the account file is private"
        assert sub().returncode != 0, "anonymous clients must be refused"
        assert sub("-u", "vigil-admin", "-P", "wrong").returncode != 0
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()

    # A second start keeps the existing accounts even when the variable changed.
    before = (data / "dynamic-security.json").read_text()
    subprocess.run(
        ["sh", str(MOSQUITTO_ENTRYPOINT), "true"],
        env={**env, "VIGIL_MQTT_ADMIN_PASSWORD": "other"},
        check=True,
        capture_output=True,
        timeout=10,
    )
    assert (data / "dynamic-security.json").read_text() == before
