"""What the local Batch itself says is happening, read as the soak goes: its history, copied only
from where the last read stopped, indexed by job name (a try's name), plus which jobs wait for
capacity and which ``stuck_in_runnable`` faults are still unclaimed."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from batch_devtools.local_batch import LocalBatch

FINAL = ("SUCCEEDED", "FAILED")
STUCK_REFRESH_SECONDS = 0.1


class BatchView:
    def __init__(self, lb: LocalBatch) -> None:
        self.lb = lb
        self.entries: list[dict[str, Any]] = []
        self.jobs_named: dict[str, list[str]] = defaultdict(list)
        self.final: dict[str, str] = {}
        self._last_put: dict[str, float] = {}
        self._last_submit: dict[str, float] = {}
        self._stuck: set[str] = set()
        self.ever_stuck: set[str] = set()
        self._stuck_read = 0.0

    def read(self) -> list[dict[str, Any]]:
        """The entries recorded since the last read, indexed."""
        new = self.lb.history(since=len(self.entries))
        self.entries += new
        for entry in new:
            event, job_id = entry["event"], entry.get("jobId")
            if event == "submit":
                self.jobs_named[entry["jobName"]].append(job_id)
                self._last_submit[entry["jobName"]] = entry["at"]
            elif event == "object_put" and entry.get("accepted"):
                self._last_put[_job_name_of_key(entry["key"])] = entry["at"]
            elif event == "job_final":
                self.final[job_id] = entry["status"]
        return new

    def written_not_submitted(self, name: str, since: float) -> bool:
        """True while a workload object for this job name was written after ``since`` and no job of the
        name was submitted after it: the executor's SubmitJob is on its way."""
        put = self._last_put.get(name)
        return put is not None and put >= since and self._last_submit.get(name, 0.0) < put

    def stuck(self, fresh: bool = False) -> set[str]:
        """Jobs held in RUNNABLE by ``stuck_in_runnable`` now (read at most every 0.1 s, unless ``fresh``)."""
        now = time.monotonic()
        if fresh or now - self._stuck_read >= STUCK_REFRESH_SECONDS:
            self._stuck = set(self.lb.stuck_jobs())
            self.ever_stuck |= self._stuck
            self._stuck_read = now
        return self._stuck

    def live_jobs(self, name: str) -> list[str]:
        return [job_id for job_id in self.jobs_named.get(name, ()) if job_id not in self.final]

    def unclaimed_stuck_faults(self, name: str) -> int:
        """``stuck_in_runnable`` faults aimed at this job name that no job has claimed yet."""
        rules = self.lb.faults.to_dict()["stuck_in_runnable"]
        return sum(rule["remaining"] or 0 for rule in rules if rule["pattern"] == name)

    def cannot_start(self, name: str, current_job: str | None) -> bool:
        """True when no job of a try's current queueing can start: every job of its name is final or
        stuck, and any job still to come (a SubmitJob on the wire) would be stuck too, because a
        planned fault awaits it, or because ``current_job`` (the job the executor reported for this
        queueing) is there, stuck: the executor submits one job per queueing at a time."""
        stuck = self.stuck(fresh=True)  # a cached view could miss a release the soak made since
        live = self.live_jobs(name)
        if any(job_id not in stuck for job_id in live):
            return False
        if current_job is not None and current_job in stuck:
            return True
        return self.unclaimed_stuck_faults(name) > 0


def _job_name_of_key(key: str) -> str:
    """``<prefix>/<job name>.<nonce>.json`` → the job name."""
    return key.rsplit("/", 1)[-1].rsplit(".", 2)[0]
