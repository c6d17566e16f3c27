"""Vigil's shared package: telemetry models, settings, storage and the command line."""
