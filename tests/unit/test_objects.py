"""The object workers: refreshes never wait behind removals, a removal wakes the removal thread, and
shutdown waits for removals only so long.

Removals through the hand-off, batched, are tested in test_handoff.py.
"""

from __future__ import annotations

import threading
import time

from airflow_batch_executor.workloads.objects import ObjectWorker

from .helpers import ConditionalS3Gateway


class BlockingDeletes(ConditionalS3Gateway):
    """DeleteObjects waits until ``release`` is set; records the order of refreshes and removals."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.started = threading.Event()
        self.order: list[str] = []

    def delete_objects(self, bucket, keys):
        self.started.set()
        self.release.wait()
        self.order.append(f"remove {bucket}")
        return super().delete_objects(bucket, keys)


def test_a_refresh_never_waits_behind_removals():
    gateway = BlockingDeletes()
    worker = ObjectWorker(gateway, refresh_threads=1)
    worker.remove("s3://first/a.json")
    worker.start()
    assert gateway.started.wait(10)
    refreshed = threading.Event()
    worker.refresh(refreshed.set)
    assert refreshed.wait(10), "while the removal still waits for S3"
    assert gateway.order == []
    gateway.release.set()
    worker.stop()
    assert gateway.order == ["remove first"]


def test_shutdown_waits_for_removals_only_so_long_and_leaves_the_rest_to_the_lifecycle_rule(caplog):
    gateway = BlockingDeletes()
    worker = ObjectWorker(gateway, refresh_threads=1)
    for n in range(5):
        worker.remove(f"s3://bucket-{n}/a.json")
    worker.start()
    assert gateway.started.wait(10)
    worker.stop(timeout=0.2)  # returns though S3 never answers
    assert "4 workload object(s) not removed" in caplog.text and "lifecycle rule" in caplog.text
    gateway.release.set()


def test_a_removal_is_carried_out_while_refresh_threads_wait_too():
    """All object threads wait on one condition: a removal must wake the removal thread, not just one
    of the refresh threads (which would find nothing to do and wait again)."""
    gateway = ConditionalS3Gateway()
    gateway.objects[("workloads", "a/b.json")] = (b"{}", '"e"')
    worker = ObjectWorker(gateway)
    worker.start()
    worker.remove("s3://workloads/a/b.json")
    deadline = time.monotonic() + 10
    while gateway.objects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gateway.objects == {}, "removed without waiting for shutdown"
    worker.stop()


def test_deliveries_run_side_by_side_on_threads_of_their_own():
    """A wide map's children start together: their deliveries neither wait behind refreshes nor queue
    behind each other one by one."""
    worker = ObjectWorker(ConditionalS3Gateway(), refresh_threads=1, delivery_threads=3)
    worker.start()
    refresh_held, release = threading.Event(), threading.Event()
    worker.refresh(lambda: (refresh_held.set(), release.wait(10)))
    assert refresh_held.wait(10)
    together = threading.Barrier(3, timeout=10)
    done: list[int] = []
    for n in range(3):
        worker.deliver(lambda n=n: (together.wait(), done.append(n)))
    deadline = time.monotonic() + 10
    while len(done) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(done) == [0, 1, 2], "three deliveries ran at once while the refresh thread was busy"
    release.set()
    worker.stop()
