"""The job contract's rules for array children: their command, their task id, where their workload goes."""

from __future__ import annotations

import pytest

from airflow_batch_executor.job_contract import (
    delivered_key,
    delivered_marker_key,
    delivery_command,
    is_delivery_directory,
    object_uri,
    task_id,
)

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/batch-cluster/0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_an_array_command_names_a_directory_which_object_uri_reads_back():
    command = delivery_command("s3://bucket/prefix/dag-task.r1/")
    assert object_uri(command) == "s3://bucket/prefix/dag-task.r1/"
    assert is_delivery_directory(object_uri(command))
    assert not is_delivery_directory("s3://bucket/prefix/dag-task.r1.json")
    with pytest.raises(ValueError, match="ends with '/'"):
        delivery_command("s3://bucket/prefix/dag-task.r1")


def test_a_childs_workload_key_holds_its_index_and_its_task_id_and_its_marker_only_the_index():
    assert task_id(TASK_ARN) == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert delivered_key("prefix/a.r1/", 7, TASK_ARN) == "prefix/a.r1/7.0f1e2d3c4b5a69788796a5b4c3d2e1f0.json"
    assert delivered_marker_key("prefix/a.r1/", 7) == "prefix/a.r1/7.delivered"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "arn:aws:ecs:eu-west-1:123456789012:task",
        "arn:aws:ecs:eu-west-1:123456789012:task/cluster/../../other",
        "arn:aws:ecs:eu-west-1:123456789012:task/cluster/",
        "arn:aws:ecs:eu-west-1:123456789012:task/cluster/id.json",
    ],
)
def test_anything_but_a_task_arn_gives_no_task_id(text):
    with pytest.raises(ValueError, match="is not an ECS task ARN"):
        task_id(text)
