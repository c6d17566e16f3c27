"""Alerting: the consumer that turns alert events into rows, their decoding, and the alert store.

The API service runs the consumer in its process (`api.service`) and reads alerts through the store.
"""
