"""Every metric the executor emits, through Airflow's ``Stats`` (StatsD or OpenTelemetry).

Variable parts (a status, a reason class) are both in the name, for plain StatsD, and in tags, for
backends that support them. The metrics table in docs/operating.md is checked against ``METRICS``.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import Stats

PREFIX = "aws_batch_executor"

METRICS: dict[str, str] = {
    "submit.ok": "counter: jobs submitted",
    "submit.retried.<error class>": (
        "counter: SubmitJob attempts that failed and will be retried "
        "(throttled, server, network, ambiguous, credentials)"
    ),
    "submit.failed": "counter: tasks failed because their job could not be submitted",
    "submit.rejected": "counter: tasks failed before any call because their request was invalid",
    "submit.latency": "timer: duration of one SubmitJob call (ms)",
    "throttled": "counter: SubmitJob calls throttled by AWS Batch",
    "jobs.status.<status>": "counter: jobs observed entering a Batch status (submitted … succeeded, failed)",
    "jobs.tracked": "gauge: jobs being tracked (submitted, not yet finished)",
    "jobs.submitting": "gauge: tasks waiting for, or in, a SubmitJob call",
    "resubmitted.<reason class>": "counter: jobs resubmitted after failing before their container started",
    "reclaims.<job queue>": "counter: jobs Spot reclaimed (EC2 host terminated, Fargate Spot interruption)",
    "fallbacks.<job queue>": "counter: jobs the queue_fallbacks ladder sent to this fallback queue",
    "sync.duration": "timer: duration of sync() in the scheduler's heartbeat (ms)",
    "adopted": "counter: task instances adopted from a dead scheduler",
    "health_check.failed": "counter: start-ups stopped by the health check",
    "job_definition.registered": "counter: job definitions derived for tasks and registered",
    "status_events.received": "counter: Batch job state-change events received from the status queue",
    "status_events.duplicate": "counter: status events dropped as duplicates (same status and attempts)",
    "status_events.stale": "counter: status events dropped as late or out of order (older than known)",
    "status_events.untracked": "counter: status events for jobs this scheduler does not track",
    "status_events.missed": "counter: reconciliations (DescribeJobs) that found a state no event had told",
    "status_events.queue_blocked": "counter: Batch Job Queue Blocked events received for tracked jobs",
    "jobs.waiting_reason": "counter: reasons of waiting jobs written to their tasks' event logs",
    "status_events.queue_failed": "counter: times the status queue stopped answering (polling took over)",
    "status_events.receive_loops": (
        "gauge: long polls of the status queue running side by side "
        "(1 while it is quiet, up to status_receive_concurrency under a backlog)"
    ),
    "job_definition.found": "counter: derived job definitions found already registered (no new revision)",
    "status_events.unreadable": (
        "counter: status queue messages that are not Batch job state-change events "
        "(left for the dead-letter queue)"
    ),
    "adoption.handed_back": "counter: task instances handed back at adoption, proven to have no Batch job",
    "adoption.not_found": (
        "counter: adopted task instances whose background look-up found no job (the try is failed)"
    ),
    "workload_objects.refreshed": (
        "counter: workload objects rewritten with a new token while their job waited"
    ),
    "workload_objects.not_removed": (
        "counter: workload objects S3 did not remove (left to the bucket's lifecycle rule)"
    ),
    "jobs.orphans_stopped": (
        "counter: waiting jobs stopped because their workload object is gone (orphans of a revoke or crash)"
    ),
    "background.restarted.<thread>": (
        "counter: background threads restarted after their loop crashed (submit, status events, objects)"
    ),
}


class Metrics:
    """One executor's metrics. A team's executor (multi-team mode) names its team in every metric:
    in the name (``aws_batch_executor.<team>.submit.ok``), so plain StatsD keeps the teams' gauges
    apart, and as the ``team_name`` tag, as Airflow's own executor metrics do."""

    def __init__(self, team: str | None = None) -> None:
        self.prefix = f"{PREFIX}.{team}" if team else PREFIX
        self._tags = {"team_name": team} if team else {}

    def incr(self, name: str, count: int = 1) -> None:
        Stats.incr(f"{self.prefix}.{name}", count, tags=self._tags or None)

    def incr_labelled(self, name: str, label: str) -> None:
        """``name.<label>`` with the label also as a tag, e.g. ``jobs.status.running``."""
        tags = {**self._tags, name.rsplit(".", 1)[-1]: label}
        Stats.incr(f"{self.prefix}.{name}.{label.lower()}", tags=tags)

    def timing(self, name: str, milliseconds: float) -> None:
        Stats.timing(f"{self.prefix}.{name}", milliseconds, tags=self._tags or None)

    def gauge(self, name: str, value: float) -> None:
        Stats.gauge(f"{self.prefix}.{name}", value, tags=self._tags or None)


GLOBAL = Metrics()
"""The metrics of the global executor (no team); also the default of every collaborator."""
