"""Device simulators: a seeded core with no I/O, and a thin shell that provisions and publishes over MQTT."""
