"""A seeded fault soak of the executor against the in-process local Batch (``scripts/soak``).

It drives thousands of task instance tries through one ``AwsBatchExecutor`` at a time, only through
the scheduler's interface (:mod:`.scheduler` plays the scheduler), against the local Batch in inline
mode, while faults drawn from a printed seed hit every layer: the executor's own AWS calls
(:mod:`.client_faults`), the jobs and their status events (the local Batch's faults, aimed at each
try's job name, :mod:`.plan`), the executor itself (killed and replaced by one that adopts), revokes,
a prune, S3 latency and short-lived tokens. Then the invariants (:mod:`.invariants`) are checked on
the local Batch's own history and records, and a report is printed (:mod:`.report`).

The rule that keeps the soak honest about revokes (Airflow revokes only tasks that never started,
and a revoke must never race a job about to start) is described in :mod:`.scheduler`.
"""
