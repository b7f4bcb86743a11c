"""The few calls the stack makes to Airflow's REST API: health, triggering DAG runs, task logs and
connection tests.

Triggering goes through the API server (not ``airflow dags trigger``) because it answers in
milliseconds, where each CLI call pays Airflow's import time again.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

REQUEST_TIMEOUT_SECONDS = 60.0
"""The stack's API server is one worker that also answers every running job's execution-API calls; on a
busy 2-core machine a request can wait behind them for more than 10 s."""
HEALTH_TIMEOUT_SECONDS = 10.0
"""The health check is asked again until the server answers, so a slow answer need not be waited for."""


class ApiClient:
    """Talks to one API server with a token from SimpleAuthManager's all-admins login."""

    def __init__(self, base_url: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._token: str | None = None

    def healthy(self) -> bool:
        try:
            self._request(
                "GET",
                "/api/v2/monitor/health",
                authenticated=False,
                timeout=min(self._timeout, HEALTH_TIMEOUT_SECONDS),
            )
        except (OSError, ValueError):
            return False
        return True

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Create a DAG run now; returns its run id."""
        body = {"logical_date": None, "conf": conf or {}}
        answer = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        return str(answer["dag_run_id"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> Any:
        """A task instance try's log as the UI reads it: ``{"content": [{"event": ...}, ...], ...}``."""
        path = (
            f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"
            f"/logs/{try_number}?map_index={map_index}&full_content=true"
        )
        return self._request("GET", path)

    def enqueue_connection_test(self, connection: dict[str, Any]) -> str:
        """Ask for a connection test on a worker (Airflow 3.3); returns the token to poll it with."""
        return str(self._request("POST", "/api/v2/connections/enqueue-test", connection)["token"])

    def connection_test(self, token: str) -> Any:
        """A connection test's ``state`` and ``result_message``, as the UI polls them."""
        return self._request(
            "GET", "/api/v2/connections/enqueue-test", headers={"Airflow-Connection-Test-Token": token}
        )

    def _token_header(self) -> dict[str, str]:
        if self._token is None:
            self._token = str(self._request("GET", "/auth/token", authenticated=False)["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        authenticated: bool = True,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **(self._token_header() if authenticated else {}),
            **(headers or {}),
        }
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self._timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise ValueError(f"{method} {path} answered {error.code}: {detail}") from error


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")
