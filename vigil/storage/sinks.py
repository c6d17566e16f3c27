"""Idempotent batch writers used by the stream workers: readings (COPY) and dead letters.

Readings are staged with COPY and moved in one statement that first claims each (device_id, seq)
in the `messages` ledger; only messages claimed now have their readings inserted, so a redelivered
message stores nothing twice. A message that finds its seq claimed already is told apart by the
digest of its readings: the same digest is a redelivery (a silent no-op), another one is a device
sending a seq again with other readings (its counter restarted), recorded as a `seq_reused` dead
letter carrying the new readings, while the stored ones stay as they are. Timestamps travel as
epoch milliseconds and are converted in SQL. The same transaction moves each device's
`device_liveness` forward, for `device_offline`, and stores the dead letters the batch raised.

The fast path trusts the batch. When the database refuses it for its content, the `*_singly`
writers take it again one row at a time, each cleaned (`clean_text`) and in its own savepoint; a
row still refused becomes a `store_refused` dead letter, so a bad row costs only itself and never
jams the batches behind it.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson
import psycopg

from vigil.broker_accounts import telemetry_topic
from vigil.storage import CONTENT_ERRORS
from vigil.storage.text import clean_text
from vigil.telemetry import DeadLetter
from vigil.timefmt import ms_text

log = logging.getLogger(__name__)
Key = tuple[str, int]
_BIGINT = range(-(2**63), 2**63)
_DETAIL_CHARS = 1000
_PAYLOAD_CHARS = 4096

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_messages (
    device_id text, seq bigint, sent_ms bigint, received_ms bigint, readings integer, digest bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_readings (
    device_id text, seq bigint, ts_ms bigint, metric text, value double precision
) ON COMMIT DELETE ROWS;
"""

# Returns the staged messages whose seq was claimed before: redeliveries, or seqs sent again.
_MOVE = """
WITH claimed AS (
    INSERT INTO messages (device_id, seq, sent_at, received_at, readings, digest)
    SELECT device_id, seq, to_timestamp(sent_ms / 1000.0), to_timestamp(received_ms / 1000.0), readings, digest
    FROM stage_messages
    ON CONFLICT (device_id, seq) DO NOTHING
    RETURNING device_id, seq
), moved AS (
    INSERT INTO readings (device_id, ts, metric, value, seq)
    SELECT r.device_id, to_timestamp(r.ts_ms / 1000.0), r.metric, r.value, r.seq
    FROM stage_readings r JOIN claimed USING (device_id, seq)
)
SELECT device_id, seq FROM stage_messages EXCEPT ALL SELECT device_id, seq FROM claimed
"""

# One row per device in the batch; GREATEST, because batches from a rebalance or a redelivery may
# be older than what is stored. Sorted so concurrent workers lock rows in one order.
_LIVENESS = """
INSERT INTO device_liveness AS l (device_id, last_message_at)
SELECT device_id, to_timestamp(max(received_ms) / 1000.0) FROM stage_messages
GROUP BY device_id ORDER BY device_id
ON CONFLICT (device_id) DO UPDATE SET last_message_at = GREATEST(l.last_message_at, EXCLUDED.last_message_at)
"""

# Rows stored before migration 0005 have no digest: unknown, taken as the same content.
_STORED_DIGESTS = """
SELECT m.device_id, m.seq, m.digest, (extract(epoch FROM m.received_at) * 1000)::bigint, m.readings
FROM messages m JOIN unnest(%s::text[], %s::bigint[]) AS k (device_id, seq) USING (device_id, seq)
WHERE m.digest IS NOT NULL
"""

# The staging tables empty only at commit; row by row, each savepoint starts from them empty.
_UNSTAGE = "DELETE FROM stage_messages; DELETE FROM stage_readings"

_INSERT_LETTER = (
    "INSERT INTO dead_letters (fingerprint, received_at, reason, detail, topic, device_id, seq, payload) "
    "VALUES (%s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s) ON CONFLICT (fingerprint) DO NOTHING")


@dataclass(slots=True)
class Stored:
    """What a write did: readings inserted, the records to judge, and the dead letters it raised itself.

    `records` leaves out what was not stored (refused, or a seq sent again with other readings);
    `letters` holds the `seq_reused` and `store_refused` letters; `lost` counts rows refused even
    as a `store_refused` letter (logged, then dropped so that nothing jams).
    """

    readings: int = 0
    records: list[dict] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    lost: int = 0


