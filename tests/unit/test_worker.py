"""The job's bootstrap: one line naming the object and the fix for each way fetching can fail,
and the Task SDK run on a private file with its exit code and signals passed on."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from botocore.exceptions import ClientError

from airflow_batch_executor import worker

URI = "s3://workloads/airflow/batch/dag-task-try1-abc.0123.json"


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class StubS3:
    def __init__(self, objects=None, get_error=None, delete_error=None):
        self.objects = dict(objects or {})
        self.get_error, self.delete_error = get_error, delete_error

    def get_object(self, Bucket, Key):
        if self.get_error:
            raise self.get_error
        if (Bucket, Key) not in self.objects:
            raise client_error("NoSuchKey", "GetObject")
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}

    def delete_object(self, Bucket, Key):
        if self.delete_error:
            raise self.delete_error
        self.objects.pop((Bucket, Key), None)


def test_fetch_reads_and_deletes_the_object():
    s3 = StubS3({("workloads", "airflow/batch/dag-task-try1-abc.0123.json"): b'{"token": "t"}'})
    assert worker.fetch(URI, s3) == b'{"token": "t"}'
    assert s3.objects == {}


@pytest.mark.parametrize(
    "s3, code, texts",
    [
        (StubS3(), worker.EXIT_OBJECT_MISSING, [URI, "does not exist", "already consumed"]),
        (
            StubS3(get_error=client_error("AccessDenied", "GetObject")),
            worker.EXIT_ACCESS_DENIED,
            [URI, "s3:GetObject", "arn:aws:s3:::workloads/airflow/batch/*"],
        ),
        (
            StubS3(
                {("workloads", "airflow/batch/dag-task-try1-abc.0123.json"): b"{}"},
                delete_error=client_error("AccessDenied", "DeleteObject"),
            ),
            worker.EXIT_ACCESS_DENIED,
            [URI, "s3:DeleteObject", "delete"],
        ),
        (
            StubS3(get_error=client_error("NoSuchBucket", "GetObject")),
            worker.EXIT_FETCH_FAILED,
            [URI, "bucket 'workloads' does not exist"],
        ),
        (
            StubS3(get_error=client_error("InternalError", "GetObject")),
            worker.EXIT_FETCH_FAILED,
            [URI, "InternalError"],
        ),
    ],
)
def test_each_fetch_failure_is_one_line_naming_the_object(s3, code, texts):
    with pytest.raises(worker.FetchError) as error:
        worker.fetch(URI, s3)
    assert error.value.exit_code == code
    message = str(error.value)
    assert "\n" not in message
    for text in texts:
        assert text in message
    assert code in worker.FAILURES


@pytest.mark.parametrize("args", [[], ["s3://bucket-only"], ["http://x/y"], [URI, URI]])
def test_a_malformed_command_exits_with_the_usage_code(args, capsys):
    assert worker.main(args) == worker.EXIT_USAGE
    assert "expected one argument s3://bucket/key" in capsys.readouterr().err


@pytest.fixture
def fake_task_sdk(tmp_path):
    """A stand-in for the Task SDK that reports what it was given (the real one needs an api-server)."""
    (tmp_path / "fake_task_sdk.py").write_text(
        textwrap.dedent(
            """
            import os, signal, stat, sys, time
            path = sys.argv[sys.argv.index("--json-path") + 1]
            body = open(path).read()
            if "sleep" in body:
                signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(42)))
            mode = stat.S_IMODE(os.stat(path).st_mode)
            print(f"mode={mode:o} body={body} path={path}", flush=True)
            if "sleep" in body:
                time.sleep(30)
            sys.exit(7)
            """
        )
    )
    return tmp_path


def run_bootstrap(fake_dir, body: str, **popen) -> subprocess.Popen:
    code = (
        "import sys\n"
        "from airflow_batch_executor import worker\n"
        "worker.TASK_SDK_MODULE = 'fake_task_sdk'\n"
        f"sys.exit(worker.run_task_sdk({body.encode()!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake_dir), *sys.path])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True, **popen)


def test_the_task_sdk_gets_a_private_file_and_its_exit_code_is_passed_on(fake_task_sdk):
    process = run_bootstrap(fake_task_sdk, '{"token": "t"}', stdout=subprocess.PIPE)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 7
    assert 'mode=600 body={"token": "t"}' in out
    path = out.rsplit("path=", 1)[1].strip()
    assert not os.path.exists(path)


def test_sigterm_is_forwarded_to_the_task_sdk(fake_task_sdk):
    process = run_bootstrap(fake_task_sdk, '{"sleep": 1}', stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline()  # the fake has started and installed its handler
    assert "mode=600" in line
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert "got SIGTERM" in out
    assert process.returncode == 42


def test_a_callback_workload_runs_with_the_callback_runner_and_anything_else_with_the_task_sdk():
    assert worker.runner_module(b'{"type": "ExecuteCallback", "callback": {}}') == worker.CALLBACK_MODULE
    assert worker.runner_module(b'{"type": "ExecuteTask"}') == worker.TASK_SDK_MODULE
    assert worker.runner_module(b"not json") == worker.TASK_SDK_MODULE
