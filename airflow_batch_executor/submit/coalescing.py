"""Which waiting submissions may go to AWS Batch together, as one array job.

AWS Batch takes 50 SubmitJob calls per second per account and region, shared by every scheduler and
team there, and an array job of up to 10,000 children costs one of them. The mapped instances of one
task try are queued together and differ only in their map index, so a wide mapped task sent as one
array starts after one call instead of queueing behind the rate limit for minutes.

Only what is already waiting behind the rate limit is coalesced: nothing waits for siblings that may
yet come, so an idle executor adds no latency and a lone instance goes out as a plain job. Command
mode never coalesces: there the workload (its token included) is the command, which every child of an
array shares. A resubmission always goes alone, as a plain job: it concerns one instance, whose job a
lost answer may already have made, or which its own queue or Spot capacity failed.

Children may differ only in what an array gives each child of its own (its name, its command, which
names its workload object, and its map index and submission tags); everything else must be one
request for all of them, since Batch runs every child from the array's one request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from airflow_batch_executor.job_contract import MAX_ARRAY_SIZE, MIN_ARRAY_SIZE, request_object_uri
from airflow_batch_executor.records import Submission
from airflow_batch_executor.requests.array_request import shared_part


def array_try(submission: Submission) -> tuple[str, str, str, int] | None:
    """The try of a submission that may join an array; None for one that must go alone.

    Only a first attempt joins: a later one, one whose answer was lost, one sent to a fallback queue
    or one after a Spot reclaim concerns this instance alone, and is looked up or resubmitted by name
    as a plain job. Callbacks and connection tests are single jobs with no siblings, and an unmapped
    task instance (map index -1) has none either.
    """
    spec = submission.spec
    if (
        spec is None
        or spec.identity.is_callback
        or spec.identity.is_connection_test
        or spec.identity.map_index < 0
        or submission.attempt
        or submission.maybe_submitted
        or submission.look_up_only
        or submission.fallback is not None
        or submission.reclaims
        or request_object_uri(submission.request) is None
    ):
        return None
    return spec.identity.task_try


def _shared(submission: Submission) -> str:
    """What every child of an array must agree on, in a canonical form.

    Besides the request without its per-child parts (:func:`array_request.shared_part`), that is the
    spec's ``executor_config`` and ``priority_weight``: placing a request reads them (the task's own
    job definition, its scheduling priority) beyond what the request says.
    """
    assert submission.spec is not None
    shared = {
        "request": shared_part(submission.request),
        "executor_config": submission.spec.executor_config,
        "priority_weight": submission.spec.priority_weight,
    }
    return json.dumps(shared, sort_keys=True)


def take_array(
    first: Submission, waiting: Iterable[Submission], most: int = MAX_ARRAY_SIZE
) -> list[Submission]:
    """The submissions to send with ``first``, as one array: ``first`` first, then its siblings in the
    order they wait, at most ``most`` in all; ``[first]`` alone when fewer than an array's least would
    be in it. Only ``waiting`` is looked at, never what may come, so sending ``first`` waits for nobody.

    The try is compared before the canonical request, so a long queue of other tasks costs no JSON.
    """
    if not MIN_ARRAY_SIZE <= most <= MAX_ARRAY_SIZE:
        raise ValueError(f"an array job has {MIN_ARRAY_SIZE} to {MAX_ARRAY_SIZE} children, not {most}")
    task_try = array_try(first)
    if task_try is None:
        return [first]
    shared = _shared(first)
    group, taken = [first], {first}
    for other in waiting:
        if len(group) == most:
            break
        if other not in taken and array_try(other) == task_try and _shared(other) == shared:
            group.append(other)
            taken.add(other)
    return group if len(group) >= MIN_ARRAY_SIZE else [first]
