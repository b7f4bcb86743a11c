"""workloads/delivery.py against a stub S3: the marker decides who delivers, and to which attempt."""

from __future__ import annotations

import pytest

from airflow_batch_executor.workloads.delivery import Deliverer

from .helpers import client_error

DIRECTORY = "s3://bucket/prefix/array.r1/"
FIRST = "arn:aws:ecs:us-east-1:123456789012:task/c/aaaaaaaa"
SECOND = "arn:aws:ecs:us-east-1:123456789012:task/c/bbbbbbbb"


class StubGateway:
    """Conditional writes as S3 makes them; ``fail_next`` makes the next workload write fail once."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.fail_next = False

    def put_object(self, bucket, key, body, kms_key_id=None, *, if_match=None, if_absent=False):
        assert if_absent, "every delivery write is conditional on nothing being there"
        if key.endswith(".json") and self.fail_next:
            self.fail_next = False
            raise client_error("InternalError", 500, "PutObject")
        if key in self.objects:
            raise client_error("PreconditionFailed", 412, "PutObject")
        self.objects[key] = body
        return '"etag"'

    def get_object(self, bucket, key):
        return self.objects[key], '"etag"'


def test_a_delivery_whose_workload_write_failed_is_finished_by_its_retry_and_no_other_attempt_gets_one():
    gateway = StubGateway()
    deliverer = Deliverer(gateway, kms_key_id=None)
    gateway.fail_next = True
    with pytest.raises(Exception, match="InternalError"):
        deliverer.deliver(DIRECTORY, 5, FIRST, b"workload")
    assert set(gateway.objects) == {"prefix/array.r1/5.delivered"}

    done = deliverer.deliver(DIRECTORY, 5, FIRST, b"workload")
    assert (done.by_us, done.task_arn) == (True, FIRST)
    assert gateway.objects["prefix/array.r1/5.aaaaaaaa.json"] == b"workload"

    for asker in (deliverer, Deliverer(gateway, kms_key_id=None)):
        refused = asker.deliver(DIRECTORY, 5, SECOND, b"workload")
        assert (refused.by_us, refused.task_arn, refused.object_uri) == (False, FIRST, None)
    assert not any("bbbbbbbb" in key for key in gateway.objects)


def test_another_schedulers_marker_means_it_delivers_even_to_the_same_attempt():
    gateway = StubGateway()
    gateway.objects["prefix/array.r1/5.delivered"] = FIRST.encode()
    result = Deliverer(gateway, kms_key_id=None).deliver(DIRECTORY, 5, FIRST, b"workload")
    assert (result.by_us, result.task_arn) == (False, FIRST)
    assert "prefix/array.r1/5.aaaaaaaa.json" not in gateway.objects