async def prepare(conn: psycopg.AsyncConnection) -> None:
    """Create the session's staging tables; call once per connection."""
    await conn.execute(_STAGE)
    await conn.commit()


# -- the pure part: digests, cleaning, the letters a write raises ---------------------------------

def digest(readings: Sequence[Sequence]) -> int:
    """CRC-32 and Adler-32 of the readings as JSON `[[ts_ms, metric, value], ...]`, as one signed bigint.

    Tells a redelivery from other readings under the same seq; not cryptographic, and need not
    be: a forged match only hides the forger's own message. Half the CPU of BLAKE2b, per record.
    """
    data = orjson.dumps(readings)
    return (zlib.crc32(data) << 32 | zlib.adler32(data)) - (1 << 63)


def clean_record(record: dict) -> dict:
    """The record with every text field storable (see `clean_text`)."""
    member_id = record.get("member_id")
    return {**record, "device_id": clean_text(record["device_id"]),
            "member_id": clean_text(member_id) if isinstance(member_id, str) else member_id,
            "readings": [(ts, clean_text(metric), value) for ts, metric, value in record["readings"]]}


def clean_letter(letter: DeadLetter) -> DeadLetter:
    """The dead letter with every text field storable (see `clean_text`)."""
    texts = {"reason": letter.reason, "detail": letter.detail, "topic": letter.topic,
             "device_id": letter.device_id, "payload": letter.payload}
    cleaned = {name: clean_text(text) for name, text in texts.items() if text is not None}
    if all(cleaned[name] == texts[name] for name in cleaned):
        return letter
    return letter.model_copy(update=cleaned)


def fingerprint(dead: DeadLetter) -> str:
    """SHA-256 of what a dead letter says (not when it came): a redelivered one is recorded once."""
    digest_ = hashlib.sha256()
    for part in (dead.topic, dead.reason, dead.detail, str(dead.seq), dead.payload):
        digest_.update(part.encode())
        digest_.update(b"\0")
    return digest_.hexdigest()


def _hex(value: int) -> str:
    return f"{value & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _readings(count: int) -> str:
    return "1 reading" if count == 1 else f"{count} readings"


def error_text(error: BaseException) -> str:
    """The refusal in one line: the error's class and the database's words (with its context)."""
    words = " ".join(str(error).split()) or "no message"
    return f"{type(error).__name__}: {words}"[:_DETAIL_CHARS]


def seq_reused(record: dict, new_digest: int, *, stored_digest: int, stored_received_ms: int,
               stored_readings: int) -> DeadLetter:
    """The dead letter for a message whose (device_id, seq) was stored before with other readings.

    The stored message is named by its digest and arrival (its readings stay in `readings`); the
    new readings, stored nowhere else, are the payload. Neither names this message's arrival time,
    so the same message delivered again makes the same fingerprint and is recorded once.
    """
    device_id, seq = record["device_id"], record["seq"]
    received = ms_text(stored_received_ms, "milliseconds")
    detail = (f"seq {seq} was stored before with other readings (received {received}, "
              f"{_readings(stored_readings)}, digest {_hex(stored_digest)}); this message's "
              f"readings ({_readings(len(record['readings']))}, digest {_hex(new_digest)}) are not stored: "
              "see the payload. Did the device's seq counter restart?")
    payload = orjson.dumps({"device_id": device_id, "seq": seq, "sent_at_ms": record["sent_at_ms"],
                            "readings": record["readings"]}).decode()
    return DeadLetter(received_at_ms=record["received_at_ms"], reason="seq_reused", detail=detail,
                      topic=telemetry_topic(device_id), device_id=device_id, seq=seq, payload=payload)


def record_refused(record: dict, error: BaseException, *, now_ms: int) -> DeadLetter:
    """The dead letter for a telemetry record the database refused even cleaned; the record is the payload."""
    device_id, seq = record["device_id"], record["seq"]
    return DeadLetter(received_at_ms=now_ms, reason="store_refused",
                      detail=f"the database refused this message: {error_text(error)}",
                      topic=telemetry_topic(device_id), device_id=device_id,
                      seq=seq if seq in _BIGINT else None, payload=orjson.dumps(record).decode()[:_PAYLOAD_CHARS])


