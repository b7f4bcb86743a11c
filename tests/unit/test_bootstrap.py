"""The job's bootstrap: one line naming the object and the fix for each way fetching can fail, and
the Task SDK run on a private file: its output relayed with the token hidden, signals passed on
(also one that comes before it starts), orphans reaped, and its exit code passed on unless it is one
of the bootstrap's own."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_batch_executor.in_job import bootstrap as worker
from airflow_batch_executor.job_contract import BOOTSTRAP_FAILURES, CALLBACK_RUNNER_MODULE

from .helpers import client_error

URI = "s3://workloads/airflow/batch/dag-task-try1-abc.0123.json"


class StubS3:
    def __init__(self, objects=None, get_error=None, delete_error=None):
        self.objects = dict(objects or {})
        self.get_error, self.delete_error = get_error, delete_error

    def get_object(self, Bucket, Key):
        if self.get_error:
            raise self.get_error
        if (Bucket, Key) not in self.objects:
            raise client_error("NoSuchKey", 404, "GetObject")
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
            StubS3(get_error=client_error("AccessDenied", 403, "GetObject")),
            worker.EXIT_ACCESS_DENIED,
            [URI, "s3:GetObject", "arn:aws:s3:::workloads/airflow/batch/*"],
        ),
        (
            StubS3(
                {("workloads", "airflow/batch/dag-task-try1-abc.0123.json"): b"{}"},
                delete_error=client_error("AccessDenied", 403, "DeleteObject"),
            ),
            worker.EXIT_ACCESS_DENIED,
            [URI, "s3:DeleteObject", "delete"],
        ),
        (
            StubS3(get_error=client_error("NoSuchBucket", 404, "GetObject")),
            worker.EXIT_FETCH_FAILED,
            [URI, "bucket 'workloads' does not exist"],
        ),
        (
            StubS3(get_error=client_error("InternalError", 500, "GetObject")),
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
    assert code in BOOTSTRAP_FAILURES


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
        "from airflow_batch_executor.in_job import bootstrap as worker\n"
        "worker.TASK_SDK_MODULE = 'fake_task_sdk'\n"
        f"sys.exit(worker.run_task_sdk({body.encode()!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake_dir), *sys.path])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True, **popen)


def test_the_task_sdk_gets_a_private_file_and_its_exit_code_is_passed_on(fake_task_sdk):
    process = run_bootstrap(fake_task_sdk, '{"token": "the-token"}', stdout=subprocess.PIPE)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 7
    assert 'mode=600 body={"token": "***"}' in out  # the file holds the token; the log does not
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
    assert worker.runner_module(b'{"type": "ExecuteCallback", "callback": {}}') == CALLBACK_RUNNER_MODULE
    assert worker.runner_module(b'{"type": "ExecuteTask"}') == worker.TASK_SDK_MODULE
    assert worker.runner_module(b"not json") == worker.TASK_SDK_MODULE


# --- the token never reaches the job's log -------------------------------------------------------

TOKEN = "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ0aS0xIiwic2NvcGUiOiJ3b3JrbG9hZCJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
SECRET = TOKEN.encode()


def redact(chunks, token: str = TOKEN) -> bytes:
    redactor = worker.Redactor(worker.token_forms(token))
    return b"".join(redactor.feed(chunk) for chunk in chunks) + redactor.finish()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


@pytest.mark.parametrize(
    "text, shown",
    [
        (b"start " + SECRET + b" end\n", b"start *** end\n"),
        (b"a " + SECRET + b" b " + SECRET + SECRET + b" c\n", b"a *** b ****** c\n"),
        (b"line\nlast line " + SECRET, b"line\nlast line ***"),
        (SECRET[:-1] + b"\n" + SECRET[1:] + b"\n", SECRET[:-1] + b"\n" + SECRET[1:] + b"\n"),
        (b"no token at all\n", b"no token at all\n"),
    ],
)
def test_the_token_is_replaced_wherever_it_is_in_the_stream(text, shown):
    assert redact([text]) == shown
    assert redact([bytes([byte]) for byte in text]) == shown  # one byte at a time
    for cut in range(len(text) + 1):  # split anywhere, also inside the token
        assert redact([text[:cut], text[cut:]]) == shown


def test_a_very_long_line_with_the_token_is_redacted_in_any_chunking():
    line = b"x" * 1_000_000 + SECRET + b"y" * 300_000 + SECRET + b"z" * 70_001
    shown = b"x" * 1_000_000 + b"***" + b"y" * 300_000 + b"***" + b"z" * 70_001
    for size in (7, 4096, 65536, len(line)):
        assert redact(chunked(line, size)) == shown


def test_binary_junk_passes_unchanged_except_for_the_token():
    rng = random.Random(7)
    pieces = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(50)]
    stream = SECRET.join(pieces) + b"\x00\xff\xfe" + SECRET[:10]
    for size in (1, 13, 1000, 65536):
        assert redact(chunked(stream, size)) == stream.replace(SECRET, b"***")


@given(
    st.lists(
        st.one_of(st.just(SECRET), st.binary(max_size=40), st.sampled_from([SECRET[:n] for n in (1, 3, 60)]))
    ),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1),
)
def test_redaction_of_any_stream_in_any_chunks_equals_replacing_the_token_in_the_whole(parts, sizes):
    stream = b"".join(parts)
    chunks, start = [], 0
    for size in sizes * (len(stream) // sum(sizes) + 1):
        chunks.append(stream[start : start + size])
        start += size
    assert b"".join(chunks) == stream
    assert redact(chunks) == stream.replace(SECRET, b"***")


def test_output_is_shown_at_once_unless_it_may_be_the_start_of_the_token():
    redactor = worker.Redactor(worker.token_forms(TOKEN))
    assert redactor.feed(b"progress 50% (no newline)") == b"progress 50% (no newline)"
    assert redactor.feed(b"token next: " + SECRET[:5]) == b"token next: "
    assert redactor.feed(SECRET[5:] + b" ok") == b"*** ok"
    assert redactor.feed(b"ends like the token: " + SECRET[:2]) == b"ends like the token: "
    assert redactor.finish() == SECRET[:2]  # at the end, a token's first bytes are not the token


def test_a_token_that_escaping_would_change_is_hidden_in_every_spelling_a_log_line_gives_it():
    token = "tok\"en\\ü'x"
    lines = [
        token,
        json.dumps({"token": token}),  # a JSON log line with the token as a field
        repr({"token": token}),  # a Python repr
        json.dumps({"event": "Executing workload", "workload": repr({"token": token})}),  # 3.1's line
        json.dumps({"token": token}, ensure_ascii=False),
    ]
    shown = redact([line.encode() + b"\n" for line in lines], token=token)
    for form in worker.token_forms(token):
        assert form not in shown
    assert shown.count(b"***") == len(lines)


def test_no_token_means_nothing_to_hide():
    assert worker.token_forms("") == set()
    assert redact([b"a", b"b\n"], token="") == b"ab\n"
    assert worker.workload_token(b'{"token": "x"}') == "x"
    assert worker.workload_token(b'{"type": "ExecuteTask"}') == worker.workload_token(b"[1]") == ""


def supervise(script: str, tmp_path, **popen) -> subprocess.Popen:
    """A bootstrap process that supervises ``python -c CHILD`` with ``TOKEN`` as its token."""
    (tmp_path / "child.py").write_text(textwrap.dedent(script))
    code = textwrap.dedent(
        f"""
        import sys
        from airflow_batch_executor.in_job import bootstrap as worker
        with worker.ChildSupervisor({TOKEN!r}) as supervisor:
            sys.exit(supervisor.run([sys.executable, {str(tmp_path / "child.py")!r}]))
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], **popen)


