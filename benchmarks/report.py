"""Correctness check, results table and heartbeat plot for a benchmark run (pure functions)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXECUTE_WORKLOAD_FLAG = "--json-string"


def submitted_key(request: dict[str, Any]) -> tuple | None:
    """The task instance try a recorded SubmitJob body runs, read from the workload in its command.

    Both executors put the serialized ExecuteTask workload in ``containerOverrides.command``, so this
    identifies a submission the same way for both, whatever the job name. With the S3 transport the
    command names an object instead; then the ``airflow.*`` tags our executor sets identify it.
    """
    command = (request.get("containerOverrides") or {}).get("command") or []
    for arg in command:
        if isinstance(arg, str) and arg.startswith("{") and '"ti"' in arg:
            ti = json.loads(arg)["ti"]
            return (ti["dag_id"], ti["task_id"], ti["run_id"], ti["try_number"], ti["map_index"])
    tags = request.get("tags") or {}
    if "airflow.task_id" in tags:
        return (
            tags["airflow.dag_id"],
            tags["airflow.task_id"],
            tags["airflow.run_id"],
            int(tags["airflow.try_number"]),
            int(tags["airflow.map_index"]),
        )
    return None


def check_correctness(
    queued_keys: list[list[Any]], requests: list[dict[str, Any]], running_events: list[list[Any]]
) -> dict[str, Any]:
    """Each queued task submitted exactly once, and reported running with one job id of its own.

    A task's running event is sent at submission and again once its container started (the same id:
    the scheduler may have dropped the first), so a task's repeated id counts once.
    """
    queued = Counter(tuple(key) for key in queued_keys)
    sent = Counter(submitted_key(request) for request in requests)
    unidentified = sent.pop(None, 0)
    lost = sorted(key for key in queued if key not in sent)
    duplicated = sorted(key for key, count in sent.items() if count > 1)
    unexpected = sorted(key for key in sent if key not in queued)
    events = {tuple(key): list(dict.fromkeys(ids)) for key, ids in running_events}
    job_ids = [job_id for ids in events.values() for job_id in ids]
    names = [request.get("jobName") for request in requests]
    result = {
        "queued": sum(queued.values()),
        "submit_requests": len(requests),
        "submitted_tasks": len(sent),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "unexpected": len(unexpected) + unidentified,
        "running_events": len(job_ids),
        "tasks_with_several_job_ids": sum(1 for ids in events.values() if len(ids) > 1),
        "distinct_job_ids": len(set(job_ids)),
        "distinct_job_names": len(set(names)),
        "examples": {"lost": lost[:3], "duplicated": duplicated[:3], "unexpected": unexpected[:3]},
    }
    result["ok"] = (
        result["lost"] == 0
        and result["duplicated"] == 0
        and result["unexpected"] == 0
        and result["submit_requests"] == result["queued"]
    )
    return result


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_ROWS_OF_THEIR_OWN = ("submitjob", "describejobs", "putobject")


def expand_arrays(
    requests: list[dict[str, Any]], manifest_of: Callable[[str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The SubmitJob requests with each array request replaced by one per child, as the child runs
    it: its map index, read from the array's manifest (``manifest_of(directory)``), in its tags."""
    expanded: list[dict[str, Any]] = []
    for request in requests:
        if not request.get("arrayProperties"):
            expanded.append(request)
            continue
        directory = request["containerOverrides"]["command"][-1]
        for map_index, _ in manifest_of(directory)["children"]:
            tags = {**request.get("tags", {}), "airflow.map_index": str(map_index)}
            expanded.append({**request, "tags": tags, "arrayProperties": None})
    return expanded


