"""The job's bootstrap in S3 mode: fetch the workload out of band, then run it with the Task SDK.

``python -m airflow_batch_executor.in_job.bootstrap s3://bucket/prefix/<object>.json`` is the whole command of
a job submitted with ``[aws_batch_executor] workload_transport = s3://bucket/prefix``. It

1. reads the object with the job's own role (boto3's default credentials and region; the SDK's
   ``AWS_ENDPOINT_URL`` is honoured),
2. deletes it, so the token it carries exists in one place only: this container,
3. writes it to a private temporary file (mode 0600), and
4. runs ``python -m airflow.sdk.execution_time.execute_workload --json-path FILE`` (for an executor
   callback: ``python -m airflow_batch_executor.in_job.callback_runner --json-path FILE``) as its child
   (:class:`ChildSupervisor`), and until that child exits

   - relays the child's stdout and stderr as they come, with every occurrence of the workload's token
     replaced by ``***``: Airflow 3.1's Task SDK logs the whole workload, token included, when it
     starts, and the job's log is the task's live log in the UI. Hiding it here holds on every
     Airflow version, whatever the Task SDK prints;
   - forwards SIGTERM and SIGINT to it. The handlers are in place before the child starts; a signal
     that arrives before then means the task is not started at all (exit code 128 + the signal's
     number, one line saying so), one that arrives while it starts is passed on once it exists;
   - reaps every child process that ends: as a container's PID 1 it inherits orphaned processes,

   then exits with the child's exit code (128 + N when signal N ended it).

A job that cannot fetch its workload fails with one line naming the object and what to do, and
one of the exit codes below, which the executor turns into the task's failure reason. Those codes
(64-68) are the bootstrap's alone: a task that exits with one of them makes the bootstrap exit with
``EXIT_TASK_USED_RESERVED_CODE`` (1) and one line saying so, so that a task's failure is never
reported as the bootstrap's.

An array job's children share one command, which names a *directory* (a URI ending in ``/``) instead
of an object: no workload exists while a child waits. Once its container runs, the child reads its
own ECS task's ARN from the task metadata endpoint and waits (up to
:data:`~airflow_batch_executor.job_contract.DELIVERY_WAIT_SECONDS`, else ``EXIT_NOT_DELIVERED``) for
the object a scheduler writes for exactly that child and that attempt:
``<directory><index>.<task id>.json`` (:func:`~airflow_batch_executor.job_contract.delivered_key`).
Siblings know every index but not each other's task ids, so none can name another's workload; from
there on the child runs as above.

Why a Batch-level retry of a job that ran cannot find the object: its first start deleted it, and the
executor never writes an object a job consumed again (its rewrites are conditional on its own last
ETag). By then the task's try is running in Airflow, and a second start must not run it again; so a
missing object fails the job (``EXIT_OBJECT_MISSING``) instead of running anything. The executor
sends every job with ``retryStrategy.attempts = 1`` anyway (Batch also retries attempts that failed
to start, which would find the object); its own resubmissions, of jobs that failed before their
container started, write the object again first.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from types import FrameType, TracebackType
from typing import IO, BinaryIO, Self

from airflow_batch_executor.job_contract import (
    ARRAY_INDEX_VARIABLE,
    BOOTSTRAP_FAILURES,
    CALLBACK_RUNNER_MODULE,
    DELIVERY_WAIT_SECONDS,
    DELIVERY_WAIT_VARIABLE,
    EXIT_ACCESS_DENIED,
    EXIT_FETCH_FAILED,
    EXIT_NOT_DELIVERED,
    EXIT_OBJECT_MISSING,
    EXIT_TASK_USED_RESERVED_CODE,
    EXIT_USAGE,
    TASK_METADATA_VARIABLE,
    TASK_SDK_MODULE,
    delivered_key,
    is_delivery_directory,
    split_s3_uri,
)

PLACEHOLDER = b"***"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_READ_SIZE = 65536
_DRAIN_BYTES = 1 << 20
"""What is read from a pipe once the child is gone: more than a pipe holds (1 MiB at most, by
default), so all the child wrote, yet bounded, so an orphan that keeps writing cannot hold the exit."""
_SAY = "airflow-batch-executor worker: "
_RECHECK_SECONDS = 1.0
"""The longest the wait loop sleeps without looking for the child's end and for signals to pass on.
A signal or the child's exit wakes it at once through the wakeup pipe; this bounds the cost of a
wakeup that never comes (SIGCHLD set back to the default by code in this process, or a wakeup byte
lost), which would otherwise keep the job, and the try, running until Batch's timeout."""


