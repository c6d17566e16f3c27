-- Alert look-ups by member and by device: the API's filters (newest first), and the alert consumer's
-- check, on every raise, that the episode was not already absorbed by an earlier alert of the same
-- device and type. Without them both scan the whole table.

CREATE INDEX alerts_member_raised ON alerts (member_id, raised_at DESC);
CREATE INDEX alerts_device_type_raised ON alerts (device_id, type, raised_at DESC);