def metric_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, formatted value) for one executor run."""
    limit = f"not finished in {result['time_limit']:g} s" if not result["finished"] else None
    submitted = result["submitted_events"]
    calls = result.get("api_calls", {})
    correctness = result.get("correctness", {})
    max_hb = _fmt(result["max_heartbeat"], 4)
    if result.get("max_heartbeat_is_lower_bound"):
        max_hb = f"≥ {max_hb}"
    submit_time = (
        _fmt(result["submit_seconds"], 2)
        if result["submit_seconds"] is not None
        else (f"{limit} ({submitted} reported, {calls.get('submitjob', 0)} SubmitJob)")
    )
    if correctness:
        verdict = (
            "OK"
            if correctness["ok"]
            else (
                f"lost {correctness['lost']}, dup {correctness['duplicated']}, "
                f"unexpected {correctness['unexpected']}"
            )
        )
        if not result["finished"]:
            verdict = f"(partial) sent {correctness['submit_requests']}, dup {correctness['duplicated']}"
    else:
        verdict = "—"
    return [
        ("time to submit all (s)", submit_time),
        ("submits/s", _fmt(result["submits_per_second"], 1)),
        ("longest heartbeat (s)", max_hb),
        ("steady heartbeat mean (s)", _fmt(result["steady_heartbeat_mean"], 4)),
        ("steady heartbeat max (s)", _fmt(result["steady_heartbeat_max"], 4)),
        ("SubmitJob calls", _fmt(calls.get("submitjob", 0))),
        ("DescribeJobs calls", _fmt(calls.get("describejobs", 0))),
        ("PutObject calls", _fmt(calls.get("putobject", 0))),
        ("other API calls", _fmt(sum(v for k, v in calls.items() if k not in _ROWS_OF_THEIR_OWN))),
        ("peak RSS delta (MiB)", _fmt(result["rss_peak_delta_mb"], 1)),
        ("each task once", verdict),
    ]


def table(
    results: list[dict[str, Any]],
    executors: list[str],
    rows_of: Callable[[dict[str, Any]], list[tuple[str, str]]] = metric_rows,
) -> str:
    """Rows: metric × N; columns: one per executor; ``rows_of`` gives one run's (metric, value) pairs."""
    by = {(r["executor"], r["n"]): r for r in results}
    sizes = sorted({r["n"] for r in results})
    header = ["N", "metric", *executors]
    rows: list[list[str]] = []
    for n in sizes:
        per_executor = {ex: dict(rows_of(by[(ex, n)])) if (ex, n) in by else {} for ex in executors}
        metrics = next((list(values) for values in per_executor.values() if values), [])
        for metric in metrics:
            rows.append([str(n), metric, *(per_executor[ex].get(metric, "—") for ex in executors)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths)), line]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            out.append(line)
        previous = row[0]
        out.append(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
    return "\n".join(out)


def _heartbeat_figure(
    results: list[dict[str, Any]],
    executors: list[str],
    path: Path,
    draw: Callable[[Any, str, dict[str, Any]], None],
    title: Callable[[int], str],
    xlabel: str,
) -> bool:
    """One log-scale heartbeat subplot per N; ``draw`` adds each executor's run. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = sorted({r["n"] for r in results})
    fig, axes = plt.subplots(len(sizes), 1, figsize=(10, 3.2 * len(sizes)), squeeze=False)
    for ax, n in zip(axes[:, 0], sizes):
        for executor in executors:
            run = next((r for r in results if r["executor"] == executor and r["n"] == n), None)
            if run is not None:
                draw(ax, executor, run)
        ax.set_yscale("log")
        ax.set_title(title(n))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("heartbeat (s)")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot(results: list[dict[str, Any]], executors: list[str], path: Path) -> bool:
    """Heartbeat duration over time in the submit scenario, one subplot per N; False without matplotlib."""

    def draw(ax: Any, executor: str, run: dict[str, Any]) -> None:
        xs = [hb["t"] for hb in run["heartbeats"]]
        ys = [hb["duration"] for hb in run["heartbeats"]]
        if run.get("heartbeat_in_progress"):
            xs.append(run["heartbeat_in_progress"]["t"])
            ys.append(run["heartbeat_in_progress"]["duration_so_far"])
        label = f"{executor}" + ("" if run["finished"] else " (stopped by time limit)")
        ax.plot(xs, ys, marker=".", linewidth=1, label=label)
        if run["submit_seconds"] is not None:
            ax.axvline(run["submit_seconds"], linestyle=":", linewidth=1, color=ax.lines[-1].get_color())

    return _heartbeat_figure(
        results,
        executors,
        path,
        draw,
        title=lambda n: f"N = {n} (dotted: all submitted)",
        xlabel="seconds since the tasks were queued",
    )


SQS_OPERATIONS = ("receivemessage", "deletemessagebatch")


def status_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, formatted value) for one column of the status scenario."""
    window = result.get("window") or {}
    per_minute = window.get("per_minute", {})
    calls = window.get("calls", {})
    other = sum(count for op, count in calls.items() if op != "describejobs" and op not in SQS_OPERATIONS)
    beats = result["heartbeat_phases"]["window"]
    adoption = [item["seconds"] for item in result["adoptions"]]
    seen, sample = result["latency_seen"], result["latency_sample"]
    unexpected = sum(result["other_final_events"].values())
    return [
        ("jobs running (adopted / N)", f"{result['adopted']} / {result['n']}"),
        ("steady window (s)", _fmt(window.get("seconds"), 1)),
        ("DescribeJobs calls / min", _fmt(per_minute.get("describejobs", 0.0), 1)),
        (
            "SQS Receive / DeleteBatch calls / min",
            " / ".join(_fmt(per_minute.get(op, 0.0), 1) for op in SQS_OPERATIONS),
        ),
        ("other API calls in the window", str(other)),
        ("heartbeat in the window mean / max (s)", f"{_fmt(beats['mean'], 4)} / {_fmt(beats['max'], 4)}"),
        ("longest heartbeat, whole run (s)", _fmt(result["max_heartbeat"], 4)),
        (
            "latency median / p95 (s)",
            f"{_fmt(result['latency_median'], 3)} / {_fmt(result['latency_p95'], 3)}",
        ),
        ("latency sample reported", f"{seen} / {sample}"),
        ("adoption per chunk, longest (s)", _fmt(max(adoption, default=None), 3)),
        ("unexpected final events", str(unexpected)),
    ]


def status_table(results: list[dict[str, Any]], executors: list[str]) -> str:
    """The status scenario's table: rows metric × N, columns executors."""
    return table(results, executors, status_rows)


def status_plot(results: list[dict[str, Any]], executors: list[str], path: Path) -> bool:
    """Heartbeat duration over time in the status scenario, window shaded; False without matplotlib."""

    def draw(ax: Any, executor: str, run: dict[str, Any]) -> None:
        ax.plot(
            [hb["t"] for hb in run["heartbeats"]],
            [hb["duration"] for hb in run["heartbeats"]],
            marker=".",
            linewidth=1,
            label=executor,
        )
        window = run.get("window") or {}
        if "t_start" in window:
            start = window["t_start"]
            ax.axvspan(start, start + window["seconds"], alpha=0.08, color=ax.lines[-1].get_color())

    return _heartbeat_figure(
        results,
        executors,
        path,
        draw,
        title=lambda n: f"{n} running jobs (shaded: steady window; after it, jobs exit for latency)",
        xlabel="seconds since the first adoption",
    )


def burst_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, formatted value) for one column of the burst scenario."""
    n, seen = result["n"], result["at_scheduler"]
    all_seen = (
        _fmt(result["all_at_scheduler_seconds"], 2)
        if result["finished"]
        else f"not in {result['time_limit']:g} s ({seen} of {n})"
    )
    lost, undeleted = n - seen, n - result["deleted"]
    verdict = "OK" if lost == 0 and undeleted == 0 else f"lost {lost}, undeleted {undeleted}"
    return [
        ("most long polls side by side", str(result["receive_loops_most"])),
        ("all events at the scheduler (s)", all_seen),
        (
            "latency median / p95 (s)",
            f"{_fmt(result['latency_median'], 2)} / {_fmt(result['latency_p95'], 2)}",
        ),
        ("all messages deleted (s)", _fmt(result["all_deleted_seconds"], 2)),
        ("one long poll again (s)", _fmt(result["one_long_poll_again_seconds"], 2)),
        ("ReceiveMessage calls (empty)", f"{result['receive_calls']} ({result['empty_receives']})"),
        ("DeleteMessageBatch calls", str(result["delete_calls"])),
        ("handed out again after the visibility timeout", str(result["redelivered"])),
        ("longest drain on the scheduler's thread (s)", _fmt(result["longest_drain"], 4)),
        ("each event at the scheduler and deleted", verdict),
    ]


def burst_table(results: list[dict[str, Any]], columns: list[str]) -> str:
    """The burst scenario's table: rows metric × N, columns one long poll and the scaled receiver."""
    return table(results, columns, burst_rows)
