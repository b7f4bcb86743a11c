"""Metric names and tags, for the global executor and for a team's."""

from __future__ import annotations

from airflow_batch_executor import metrics


def test_the_global_executors_metrics_keep_their_names(recorder):
    metrics.Metrics().incr("submit.ok")
    metrics.Metrics().incr_labelled("jobs.status", "RUNNING")
    assert recorder.calls == [
        ("incr", "aws_batch_executor.submit.ok", None),
        ("incr", "aws_batch_executor.jobs.status.running", {"status": "RUNNING"}),
    ]


def test_a_teams_metrics_name_and_tag_the_team(recorder):
    team = metrics.Metrics("team_a")
    team.incr("submit.ok")
    team.gauge("jobs.tracked", 3)
    team.timing("sync.duration", 1.5)
    team.incr_labelled("resubmitted", "transient_before_start")
    assert recorder.calls == [
        ("incr", "aws_batch_executor.team_a.submit.ok", {"team_name": "team_a"}),
        ("gauge", "aws_batch_executor.team_a.jobs.tracked", {"team_name": "team_a"}),
        ("timing", "aws_batch_executor.team_a.sync.duration", {"team_name": "team_a"}),
        (
            "incr",
            "aws_batch_executor.team_a.resubmitted.transient_before_start",
            {"team_name": "team_a", "resubmitted": "transient_before_start"},
        ),
    ]
