"""The Amazon ECS task of each container attempt, and the task metadata endpoint (v4) of its container.

AWS Batch runs every container attempt of a job as an ECS task: "Each container attempt receives a task
ARN when they reach the STARTING status" (``container.taskArn`` and ``attempts[].container.taskArn`` in
DescribeJobs), and ECS gives the container ``ECS_CONTAINER_METADATA_URI_V4``, where ``GET <uri>/task``
answers the task's metadata and ``GET <uri>`` the container's. A job can thus learn its own task ARN, and
prove who it is by it, as on AWS.

Here the endpoint is a route of the local Batch's own server (127.0.0.1 only):
``/_local_batch/ecs-metadata/<metadata id>[/task]``. The metadata id is a random token per attempt, not the
job id nor the task id, so one job cannot read (or pass itself off as) another's task by guessing the URI.
It answers from the attempt's STARTING until the attempt ends; any other id is answered 404.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

METADATA_ROUTE = "ecs-metadata"
"""The route of the metadata endpoint under the control prefix (``/_local_batch/``)."""
DEFAULT_CLUSTER = "local-batch"
"""The cluster of a job whose compute environment has no ECS cluster in moto (an unmanaged one)."""
CONTAINER_NAME = "default"
"""Batch's name for a job's container, the ``default`` of its log streams (``<prefix>/default/<id>``)."""


@dataclass(frozen=True)
class EcsTask:
    """The ECS task of one container attempt, and the unguessable id of its metadata endpoint."""

    arn: str
    cluster_arn: str
    family: str
    revision: int
    image: str
    docker_id: str
    metadata_id: str

    def container_metadata(self) -> dict[str, Any]:
        """``GET ${ECS_CONTAINER_METADATA_URI_V4}``: the container's own metadata, as ECS answers it."""
        return {
            "DockerId": self.docker_id,
            "Name": CONTAINER_NAME,
            "Image": self.image,
            "Labels": {
                "com.amazonaws.ecs.cluster": self.cluster_arn,
                "com.amazonaws.ecs.container-name": CONTAINER_NAME,
                "com.amazonaws.ecs.task-arn": self.arn,
                "com.amazonaws.ecs.task-definition-family": self.family,
                "com.amazonaws.ecs.task-definition-version": str(self.revision),
            },
        }

    def task_metadata(self) -> dict[str, Any]:
        """``GET ${ECS_CONTAINER_METADATA_URI_V4}/task``: the task's metadata with its one container."""
        return {
            "Cluster": self.cluster_arn,
            "TaskARN": self.arn,
            "Family": self.family,
            "Revision": str(self.revision),
            "Containers": [self.container_metadata()],
        }


def new_task(region: str, account: str, cluster: str, family: str, revision: int, image: str) -> EcsTask:
    """A task of its own for one attempt: a random 32-hex task id, as ECS's, and a random metadata id."""
    prefix, task_id = f"arn:aws:ecs:{region}:{account}", uuid.uuid4().hex
    return EcsTask(
        arn=f"{prefix}:task/{cluster}/{task_id}",
        cluster_arn=f"{prefix}:cluster/{cluster}",
        family=family,
        revision=revision,
        image=image,
        docker_id=f"{task_id}-{secrets.randbelow(10**10):010d}",  # a Fargate container's, per ECS's docs
        metadata_id=secrets.token_hex(16),
    )


def metadata_uri(endpoint_url: str, task: EcsTask) -> str:
    """The ``ECS_CONTAINER_METADATA_URI_V4`` of the task's container, on the local Batch's own server."""
    return f"{endpoint_url}/_local_batch/{METADATA_ROUTE}/{task.metadata_id}"


class EcsTasks:
    """The tasks of the attempts under way, by metadata id: what the metadata endpoint answers from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, EcsTask] = {}

    def add(self, task: EcsTask) -> None:
        with self._lock:
            self._tasks[task.metadata_id] = task

    def remove(self, task: EcsTask) -> None:
        with self._lock:
            self._tasks.pop(task.metadata_id, None)

    def metadata(self, path: str) -> dict[str, Any] | None:
        """The answer to ``GET <uri>`` (``path`` ``<metadata id>``) or ``GET <uri>/task``
        (``<metadata id>/task``); None for an unknown id or another path."""
        metadata_id, _, rest = path.partition("/")
        with self._lock:
            task = self._tasks.get(metadata_id)
        if task is None or rest not in ("", "task"):
            return None
        return task.task_metadata() if rest == "task" else task.container_metadata()
