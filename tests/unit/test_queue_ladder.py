"""The ``queue_fallbacks`` ladder (``requests.queue_ladder``): its parsing, its chains and its choices."""

from __future__ import annotations

import json

import pytest

from airflow_batch_executor.errors import OptionError
from airflow_batch_executor.options import load_options
from airflow_batch_executor.requests.queue_ladder import LadderError, QueueLadder, Rung, parse_ladder

from .helpers import REQUIRED, FakeConf

LADDER = QueueLadder(
    {
        "spot": Rung("spot", "spot-large", 2),
        "spot-large": Rung("spot-large", "on-demand", 1),
    }
)


def test_a_valid_value_becomes_rungs_and_an_empty_one_none() -> None:
    raw = json.dumps({"spot": {"fallback": "on-demand", "after_reclaims": 2}, "gpu": {"fallback": "gpu-od"}})
    assert parse_ladder(raw) == {"spot": Rung("spot", "on-demand", 2), "gpu": Rung("gpu", "gpu-od", 1)}
    assert parse_ladder(None) == {} and parse_ladder("") == {}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{", "is not valid JSON"),
        ('["spot"]', "is a JSON list"),
        ('{"spot": "on-demand"}', "each queue maps to"),
        ('{"spot": {"fallback": "od", "after": 1}}', "each queue maps to"),
        ('{"spot": {"fallback": ""}}', "name another job queue"),
        ('{"spot": {"fallback": "spot"}}', "name another job queue"),
        ('{"spot": {"fallback": "od", "after_reclaims": 0}}', "whole number ≥ 1"),
        ('{"spot": {"fallback": "od", "after_reclaims": true}}', "whole number ≥ 1"),
        ('{"spot": {"fallback": "od", "after_reclaims": 1.5}}', "whole number ≥ 1"),
        ('{"a": {"fallback": "b"}, "b": {"fallback": "c"}, "c": {"fallback": "a"}}', "loop (a → b → c → a)"),
    ],
)
def test_a_bad_value_says_what_is_wrong(raw: str, says: str) -> None:
    with pytest.raises(LadderError) as raised:
        parse_ladder(raw)
    assert says in str(raised.value)


def test_a_bad_ladder_stops_start_up_naming_the_option_and_the_fix() -> None:
    ladder = '{"spot": {"fallback": "od"}, "od": {"fallback": "spot"}}'
    with pytest.raises(OptionError) as raised:
        load_options(FakeConf(**REQUIRED, queue_fallbacks=ladder))
    message = str(raised.value)
    assert "queue_fallbacks" in message and "loop (spot → od → spot)" in message
    assert '{"spot-queue": {"fallback": "on-demand-queue", "after_reclaims": 2}}' in message


def test_a_chain_lists_the_queue_and_every_queue_below_it() -> None:
    assert LADDER.chain("spot") == ("spot", "spot-large", "on-demand")
    assert LADDER.chain("spot-large") == ("spot-large", "on-demand")
    assert LADDER.chain("elsewhere") == ("elsewhere",)
    assert LADDER.fallbacks() == ["spot-large", "on-demand"]


@pytest.mark.parametrize(
    ("reclaims", "queue"),
    [
        ({}, "spot"),
        ({"spot": 1}, "spot"),
        ({"spot": 2}, "spot-large"),
        ({"spot": 5}, "spot-large"),
        ({"spot": 2, "spot-large": 1}, "on-demand"),
        ({"spot-large": 3}, "spot"),
    ],
)
def test_a_task_goes_down_a_rung_once_enough_of_its_jobs_were_reclaimed_there(reclaims, queue) -> None:
    choice = LADDER.choose("spot", reclaims)
    assert choice.queue == queue
    assert (choice.reason is None) == (queue == "spot")


def test_a_fallback_says_where_from_and_why() -> None:
    choice = LADDER.choose("spot", {"spot": 2, "spot-large": 1})
    assert choice.reason == (
        "Spot reclaims send this task instance's job to job queue on-demand instead of spot: "
        "2 reclaimed on spot (fallback after 2); 1 reclaimed on spot-large (fallback after 1) "
        "([aws_batch_executor] queue_fallbacks)."
    )


def test_a_reclaim_note_names_what_was_taken_and_what_comes_next() -> None:
    note = LADDER.reclaim_note("instance i-0abc", "job-1", "dag-task-try1-x", "spot")
    assert note.startswith(
        "Spot reclaimed instance i-0abc running Batch job job-1 (dag-task-try1-x) on job queue spot."
    )
    assert (
        "Once 2 of this task instance's jobs were reclaimed on spot, its next job goes to spot-large" in note
    )
    assert LADDER.reclaim_note("instance i-0abc", "job-1", "n", "on-demand").endswith(
        "on job queue on-demand."
    )


def test_the_option_is_read_into_the_options() -> None:
    spot_to_od = '{"spot": {"fallback": "od"}}'
    loaded = load_options(FakeConf(**REQUIRED, queue_fallbacks=spot_to_od))
    assert loaded.queue_fallbacks == {"spot": Rung("spot", "od", 1)}
    assert load_options(FakeConf(**REQUIRED)).queue_fallbacks == {}
