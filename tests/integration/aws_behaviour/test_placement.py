"""Requests checked against where they will run, before SubmitJob: sizes and fair-share queues."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from airflow_batch_executor import BatchJobOverrides
from airflow_batch_executor.requests import task_specs as task_specs_module

from ..helpers import final_states, finished, pump, python_command, queue, workload


@pytest.fixture(autouse=True)
def quick_jobs(monkeypatch):
    monkeypatch.setattr(
        task_specs_module,
        "workload_command",
        lambda w: python_command("import os; print(os.environ.get('X'))"),
    )


def test_invalid_fargate_size_fails_before_submit_with_the_nearest_sizes(make_executor, batch_env):
    executor = make_executor()
    item = workload("sized", run_id="bad-size", executor_config=BatchJobOverrides(vcpu=1, memory_mib=1024))
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    [(_, state, info)] = [e for e in events if e[0] == item.ti.key]
    assert state == "failed"
    assert "vCPU 1 with 1024 MiB is not a valid Fargate size" in info and "nearest: 2048 MiB" in info
    assert batch_env.submitted_requests() == []


def test_gpu_on_fargate_fails_before_submit(make_executor, batch_env):
    executor = make_executor()
    item = workload("gpu", run_id="gpu", executor_config=BatchJobOverrides(vcpu=1, memory_mib=2048, gpu=1))
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert "GPUs are not supported on Fargate" in events[0][2]
    assert batch_env.submitted_requests() == []


def test_typed_overrides_reach_the_job(make_executor, batch_env):
    executor = make_executor()
    overrides = BatchJobOverrides(
        vcpu=1, memory_mib=2048, timeout=timedelta(minutes=5), environment={"X": "from-overrides"}
    )
    item = workload("sized", run_id="good-size", executor_config=overrides)
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    [request] = batch_env.submitted_requests()
    assert (
        request["containerOverrides"]["resourceRequirements"]
        == overrides["containerOverrides"]["resourceRequirements"]
    )
    assert request["timeout"] == {"attemptDurationSeconds": 300}
    assert {"name": "X", "value": "from-overrides"} in request["containerOverrides"]["environment"]


@pytest.fixture
def fair_share_queue(batch_env):
    client = batch_env.client("batch")
    name = f"fair-{uuid.uuid4().hex[:6]}"
    policy = client.create_scheduling_policy(
        name=name,
        fairsharePolicy={
            "shareDecaySeconds": 60,
            "shareDistribution": [{"shareIdentifier": "analytics", "weightFactor": 1}],
        },
    )["arn"]
    ce = client.describe_compute_environments()["computeEnvironments"][0]["computeEnvironmentArn"]
    client.create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        schedulingPolicyArn=policy,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    return name


def test_fair_share_queue_gets_share_identifier_and_priority(
    make_executor, batch_env, fair_share_queue, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__SHARE_IDENTIFIER", "analytics")
    executor = make_executor()
    item = workload("fair", run_id="fair", queue=fair_share_queue, priority_weight=37)
    queue(executor, item)
    pump(executor, lambda ev: bool(ev))
    [request] = batch_env.submitted_requests()
    assert request["jobQueue"] == fair_share_queue
    assert request["shareIdentifier"] == "analytics" and request["schedulingPriorityOverride"] == 37


def test_fair_share_queue_without_share_identifier_fails_the_task(make_executor, batch_env, fair_share_queue):
    executor = make_executor()
    item = workload("fair", run_id="no-share", queue=fair_share_queue)
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert "fair-share scheduling policy" in events[0][2] and "share_identifier" in events[0][2]
    assert batch_env.submitted_requests() == []


def test_share_identifier_is_not_sent_to_other_queues(make_executor, batch_env):
    executor = make_executor()
    item = workload(
        "plain", run_id="plain", executor_config={"shareIdentifier": "x", "schedulingPriorityOverride": 5}
    )
    queue(executor, item)
    pump(executor, finished(item.ti.key))
    [request] = batch_env.submitted_requests()
    assert "shareIdentifier" not in request and "schedulingPriorityOverride" not in request
