-- Readings on plain PostgreSQL: append-only heap, BRIN on event time (rows arrive roughly in
-- time order, so a BRIN index stays tiny), a btree for per-device queries, and a view with the
-- same shape as the TimescaleDB continuous aggregate. Retention is the scheduler's job.

CREATE TABLE readings (
    device_id text NOT NULL,
    ts        timestamptz NOT NULL,
    metric    text NOT NULL,
    value     double precision NOT NULL,
    seq       bigint NOT NULL
);
CREATE INDEX readings_ts_brin ON readings USING brin (ts);
CREATE INDEX readings_device_metric_ts ON readings (device_id, metric, ts DESC);

CREATE VIEW readings_1m AS
SELECT device_id, metric, date_trunc('minute', ts) AS bucket,
       count(*) AS n, avg(value) AS mean, min(value) AS min, max(value) AS max
FROM readings
GROUP BY device_id, metric, date_trunc('minute', ts);
