"""A stand-in for the Task SDK in S3-mode tests: the job's real bootstrap fetches the workload and
runs this instead of ``airflow.sdk.execution_time.execute_workload``, which reports what it got."""

from __future__ import annotations

SITECUSTOMIZE = """
import importlib.abc, importlib.util, os, sys

_FAKE = os.environ.get("FAKE_TASK_SDK")


class _FakeTaskSdk(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _FAKE and name == "airflow.sdk.execution_time.execute_workload":
            return importlib.util.spec_from_file_location(name, _FAKE)
        return None


sys.meta_path.insert(0, _FakeTaskSdk())
"""

FAKE_TASK_SDK = """
import base64, hashlib, json, os, stat, sys, time

path = sys.argv[sys.argv.index("--json-path") + 1]
workload = json.load(open(path))
token = workload["token"]
claims = {}
if token.count(".") == 2:  # a JWT the executor signed
    part = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
report = {
    "task_id": workload["ti"]["task_id"],
    "ti_id": workload["ti"]["id"],
    "mode": oct(stat.S_IMODE(os.stat(path).st_mode)),
    "token_sha256": None if claims else hashlib.sha256(token.encode()).hexdigest(),
    **{name: claims.get(name) for name in ("sub", "iat", "exp")},
    "now": time.time(),
}
print("FAKE-TASK-SDK " + json.dumps(report), flush=True)
"""
