-- What `device_offline` judges by: when each device was last heard, and since when Vigil's own
-- pipeline has been provably live (an unbroken run of heartbeats through ingest, Kafka and the
-- stream worker), so that Vigil's own downtime never counts as a device's silence.

-- received_at of the newest stored message of each device; kept by the stream worker's batch writer.
CREATE TABLE device_liveness (
    device_id       text PRIMARY KEY,
    last_message_at timestamptz NOT NULL
);
INSERT INTO device_liveness (device_id, last_message_at)
SELECT device_id, max(received_at) FROM messages GROUP BY device_id;

-- One row per heartbeat source (`ingest-<instance>`): the run of heartbeats it is in. A heartbeat
-- arriving after a gap starts a new run, so first_at is "live without a break since".
CREATE TABLE pipeline_heartbeats (
    component text PRIMARY KEY,
    first_at  timestamptz NOT NULL,
    last_at   timestamptz NOT NULL
);