def letter_refused(letter: DeadLetter, error: BaseException, *, now_ms: int) -> DeadLetter:
    """The dead letter standing for one the database refused even cleaned; the refused one is the payload."""
    return DeadLetter(received_at_ms=now_ms, reason="store_refused",
                      detail=f"the database refused a {letter.reason[:100]!r} dead letter: {error_text(error)}",
                      topic=letter.topic[:_PAYLOAD_CHARS], device_id=letter.device_id,
                      seq=letter.seq if letter.seq in _BIGINT else None,
                      payload=letter.model_dump_json()[:_PAYLOAD_CHARS])


def _unique(records: Iterable[dict]) -> tuple[dict[Key, tuple[dict, int]], list[tuple[dict, DeadLetter]]]:
    """One record per (device_id, seq) with its digest, and a `seq_reused` letter for each later one
    in the batch whose readings differ from the first's."""
    unique: dict[Key, tuple[dict, int]] = {}
    reused: list[tuple[dict, DeadLetter]] = []
    for record in records:
        key = (record["device_id"], record["seq"])
        new = digest(record["readings"])
        first = unique.setdefault(key, (record, new))
        if first[1] != new:
            reused.append((record, seq_reused(record, new, stored_digest=first[1],
                                              stored_received_ms=first[0]["received_at_ms"],
                                              stored_readings=len(first[0]["readings"]))))
    return unique, reused


def reused_seqs(pending: dict[Key, tuple[dict, int]], stored: Iterable[tuple]) -> list[tuple[dict, DeadLetter]]:
    """`seq_reused` letters for the pending records whose stored twin has another digest.

    `stored` rows are (device_id, seq, digest, received_at_ms, readings) from the ledger.
    """
    letters = []
    for device_id, seq, stored_digest, received_ms, readings in stored:
        record, new = pending[(device_id, seq)]
        if stored_digest != new:
            letters.append((record, seq_reused(record, new, stored_digest=stored_digest,
                                               stored_received_ms=received_ms, stored_readings=readings)))
    return letters


def _judged(records: Sequence[dict], in_batch: Iterable[tuple[dict, DeadLetter]],
            unstored: Iterable[tuple[dict, object]]) -> list[dict]:
    """The records to judge: all but those whose readings were not stored.

    `in_batch` are records that reused a seq stored by an earlier record of the batch (only they
    are left out); `unstored` name keys none of whose records was stored (refused, or reused
    against the ledger), so every record under those keys is left out.
    """
    skip_ids = {id(r) for r, _ in in_batch}
    skip_keys = {(r["device_id"], r["seq"]) for r, _ in unstored}
    if not skip_ids and not skip_keys:
        return list(records)
    return [r for r in records if id(r) not in skip_ids and (r["device_id"], r["seq"]) not in skip_keys]


# -- the writes --------------------------------------------------------------------------------------

async def _stage(cur: psycopg.AsyncCursor, unique: Iterable[tuple[dict, int]]) -> int:
    """COPY the records into the staging tables; returns the readings staged."""
    staged = 0
    async with cur.copy("COPY stage_messages FROM STDIN") as copy:
        for r, d in unique:
            await copy.write_row((r["device_id"], r["seq"], r["sent_at_ms"], r["received_at_ms"],
                                  len(r["readings"]), d))
    async with cur.copy("COPY stage_readings FROM STDIN") as copy:
        for r, _ in unique:
            device_id, seq = r["device_id"], r["seq"]
            staged += len(r["readings"])
            for ts_ms, metric, value in r["readings"]:
                await copy.write_row((device_id, seq, ts_ms, metric, value))
    return staged


async def _move(cur: psycopg.AsyncCursor) -> list[Key]:
    """Claim the staged messages, insert their readings, move liveness; returns the keys claimed before."""
    await cur.execute(_MOVE)
    unclaimed = await cur.fetchall()
    await cur.execute(_LIVENESS)
    return unclaimed


async def _compare(cur: psycopg.AsyncCursor, unique: dict[Key, tuple[dict, int]],
                   unclaimed: Sequence[Key]) -> list[tuple[dict, DeadLetter]]:
    """`seq_reused` letters for the unclaimed messages stored before with another digest."""
    if not unclaimed:
        return []
    await cur.execute(_STORED_DIGESTS, ([k[0] for k in unclaimed], [k[1] for k in unclaimed]))
    return reused_seqs(unique, await cur.fetchall())


def _letter_row(letter: DeadLetter) -> tuple:
    d = clean_letter(letter)
    return (fingerprint(d), d.received_at_ms, d.reason, d.detail, d.topic, d.device_id, d.seq, d.payload)