def test_the_bootstrap_relays_both_streams_with_the_token_hidden_and_exits_with_the_childs_code(tmp_path):
    junk = random.Random(3).randbytes(5000)
    (tmp_path / "junk").write_bytes(junk)
    process = supervise(
        f"""
        import sys
        token = {TOKEN!r}.encode()
        out, err = sys.stdout.buffer, sys.stderr.buffer
        out.write(b"Executing workload token='" + token + b"' and again " + token + b"\\n")
        out.write(b"x" * 2_000_000 + token + b"y" * 100 + b"\\n")
        out.write(open({str(tmp_path / "junk")!r}, "rb").read() + token)
        err.write(b"on stderr " + token + b"\\nlast line without newline " + token)
        sys.exit(3)
        """,
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3
    assert (
        out
        == (
            b"Executing workload token='***' and again ***\n" + b"x" * 2_000_000 + b"***" + b"y" * 100 + b"\n"
        )
        + junk
        + b"***"
    )
    assert err == b"on stderr ***\nlast line without newline ***"


def test_the_childs_output_reaches_the_log_while_the_child_runs(tmp_path):
    process = supervise(
        f"""
        import sys
        print("started with", {TOKEN!r}, flush=True)
        sys.stdout.write("no newline yet")
        sys.stdout.flush()
        sys.stdin.readline()
        """,
        tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None
    assert process.stdout.readline() == b"started with ***\n"  # the child is still waiting on stdin
    assert process.stdout.read(len(b"no newline yet")) == b"no newline yet"
    process.stdin.write(b"go\n")
    process.stdin.close()
    assert process.wait(timeout=30) == 0


# --- signals, orphans and exit codes -------------------------------------------------------------

BOOTSTRAP_WITH = """
import os, signal, subprocess, sys
from airflow_batch_executor.in_job import bootstrap as worker
{before}
with worker.ChildSupervisor("token") as supervisor:
    {inside}
    sys.exit(supervisor.run([sys.executable, "-c", {child!r}]))
"""


def run_script(before: str, inside: str, child: str, **popen) -> subprocess.Popen:
    code = BOOTSTRAP_WITH.format(before=before, inside=inside, child=child)
    return subprocess.Popen([sys.executable, "-c", code], **popen)


def test_a_signal_before_the_child_starts_means_it_never_starts(tmp_path):
    marker = tmp_path / "started"
    process = run_script(
        "", "os.kill(os.getpid(), signal.SIGTERM)", f"open({str(marker)!r}, 'w')", stderr=subprocess.PIPE
    )
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    assert (
        err == b"airflow-batch-executor worker: received SIGTERM before the task started; not starting it\n"
    )
    assert not marker.exists()


def test_a_signal_while_the_child_starts_is_passed_on_once_it_exists():
    # A signal arriving as Popen returns: handled only by the wait loop. The child waits on a stdin
    # that never ends, so only the forwarded SIGTERM can end it.
    before = textwrap.dedent(
        """
        real_popen = subprocess.Popen
        def popen_then_signal(*args, **kwargs):
            child = real_popen(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGTERM)
            return child
        subprocess.Popen = popen_then_signal
        """
    )
    process = run_script(before, "pass", "import sys; sys.stdin.read()", stdin=subprocess.PIPE)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert process.stdin is not None
    process.stdin.close()


def test_sigint_is_forwarded_and_the_childs_own_exit_code_is_kept():
    child = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(9))\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = run_script("", "pass", child, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 9
    assert process.stdin is not None
    process.stdin.close()


def test_the_childs_end_is_seen_even_when_no_sigchld_wakes_the_loop():
    """SIGCHLD set back to its default (code in this process may do so) ends no wait: the loop still
    sees the child's end. The child closes its output first, so no pipe's end wakes the loop either."""
    child = "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(0.5)\nraise SystemExit(4)\n"
    process = run_script("", "signal.signal(signal.SIGCHLD, signal.SIG_DFL)", child)
    assert process.wait(timeout=30) == 4


def zombie_or_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")
def test_orphans_are_reaped_while_the_child_runs():
    """The bootstrap process makes itself a subreaper, as PID 1 is: an orphaned grandchild becomes its
    child, and must not stay a zombie while the task runs."""
    before = "import ctypes\nassert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # SUBREAPER"
    child = textwrap.dedent(
        """
        import subprocess, sys
        orphan_maker = (
            "import subprocess, sys; "
            "print(subprocess.Popen([sys.executable, '-c', 'pass']).pid, flush=True)"
        )
        middle = subprocess.Popen([sys.executable, "-c", orphan_maker], stdout=subprocess.PIPE)
        grandchild = int(middle.stdout.read())
        middle.wait()  # the grandchild is now an orphan, reparented to the subreaper
        print("grandchild", grandchild, flush=True)
        sys.stdin.readline()
        sys.exit(5)
        """
    )
    process = run_script(before, "pass", child, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdin is not None
    word, pid = process.stdout.readline().split()
    assert word == b"grandchild"
    deadline = time.monotonic() + 30
    while zombie_or_alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not zombie_or_alive(int(pid)), Path(f"/proc/{int(pid)}/status").read_text()
    assert process.poll() is None  # reaped while the task still runs
    process.stdin.write(b"done\n")
    process.stdin.close()
    assert process.wait(timeout=30) == 5


def test_a_child_killed_by_a_signal_exits_like_a_container_does():
    process = run_script("", "pass", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert process.wait(timeout=30) == 128 + signal.SIGKILL


STORED = {("workloads", "airflow/batch/dag-task-try1-abc.0123.json"): b'{"token": "t"}'}


@pytest.mark.parametrize("code", sorted(BOOTSTRAP_FAILURES))
def test_a_task_exiting_with_a_bootstrap_code_exits_1_with_one_line_saying_why(code, capsys):
    assert worker.main([URI], client=StubS3(STORED), run=lambda _: code) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"the task exited with code {code}, which this bootstrap keeps for its own failures" in err


@pytest.mark.parametrize("code", [0, 1, 2, 7, 63, 69, 137, 143])
def test_any_other_exit_code_of_the_task_is_the_bootstraps(code, capsys):
    assert worker.main([URI], client=StubS3(STORED), run=lambda _: code) == code
    assert capsys.readouterr().err == ""


def test_main_runs_the_fetched_workload_with_the_given_client_and_runner():
    s3, seen = StubS3(STORED), []
    assert worker.main([URI], client=s3, run=lambda workload: seen.append(workload) or 0) == 0
    assert seen == [b'{"token": "t"}'] and s3.objects == {}


def test_a_fetch_failure_runs_nothing(capsys):
    ran = []
    assert worker.main([URI], client=StubS3(), run=ran.append) == worker.EXIT_OBJECT_MISSING
    assert ran == [] and "does not exist" in capsys.readouterr().err


TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/batch/0123456789abcdef0123456789abcdef"
DIRECTORY = "s3://workloads/airflow/batch/dag-task.r1/"
CHILD_KEY = "airflow/batch/dag-task.r1/3.0123456789abcdef0123456789abcdef.json"


class Clock:
    """Time that passes only when the bootstrap sleeps."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class DeliveredAfter(StubS3):
    """S3 where the child's workload appears after the child's ``reads``-th look, and every key asked for
    is recorded."""

    def __init__(self, reads, objects=None):
        super().__init__(objects)
        self.reads, self.asked = reads, []

    def get_object(self, Bucket, Key):
        self.asked.append(Key)
        if len(self.asked) == self.reads:
            self.objects[(Bucket, CHILD_KEY)] = b'{"token": "child-3"}'
        return super().get_object(Bucket, Key)


def await_child(s3, clock, environ=None, wait_seconds=60.0):
    environ = {"AWS_BATCH_JOB_ARRAY_INDEX": "3"} if environ is None else environ
    return worker.await_delivery(
        DIRECTORY,
        environ,
        s3,
        wait_seconds=wait_seconds,
        task_arn=lambda _: TASK_ARN,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )


def test_an_array_child_waits_for_the_workload_delivered_to_its_own_task_and_consumes_it():
    sibling = ("workloads", "airflow/batch/dag-task.r1/4.fedcba9876543210fedcba9876543210.json")
    s3, clock = DeliveredAfter(reads=4, objects={sibling: b'{"token": "child-4"}'}), Clock()
    assert await_child(s3, clock) == b'{"token": "child-3"}'
    assert set(s3.asked) == {CHILD_KEY}, "a child asks for its own key and no other"
    assert s3.objects == {sibling: b'{"token": "child-4"}'}
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_a_child_nobody_delivers_to_gives_up_with_its_own_exit_code_and_says_why():
    s3, clock = DeliveredAfter(reads=0), Clock()
    with pytest.raises(worker.FetchError) as error:
        await_child(s3, clock, wait_seconds=30.0)
    assert error.value.exit_code == worker.EXIT_NOT_DELIVERED in BOOTSTRAP_FAILURES
    assert f"s3://workloads/{CHILD_KEY}" in str(error.value) and "did not start" in str(error.value)
    assert clock.now <= 30.0 and max(clock.sleeps) == worker.LONGEST_PAUSE


@pytest.mark.parametrize(
    "environ, code, text",
    [
        ({}, worker.EXIT_USAGE, "only an array job's child"),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "x"}, worker.EXIT_USAGE, "only an array job's child"),
    ],
)
def test_a_directory_outside_an_array_child_is_a_usage_error(environ, code, text):
    with pytest.raises(worker.FetchError) as error:
        await_child(DeliveredAfter(reads=1), Clock(), environ=environ)
    assert error.value.exit_code == code and text in str(error.value)


def test_without_task_metadata_a_child_cannot_know_its_key():
    with pytest.raises(worker.FetchError) as error:
        worker.own_task_arn({})
    assert error.value.exit_code == worker.EXIT_USAGE
    assert "ECS_CONTAINER_METADATA_URI_V4" in str(error.value)


def test_access_denied_while_waiting_fails_at_once():
    s3, clock = StubS3(get_error=client_error("AccessDenied", 403, "GetObject")), Clock()
    with pytest.raises(worker.FetchError) as error:
        await_child(s3, clock)
    assert error.value.exit_code == worker.EXIT_ACCESS_DENIED and clock.sleeps == []
