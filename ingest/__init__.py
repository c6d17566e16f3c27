"""MQTT ingest: devices' messages in, validated records onto Kafka, refusals to the dead letters."""
