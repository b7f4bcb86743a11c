"""The benchmark machinery end to end at N=20: correctness only, never timing targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXECUTORS = ("ours", "ours-s3", "amazon")
POSITIVE_METRICS = (
    "submit_seconds",
    "submits_per_second",
    "max_heartbeat",
    "steady_heartbeat_mean",
    "steady_heartbeat_max",
    "rss_peak_mb",
)


def run_benchmark(
    results_dir: Path, *arguments: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``benchmarks/run.py`` with these arguments, writing its results under ``results_dir``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), *arguments, "--results-dir", str(results_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_benchmark_runs_both_executors_and_submits_each_task_once(tmp_path: Path) -> None:
    completed = run_benchmark(
        tmp_path,
        "--sizes",
        "20",
        "--latency",
        "0.005",
        "--steady-seconds",
        "2.5",
        "--time-limit",
        "60",
        "--tracker-memory",
        "100",
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())

    runs = {run["executor"]: run for run in results["runs"]}
    assert set(runs) == set(EXECUTORS)
    for name, run in runs.items():
        assert run["n"] == 20 and run["finished"], name
        correctness = run["correctness"]
        assert correctness["ok"], (name, correctness)
        assert (correctness["lost"], correctness["duplicated"], correctness["unexpected"]) == (0, 0, 0)
        assert (
            correctness["submit_requests"]
            == correctness["running_events"]
            == correctness["distinct_job_ids"]
            == 20
        )
        assert correctness["tasks_with_several_job_ids"] == 0
        for metric in POSITIVE_METRICS:
            assert run[metric] is not None and run[metric] > 0, (name, metric, run[metric])
        assert run["steady_heartbeats"] >= 3
        # our executor polls every 2 s (status_poll_interval), so 2.5 s of steady state see a poll
        assert run["api_calls"]["submitjob"] == 20 and run["api_calls"].get("describejobs", 0) >= 1
        assert "rss_peak_delta_mb" in run and run["heartbeats"]
    tracker = results["tracker_memory"]
    assert tracker["bytes_per_job_running"] > 0
    assert tracker["bytes_per_job_pending_with_request"] > tracker["bytes_per_job_running"]
    assert "each task once" in completed.stdout and "ours-s3" in completed.stdout
    # the S3 run wrote one workload object per job (and its health check one probe)
    assert runs["ours-s3"]["api_calls"]["putobject"] == 21
    assert "putobject" not in runs["ours"]["api_calls"]


def test_the_mapped_scenario_sends_siblings_as_arrays_and_each_task_once(tmp_path: Path) -> None:
    completed = run_benchmark(
        tmp_path,
        "--scenario",
        "mapped",
        "--sizes",
        "200",
        "--executors",
        "ours-arrays",
        "--latency",
        "0.02",
        "--steady-seconds",
        "0.5",
        "--time-limit",
        "60",
        "--tracker-memory",
        "0",
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    [run] = json.loads((tmp_path / "results.json").read_text())["runs"]
    correctness = run["correctness"]
    assert run["executor"] == "ours-arrays" and run["finished"] and correctness["ok"], correctness
    assert correctness["submit_requests"] == correctness["distinct_job_ids"] == 200
    assert correctness["tasks_with_several_job_ids"] == 0
    # 200 siblings queued in one heartbeat: they go in a few arrays, not one SubmitJob each
    assert 1 <= run["api_calls"]["submitjob"] < 20


def test_status_scenario_measures_events_polling_and_amazon_side_by_side(tmp_path: Path) -> None:
    completed = run_benchmark(
        tmp_path,
        "--scenario",
        "status",
        "--sizes",
        "30",
        "--latency",
        "0.005",
        "--ramp-seconds",
        "0.5",
        "--adopt-chunk",
        "10",
        "--settle-seconds",
        "0.5",
        "--window",
        "2",
        # Half the window, so at least one poll falls inside it even when a loaded machine delays one.
        "--poll-interval",
        "1",
        "--latency-jobs",
        "5",
        "--latency-spread",
        "0.5",
        "--latency-timeout",
        "20",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "status.json").read_text())
    runs = {run["executor"]: run for run in results["runs"]}
    assert set(runs) == {"ours-events", "ours-polling", "amazon"}
    for name, run in runs.items():
        assert run["finished"] and (run["adopted"], run["not_adopted"]) == (30, 0), name
        assert [item["adopted"] for item in run["adoptions"]] == [10, 10, 10], name
        assert run["window"]["seconds"] >= 2 and run["heartbeat_phases"]["window"]["count"] >= 3, name
        # every sampled job's exit reached the scheduler as a success, and nothing else ended
        assert (run["latency_sample"], run["latency_seen"]) == (5, 5), name
        assert 0 < run["latency_median"] <= run["latency_p95"] < 20, name
        assert run["other_final_events"] == {}, name
    # events: the exits' events were received and deleted; without a status queue nothing reads SQS
    total = runs["ours-events"]["calls_total"]
    assert total["receivemessage"] >= 1 and total["deletemessagebatch"] >= 1
    for name in ("ours-polling", "amazon"):
        assert "receivemessage" not in runs[name]["calls_total"], name
        assert runs[name]["window"]["calls"]["describejobs"] >= 1, name
    assert "DescribeJobs calls / min" in completed.stdout and "ours-events" in completed.stdout


def test_burst_scenario_measures_one_long_poll_and_the_scaled_receiver_side_by_side(tmp_path: Path) -> None:
    completed = run_benchmark(
        tmp_path,
        "--scenario",
        "burst",
        "--sizes",
        "300",
        "--latency",
        "0.005",
        "--heartbeat-interval",
        "0.05",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    runs = {run["executor"]: run for run in json.loads((tmp_path / "burst.json").read_text())["runs"]}
    assert set(runs) == {"one-loop", "scaled"}
    for name, run in runs.items():
        assert run["finished"] and run["at_scheduler"] == run["deleted"] == 300, name
        assert run["unreadable"] == run["refused_deletes"] == 0, name
        assert 0 < run["latency_median"] <= run["latency_p95"] <= run["all_at_scheduler_seconds"], name
        assert run["receive_calls"] >= 30 and run["delete_calls"] >= 30, name
    assert (runs["one-loop"]["concurrency"], runs["one-loop"]["receive_loops_most"]) == (1, 1)
    assert runs["scaled"]["concurrency"] == 8 and runs["scaled"]["receive_loops_most"] > 1
    assert runs["scaled"]["receive_loops_last"] == 1, "back to one long poll once the queue is drained"
    assert "each event at the scheduler and deleted" in completed.stdout and "scaled" in completed.stdout
