"""What is sent for one attempt of a submission, composed in one place.

The request the scheduler's thread built (:mod:`~airflow_batch_executor.requests.factory`) is only a
draft: just before SubmitJob, on a submit thread, it is placed on its queue and definition (a derived
definition registered if need be), its workload gets a freshly signed token, and the job's command
carries that workload (command mode) or its object is written (S3 mode). The submitter decides when;
this module decides what.

Two rules of exactly-once live here. A retry after a lost answer first looks for the job that
answer may have made (SubmitJob is not idempotent). And a request that definitely did not become a
job has its workload object removed, while one whose answer was lost keeps it: the job that may
exist needs it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from airflow_batch_executor.aws.errors import ApiErrorKind, classify_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.records import Submission
from airflow_batch_executor.recovery.lookup import find_job_by_name
from airflow_batch_executor.recovery.reclaims import ReclaimHistory
from airflow_batch_executor.requests import task_specs
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
        queue of the task's ``queue_fallbacks`` ladder: the attempt may have gone to a fallback)."""
        job = find_job_by_name(
            self._gateway,
            self._factory.ladder.chain(submission.request["jobQueue"]),
            submission.job_name,
            live_only=True,
            submission=submission.submission_id,
        )
        return job["jobId"] if job is not None else None

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
