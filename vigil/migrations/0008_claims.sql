-- Claims: every incident the rules open, the claim it becomes (or why it owes none), the evidence
-- fixed when the claim was opened, the delivery outbox with its attempts, the member's notices about
-- the claim's progress, the confirmation links, and follow-up tasks. Safe to run again.

-- Every incident received from `vigil.incidents`, once: the natural id makes a redelivery a no-op.
-- The claim is built when the incident's alert has cleared or been resolved, or at `build_due_at`,
-- whichever comes first, so that the description can say how long the loss lasted and what was done.
CREATE TABLE IF NOT EXISTS incidents (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('water_damage', 'fire', 'accident')),
    covered_by   text NOT NULL CHECK (covered_by IN ('health', 'home')),
    member_id    text NOT NULL,
    device_id    text NOT NULL,
    alert_id     uuid NOT NULL,
    location     text,
    started_at   timestamptz NOT NULL,
    detected_at  timestamptz NOT NULL,
    event        jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    build_due_at timestamptz NOT NULL,
    -- what was decided: a claim opened, or no claim and why (`decision` in words)
    decided_at   timestamptz,
    claim_id     uuid,
    decision     text
);
CREATE INDEX IF NOT EXISTS incidents_undecided ON incidents (build_due_at) WHERE decided_at IS NULL;
CREATE INDEX IF NOT EXISTS incidents_alert ON incidents (alert_id);

-- One claim per incident (`incident_id` unique; the id is derived from it). `document` holds the
-- built claim fields (CONTRACT §3); `evidence` the exact bytes served at /claims/{id}/evidence,
-- whose SHA-256 is `evidence_digest`. Neither changes after the claim is opened.
CREATE TABLE IF NOT EXISTS claims (
    id                   uuid PRIMARY KEY,
    incident_id          uuid NOT NULL UNIQUE REFERENCES incidents (id) ON DELETE CASCADE,
    member_id            text NOT NULL,
    alert_id             uuid,
    device_id            text NOT NULL,
    type                 text NOT NULL CHECK (type IN ('water_damage', 'fire', 'accident')),
    line                 text NOT NULL CHECK (line IN ('health', 'home')),
    policy_number        text NOT NULL,
    status               text NOT NULL CHECK (status IN ('prefilled', 'confirmed', 'submitted', 'accepted',
                                                         'needs_info', 'rejected', 'paid', 'failed')),
    loss_at              timestamptz NOT NULL,
    green_channel        boolean NOT NULL DEFAULT false,
    document             jsonb NOT NULL,
    evidence             bytea NOT NULL,
    evidence_digest      text NOT NULL,
    insurer_claim_number text,
    status_history       jsonb NOT NULL DEFAULT '[]',
    confirmed_at         timestamptz,
    confirmed_by         text,
    submitted_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS claims_member ON claims (member_id, created_at DESC);
CREATE INDEX IF NOT EXISTS claims_queue ON claims (green_channel DESC, created_at DESC);

-- The delivery outbox: one row per claim, written in the transaction that made the claim ready to
-- submit. `body` is the exact bytes POSTed on every attempt, so a retried delivery is the same claim.
-- `held`: no insurer endpoint is configured; the claim stays in Vigil.
CREATE TABLE IF NOT EXISTS claim_deliveries (
    claim_id         uuid PRIMARY KEY REFERENCES claims (id) ON DELETE CASCADE,
    body             bytea NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'held')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until      timestamptz,
    give_up_at       timestamptz NOT NULL,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at     timestamptz
);
CREATE INDEX IF NOT EXISTS claim_deliveries_due ON claim_deliveries (next_attempt_at) WHERE status = 'pending';

-- Every delivery attempt: when, how long, what the insurer answered or why the connection failed.
CREATE TABLE IF NOT EXISTS claim_delivery_attempts (
    id          bigserial PRIMARY KEY,
    claim_id    uuid NOT NULL REFERENCES claims (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms integer NOT NULL,
    status_code integer,
    error       text,
    outcome     text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed'))
);
CREATE INDEX IF NOT EXISTS claim_delivery_attempts_claim ON claim_delivery_attempts (claim_id, id);

-- The member's messages about a claim: the request to confirm, one reminder, each status change,
-- the prevention tip after payment. One row per message and channel; the unique key is the promise
-- "told once per claim, purpose and status change" (`seq` is the status history entry told about).
CREATE TABLE IF NOT EXISTS claim_notices (
    id              bigserial PRIMARY KEY,
    claim_id        uuid NOT NULL REFERENCES claims (id) ON DELETE CASCADE,
    purpose         text NOT NULL CHECK (purpose IN ('confirm_request', 'confirm_reminder', 'status', 'tip')),
    seq             integer NOT NULL DEFAULT 0,
    member_id       text NOT NULL,
    channel         text NOT NULL,
    target          text NOT NULL,
    target_digest   text NOT NULL,
    title           text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    reason          text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz,
    UNIQUE (claim_id, purpose, seq, target_digest)
);
CREATE INDEX IF NOT EXISTS claim_notices_due ON claim_notices (next_attempt_at) WHERE status = 'pending';

-- The member's one-tap confirmation links (`/c/{token}`): only a digest of the token is kept.
CREATE TABLE IF NOT EXISTS claim_tokens (
    token_sha256 text PRIMARY KEY,
    claim_id     uuid NOT NULL REFERENCES claims (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS claim_tokens_claim ON claim_tokens (claim_id);

-- Care managers' tasks that a claim makes: a call to tell a member who does not use apps about
-- their claim, a follow-up after payment (a rehabilitation check-in, a plumber's check).
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS claim_id uuid REFERENCES claims (id) ON DELETE CASCADE;
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_kind_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_kind_check CHECK (kind IN ('call', 'check_in', 'claim_follow_up'));
CREATE UNIQUE INDEX IF NOT EXISTS tasks_claim_once ON tasks (claim_id, kind, step) WHERE claim_id IS NOT NULL;
