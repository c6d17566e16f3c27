"""A database of its own for a test module, named after the run's (tests/conftest.py sets DATABASE_URL)."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from vigil.storage.schema import ensure_database, migrate


def own_database_url(suffix: str) -> str:
    """`<the run's database>_<suffix>` on the same server, as a URL (what `Settings` takes).

    Named after the run's database, so parallel checkouts never share one.
    """
    base = urlparse(os.environ["DATABASE_URL"])
    return base._replace(path=f"{base.path}_{suffix}").geturl()


def recreate(url: str) -> str:
    """Drop the database named in `url` (its sessions too) and create it empty; returns `url`."""
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    ensure_database(url)
    return url


def fresh_database(suffix: str) -> str:
    """`own_database_url(suffix)` dropped, created and migrated: an empty schema for one test module."""
    url = recreate(own_database_url(suffix))
    migrate(url, retention_days=30)
    return url
