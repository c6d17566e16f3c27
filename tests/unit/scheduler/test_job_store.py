"""The scheduler's job store address and step job ids: what APScheduler keeps in PostgreSQL."""

from __future__ import annotations

import pickle

import pytest

from scheduler.ladder_jobs import run_step_job, step_job_id
from scheduler.service import job_store_url


@pytest.mark.parametrize(("database_url", "expected"), [
    ("postgresql://postgres@127.0.0.1:5432/vigil", "postgresql+psycopg://postgres@127.0.0.1:5432/vigil"),
    ("postgres://vigil:s3cret@db:5432/vigil", "postgresql+psycopg://vigil:s3cret@db:5432/vigil"),
    ("postgresql://postgres@127.0.0.1/vigil?sslmode=require",
     "postgresql+psycopg://postgres@127.0.0.1/vigil?sslmode=require"),
])
def test_the_job_store_uses_the_same_database_through_psycopg_3(database_url: str, expected: str) -> None:
    assert job_store_url(database_url) == expected


def test_a_step_job_is_named_after_its_alert_and_step() -> None:
    assert step_job_id("5d1c3a0e-0b6f-4a55-9d0c-76a1e1a7c0de", 2) == "step:5d1c3a0e-0b6f-4a55-9d0c-76a1e1a7c0de:2"


def test_the_step_job_is_stored_by_reference() -> None:
    # APScheduler pickles a job's function as "module:name"; a lambda or a bound method could not be.
    assert f"{run_step_job.__module__}:{run_step_job.__qualname__}" == "scheduler.ladder_jobs:run_step_job"
    assert pickle.loads(pickle.dumps(run_step_job)) is run_step_job
