"""One ``AwsBatchExecutor`` at a time, driven only through the scheduler's interface, and killed as a
crashing scheduler dies.

Every event the executor hands the scheduler (``change_state``: running, success, failed) is recorded
in order with its time, and counts as delivered once the soak drains the event buffer after the
heartbeat, as the scheduler does; events of a killed executor that were never drained died with it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from airflow_batch_executor import AwsBatchExecutor
from batch_devtools.soak.client_faults import ClientFaults
from batch_devtools.soak.records import ExecutorEvent, TryKey

log = logging.getLogger(__name__)

START_ATTEMPTS = 3


class ExecutorHandle:
    def __init__(self, generation: int, faults: ClientFaults, parallelism: int) -> None:
        self.generation = generation
        self._faults = faults
        self._parallelism = parallelism
        self.executor: Any = None
        self._undelivered: list[ExecutorEvent] = []
        self.lost_events = 0
        self.event_log_lines: list[str] = []
        self.start_failures: list[str] = []

    def start(self) -> None:
        """Make and start the executor (its clients belong to this generation); a start that fails
        (its health check hit by faults) is tried again, as a restarted scheduler would."""
        for attempt in range(1, START_ATTEMPTS + 1):
            with self._faults.owner(self.generation):
                executor = AwsBatchExecutor(parallelism=self._parallelism)
                self._record_events_of(executor)
                try:
                    executor.start()
                except Exception as error:
                    self.start_failures.append(repr(error))
                    if attempt == START_ATTEMPTS:
                        raise
                    time.sleep(1.0)
                    continue
            self.executor = executor
            return

    def _record_events_of(self, executor: Any) -> None:
        change_state = executor.change_state

        def recording(key: Any, state: Any, info: Any = None, *args: Any, **kwargs: Any) -> None:
            self._undelivered.append(
                ExecutorEvent(time.time(), self.generation, TryKey.of(key), str(state), str(info or ""))
            )
            change_state(key, state, info, *args, **kwargs)

        executor.change_state = recording

    def heartbeat(self) -> tuple[list[tuple[TryKey, str, str]], list[ExecutorEvent]]:
        """One scheduler heartbeat: the event buffer as the scheduler reads it, and every event the
        executor handed over meanwhile (the buffer keeps only the last one per key)."""
        self.executor.heartbeat()
        return self.drain()

    def drain(self) -> tuple[list[tuple[TryKey, str, str]], list[ExecutorEvent]]:
        buffer = [
            (TryKey.of(key), str(state), str(info or ""))
            for key, (state, info) in self.executor.get_event_buffer().items()
        ]
        delivered, self._undelivered = self._undelivered, []
        rows = self.executor._task_event_logs
        while rows:
            row = rows.popleft()
            self.event_log_lines.append(f"{getattr(row, 'event', '')}: {getattr(row, 'extra', '')}")
        return buffer, delivered

    @property
    def slots_available(self) -> int:
        """What the scheduler reads before queueing more: parallelism minus what the executor runs."""
        return int(self.executor.slots_available)

    def running_keys(self) -> list[TryKey]:
        """The task instances the executor counts as running (the scheduler sees them as used slots)."""
        return [TryKey.of(key) for key in self.executor.running]

    def queue(self, workload: Any) -> None:
        self.executor.queue_workload(workload, session=None)

    def revoke(self, ti: Any) -> None:
        self.executor.revoke_task(ti=ti)

    def adopt(self, tis: list[Any]) -> list[Any]:
        return list(self.executor.try_adopt_task_instances(tis))

    def kill(self) -> None:
        """Die without any cleanup: every AWS call of its clients fails from now on, undelivered events
        are lost, and its threads are stopped in the background (they can no longer reach AWS)."""
        self._faults.kill(self.generation)
        self.lost_events = len(self._undelivered)
        self._undelivered = []
        jobs = self.executor.jobs
        threading.Thread(
            target=lambda: jobs.stop(terminate_jobs=False), name=f"soak-killed-{self.generation}", daemon=True
        ).start()

    def end(self, timeout: float) -> bool:
        """``executor.end()`` (waits for every tracked job); False when it did not return in time."""
        done = threading.Event()

        def end() -> None:
            try:
                self.executor.end()
            except Exception:
                log.exception("executor.end() failed")
            finally:
                done.set()

        threading.Thread(target=end, name="soak-end", daemon=True).start()
        return done.wait(timeout)