_MISSING_CODES = {"NoSuchKey", "404"}
_DENIED_CODES = {"AccessDenied", "403", "AllAccessDisabled", "KMS.AccessDeniedException"}


class FetchError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def _split(uri: str) -> tuple[str, str]:
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError:
        bucket, key = "", ""
    if not key:
        raise FetchError(EXIT_USAGE, f"expected one argument s3://bucket/key, got {uri!r}")
    return bucket, key


def _prefix_arn(bucket: str, key: str) -> str:
    prefix, _, _ = key.rpartition("/")
    return f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(error).__name__))


def fetch(uri: str, client: object | None = None) -> bytes:
    """Read and delete the workload object; :class:`FetchError` says which object and what to do."""
    bucket, key = _split(uri)
    if client is None:
        import boto3

        client = boto3.client("s3")
    step, permission = "read", "s3:GetObject"
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]
        step, permission = "delete", "s3:DeleteObject"
        client.delete_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
    except Exception as error:  # every failure becomes one line and an exit code
        code = _error_code(error)
        if code in _MISSING_CODES and step == "read":
            raise FetchError(
                EXIT_OBJECT_MISSING,
                f"workload object {uri} does not exist: a start of this job already consumed it "
                "(AWS Batch retried the job after its container started), or the executor removed it "
                "after the task was revoked. Airflow's retries run the task again with a new job",
            ) from error
        if code in _DENIED_CODES:
            raise FetchError(
                EXIT_ACCESS_DENIED,
                f"access denied to {step} workload object {uri} ({code}): grant the job role "
                f"{permission} on {_prefix_arn(bucket, key)} (and kms:Decrypt when workload_kms_key_id "
                "is set)",
            ) from error
        if code == "NoSuchBucket":
            raise FetchError(
                EXIT_FETCH_FAILED,
                f"cannot {step} workload object {uri}: bucket {bucket!r} does not exist in the job's "
                "region; use a bucket in the job queue's region for workload_transport",
            ) from error
        raise FetchError(
            EXIT_FETCH_FAILED, f"cannot {step} workload object {uri}: {code}: {error}"
        ) from error
    return body


FIRST_PAUSE = 0.5
LONGEST_PAUSE = 5.0
"""A waiting child looks for its workload after 0.5 s, then twice as long each time, at most every 5 s:
a delivery a second after the start is found at once, a long wait costs a call every few seconds."""
METADATA_TIMEOUT = 5.0


