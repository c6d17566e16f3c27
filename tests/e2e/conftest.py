"""The whole pipeline, really started: stack up, then ingest, stream worker and API as processes."""

from __future__ import annotations

import pytest

from tests.e2e.support import Pipeline, reset_test_stack


@pytest.fixture(scope="session")
def pipeline():
    settings = reset_test_stack()
    running = Pipeline(settings)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        from stack import manager

        manager.down(settings)
