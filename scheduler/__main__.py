"""`python -m scheduler`: Vigil's scheduler, run by `vigil run`; the leader of its peers runs the jobs.

Start-up waits, as a standby, until the process holds the leader lock (`scheduler.leader`), retrying
every 2 s; then the leader runs everything in `scheduler.service` until SIGTERM or SIGINT.

A leader that loses its lock's session exits at once with status 1 instead of stepping back to
standby: from that moment another process may be leader, and what this one still has in flight (a
step's transaction, a send) cannot be called back from outside its threads. Ending the process ends
all of it together; `vigil run` (or the container runtime) restarts it, and it comes back as a
standby with nothing left over.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from prometheus_client import start_http_server

from alerts.metrics import SCHEDULER_LEADER
from scheduler.jobs import mark_alive
from scheduler.leader import CHECK_S, RETRY_S, LeaderLock
from scheduler.service import LeaderJobs
from vigil.logs import configure_logging
from vigil.settings import ConfigError, get_settings

log = logging.getLogger("scheduler")


def main() -> None:
    try:
        settings = get_settings()
    except ConfigError as e:
        sys.exit(f"vigil scheduler: {e}")
    configure_logging(settings.log_level)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    if settings.scheduler_metrics_port:
        try:
            start_http_server(settings.scheduler_metrics_port, addr="127.0.0.1")
        except OSError as e:
            # A second scheduler on one host (a standby) must still be able to take over.
            log.warning("no metrics: port %d is not free (%s)", settings.scheduler_metrics_port, e)
    lock = LeaderLock(settings.database_url)
    log.info("scheduler standing by for the leader lock")
    while not lock.try_acquire():
        if lock.reachable:
            # A standby that can reach the database is healthy: it is ready to take over.
            mark_alive(settings.state_dir)
        if stopping.wait(RETRY_S):
            lock.release()
            return
    log.info("scheduler is the leader (pid %d): running the jobs", os.getpid())
    jobs = LeaderJobs(settings)
    jobs.start()
    SCHEDULER_LEADER.set(1)
    try:
        while not stopping.wait(CHECK_S):
            if not lock.held():
                log.critical("lost the leader lock's session; exiting so that nothing here runs beside a new leader")
                logging.shutdown()
                os._exit(1)
    finally:
        jobs.stop()
        lock.release()
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