def own_task_arn(environ: Mapping[str, str]) -> str:
    """This container's ECS task ARN, from its task metadata endpoint."""
    endpoint = environ.get(TASK_METADATA_VARIABLE)
    if not endpoint:
        raise FetchError(
            EXIT_USAGE,
            f"an array job's child needs its ECS task metadata, and {TASK_METADATA_VARIABLE} is not set: "
            "array jobs run on ECS-based compute environments (EC2 or Fargate) only",
        )
    try:
        with urllib.request.urlopen(f"{endpoint}/task", timeout=METADATA_TIMEOUT) as answer:
            arn = json.loads(answer.read())["TaskARN"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FetchError(
            EXIT_FETCH_FAILED, f"cannot read this container's task ARN from {endpoint}/task: {error}"
        ) from error
    return str(arn)


def await_delivery(
    directory_uri: str,
    environ: Mapping[str, str],
    client: object | None = None,
    *,
    wait_seconds: float = DELIVERY_WAIT_SECONDS,
    task_arn: Callable[[Mapping[str, str]], str] = own_task_arn,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """An array child's workload: wait for the object delivered to this child and this task attempt,
    then read and delete it as :func:`fetch` does."""
    raw_index = environ.get(ARRAY_INDEX_VARIABLE, "")
    if not raw_index.isdigit():
        raise FetchError(
            EXIT_USAGE,
            f"{directory_uri} names a delivery directory, which only an array job's child may use, and "
            f"{ARRAY_INDEX_VARIABLE} is {raw_index or 'not set'}",
        )
    try:
        bucket, directory_key = split_s3_uri(directory_uri)
    except ValueError as error:
        raise FetchError(
            EXIT_USAGE, f"expected one argument s3://bucket/prefix/, got {directory_uri!r}"
        ) from error
    arn = task_arn(environ)
    try:
        key = delivered_key(directory_key, int(raw_index), arn)
    except ValueError as error:
        raise FetchError(EXIT_FETCH_FAILED, f"this container's task metadata gave {error}") from error
    uri = f"s3://{bucket}/{key}"
    deadline = clock() + wait_seconds
    pause = FIRST_PAUSE
    while True:
        try:
            return fetch(uri, client)
        except FetchError as error:
            if error.exit_code != EXIT_OBJECT_MISSING:
                raise
        if clock() + pause > deadline:
            raise FetchError(
                EXIT_NOT_DELIVERED,
                f"waited {wait_seconds:g} s for this child's workload at {uri} and none came: no scheduler "
                "delivered it (is one running, and may it write under the workload_transport prefix?). "
                "The task did not start; the executor submits it again as a job of its own",
            )
        sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)


def _wait_seconds(environ: Mapping[str, str]) -> float:
    raw = environ.get(DELIVERY_WAIT_VARIABLE)
    try:
        return float(raw) if raw else DELIVERY_WAIT_SECONDS
    except ValueError:
        raise FetchError(EXIT_USAGE, f"{DELIVERY_WAIT_VARIABLE}={raw!r} is not a number of seconds") from None


def _parsed(workload: bytes) -> dict:
    try:
        parsed = json.loads(workload)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def runner_module(workload: bytes) -> str:
    """The module that runs this workload: the Task SDK, or the callback runner for a callback."""
    return CALLBACK_RUNNER_MODULE if _parsed(workload).get("type") == "ExecuteCallback" else TASK_SDK_MODULE


def workload_token(workload: bytes) -> str:
    """The token the workload carries ("" when it has none): what no log line may show."""
    token = _parsed(workload).get("token")
    return token if isinstance(token, str) else ""


def token_forms(token: str) -> set[bytes]:
    """Every spelling of the token a log line can carry: as it is, inside a Python repr (3.1's
    ``Executing workload`` line prints the workload's repr), and either of those JSON-escaped (the
    Task SDK logs JSON lines). A JWT (base64url and dots) reads the same in all of them; they differ
    only for a token with quotes, backslashes or non-ASCII characters."""
    if not token:
        return set()
    forms: set[str] = set()
    for text in (token, repr(token)[1:-1]):
        forms |= {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    return {form.encode() for form in forms}


class Redactor:
    """Replaces secrets in a byte stream as it passes, wherever the stream's chunks happen to end.

    :meth:`feed` returns all it can show at once: it holds back only a tail that may be the start of
    a secret, until the next chunk (or :meth:`finish`) decides. So lines may be of any length, need
    not end with a newline, and still reach the log as soon as the child writes them.
    """

    def __init__(self, secrets: Iterable[bytes], placeholder: bytes = PLACEHOLDER) -> None:
        self._secrets = sorted(set(secrets) - {b""}, key=len, reverse=True)
        self._pattern = re.compile(b"|".join(map(re.escape, self._secrets))) if self._secrets else None
        self._first_bytes = {secret[0] for secret in self._secrets}
        self._placeholder = placeholder
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        text = self._held + data
        shown, end = [], 0
        for match in self._pattern.finditer(text):
            shown += (text[end : match.start()], self._placeholder)
            end = match.end()
        cut = len(text) - self._partial_secret_length(text, end)
        shown.append(text[end:cut])
        self._held = text[cut:]
        return b"".join(shown)

    def finish(self) -> bytes:
        """The held-back tail at the end of the stream: the start of a secret, never a whole one."""
        held, self._held = self._held, b""
        return held

    def _partial_secret_length(self, text: bytes, start: int) -> int:
        """The length of the longest end of ``text[start:]`` that some secret begins with."""
        for begin in range(max(start, len(text) - len(self._secrets[0]) + 1), len(text)):
            if text[begin] in self._first_bytes:
                tail = text[begin:]
                if any(secret.startswith(tail) for secret in self._secrets):
                    return len(text) - begin
        return 0


class _Relay:
    """One of the child's output pipes, copied to one of the bootstrap's own through a Redactor."""

    def __init__(self, pipe: IO[bytes], target: BinaryIO, redactor: Redactor) -> None:
        self.pipe = pipe
        os.set_blocking(pipe.fileno(), False)
        self._target: BinaryIO | None = target
        self._redactor = redactor

    def pump(self) -> bool:
        """Copy one read's worth of what the pipe holds; False at its end."""
        data = self._read()
        if data:
            self._write(self._redactor.feed(data))
        return data != b""

    def close(self) -> None:
        """Copy all the pipe holds now and the held-back tail, then close it: at the pipe's end, or
        once the child is gone (an orphan may still hold the pipe open; it dies with the container)."""
        if self.pipe.closed:
            return
        left = _DRAIN_BYTES
        while left > 0 and (data := self._read()):
            self._write(self._redactor.feed(data))
            left -= len(data)
        self._write(self._redactor.finish())
        self.pipe.close()

    def _read(self) -> bytes | None:
        """What the pipe holds now: b"" at its end, None when it is empty for the moment."""
        try:
            return os.read(self.pipe.fileno(), _READ_SIZE)
        except BlockingIOError:
            return None

    def _write(self, data: bytes) -> None:
        if data and self._target is not None:
            try:
                self._target.write(data)
                self._target.flush()
            except OSError:  # our own output is gone: keep reading, so the child never blocks on a pipe
                self._target = None


def _reap(pid: int) -> int | None:
    """Reap every child process that has ended; the wait status of ``pid`` if it is one of them."""
    status_of_pid = None
    while True:
        try:
            ended, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no children left
            return status_of_pid
        if ended == 0:
            return status_of_pid
        if ended == pid:
            status_of_pid = status


def _wake(_signum: int, _frame: FrameType | None) -> None:
    """SIGCHLD's handler: doing nothing, it lets the signal reach the wakeup pipe and end a wait."""


class ChildSupervisor:
    """Runs the bootstrap's one child: its output relayed with the token hidden, SIGTERM and SIGINT
    passed on, every ended child process reaped, and its exit code returned.

    A context manager for the main thread: entering installs the signal handlers, so that no signal
    is lost between then and the child's start; leaving restores the previous ones. Signal handlers
    only record a signal; the wait loop passes it on, on the same thread that reaps, so a signal can
    never go to a process id that was already reaped (and perhaps reused). The loop reaps every child
    of this process (``os.waitpid(-1)``) and sets the child's ``Popen.returncode`` itself, so nothing
    else may wait for this process's children: it belongs in the bootstrap's own process.
    """

    def __init__(self, token: str, stdout: BinaryIO | None = None, stderr: BinaryIO | None = None) -> None:
        self._forms = token_forms(token)
        self._stdout = stdout if stdout is not None else sys.stdout.buffer
        self._stderr = stderr if stderr is not None else sys.stderr.buffer
        self._received: list[int] = []
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
        self._wakeup: tuple[int, int] | None = None
        self._previous_wakeup_fd = -1

    def __enter__(self) -> Self:
        read_end, write_end = os.pipe()
        for fd in (read_end, write_end):
            os.set_blocking(fd, False)
        self._wakeup = (read_end, write_end)
        self._previous_wakeup_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for signum in FORWARDED_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._record)
        self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _wake)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        assert self._wakeup is not None
        for fd in self._wakeup:
            os.close(fd)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self._received.append(signum)

    def run(self, command: list[str]) -> int:
        """Start ``command`` unless a signal came first, and supervise it until it exits."""
        if self._received:
            signum = self._received[0]
            self._say(f"received {signal.Signals(signum).name} before the task started; not starting it")
            return 128 + signum
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stderr is not None
        relays = [
            _Relay(child.stdout, self._stdout, Redactor(self._forms)),
            _Relay(child.stderr, self._stderr, Redactor(self._forms)),
        ]
        try:
            status = self._wait(child.pid, relays)
        finally:
            for relay in relays:
                relay.close()
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it
        return 128 - child.returncode if child.returncode < 0 else child.returncode

    def _wait(self, pid: int, relays: list[_Relay]) -> int:
        """Relay, pass signals on and reap until ``pid`` has ended; its wait status."""
        assert self._wakeup is not None
        wakeup = self._wakeup[0]
        forwarded = 0
        with selectors.DefaultSelector() as selector:
            selector.register(wakeup, selectors.EVENT_READ)
            for relay in relays:
                selector.register(relay.pipe, selectors.EVENT_READ, relay)
            while True:
                for key, _ in selector.select(_RECHECK_SECONDS):
                    if key.data is None:
                        _drain(wakeup)
                    elif not key.data.pump():
                        selector.unregister(key.fileobj)
                        key.data.close()
                for signum in self._received[forwarded:]:  # not reaped yet: the id is still the child's
                    os.kill(pid, signum)
                    forwarded += 1
                status = _reap(pid)
                if status is not None:
                    return status

    def _say(self, message: str) -> None:
        self._stderr.write(f"{_SAY}{message}\n".encode())
        self._stderr.flush()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, _READ_SIZE):
            pass
    except BlockingIOError:
        pass


