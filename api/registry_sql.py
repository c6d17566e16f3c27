"""SQL for the registry the API writes: members, care managers, devices, gateways and their bindings."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from vigil.storage.rows import fetch_all, fetch_one

_JSON_MEMBER_FIELDS = ("policy", "emergency_contacts", "consent", "care_plan", "outreach_urls", "quiet_hours")
_MEMBER_FIELDS = (
    "id",
    "name",
    "birth_date",
    "phone",
    "email",
    "address",
    "timezone",
    "policy",
    "care_manager_id",
    "emergency_contacts",
    "consent",
    "care_plan",
    "outreach_urls",
    "quiet_hours",
    "contact_by_call",
)
_MEMBER_COLUMNS = sql.SQL(", ").join([*map(sql.Identifier, _MEMBER_FIELDS), sql.Identifier("created_at")])
_INSERT_MEMBER = sql.SQL(
    "INSERT INTO members ({fields}) VALUES ({values}) ON CONFLICT (id) DO NOTHING RETURNING {columns}"
).format(
    fields=sql.SQL(", ").join(map(sql.Identifier, _MEMBER_FIELDS)),
    values=sql.SQL(", ").join(map(sql.Placeholder, _MEMBER_FIELDS)),
    columns=_MEMBER_COLUMNS,
)
_SELECT_MEMBER = sql.SQL("SELECT {columns} FROM members WHERE id = %s").format(columns=_MEMBER_COLUMNS)


async def insert_member(conn: AsyncConnection, member: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a member; None when the id is taken."""
    values = {k: Jsonb(member[k]) if k in _JSON_MEMBER_FIELDS else member[k] for k in _MEMBER_FIELDS}
    return await fetch_one(conn, _INSERT_MEMBER, values)


async def get_member(conn: AsyncConnection, member_id: str) -> dict[str, Any] | None:
    return await fetch_one(conn, _SELECT_MEMBER, (member_id,))


_CARE_MANAGER_FIELDS = ("id", "name", "email", "phone", "timezone", "outreach_urls")
_CARE_MANAGER_COLUMNS = "id, name, email, phone, timezone, outreach_urls, created_at"


async def insert_care_manager(conn: AsyncConnection, care_manager: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a care manager; None when the id is taken."""
    values = {k: care_manager[k] for k in _CARE_MANAGER_FIELDS}
    values["outreach_urls"] = Jsonb(values["outreach_urls"])
    return await fetch_one(
        conn,
        "INSERT INTO care_managers (id, name, email, phone, timezone, outreach_urls) "
        "VALUES (%(id)s, %(name)s, %(email)s, %(phone)s, %(timezone)s, %(outreach_urls)s) "
        "ON CONFLICT (id) DO NOTHING RETURNING " + _CARE_MANAGER_COLUMNS,
        values,
    )


async def get_care_manager(conn: AsyncConnection, care_manager_id: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn, "SELECT " + _CARE_MANAGER_COLUMNS + " FROM care_managers WHERE id = %s", (care_manager_id,)
    )


async def insert_device(conn: AsyncConnection, device: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a device whose MQTT username is its id; None when the id is taken."""
    return await fetch_one(
        conn,
        "INSERT INTO devices (device_id, kind, member_id, location, report_interval_s, mqtt_username) "
        "VALUES (%(device_id)s, %(kind)s, %(member_id)s, %(location)s, %(report_interval_s)s, %(device_id)s) "
        "ON CONFLICT DO NOTHING RETURNING device_id, kind, member_id, location, report_interval_s, "
        "enabled, mqtt_username, created_at",
        device,
    )


async def get_device(conn: AsyncConnection, device_id: str) -> dict[str, Any] | None:
    """A device with the care manager of its member, for access checks."""
    return await fetch_one(
        conn,
        "SELECT d.device_id, d.member_id, m.care_manager_id FROM devices d "
        "JOIN members m ON m.id = d.member_id WHERE d.device_id = %s",
        (device_id,),
    )


async def missing_devices(conn: AsyncConnection, device_ids: list[str]) -> list[str]:
    """Those of `device_ids` that are not registered, in the order given."""
    rows = await fetch_all(
        conn,
        "SELECT wanted.id FROM unnest(%s::text[]) WITH ORDINALITY AS wanted (id, n) "
        "WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = wanted.id) ORDER BY wanted.n",
        (device_ids,),
    )
    return [r["id"] for r in rows]


async def claim_gateway(conn: AsyncConnection, gateway_id: str, name: str | None) -> dict[str, Any] | None:
    """Insert a gateway with a placeholder username (the broker names it later); None when the id is taken.

    ':' cannot occur in an id, so the placeholder never collides with a real username.
    """
    return await fetch_one(
        conn,
        "INSERT INTO gateways (id, name, mqtt_username) VALUES (%s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING RETURNING id, name, created_at",
        (gateway_id, name, f"pending:{gateway_id}"),
    )


async def bind_gateway(conn: AsyncConnection, gateway_id: str, device_ids: list[str], username: str) -> None:
    """Record the gateway's devices and the username the broker gave it."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO gateway_devices (gateway_id, device_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(gateway_id, d) for d in device_ids],
        )
        await cur.execute("UPDATE gateways SET mqtt_username = %s WHERE id = %s", (username, gateway_id))


async def lock_care_plan(conn: AsyncConnection, member_id: str) -> dict[str, Any] | None:
    """A member's care manager and stored plan, locked until the transaction ends; None when unknown.

    The lock orders concurrent changes of one member's plan: each is published and committed before
    the next one reads the version it increments.
    """
    return await fetch_one(
        conn, "SELECT care_manager_id, care_plan FROM members WHERE id = %s FOR UPDATE", (member_id,)
    )


async def read_care_plan(conn: AsyncConnection, member_id: str) -> dict[str, Any] | None:
    """A member's care manager and stored plan; None when unknown."""
    return await fetch_one(conn, "SELECT care_manager_id, care_plan FROM members WHERE id = %s", (member_id,))


async def store_care_plan(conn: AsyncConnection, member_id: str, document: dict[str, Any]) -> None:
    await conn.execute("UPDATE members SET care_plan = %s WHERE id = %s", (Jsonb(document), member_id))
