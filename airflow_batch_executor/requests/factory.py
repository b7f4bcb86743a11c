"""How the SubmitJob request for a workload is built and checked, before anything is sent.

One :class:`RequestFactory` is made at start-up from the options; the executor, the submit threads,
adoption and ``airflow aws-batch-executor render`` all use it, so they agree on every job's request,
name and queue.

Precedence, lowest first: the executor's defaults, the ``[aws_batch_executor]`` options, the
``submit_job_kwargs`` JSON, the task's Airflow ``queue`` (when it is not the default queue), then the
task's ``executor_config``. Merging is a recursive dict update; lists are replaced, never concatenated,
so a task can state its whole ``resourceRequirements`` without inheriting stray entries.

A task's ``execution_timeout`` becomes ``timeout.attemptDurationSeconds`` (plus a start-up margin)
unless a timeout is configured explicitly, so Batch stops a job whose task process hangs.

The command, the job name and the identity tags are set after the merge: they are how the job runs
the right workload and how it is found again, so no configuration may change them.

``executor_config["jobDefinitionOverrides"]`` (fields only a job definition holds) is never merged into
the request; ``place`` swaps the job definition for the one derived from it (see ``job_definitions``).

What a task may ask for at all is :mod:`~airflow_batch_executor.rules.author_policy`'s to say: ``build``
applies every part of it that needs no AWS call, ``place`` the rest (the roles of a job definition the
task chose), before anything is registered or submitted. Every job is submitted with
``retryStrategy.attempts`` 1, so no job definition's retry strategy can run a try twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

from botocore.exceptions import ClientError
from botocore.model import Shape
from botocore.session import get_session
from botocore.validate import ParamValidator

from airflow_batch_executor.definitions.derive import (
    OVERRIDES_KEY,
    DerivedDefinition,
    definition_overrides,
    definition_problems,
    derive,
)
from airflow_batch_executor.definitions.registry import DefinitionRegistry, definition_not_active
from airflow_batch_executor.errors import OptionError, TaskConfigError
from airflow_batch_executor.job_contract import (
    MAX_SUBMIT_PAYLOAD_BYTES,
    MAX_TAGS_PER_JOB,
    MIN_ATTEMPT_DURATION_SECONDS,
    TAG_SUBMISSION,
)
from airflow_batch_executor.options import ExecutorOptions
from airflow_batch_executor.requests.merging import deep_merge
from airflow_batch_executor.requests.naming import identity_tags, job_name, team_tags
from airflow_batch_executor.requests.placement import PlacementCatalog, place
from airflow_batch_executor.requests.queue_ladder import QueueLadder
from airflow_batch_executor.requests.task_specs import JobSpec, task_instance_spec
from airflow_batch_executor.rules.author_policy import (
    chosen_definition_refusals,
    definition_refusals,
    definition_roles,
    environment_refusals,
    job_definition_refusals,
    operator_definitions,
    refusal_error,
    request_refusals,
)
from airflow_batch_executor.workloads.transport import job_command, submission_id

STARTUP_MARGIN_SECONDS = 120
EXECUTOR_CONTAINER_ENV = "AIRFLOW_IS_EXECUTOR_CONTAINER"
EXECUTION_API_ENV = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
ONE_ATTEMPT = {"retryStrategy": {"attempts": 1}}
_PLACEHOLDER_NAME = "placeholder"


@cache
def _submit_job_shape() -> Shape:
    return get_session().get_service_model("batch").operation_model("SubmitJob").input_shape


def request_problems(request: Mapping[str, Any]) -> list[str]:
    """Everything AWS would reject in this request, found before a call is made."""
    report = ParamValidator().validate(dict(request), _submit_job_shape())
    problems = [line.strip() for line in report.generate_report().splitlines()] if report.has_errors() else []
    seconds = (request.get("timeout") or {}).get("attemptDurationSeconds")
    if isinstance(seconds, int) and seconds < MIN_ATTEMPT_DURATION_SECONDS:
        problems.append(
            f"timeout.attemptDurationSeconds is {seconds}; AWS Batch requires at least "
            f"{MIN_ATTEMPT_DURATION_SECONDS} seconds"
        )
    tags = request.get("tags")
    if isinstance(tags, Mapping) and len(tags) > MAX_TAGS_PER_JOB:
        problems.append(f"{len(tags)} tags are set; AWS Batch allows at most {MAX_TAGS_PER_JOB} per job")
    return problems


def _command_of(config: Mapping[str, Any]) -> Any:
    overrides = config.get("containerOverrides")
    return overrides.get("command") if isinstance(overrides, Mapping) else None


def base_request(options: ExecutorOptions) -> dict[str, Any]:
    """Defaults < options < ``submit_job_kwargs``; checked once, at start-up."""
    kwargs = options.submit_job_kwargs
    if _command_of(kwargs):
        raise OptionError(
            "submit_job_kwargs",
            "sets containerOverrides.command; the executor sets the command of every job itself",
            "remove containerOverrides.command from submit_job_kwargs",
            options.team_name,
        )
    if refusals := request_refusals(kwargs, "submit_job_kwargs"):
        raise OptionError(
            "submit_job_kwargs",
            "asks Batch to run a job more than once: " + "; ".join(map(str, refusals)),
            "; ".join(refusal.fix for refusal in refusals),
            options.team_name,
        )
    defaults: dict[str, Any] = {"containerOverrides": {}, **ONE_ATTEMPT}
    from_options = {"jobQueue": options.job_queue, "jobDefinition": options.job_definition}
    request = deep_merge(deep_merge(defaults, from_options), kwargs)
    probe = deep_merge(request, {"jobName": _PLACEHOLDER_NAME})
    if problems := request_problems(probe):
        raise OptionError(
            "submit_job_kwargs",
            "is not a valid SubmitJob request: " + "; ".join(problems),
            "use boto3's SubmitJob parameter names and types "
            "(https://docs.aws.amazon.com/batch/latest/APIReference/API_SubmitJob.html)",
            options.team_name,
        )
    return request


def _with_environment(request: dict[str, Any], api_url: str) -> None:
    overrides = request.setdefault("containerOverrides", {})
    environment = list(overrides.get("environment") or [])
    present = {entry.get("name") for entry in environment if isinstance(entry, Mapping)}
    for name, value in ((EXECUTOR_CONTAINER_ENV, "true"), (EXECUTION_API_ENV, api_url)):
        if name not in present:
            environment.append({"name": name, "value": value})
    overrides["environment"] = environment


def _task_config(spec: JobSpec) -> dict[str, Any]:
    config = spec.executor_config
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TaskConfigError(
            f"executor_config is a {type(config).__name__}, not a dict of SubmitJob parameters",
            'pass a dict such as {"containerOverrides": {"environment": [{"name": "X", "value": "1"}]}}',
        )
    if _command_of(config):
        raise TaskConfigError(
            "executor_config sets containerOverrides.command; the executor sets the command itself "
            "so the job runs this task instance",
            "remove containerOverrides.command from the task's executor_config",
        )
    return {key: value for key, value in config.items() if key != OVERRIDES_KEY}


class RequestFactory:
    """Turns a :class:`JobSpec` into the SubmitJob request the executor sends for it.

    ``build`` is pure and fast (it runs in the scheduler's heartbeat); ``place`` may ask AWS about the
    job's queue and definition (cached), derive and register the task's own job definition, and runs
    on the submit threads.
    """

    def __init__(
        self,
        options: ExecutorOptions,
        *,
        api_url: str,
        default_queue: str,
        catalog: PlacementCatalog | None = None,
        registry: DefinitionRegistry | None = None,
    ) -> None:
        self.options = options
        self.ladder = QueueLadder(options.queue_fallbacks)
        self.base = base_request(options)
        self.api_url = api_url
        self.default_queue = default_queue
        self.catalog = catalog
        self.registry = registry

    def close(self) -> None:
        """Let submit threads waiting to register a job definition go (scheduler shutdown)."""
        if self.registry is not None:
            self.registry.stop()

    def _merged(self, spec: JobSpec) -> dict[str, Any]:
        config = _task_config(spec)
        routed: dict[str, Any] = {}
        if spec.airflow_queue and spec.airflow_queue != self.default_queue:
            routed["jobQueue"] = spec.airflow_queue
        return deep_merge(deep_merge(self.base, routed), config)

    def job_queue(self, spec: JobSpec) -> str:
        """The Batch job queue this workload's job goes to, by the same precedence as its request."""
        return self._merged(spec)["jobQueue"]

    def job_name(self, spec: JobSpec) -> str:
        return job_name(spec.identity, self.options.job_name)

    def locate(self, ti: Any) -> tuple[str, str]:
        """(job queue, job name) of a task instance's job, as submitted: how adoption finds it."""
        spec = task_instance_spec(ti)
        return self.job_queue(spec), self.job_name(spec)

    def build(self, spec: JobSpec) -> dict[str, Any]:
        """The exact SubmitJob request for one workload, or :class:`TaskConfigError` saying what to fix."""
        config = _task_config(spec)
        refusals = request_refusals(config) + environment_refusals(config)
        refusals += job_definition_refusals(config, self.options)
        refusals += definition_refusals(definition_overrides(spec.executor_config), self.options)
        if refusals:
            raise refusal_error(refusals)
        request = self._merged(spec)
        if spec.execution_timeout and "timeout" not in request:
            seconds = math.ceil(spec.execution_timeout) + STARTUP_MARGIN_SECONDS
            request["timeout"] = {"attemptDurationSeconds": max(MIN_ATTEMPT_DURATION_SECONDS, seconds)}
        request["jobName"] = self.job_name(spec)
        nonce = submission_id()
        command = job_command(spec, request["jobName"], self.options.workload_transport, nonce)
        request.setdefault("containerOverrides", {})["command"] = command
        _with_environment(request, self.api_url)
        request["tags"] = {
            **(request.get("tags") or {}),
            **identity_tags(spec.identity),
            **team_tags(self.options.team_name),
            TAG_SUBMISSION: nonce,
        }
        if problems := request_problems(request):
            raise TaskConfigError(
                "the SubmitJob request built from executor_config is invalid: " + "; ".join(problems),
                "correct the task's executor_config (boto3 SubmitJob parameter names and types)",
            )
        size = len(json.dumps(request, separators=(",", ":")).encode())
        if size > MAX_SUBMIT_PAYLOAD_BYTES:
            raise TaskConfigError(
                f"the SubmitJob request is {size} bytes, "
                f"over AWS Batch's {MAX_SUBMIT_PAYLOAD_BYTES}-byte limit",
                "move large environment values or parameters into the job definition, S3 or a secret",
            )
        return request

    def derived_definition(self, request: dict[str, Any], spec: JobSpec) -> DerivedDefinition | None:
        """The definition derived for a task that sets job-definition-only fields; None for the rest.

        Derived from the current ACTIVE revision of the request's job definition (read through the
        catalog), and checked against its platform before anything is registered.
        """
        overrides = definition_overrides(spec.executor_config)
        if not overrides or self.catalog is None:
            return None
        base = self.catalog.definition(request["jobDefinition"])
        derived = derive(base, overrides, self.options.team_name)
        if refusals := definition_refusals(overrides, self.options, base=base["containerProperties"]):
            raise refusal_error(refusals)
        if problems := definition_problems(derived):
            raise TaskConfigError(
                f"the job definition derived from {derived.base_name!r} for this task cannot run: "
                + "; ".join(problems),
                "correct the task's job definition fields (BatchJobOverrides or executor_config "
                f"{OVERRIDES_KEY}), or route the task to a job queue and definition of the right platform",
            )
        return derived

    def definition_refused(self, request: Mapping[str, Any], error: ClientError) -> bool:
        """Whether SubmitJob refused a derived definition the registry handed out that is no longer
        ACTIVE (pruned meanwhile); the registry then forgets it, so placing again registers it anew."""
        return (
            self.registry is not None
            and definition_not_active(error)
            and self.registry.forget(str(request.get("jobDefinition")))
        )

    def _check_chosen_definition(self, reference: str, *, derived: bool) -> None:
        """Refuse a definition the task chose whose roles are neither allowed nor the default's own."""
        assert self.catalog is not None
        if reference in operator_definitions(self.options):
            return
        default = self.catalog.definition(self.base["jobDefinition"])
        allowed = self.options.allowed_job_role_arns + tuple(arn for _, arn in definition_roles(default))
        chosen = self.catalog.definition(reference)
        if refusals := chosen_definition_refusals(chosen, allowed, derived=derived):
            raise refusal_error(refusals)

    def place(self, request: dict[str, Any], spec: JobSpec) -> dict[str, Any]:
        """The request adjusted to its queue and definition, or TaskConfigError naming what cannot run.

        A task with its own job definition fields gets the derived definition, registered once. A job
        definition the task chose (to run on or to derive from) must give its jobs only allowed roles.
        """
        if self.catalog is None:
            return request
        self._check_chosen_definition(
            request["jobDefinition"], derived=bool(definition_overrides(spec.executor_config))
        )
        if (derived := self.derived_definition(request, spec)) is not None:
            placement = self.catalog.placement_with(request["jobQueue"], derived.description)
        else:
            placement = self.catalog.placement(request["jobQueue"], request["jobDefinition"])
        placed = place(
            request,
            placement,
            priority_weight=spec.priority_weight,
            share_identifier=self.options.share_identifier,
        )
        if derived is not None and self.registry is not None:
            placed["jobDefinition"] = self.registry.ensure(derived)
        return placed
