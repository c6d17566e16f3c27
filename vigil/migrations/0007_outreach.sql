-- What happens after an alert is raised: its lifecycle fields, the escalation ladder's steps, the
-- outreach outbox, call and follow-up tasks, one-tap reply links, care managers, and the audit log
-- of reads of members' health data. What belongs to an alert goes with it when the alert is deleted
-- (a member's data deleted on request, the bench cleaning up). Safe to run again.

CREATE TABLE IF NOT EXISTS care_managers (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    email         text,
    phone         text,
    timezone      text NOT NULL DEFAULT 'UTC',
    outreach_urls jsonb NOT NULL DEFAULT '[]',
    created_at    timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE members
    ADD COLUMN IF NOT EXISTS quiet_hours     jsonb,
    ADD COLUMN IF NOT EXISTS contact_by_call boolean NOT NULL DEFAULT false;

ALTER TABLE alerts
    ADD COLUMN IF NOT EXISTS opens_incident  boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz,
    ADD COLUMN IF NOT EXISTS acknowledged_by text,
    ADD COLUMN IF NOT EXISTS outcome         text,
    ADD COLUMN IF NOT EXISTS assigned_to     text,
    ADD COLUMN IF NOT EXISTS snoozed_until   timestamptz,
    -- when the follow-ups of a resolved alert (a check-in task, a prevention tip) were decided;
    -- NULL while that is still to do
    ADD COLUMN IF NOT EXISTS followups_at    timestamptz;
CREATE INDEX IF NOT EXISTS alerts_unresolved ON alerts (raised_at DESC) WHERE status <> 'resolved';
-- Alerts resolved before follow-ups existed get none: they are long past.
UPDATE alerts SET followups_at = coalesce(resolved_at, now()) WHERE status = 'resolved' AND followups_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_followups_due ON alerts (resolved_at) WHERE followups_at IS NULL;

-- The ladder of one alert: one row per step, planned in the transaction that raised the alert, so
-- a raised alert always has its ladder. `step` counts from 1 in ladder order; re-notifications
-- (`kind` repeat) and steps added when the severity rises continue the count.
CREATE TABLE IF NOT EXISTS alert_steps (
    alert_id  uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    step      integer NOT NULL CHECK (step > 0),
    recipient text NOT NULL CHECK (recipient IN ('member', 'care_manager', 'emergency_contacts')),
    kind      text NOT NULL DEFAULT 'ladder' CHECK (kind IN ('ladder', 'repeat')),
    due_at    timestamptz NOT NULL,
    state     text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'stopped')),
    -- why it was held, stopped or grouped, in words
    note      text,
    done_at   timestamptz,
    PRIMARY KEY (alert_id, step)
);
CREATE INDEX IF NOT EXISTS alert_steps_pending ON alert_steps (due_at) WHERE state = 'pending';

-- The outbox: one row per message to one channel (an Apprise URL) of one recipient, written in the
-- transaction that ran the step. The unique key is the promise "at most once per alert, step and
-- recipient" (per channel). A row grouped into another alert's message points at the row that
-- carries it and is never sent by itself.
CREATE TABLE IF NOT EXISTS outreach (
    id              bigserial PRIMARY KEY,
    alert_id        uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    step            integer NOT NULL,
    purpose         text NOT NULL DEFAULT 'alert' CHECK (purpose IN ('alert', 'repeat', 'tip')),
    to_role         text NOT NULL CHECK (to_role IN ('member', 'care_manager', 'emergency_contact')),
    recipient_key   text NOT NULL,
    recipient_name  text NOT NULL DEFAULT '',
    channel         text NOT NULL,
    target          text NOT NULL DEFAULT '',
    target_digest   text NOT NULL,
    title           text NOT NULL DEFAULT '',
    body            text NOT NULL DEFAULT '',
    status          text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'held', 'skipped')),
    reason          text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    grouped_into    bigint REFERENCES outreach (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz,
    UNIQUE (alert_id, step, recipient_key, target_digest)
);
CREATE INDEX IF NOT EXISTS outreach_due ON outreach (next_attempt_at)
    WHERE status IN ('pending', 'sending') AND grouped_into IS NULL;
CREATE INDEX IF NOT EXISTS outreach_recipient_sent ON outreach (recipient_key, sent_at DESC) WHERE status = 'sent';

-- The care manager's work list: calls to members who do not use apps (one per alert and step) and
-- follow-ups (a check-in the next day). A task belongs to a member, so it is visible to that
-- member's care manager.
CREATE TABLE IF NOT EXISTS tasks (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('call', 'check_in')),
    alert_id        uuid REFERENCES alerts (id) ON DELETE CASCADE,
    step            integer NOT NULL DEFAULT 0,
    member_id       text NOT NULL,
    care_manager_id text,
    due_at          timestamptz NOT NULL,
    reason          text NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
    done_at         timestamptz,
    done_by         text,
    note            text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (alert_id, kind, step)
);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (care_manager_id, due_at) WHERE status = 'open';

-- One-tap "I'm OK" links: only a digest of the token is kept. A message that lists several alerts
-- (grouping) carries one link, with a row per alert: the member's tap answers all of them. A link
-- works while one of its alerts is not resolved.
CREATE TABLE IF NOT EXISTS reply_tokens (
    token_sha256 text NOT NULL,
    alert_id     uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (token_sha256, alert_id)
);
CREATE INDEX IF NOT EXISTS reply_tokens_alert ON reply_tokens (alert_id);

-- Every read of a member's health data (readings, alert evidence, the member card): who, what, when.
CREATE TABLE IF NOT EXISTS audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor     text NOT NULL,
    role      text NOT NULL,
    action    text NOT NULL,
    member_id text,
    subject   text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at DESC);
CREATE INDEX IF NOT EXISTS audit_log_member ON audit_log (member_id, at DESC);
