"""The escalation ladder on APScheduler: one date job per pending step, kept in line with `alert_steps`.

`alert_steps` is the truth; the job store is the alarm clock. A thread listens on `vigil_ladder`
(a step planned, moved, stopped) and reconciles at once, and every `RECONCILE_S` regardless: a
pending step without a job gets one, a job whose step is no longer pending goes. That also covers
what the job store cannot: a job removed as it started (APScheduler drops a date job when it hands
it to a thread) whose run died with the process is planned again by the next leader, and runs at
once because it is overdue (`misfire_grace_time=None`: a late step still runs, never skipped).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime

import psycopg
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler

from alerts.ladder_store import OutreachConfig, pending_steps, run_followups, run_step, settle_held
from vigil.channels import LADDER_CHANNEL
from vigil.settings import Settings, get_settings
from vigil.storage.schema import describe

log = logging.getLogger(__name__)

RECONCILE_S = 5.0
STEP_JOBSTORE = "default"
_WAKE_S = 1.0  # how soon a stop request is noticed
_RETRY_S = 2.0
# A job for a step whose time the store holds within this of the step's is the step's job (the store
# keeps times as float seconds).
_SAME_TIME_S = 0.001


def step_job_id(alert_id: str, step: int) -> str:
    return f"step:{alert_id}:{step}"


def run_step_job(alert_id: str, step: int) -> None:
    """APScheduler's job for one step; stored by reference, so a module-level function with plain arguments."""
    settings = get_settings()
    try:
        with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=5) as conn:
            outcome = run_step(conn, alert_id, step, datetime.now(UTC), outreach_config(settings))
    except psycopg.Error as e:
        # The step is still pending: the next reconcile plans it again, and it runs at once.
        log.warning("step %d of alert %s failed, retried within %.0f s: %s", step, alert_id, RECONCILE_S, describe(e))
        return
    log.info("step %d of alert %s: %s", step, alert_id, outcome)


def outreach_config(settings: Settings) -> OutreachConfig:
    return OutreachConfig(public_url=settings.public_url, group_interval_s=settings.group_interval_s,
                          repeat_s=settings.repeat_s)


class LadderPlanner:
    """The thread that keeps one job per pending step, and decides the follow-ups of resolved alerts."""

    def __init__(self, database_url: str, scheduler: BaseScheduler, *, tip_delay_s: int) -> None:
        self._database_url = database_url
        self._tip_delay_s = tip_delay_s
        self._scheduler = scheduler
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="ladder-planner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(RECONCILE_S + _WAKE_S)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._database_url, autocommit=True, connect_timeout=5) as listen, \
                        psycopg.connect(self._database_url, autocommit=True, connect_timeout=5) as work:
                    listen.execute(f"LISTEN {LADDER_CHANNEL}")
                    log.info("ladder planner listening on %s", LADDER_CHANNEL)
                    self._loop(listen, work)
            except psycopg.Error as e:
                log.warning("ladder planner lost the database (%s); again in %.0f s", describe(e), _RETRY_S)
                self._stopping.wait(_RETRY_S)
            except Exception:
                # A planner that dies quietly stops every ladder: log loudly and go on.
                log.exception("ladder planner failed; again in %.0f s", _RETRY_S)
                self._stopping.wait(_RETRY_S)

    def _loop(self, listen: psycopg.Connection, work: psycopg.Connection) -> None:
        last = 0.0
        while not self._stopping.is_set():
            notified = any(True for _ in listen.notifies(timeout=_WAKE_S, stop_after=1))
            if notified or time.monotonic() - last >= RECONCILE_S:
                self.reconcile(work)
                if not notified:
                    # The slower chores ride on the periodic round, not on every notification.
                    settle_held(work)
                    run_followups(work, datetime.now(UTC), tip_delay_s=self._tip_delay_s)
                last = time.monotonic()

    def reconcile(self, conn: psycopg.Connection) -> None:
        """One job per pending step at its due time; no job for anything else."""
        # Soonest first: with many steps to plan at once (a burst of alerts, a new leader), the ones due
        # now are in the job store first.
        wanted = {step_job_id(alert_id, step): (alert_id, step, due_at) for alert_id, step, due_at in
                  sorted(pending_steps(conn), key=lambda pending: pending[2])}
        jobs = {job.id: job for job in self._scheduler.get_jobs(jobstore=STEP_JOBSTORE) if job.id.startswith("step:")}
        for job_id, (alert_id, step, due_at) in wanted.items():
            job = jobs.get(job_id)
            if job is not None and job.next_run_time is not None \
                    and abs((job.next_run_time - due_at).total_seconds()) < _SAME_TIME_S:
                continue
            # A round that meets a step while its job runs (APScheduler removed that job as it started)
            # plans it again; the second run waits for the first's row lock and finds the step done,
            # so it may overlap the first instead of being refused with a warning.
            self._scheduler.add_job(run_step_job, "date", run_date=due_at, args=[alert_id, step], id=job_id,
                                    jobstore=STEP_JOBSTORE, replace_existing=True, misfire_grace_time=None,
                                    coalesce=True, max_instances=2)
        for job_id in jobs.keys() - wanted.keys():
            with contextlib.suppress(JobLookupError):  # it ran meanwhile
                self._scheduler.remove_job(job_id, jobstore=STEP_JOBSTORE)
