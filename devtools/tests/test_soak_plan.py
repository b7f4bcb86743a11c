"""The soak's fault plan: drawn from the seed alone, every enabled kind at least once."""

from __future__ import annotations

from dataclasses import replace

from batch_devtools.soak.options import SoakOptions, parse
from batch_devtools.soak.plan import EVENT_FAULTS, JOB_FAULTS, REVOKE_STAGES, make_plan


def test_the_same_seed_makes_the_same_plan_and_another_seed_another() -> None:
    options = SoakOptions(tasks=300, seed=7)

    assert make_plan(options) == make_plan(options)
    assert make_plan(options) != make_plan(replace(options, seed=8))


def test_a_short_run_plans_every_kind_whose_rate_is_set() -> None:
    plan = make_plan(SoakOptions(tasks=60, seed=3, status="events"))

    planned = plan.planned()

    kinds = [*JOB_FAULTS, *EVENT_FAULTS, *(f"revoke_{stage}" for stage in REVOKE_STAGES)]
    assert {kind for kind in kinds if not planned.get(kind)} == set()
    assert planned["stuck_then_started"] and planned["kill"] and planned["prune"]
    assert planned["malformed_events"] and planned["s3_latency_on"]
    assert len({task.image for task in plan.tasks if task.image}) >= 2


def test_a_kind_turned_off_is_never_planned() -> None:
    plan = make_plan(SoakOptions(tasks=200, seed=3, status="polling", vanish_rate=0.0, kills=0))

    planned = plan.planned()

    assert "vanish" not in planned and "kill" not in planned
    assert not any(kind in planned for kind in EVENT_FAULTS), "polling: no status events to spoil"
    assert "malformed_events" not in planned


def test_the_command_transport_plans_no_batch_retry_after_start() -> None:
    """AWS never retries a job submitted with retryStrategy.attempts 1; the command would rerun the try.
    Nor is a revoke planned between the object write and SubmitJob: there is no object."""
    planned = make_plan(SoakOptions(tasks=200, seed=3, transport="command")).planned()

    assert "retry_after_start" not in planned and "revoke_in_flight" not in planned
    assert planned["revoke_early"] and planned["revoke_stuck"]


def test_the_status_source_is_drawn_from_the_seed_unless_given() -> None:
    drawn = {make_plan(SoakOptions(tasks=10, seed=seed)).status for seed in range(20)}

    assert drawn == {"events", "polling"}
    assert make_plan(SoakOptions(tasks=10, seed=1, status="polling")).status == "polling"


def test_a_missing_seed_is_drawn_and_options_are_read() -> None:
    options = parse(["--tasks", "150", "--transport", "command", "--throttle-rate", "0.2", "--kills", "1"])

    assert options.seed > 0
    assert (options.tasks, options.transport, options.throttle_rate, options.kills) == (
        150,
        "command",
        0.2,
        1,
    )