async def _insert_letters(cur: psycopg.AsyncCursor, letters: Sequence[DeadLetter]) -> None:
    if letters:
        await cur.executemany(_INSERT_LETTER, [_letter_row(d) for d in letters])


async def _insert_letters_singly(conn: psycopg.AsyncConnection, cur: psycopg.AsyncCursor,
                                 letters: Sequence[DeadLetter], *, now_ms: int) -> tuple[list[DeadLetter], int]:
    """Each letter in its own savepoint; one refused is replaced by a `store_refused` letter, and one
    refused even so is logged and dropped. Returns the replacements and how many were dropped."""
    replacements: list[DeadLetter] = []
    lost = 0
    for letter in letters:
        try:
            async with conn.transaction():
                await cur.execute(_INSERT_LETTER, _letter_row(letter))
            continue
        except CONTENT_ERRORS as e:
            stand_in = letter_refused(clean_letter(letter), e, now_ms=now_ms)
        try:
            async with conn.transaction():
                await cur.execute(_INSERT_LETTER, _letter_row(stand_in))
            replacements.append(stand_in)
        except CONTENT_ERRORS as e:
            lost += 1
            log.error("dead letter %r dropped: the database refused it even as store_refused: %s",
                      clean_text(letter.reason[:100]), error_text(e))
    return replacements, lost


async def store_records(conn: psycopg.AsyncConnection, records: Sequence[dict],
                        letters: Sequence[DeadLetter] = ()) -> Stored:
    """Store telemetry records (dicts shaped like TelemetryRecord) and `letters`, in one transaction.

    Raises what the database raises; a refusal for content (`vigil.storage.CONTENT_ERRORS`) leaves
    nothing written, and `store_records_singly` is then the way to write the batch.
    """
    unique, in_batch = _unique(records)
    async with conn.transaction(), conn.cursor() as cur:
        staged = await _stage(cur, unique.values())
        unclaimed = await _move(cur)
        in_ledger = await _compare(cur, unique, unclaimed)
        raised = [letter for _, letter in (*in_batch, *in_ledger)]
        await _insert_letters(cur, [*letters, *raised])
    not_inserted = sum(len(unique[k][0]["readings"]) for k in unclaimed)
    return Stored(readings=staged - not_inserted, records=_judged(records, in_batch, in_ledger), letters=raised)


async def store_records_singly(conn: psycopg.AsyncConnection, records: Sequence[dict],
                               letters: Sequence[DeadLetter] = (), *, now_ms: int) -> Stored:
    """`store_records` one message at a time, each cleaned and in its own savepoint: a message the
    database still refuses becomes a `store_refused` letter and the others are stored."""
    cleaned = [clean_record(r) for r in records]
    unique, in_batch = _unique(cleaned)
    stored = Stored()
    refused: list[tuple[dict, DeadLetter]] = []
    unclaimed: list[Key] = []
    async with conn.transaction(), conn.cursor() as cur:
        for key, (record, d) in unique.items():
            try:
                async with conn.transaction():
                    await cur.execute(_UNSTAGE)
                    staged = await _stage(cur, [(record, d)])
                    claimed_before = await _move(cur)
            except CONTENT_ERRORS as e:
                refused.append((record, record_refused(record, e, now_ms=now_ms)))
                continue
            if claimed_before:
                unclaimed.append(key)
            else:
                stored.readings += staged
        in_ledger = await _compare(cur, unique, unclaimed)
        stored.letters = [letter for _, letter in (*refused, *in_batch, *in_ledger)]
        replacements, stored.lost = await _insert_letters_singly(conn, cur, [*letters, *stored.letters],
                                                                 now_ms=now_ms)
        stored.letters += replacements
    stored.records = _judged(cleaned, in_batch, [*refused, *in_ledger])
    return stored


async def store_dead_letters(conn: psycopg.AsyncConnection, letters: Sequence[DeadLetter]) -> Stored:
    """Store dead letters, cleaned, in one statement; a refusal for content raises (see `*_singly`)."""
    async with conn.transaction(), conn.cursor() as cur:
        await _insert_letters(cur, letters)
    return Stored()


async def store_dead_letters_singly(conn: psycopg.AsyncConnection, letters: Sequence[DeadLetter], *,
                                    now_ms: int) -> Stored:
    """Dead letters one at a time: one refused is recorded as `store_refused`, the others stored."""
    async with conn.transaction(), conn.cursor() as cur:
        replacements, lost = await _insert_letters_singly(conn, cur, letters, now_ms=now_ms)
    return Stored(letters=replacements, lost=lost)
