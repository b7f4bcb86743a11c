"""What is sent for one attempt of a submission, composed in one place.

The request the scheduler's thread built (:mod:`~airflow_batch_executor.requests.factory`) is only a
draft: just before SubmitJob, on a submit thread, it is placed on its queue and definition (a derived
definition registered if need be), its workload gets a freshly signed token, and the job's command
carries that workload (command mode) or its object is written (S3 mode). The submitter decides when;
this module decides what.

Two rules of exactly-once live here. A retry after a lost answer first looks for the job that
answer may have made (SubmitJob is not idempotent): a plain job by its name, an array child by its
try's array name and the array's manifest. And a request that definitely did not become a job has
its workload object removed, while one whose answer was lost keeps it: the job that may exist needs it.

A group of mapped siblings (:mod:`~airflow_batch_executor.submit.coalescing`) goes as one array job:
each member is placed as it would be alone, those placed alike are sent as one array request
(:mod:`~airflow_batch_executor.requests.array_request`) after its manifest is written, and the rest
go alone. No member's workload is written before the array is sent: each child gets its own when it
starts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from airflow_batch_executor.aws.errors import ApiErrorKind, classify_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.job_contract import MIN_ARRAY_SIZE
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.records import Submission
from airflow_batch_executor.recovery.lookup import find_array_child, find_job_by_name
from airflow_batch_executor.recovery.reclaims import ReclaimHistory
from airflow_batch_executor.requests import task_specs
from airflow_batch_executor.requests.array_request import ArrayRequest, array_request, shared_part
from airflow_batch_executor.requests.factory import RequestFactory
from airflow_batch_executor.workloads.handoff import WorkloadHandoff

log = logging.getLogger(__name__)


class Dispatch:
    """Places, hands over and sends one attempt of a submission (called from submit threads)."""

    def __init__(
        self,
        gateway: BatchGateway,
        factory: RequestFactory,
        handoff: WorkloadHandoff,
        metrics: Metrics = GLOBAL,
    ) -> None:
        self._gateway = gateway
        self._factory = factory
        self._handoff = handoff
        self._metrics = metrics
        self._history = ReclaimHistory(gateway, factory.ladder, factory.options.job_name)

    def find_sent(self, submission: Submission) -> str | None:
        """The live job an earlier attempt whose answer was lost made, if Batch lists it (in any
        queue of the task's ``queue_fallbacks`` ladder: the attempt may have gone to a fallback).

        A mapped instance's lost attempt may have been an array's: its child is looked for too.
        """
        queues = self._factory.ladder.chain(submission.request["jobQueue"])
        job = find_job_by_name(
            self._gateway, queues, submission.job_name, live_only=True, submission=submission.submission_id
        )
        if job is not None:
            return job["jobId"]
        spec = submission.spec
        if spec is None or spec.identity.map_index < 0 or submission.workload is None:
            return None
        return find_array_child(
            self._gateway,
            queues,
            spec.identity,
            prefix=self._factory.options.job_name,
            submission=submission.submission_id,
        )

    def prepare_array(self, group: list[Submission]) -> tuple[ArrayRequest | None, list[Submission]]:
        """The array request for the members of ``group`` placed alike with its first, and the
        members to send alone: those placed elsewhere (the ``queue_fallbacks`` ladder decides per
        instance) or whose placement failed (their own attempt reports why). None when fewer than
        two are left, which all go alone then."""
        placed: list[tuple[dict[str, Any], Submission]] = []
        alone: list[Submission] = []
        for member in group:
            try:
                request = self._placed(member)
            except TaskConfigError:
                alone.append(member)
                continue
            if member.fallback is not None:
                alone.append(member)
            else:
                placed.append((request, member))
        parts = [shared_part(request) for request, _ in placed]
        alike = [part == parts[0] for part in parts]
        alone += [member for (_, member), same in zip(placed, alike, strict=True) if not same]
        placed = [pair for pair, same in zip(placed, alike, strict=True) if same]
        if len(placed) < MIN_ARRAY_SIZE:
            return None, group
        members = [(request, member.spec.identity) for request, member in placed if member.spec is not None]
        return array_request(members, self._factory.options.job_name), alone

    def send_array(self, array: ArrayRequest) -> str:
        """The manifest (written only where none is), then one SubmitJob: the array's job id.

        The manifest of an array that definitely did not become a job is removed; after a lost
        answer it stays, for the look-up that finds the children by it.
        """
        self._handoff.write_once(array.manifest_uri, array.manifest.to_json())
        started = time.monotonic()
        try:
            job_id = self._gateway.submit_job(array.request)
        except Exception as error:
            if classify_api_error(error) is not ApiErrorKind.AMBIGUOUS:
                self._handoff.remove_uri(array.manifest_uri)
            raise
        self._metrics.timing("submit.latency", (time.monotonic() - started) * 1000)
        return job_id

    def prepare(self, submission: Submission) -> dict[str, Any]:
        """The request to send: placed, with a fresh token, and its workload object written (S3).

        Raises :class:`~airflow_batch_executor.errors.TaskConfigError` for a request that cannot run,
        and the hand-off's ``WriteFailed``/``WorkloadConsumed`` when the object cannot be written.
        """
        request = self._placed(submission)
        original = submission.spec.workload if submission.spec is not None else None
        fresh = self._handoff.sign(original)
        if submission.workload is None:
            if fresh is None:
                return request
            command = task_specs.workload_command(fresh)
            return {**request, "containerOverrides": {**request["containerOverrides"], "command": command}}
        workload = fresh if fresh is not None else original
        if workload is None:
            raise ValueError(f"no workload to write to {submission.workload.uri}")
        self._handoff.write(submission, workload, signed=fresh is not None)
        return request

    def withdraw(self, submission: Submission) -> None:
        """A prepared request will not be sent (revoked meanwhile): remove its workload object."""
        self._handoff.discard(submission)

    def send(self, submission: Submission, request: dict[str, Any]) -> str:
        """SubmitJob once, or twice when Batch refuses a derived job definition that was deregistered
        (``prune-definitions``) since the registry last looked: it is then registered anew.

        The workload object of a request that definitely did not become a job is removed.
        """
        started = time.monotonic()
        try:
            try:
                job_id = self._gateway.submit_job(request)
            except ClientError as error:
                if not self._factory.definition_refused(request, error):
                    raise
                log.info(
                    "%s: job definition %s is no longer ACTIVE; registering it again",
                    submission.key,
                    request["jobDefinition"],
                )
                request = {**self._placed(submission), "containerOverrides": request["containerOverrides"]}
                job_id = self._gateway.submit_job(request)
        except Exception as error:
            if classify_api_error(error) is not ApiErrorKind.AMBIGUOUS:
                self._handoff.discard(submission)
            raise
        self._metrics.timing("submit.latency", (time.monotonic() - started) * 1000)
        return job_id

    def _placed(self, submission: Submission) -> dict[str, Any]:
        if submission.spec is None:
            return submission.request
        return self._factory.place(self._laddered(submission), submission.spec)

    def _laddered(self, submission: Submission) -> dict[str, Any]:
        """The request on the queue the ``queue_fallbacks`` ladder chooses, from the reclaims of the
        task instance's earlier tries (looked up by name) and of this try (counted in memory)."""
        assert submission.spec is not None
        request = submission.request
        choice, _ = self._history.queue_for(
            submission.spec.identity, request["jobQueue"], submission.reclaims
        )
        submission.fallback = choice if choice.reason is not None else None
        return request if submission.fallback is None else {**request, "jobQueue": choice.queue}
