-- Registry, tokens, message ledger, dead letters and alerts: the same on plain PostgreSQL and TimescaleDB.

CREATE TABLE members (
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    birth_date         date,
    phone              text,
    email              text,
    address            text,
    timezone           text NOT NULL DEFAULT 'UTC',
    policy             jsonb NOT NULL,
    care_manager_id    text,
    emergency_contacts jsonb NOT NULL DEFAULT '[]',
    consent            jsonb NOT NULL,
    care_plan          jsonb NOT NULL DEFAULT '{}',
    outreach_urls      jsonb NOT NULL DEFAULT '[]',
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX members_care_manager ON members (care_manager_id);

CREATE TABLE devices (
    device_id         text PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('wearable', 'home')),
    member_id         text NOT NULL REFERENCES members (id),
    location          text,
    report_interval_s integer NOT NULL DEFAULT 300 CHECK (report_interval_s > 0),
    enabled           boolean NOT NULL DEFAULT true,
    mqtt_username     text NOT NULL UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_member ON devices (member_id);

CREATE TABLE gateways (
    id            text PRIMARY KEY,
    name          text,
    mqtt_username text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateway_devices (
    gateway_id text NOT NULL REFERENCES gateways (id),
    device_id  text NOT NULL REFERENCES devices (device_id),
    PRIMARY KEY (gateway_id, device_id)
);

CREATE TABLE api_tokens (
    token_sha256    text PRIMARY KEY,
    role            text NOT NULL CHECK (role IN ('admin', 'care_manager')),
    care_manager_id text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- One row per accepted MQTT message: the idempotency ledger for (device_id, seq) and the
-- source of end-to-end latency figures.
CREATE TABLE messages (
    device_id   text NOT NULL,
    seq         bigint NOT NULL,
    sent_at     timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    readings    integer NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX messages_received_brin ON messages USING brin (received_at);

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    -- sha256 of topic, reason, detail and payload: a redelivered bad message is recorded once
    fingerprint text NOT NULL UNIQUE,
    received_at timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    reason      text NOT NULL,
    detail      text NOT NULL,
    topic       text NOT NULL,
    device_id   text,
    seq         bigint,
    payload     text NOT NULL DEFAULT ''
);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at);

CREATE TABLE alerts (
    id           uuid PRIMARY KEY,
    type         text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    status       text NOT NULL CHECK (status IN ('open', 'acknowledged', 'escalated', 'resolved')),
    member_id    text NOT NULL,
    device_id    text NOT NULL,
    triggered_at timestamptz NOT NULL,
    raised_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    cleared_at   timestamptz,
    resolved_at  timestamptz,
    evidence     jsonb NOT NULL,
    history      jsonb NOT NULL DEFAULT '[]'
);
-- The rule's promise: at most one open alert per member, device and type.
CREATE UNIQUE INDEX alerts_one_open ON alerts (member_id, device_id, type) WHERE status <> 'resolved';
CREATE INDEX alerts_raised ON alerts (raised_at DESC);
