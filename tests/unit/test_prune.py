"""Which job definitions ``prune-definitions`` may deregister: managed, unused and old, of its own
team; and how its ``--older-than`` duration is read."""

from __future__ import annotations

import pytest

from airflow_batch_executor.definitions.derive import (
    BASE_TAG,
    DEFINITION_TEAM_TAG,
    LAST_USED_TAG,
    MANAGED_TAG,
    REGISTERED_TAG,
)
from airflow_batch_executor.definitions.prune import judge, parse_duration


def managed(name: str, revision: int, registered_at: str | None, **tags: str) -> dict:
    all_tags = {MANAGED_TAG: "true", BASE_TAG: "airflow-worker", **tags}
    if registered_at is not None:
        all_tags[REGISTERED_TAG] = registered_at
    return {
        "jobDefinitionName": name,
        "revision": revision,
        "status": "ACTIVE",
        "jobDefinitionArn": f"arn:aws:batch:us-east-1:1:job-definition/{name}:{revision}",
        "tags": all_tags,
    }


def test_only_managed_old_unused_definitions_are_pruned():
    now = 1_000_000
    old, recent, busy = (
        managed("old", 1, str(now - 3000)),
        managed("new", 1, str(now - 10)),
        managed("busy", 1, "0"),
    )
    unreadable = managed("untagged", 1, None)
    hand_made = {**managed("hand", 1, "0"), "tags": {"team": "x"}}
    inactive = {**managed("gone", 1, "0"), "status": "INACTIVE"}
    used_lately = managed("used", 1, str(now - 3000), **{LAST_USED_TAG: str(now - 60)})
    other_team = managed("theirs", 1, "0", **{DEFINITION_TEAM_TAG: "team_b"})
    verdicts = judge(
        [old, recent, busy, unreadable, hand_made, inactive, used_lately, other_team],
        {busy["jobDefinitionArn"]},
        600,
        now,
    )
    assert {(v.name, v.prune, v.reason) for v in verdicts} == {
        ("old", True, "unused and older than --older-than"),
        ("new", False, "used more recently than --older-than"),
        ("used", False, "used more recently than --older-than"),
        ("busy", False, "used by a waiting or running job"),
        ("untagged", False, f"no readable {LAST_USED_TAG} or {REGISTERED_TAG} tag"),
    }
    assert next(v for v in verdicts if v.name == "old").age_seconds == 3000
    assert next(v for v in verdicts if v.name == "used").age_seconds == 60, "judged by its last use"


def test_a_teams_prune_sees_only_its_own_definitions():
    now = 1_000_000
    ours, theirs, global_ = (
        managed("ours", 1, "0", **{DEFINITION_TEAM_TAG: "team_a"}),
        managed("theirs", 1, "0", **{DEFINITION_TEAM_TAG: "team_b"}),
        managed("global", 1, "0"),
    )
    assert [v.name for v in judge([ours, theirs, global_], set(), 600, now, "team_a")] == ["ours"]
    assert [v.name for v in judge([ours, theirs, global_], set(), 600, now)] == ["global"]


@pytest.mark.parametrize("text, seconds", [("30d", 2_592_000), ("12h", 43_200), ("90m", 5400), ("0s", 0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "d", "1.5d", "30 days", "-1d"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="use a whole number and a unit: 30d, 12h, 90m or 45s"):
        parse_duration(text)
