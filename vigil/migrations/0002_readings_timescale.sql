-- Readings on TimescaleDB: a hypertable in daily chunks, compressed after a week, dropped after
-- the retention window, with a continuous aggregate of 1-minute statistics per device and metric.
-- {retention_days} is filled in from VIGIL_RETENTION_DAYS.

CREATE TABLE readings (
    device_id text NOT NULL,
    ts        timestamptz NOT NULL,
    metric    text NOT NULL,
    value     double precision NOT NULL,
    seq       bigint NOT NULL
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
CREATE INDEX readings_device_metric_ts ON readings (device_id, metric, ts DESC);

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, metric',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('readings', interval '7 days');
SELECT add_retention_policy('readings', interval '{retention_days} days');

CREATE MATERIALIZED VIEW readings_1m WITH (timescaledb.continuous) AS
SELECT device_id, metric, time_bucket(interval '1 minute', ts) AS bucket,
       count(*) AS n, avg(value) AS mean, min(value) AS min, max(value) AS max
FROM readings
GROUP BY device_id, metric, time_bucket(interval '1 minute', ts)
WITH NO DATA;
SELECT add_continuous_aggregate_policy('readings_1m',
    start_offset => interval '3 hours', end_offset => interval '1 minute',
    schedule_interval => interval '1 minute');
