"""Waiting for a job in Redis to end (`submit --wait`, `status JOB --watch`); the exit code tells how it ended.

0    done
1    failed, or lost (its producer or runner stopped and the record expired)
124  still not ended after --wait-timeout (the job goes on)
130  cancelled (and Ctrl-C while waiting: the job goes on)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from streamer.distributed.jobs import CANCELLED, DONE, FAILED, JobStore, shown_state
from streamer.progress import say

OUTCOME = {DONE: 0, FAILED: 1, CANCELLED: 130}
TIMED_OUT = 124
POLL = 0.5  # seconds between looks at the job's record


def wait_for_job(
    jobs: JobStore,
    job: str,
    timeout: float | None = None,
    poll: float = POLL,
    report: Callable[[str], None] = say,
) -> int:
    """Polls the job's record until it is final; reports each change of state and the end in one line."""
    try:
        return _wait(jobs, job, timeout, poll, report)
    except KeyboardInterrupt:
        report(f"stopped waiting; job {job} goes on (`streamer status {job}`, `streamer cancel {job}`)")
        return 130


def _wait(jobs: JobStore, job: str, timeout: float | None, poll: float, report: Callable[[str], None]) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = None
    while True:
        record = jobs.get(job)
        if record is None:
            report(f"job {job}: its record is gone (expired, or its producer stopped); `streamer status` lists jobs")
            return 1
        state = shown_state(record)
        if state != seen:
            seen = state
            if state in OUTCOME:
                reason = f": {record['reason']}" if record.get("reason") else ""
                frames = record.get("done") or "0"
                report(f"job {job} {state} ({frames} frames){reason}")
                return OUTCOME[state]
            report(f"job {job} {state}")
        if deadline is not None and time.monotonic() >= deadline:
            report(f"job {job} still {state} after {timeout:g} s; it goes on (`streamer status {job}`)")
            return TIMED_OUT
        time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
