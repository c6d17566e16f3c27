"""PostgreSQL: use the server at DATABASE_URL when it answers, else a project-owned cluster.

The owned cluster is made with the system's `initdb` under the state folder and listens on
loopback at the URL's port, so nothing outside the project is touched.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stack.process import StackError, log_tail, port_open
from vigil.settings import Settings
from vigil.storage.schema import ensure_database, migrate, uses_timescale


def _folder(settings: Settings) -> Path:
    return (settings.state_dir / "postgres").resolve()


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if not found:
        raise StackError(f"PostgreSQL's {name} is not installed; run `make setup` (it installs the "
                         "Debian postgresql package) or point DATABASE_URL at a server")
    return found


def _server_answers(settings: Settings) -> bool:
    try:
        with psycopg.connect(make_conninfo(settings.database_url, dbname="postgres"), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _as_owner(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; run them as the `postgres` system user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _start_owned(settings: Settings) -> None:
    params = conninfo_to_dict(settings.database_url)
    host, port = params.get("host", "127.0.0.1"), int(params.get("port", 5432))
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise StackError(f"DATABASE_URL={settings.database_url!r} answers nothing, and Vigil starts its "
                         "own PostgreSQL only on loopback")
    if port_open(host, port):
        raise StackError(f"something listens on {host}:{port} but refuses PostgreSQL connections "
                         "with the DATABASE_URL credentials")
    folder = _folder(settings)
    data = folder / "data"
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (folder.parent, folder):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    if not (data / "PG_VERSION").exists():
        user = params.get("user", "postgres")
        result = subprocess.run(_as_owner([_bin("initdb"), "-D", str(data), "-U", user, "--auth=trust",
                                           "--encoding=UTF8", "--no-instructions"]),
                                capture_output=True, text=True)
        if result.returncode != 0:
            hint = ("; as root the cluster runs as the `postgres` user, who must be able to reach that "
                    "folder: set VIGIL_STATE_DIR to one every user can traverse") if os.geteuid() == 0 else ""
            raise StackError(f"initdb could not create the project's PostgreSQL cluster in {data}: "
                             f"{result.stderr.strip()}{hint}")
    log = folder / "postgres.log"
    options = f"-c listen_addresses={host} -p {port} -k {folder}"
    result = subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                                       "-w", "-t", "30", "start"]), capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"the project's PostgreSQL did not start: {result.stderr.strip()}\n{log_tail(log)}")


def up(settings: Settings) -> str:
    state = "reused"
    if not _server_answers(settings):
        _start_owned(settings)
        state = "started"
    ensure_database(settings.database_url)
    migrate(settings.database_url, retention_days=settings.retention_days, timescale=settings.timescale)
    return state


def down(settings: Settings) -> bool:
    data = _folder(settings) / "data"
    if not (data / "postmaster.pid").exists():
        return False
    subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                   capture_output=True)
    return True


def status(settings: Settings) -> tuple[str, str]:
    owned = (_folder(settings) / "data" / "postmaster.pid").exists()
    if not _server_answers(settings):
        return "down", settings.database_url
    try:
        flavour = "TimescaleDB" if uses_timescale(settings.database_url) else "plain PostgreSQL"
    except psycopg.Error:
        flavour = "database missing"
    return "up", f"{settings.database_url} ({flavour}, {'owned by vigil' if owned else 'external'})"
