"""The scheduler service: periodic jobs (retention, device_offline) over the database and Kafka."""
