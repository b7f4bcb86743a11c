"""Which waiting jobs the sweep stops: untracked ones of its own scope whose workload object is gone."""

from __future__ import annotations

import time

from botocore.exceptions import ClientError

from airflow_batch_executor.options import S3Location
from airflow_batch_executor.recovery.orphan_sweep import ORPHAN_REASON, OrphanSweep

SCOPE = "s3://workloads/airflow/global"


class Batch:
    def __init__(self, jobs: dict[str, str | None], objects: set[str]) -> None:
        self.jobs = jobs  # job id -> its bootstrap's object URI (None: a command-mode job)
        self.objects = objects

    def list_jobs(self, queue, status=None, name_pattern=None):
        return [{"jobId": job_id} for job_id in self.jobs] if status == "RUNNABLE" else []

    def describe_jobs(self, job_ids):
        def command(uri):
            return (
                ["python", "-m", "airflow_batch_executor.in_job.bootstrap", uri]
                if uri
                else ["python", "-c", "1"]
            )

        return [
            {"jobId": job_id, "jobName": job_id, "container": {"command": command(self.jobs[job_id])}}
            for job_id in job_ids
        ]

    def head_object(self, bucket, key):
        if f"s3://{bucket}/{key}" not in self.objects:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")


def test_only_untracked_jobs_of_its_scope_whose_object_is_gone_are_stopped():
    batch = Batch(
        {
            "orphan": f"{SCOPE}/orphan.json",
            "tracked": f"{SCOPE}/tracked.json",
            "waiting": f"{SCOPE}/waiting.json",
            "other-team": "s3://workloads/airflow/teams/b/x.json",
            "command-mode": None,
        },
        objects={f"{SCOPE}/waiting.json"},
    )
    stopped: list[tuple[str, str]] = []
    sweep = OrphanSweep(
        batch, S3Location("workloads", "airflow/global"), lambda *job: stopped.append(job), interval=0
    )
    sweep.tick(lambda: {"tracked"}, ["q"])
    sweep._running.join(10)
    assert stopped == [("orphan", ORPHAN_REASON)]


def test_an_array_is_an_orphan_once_its_manifest_is_gone_never_for_lack_of_workload_objects():
    """An array's children get their workloads only at start: its waiting jobs name a directory."""
    batch = Batch(
        {"array": f"{SCOPE}/dag-task-try1-0a1b2c3d4e-m0-9.f00/", "orphan-array": f"{SCOPE}/x-m0-1.f01/"},
        objects={f"{SCOPE}/dag-task-try1-0a1b2c3d4e-m0-9.f00/manifest.json"},
    )
    stopped: list[tuple[str, str]] = []
    sweep = OrphanSweep(
        batch, S3Location("workloads", "airflow/global"), lambda *job: stopped.append(job), interval=0
    )
    sweep.tick(lambda: set(), ["q"])
    sweep._running.join(10)
    assert stopped == [("orphan-array", ORPHAN_REASON)]


def test_a_sweep_starts_at_most_once_per_interval():
    batch = Batch({"orphan": f"{SCOPE}/orphan.json"}, objects=set())
    stopped: list[tuple[str, str]] = []
    sweep = OrphanSweep(
        batch, S3Location("workloads", "airflow/global"), lambda *job: stopped.append(job), interval=3600
    )
    sweep._next = time.monotonic()
    sweep.tick(set, ["q"])
    sweep._running.join(10)
    sweep.tick(set, ["q"])
    assert not sweep._running.is_alive() and len(stopped) == 1