def run_task_sdk(workload: bytes) -> int:
    """Run the workload's runner on a private copy of it, under a ChildSupervisor; its exit code.

    Call it from the main thread of a process with no other children (it installs signal handlers
    and reaps every child), as ``python -m airflow_batch_executor.in_job.bootstrap`` does.
    """
    with ChildSupervisor(workload_token(workload)) as supervisor:
        fd, path = tempfile.mkstemp(prefix="airflow-workload-", suffix=".json")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(workload)
            return supervisor.run([sys.executable, "-m", runner_module(workload), "--json-path", path])
        finally:
            os.unlink(path)


def main(
    argv: list[str] | None = None,
    *,
    client: object | None = None,
    run: Callable[[bytes], int] = run_task_sdk,
    environ: Mapping[str, str] | None = None,
) -> int:
    """The bootstrap: fetch the workload named by the one argument (or, for an array child, delivered
    to the directory it names), ``run`` it, return the exit code.

    ``client`` (an S3 client), ``run`` and ``environ`` let a caller run the bootstrap in its own
    process, e.g. a test that runs many jobs' bootstraps inline with a stand-in for the Task SDK.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) != 1:
            raise FetchError(EXIT_USAGE, f"expected one argument s3://bucket/key, got {args!r}")
        if is_delivery_directory(args[0]):
            environ = os.environ if environ is None else environ
            workload = await_delivery(args[0], environ, client, wait_seconds=_wait_seconds(environ))
        else:
            workload = fetch(args[0], client)
    except FetchError as error:
        print(f"{_SAY}{error}", file=sys.stderr, flush=True)
        return error.exit_code
    code = run(workload)
    if code in BOOTSTRAP_FAILURES:
        print(
            f"{_SAY}the task exited with code {code}, which this bootstrap keeps for its own failures; "
            f"exiting with {EXIT_TASK_USED_RESERVED_CODE} instead, so that the task's failure is not "
            "reported as the bootstrap's",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_TASK_USED_RESERVED_CODE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
