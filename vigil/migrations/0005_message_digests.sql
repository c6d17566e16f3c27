-- A digest of each message's readings in the ledger, so that a (device_id, seq) sent again with
-- other readings (a device whose counter restarted) is told apart from a redelivery and recorded
-- as a `seq_reused` dead letter instead of being dropped unseen. CRC-32 and Adler-32 of the
-- readings as JSON, in one bigint (`vigil.storage.sinks.digest`): cheap to compute and to COPY.
-- Rows stored before this migration have no digest (NULL): "unknown", taken as the same content.
ALTER TABLE messages ADD COLUMN digest bigint;
