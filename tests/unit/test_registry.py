"""The registry of derived job definitions: registered once however many ask, an existing revision
with the same content reused, a deregistered one registered anew, a refused registration explained."""

from __future__ import annotations

import threading

import pytest

from airflow_batch_executor.definitions.derive import HASH_TAG, REGISTERED_TAG, derive
from airflow_batch_executor.definitions.registry import DefinitionRegistry
from airflow_batch_executor.errors import TaskConfigError

from .helpers import FARGATE_BASE, ROLE, JobDefinitionsGateway


def test_concurrent_requests_for_one_new_definition_register_it_once():
    gateway = JobDefinitionsGateway()
    registry = DefinitionRegistry(gateway, clock=lambda: 1_700_000_000)
    derived = derive(FARGATE_BASE, {"image": "repo/new:1"})
    arns: list[str] = []
    threads = [threading.Thread(target=lambda: arns.append(registry.ensure(derived))) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(gateway.registered) == 1
    assert set(arns) == {f"arn:aws:batch:us-east-1:123456789012:job-definition/{derived.name}:1"}
    assert gateway.registered[0]["tags"][REGISTERED_TAG] == "1700000000"
    assert gateway.lookups == 1


def test_an_existing_revision_with_the_content_is_reused_and_other_content_is_not():
    gateway = JobDefinitionsGateway()
    derived = derive(FARGATE_BASE, {"image": "repo/new:1"})
    first = DefinitionRegistry(gateway).ensure(derived)
    restarted = DefinitionRegistry(gateway)
    assert restarted.ensure(derived) == first
    assert len(gateway.registered) == 1
    gateway.definitions[0]["tags"] = {**gateway.definitions[0]["tags"], HASH_TAG: "someone-else"}
    assert DefinitionRegistry(gateway).ensure(derived).endswith(":2"), "a name clash with other content"


def test_a_remembered_definition_is_checked_again_and_registered_anew_once_deregistered():
    gateway = JobDefinitionsGateway()
    derived = derive(FARGATE_BASE, {"image": "repo/new:1"})
    remembering = DefinitionRegistry(gateway)
    rechecking = DefinitionRegistry(gateway, ttl=0)
    first = rechecking.ensure(derived)
    assert remembering.ensure(derived) == first
    gateway.definitions[0]["status"] = "INACTIVE"
    assert remembering.ensure(derived) == first, "within the ttl no call is made"
    assert rechecking.ensure(derived).endswith(":2")
    assert len(gateway.registered) == 2


def test_every_submission_refused_a_pruned_definition_gets_it_registered_anew():
    """Two submissions raced on a definition pruned under the registry: the second one's refused ARN is
    already forgotten and replaced, and placing its request again must still help."""
    gateway = JobDefinitionsGateway()
    derived = derive(FARGATE_BASE, {"image": "repo/new:1"})
    registry = DefinitionRegistry(gateway)
    first = registry.ensure(derived)
    gateway.definitions[0]["status"] = "INACTIVE"
    assert registry.forget(first)
    second = registry.ensure(derived)
    assert second.endswith(":2")
    assert registry.forget(first), "the second refused submission places its request again too"
    assert registry.ensure(derived) == second
    assert not registry.forget("arn:aws:batch:us-east-1:123456789012:job-definition/not-derived:1")


def test_a_refused_registration_fails_the_task_with_the_reason_and_a_throttled_one_is_retried():
    from botocore.exceptions import ClientError

    def failing(code: str, status: int):
        gateway = JobDefinitionsGateway()

        def refuse(request):
            error = {
                "Error": {"Code": code, "Message": "not allowed"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }
            raise ClientError(error, "RegisterJobDefinition")

        gateway.register_job_definition = refuse
        return DefinitionRegistry(gateway)

    derived = derive(FARGATE_BASE, {"image": "repo/new:1", "jobRoleArn": ROLE})
    with pytest.raises(TaskConfigError) as raised:
        failing("AccessDeniedException", 403).ensure(derived)
    assert f"AWS Batch refused to register the job definition {derived.name}" in str(raised.value)
    assert "AccessDeniedException: not allowed" in str(raised.value) and "iam:PassRole" in str(raised.value)
    with pytest.raises(ClientError):
        failing("TooManyRequestsException", 429).ensure(derived)
