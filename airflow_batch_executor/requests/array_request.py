"""The one SubmitJob request that sends a group of mapped instances as an array job.

The members are the placed S3-mode requests of one task try's mapped instances that
:func:`~airflow_batch_executor.submit.coalescing.take_array` chose, in child order: child ``i`` runs
member ``i``. Batch runs every child from the array's one request, so it is the first member's
request with what is each member's own taken out (its name, its command naming its own workload
object, its map index and queueing tags) and what the array needs put in:

- ``arrayProperties.size``, the number of members;
- a name (:func:`~airflow_batch_executor.requests.naming.array_job_name`) that tells an operator the
  task, the try and the map range, and that a restarted scheduler finds by its prefix;
- the command :func:`~airflow_batch_executor.job_contract.delivery_command`, naming a delivery
  directory beside the members' own objects, where each child's workload is delivered at its start
  and where the manifest says which child runs which instance.

The directory is named after the array and the first member's queueing id, so a retry after a lost
answer names the same directory, and with it the manifest a job of the first attempt may already read.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.job_contract import (
    MAX_ARRAY_SIZE,
    MIN_ARRAY_SIZE,
    TAG_MAP_INDEX,
    TAG_SUBMISSION,
    delivery_command,
    request_object_uri,
)
from airflow_batch_executor.recovery.manifest import ArrayChild, ArrayManifest, manifest_key
from airflow_batch_executor.requests.naming import WorkloadIdentity, array_job_name

CHILD_TAGS = frozenset({TAG_MAP_INDEX, TAG_SUBMISSION})
"""Tags each member has of its own, which an array's one request cannot carry."""


@dataclass(frozen=True)
class ArrayRequest:
    request: dict[str, Any]
    """The array's SubmitJob request; it names no workload object and holds no token."""
    directory: str
    """``s3://bucket/key/``: where each child's workload is delivered, and the manifest kept."""
    manifest: ArrayManifest

    @property
    def manifest_uri(self) -> str:
        return manifest_key(self.directory)


def shared_part(request: Mapping[str, Any]) -> dict[str, Any]:
    """A member's request without what is its own: what every member of one array must agree on."""
    shared = copy.deepcopy(dict(request))
    shared.pop("jobName", None)
    shared.get("containerOverrides", {}).pop("command", None)
    shared["tags"] = {
        key: value for key, value in (shared.get("tags") or {}).items() if key not in CHILD_TAGS
    }
    return shared


def array_request(
    members: Sequence[tuple[Mapping[str, Any], WorkloadIdentity]], name_prefix: str | None = None
) -> ArrayRequest:
    """The array request for ``members`` (each a placed request and its instance's identity), in
    child order. ValueError when they cannot be one array: too few or too many, not all mapped
    instances of one try, not all in S3 mode, or placed differently (which the caller then sends
    alone: placement may differ per instance, as the ``queue_fallbacks`` ladder does)."""
    if not MIN_ARRAY_SIZE <= len(members) <= MAX_ARRAY_SIZE:
        raise ValueError(
            f"an array job has {MIN_ARRAY_SIZE} to {MAX_ARRAY_SIZE} children, not {len(members)}"
        )
    (first, identity), *_ = members
    if any(i.task_try != identity.task_try or i.map_index < 0 for _, i in members):
        raise ValueError("an array job's children are mapped instances of one task try")
    shared = shared_part(first)
    if any(shared_part(request) != shared for request, _ in members[1:]):
        raise ValueError("an array job's children must be placed alike (queue, definition, resources, tags)")
    uris = [request_object_uri(request) for request, _ in members]
    submissions = [(request.get("tags") or {}).get(TAG_SUBMISSION) for request, _ in members]
    if any(uri is None for uri in uris) or any(not isinstance(s, str) for s in submissions):
        raise ValueError("an array job's children get their workloads in S3, each of its own queueing")
    map_indexes = [i.map_index for _, i in members]
    name = array_job_name(identity, min(map_indexes), max(map_indexes), name_prefix)
    directory = f"{str(uris[0]).rsplit('/', 1)[0]}/{name}.{submissions[0]}/"
    shared["jobName"] = name
    shared["arrayProperties"] = {"size": len(members)}
    shared.setdefault("containerOverrides", {})["command"] = delivery_command(directory)
    manifest = ArrayManifest(
        identity.dag_id,
        identity.task_id,
        identity.run_id,
        identity.try_number,
        tuple(ArrayChild(index, str(submission)) for index, submission in zip(map_indexes, submissions)),
    )
    return ArrayRequest(shared, directory, manifest)
