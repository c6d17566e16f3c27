"""Stream-worker counters, exported for Prometheus."""

from prometheus_client import Counter, Gauge, Histogram

READINGS_STORED = Counter("vigil_streams_readings_stored", "Readings inserted into PostgreSQL")
BATCH_SECONDS = Histogram("vigil_streams_store_batch_seconds", "Time to store one batch of records")
STORE_RETRIES = Counter("vigil_streams_store_retries", "Failed database writes that were retried")
STORE_FALLBACKS = Counter("vigil_streams_store_fallbacks",
                          "Batches the database refused for their content, then written row by row")
DEAD_LETTERS = Counter("vigil_streams_dead_letters",
                       "Dead letters the stream worker itself recorded (seq_reused, store_refused, bad_record)",
                       ["reason"])
UNSTORABLE = Counter("vigil_streams_unstorable", "Rows refused even as a store_refused dead letter: logged, dropped")
ALERT_CHANGES = Counter("vigil_streams_alert_changes", "Alert events emitted", ["type", "change"])
INCIDENTS = Counter("vigil_streams_incidents", "Incidents opened", ["kind"])
READINGS_TOO_LATE = Counter("vigil_streams_readings_too_late",
                            "Readings older than the lateness allowance and beyond the straggler windows "
                            "(or their read failed): stored, not judged")
READINGS_JUDGED_LATE = Counter("vigil_streams_readings_judged_late",
                               "Readings older than the lateness allowance, judged against stored readings")
STORED_READ_SECONDS = Histogram("vigil_streams_stored_read_seconds",
                                "Time to read back the stored readings of one batch's straggler windows")
STORED_READ_ERRORS = Counter("vigil_streams_stored_read_errors",
                             "Batches whose straggler windows could not be read back (stragglers not judged)")
DETECT_ERRORS = Counter("vigil_streams_detect_errors", "Device batches whose judgement raised an error")
COMMIT_HOLES = Counter("vigil_streams_commit_holes",
                       "Checks that found a partition's next offset unacknowledged behind later ones")
STATE_WRITES = Counter("vigil_streams_state_writes",
                       "Device states written to the table's changelog (at most one per device per commit)")
STATE_BYTES = Histogram("vigil_streams_state_bytes", "Size of one device state written to the changelog",
                        buckets=(256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, float("inf")))
DEVICES_MOVED = Counter("vigil_streams_devices_moved",
                        "Device batches not judged because a rebalance gave the device's partition to another "
                        "worker (which reads its records again)")
LIVE_STATES = Gauge("vigil_streams_live_states",
                    "Device states kept in memory as objects (the others are bytes in the table)")
RECOVERY_REMAINING = Gauge("vigil_streams_recovery_remaining",
                           "Changelog records the table recovery still has to read (0 when not recovering)")
