"""Test-wide set-up, for tests/ and devtools/tests/ alike: every test run gets its own AIRFLOW_HOME,
never the user's."""

from __future__ import annotations

import logging
import os
import tempfile

_home = tempfile.mkdtemp(prefix="abe-test-airflow-home-")
os.environ["AIRFLOW_HOME"] = _home
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_home}/airflow.db")
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "test-secret-for-the-test-suite-only-0123456789")
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)

# The in-process local Batch serves every API call through werkzeug, which logs each request at INFO.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
