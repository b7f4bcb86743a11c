"""Jobs that disappear from DescribeJobs and ListJobs once finished, as AWS forgets old jobs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from waiting import describe, wait_for_final, wait_for_status

from batch_devtools.local_batch import LocalBatch, LocalBatchControl

SLEEP_FOREVER = ["python", "-c", "import time; time.sleep(60)"]


def submit(lb: LocalBatch, batch: Any, name: str, command: list[str]) -> str:
    return batch.submit_job(
        jobName=name,
        jobQueue=lb.job_queue,
        jobDefinition=lb.job_definition,
        containerOverrides={"command": command},
    )["jobId"]


def listed(lb: LocalBatch, batch: Any, name: str, status: str) -> list[str]:
    answer = batch.list_jobs(jobQueue=lb.job_queue, jobStatus=status)["jobSummaryList"]
    by_name = batch.list_jobs(jobQueue=lb.job_queue, filters=[{"name": "JOB_NAME", "values": [name]}])
    return [s["jobId"] for s in answer if s["jobName"] == name] + [
        s["jobId"] for s in by_name["jobSummaryList"]
    ]


def test_a_vanishing_job_stays_visible_while_live_and_disappears_once_final(
    local_batch: LocalBatch, batch: Any
) -> None:
    name = f"vanish-{uuid.uuid4().hex[:8]}"
    local_batch.faults.vanish(pattern="vanish-*")
    job_id = submit(local_batch, batch, name, SLEEP_FOREVER)
    bystander = submit(local_batch, batch, f"stays-{uuid.uuid4().hex[:8]}", ["python", "-c", "print(1)"])

    running = wait_for_status(batch, job_id, ("RUNNING",))
    assert running["jobId"] == job_id and listed(local_batch, batch, name, "RUNNING") == [job_id, job_id]
    batch.terminate_job(jobId=job_id, reason="done with it")
    final = wait_for_final(local_batch, job_id)

    assert final["status"] == "FAILED"
    assert batch.describe_jobs(jobs=[job_id])["jobs"] == []
    assert listed(local_batch, batch, name, "FAILED") == []
    assert {"jobId": job_id, "vanished": True}.items() <= next(
        j for j in LocalBatchControl(local_batch.endpoint_url).jobs() if j["jobId"] == job_id
    ).items()
    assert wait_for_status(batch, bystander)["status"] == "SUCCEEDED"
    assert local_batch.faults.to_dict()["vanish"] == []


def test_a_finished_job_vanishes_on_request_and_a_live_one_does_not(
    local_batch: LocalBatch, batch: Any
) -> None:
    done = submit(local_batch, batch, f"old-{uuid.uuid4().hex[:8]}", ["python", "-c", "print(1)"])
    live = submit(local_batch, batch, f"live-{uuid.uuid4().hex[:8]}", SLEEP_FOREVER)
    wait_for_status(batch, done)
    wait_for_status(batch, live, ("RUNNING",))

    local_batch.vanish_job(done)
    with pytest.raises(ValueError, match="only a finished job can vanish"):
        local_batch.vanish_job(live)

    assert batch.describe_jobs(jobs=[done, live])["jobs"][0]["jobId"] == live
    batch.terminate_job(jobId=live, reason="cleanup")
    wait_for_status(batch, live)
    assert LocalBatchControl(local_batch.endpoint_url).vanish_jobs([live, "no-such-job"]) == {
        live: True,
        "no-such-job": False,
    }
    assert batch.describe_jobs(jobs=[live])["jobs"] == []


def test_held_jobs_vanish_once_final_too(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.settings.job_mode = "hold"
    local_batch.faults.vanish(pattern="held-vanish-*")
    job_id = submit(local_batch, batch, f"held-vanish-{uuid.uuid4().hex[:8]}", SLEEP_FOREVER)
    assert describe(batch, job_id)["jobId"] == job_id

    batch.terminate_job(jobId=job_id, reason="stop")

    assert wait_for_final(local_batch, job_id)["status"] == "FAILED"
    assert batch.describe_jobs(jobs=[job_id])["jobs"] == []
