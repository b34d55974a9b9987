"""Several pods of one spec, as `juju scale-application mlflow-server 2` runs them.

Kubernetes gives each replica its own IP; on loopback the replicas differ
only in port, which is all this changes in the rendered spec.
"""

import http.client
import json
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import harness
import pytest
from mlflow_venvs import NEWEST_MLFLOW, ensure_venv, image_mlflow_version, image_of
from pod_runner import Pod, secrets
from server_set import on_port
from servers import free_port

pytestmark = pytest.mark.e2e

HEAD = (
    "from alembic.script import ScriptDirectory\n"
    "from mlflow.store.db.utils import _get_alembic_config\n"
    "print(ScriptDirectory.from_config(_get_alembic_config('sqlite://')).get_current_head())\n"
)


def _schema_version(mariadb, database: str) -> str:
    return mariadb.sql(f"SELECT version_num FROM `{database}`.alembic_version;").split()[-1]


def _run_id(port: int, run_id: str) -> dict:
    # A worker's first request opens the store, and uvicorn restarts a worker
    # that misses its health ping: on a loaded machine the first tries may
    # time out or be cut. A server that cannot answer still fails here.
    deadline = time.monotonic() + 300
    while True:
        try:
            status, body = harness.http_get(port, f"/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=60)
            break
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    assert status == 200, body
    return json.loads(body)["run"]


def test_two_replicas_migrate_an_old_database_once_and_share_it(deploy, mariadb):
    old, new = image_mlflow_version(), NEWEST_MLFLOW
    first = deploy(old)
    logged = first.run_notebook()
    first.pod.stop()

    # An image upgrade on an application scaled to two: both pods of the new
    # spec start together on the database the old MLflow wrote.
    upgraded = first.driver.attach_image(first.outcome.state, image_of(new))
    image_bin = ensure_venv(new)
    pods = [Pod(on_port(upgraded.spec, free_port()), image_bin, first.workdir / f"replica-{i}") for i in range(2)]
    barrier = threading.Barrier(len(pods))

    def init(pod: Pod) -> None:
        barrier.wait()
        pod.run_init_containers()

    try:
        with ThreadPoolExecutor(len(pods)) as pool:
            failures = [f.exception() for f in [pool.submit(init, pod) for pod in pods]]
        # First attempt, no Kubernetes retry: each init container succeeded.
        assert failures == [None, None], [str(f) for f in failures]
        init_logs = [pod.tail(next(c for c in pod.containers if c.init), 400) for pod in pods]
        assert all("mlflow database schema is up to date" in log for log in init_logs), init_logs

        head = subprocess.run(
            [str(image_bin / "python"), "-c", HEAD], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        assert _schema_version(mariadb, first.database) == head

        for pod in pods:
            pod.start()
        for pod in pods:
            pod.wait_ready(timeout=240)
        ports = [pod.readiness[1] for pod in pods]

        # Both serve the old run with its metrics.
        for port in ports:
            run = _run_id(port, logged["run_id"])
            assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == pytest.approx(logged["metrics"])

        # A notebook through the second replica lands where the first one reads.
        through_second = dict(first.notebook_env)
        through_second["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{ports[1]}"
        report = harness.run_notebook(through_second, first.workdir, image_bin)
        assert report["mlflow_version"] == new
        assert logged["run_id"] in report["runs_before"]
        assert report["model_versions"] == [1, 2]  # version 1, registered through 2.22.0, survived
        assert report["predictions_match"] is True
        assert _run_id(ports[0], report["run_id"])["info"]["run_id"] == report["run_id"]
    finally:
        for pod in pods:
            pod.stop()


def test_two_replicas_starting_together_on_an_empty_database_both_serve(deploy, mariadb):
    """A new deployment scaled to two before its first start: both pods run the
    init container together, then both servers. The init container creates the
    tables under its lock, so no server races another to create them."""
    version = image_mlflow_version()
    first = deploy(version)
    first.pod.stop()
    empty = f"mlflow_{uuid.uuid4().hex[:8]}"
    mariadb.create_database(empty)
    uri = secrets(first.spec)["mlflow-server-db"]["MLFLOW_BACKEND_STORE_URI"]
    assert uri.endswith(f"/{first.database}")
    env = {"MLFLOW_BACKEND_STORE_URI": uri[: -len(first.database)] + empty}
    pods = [Pod(on_port(first.spec, free_port()), first.image_bin, first.workdir / f"new-{i}", env) for i in range(2)]
    barrier = threading.Barrier(len(pods))

    def together(step):
        def run(pod: Pod):
            barrier.wait()
            return step(pod)

        with ThreadPoolExecutor(len(pods)) as pool:
            return [f.exception() for f in [pool.submit(run, pod) for pod in pods]]

    try:
        failures = together(Pod.run_init_containers)
        assert failures == [None, None], [str(f) for f in failures]
        init_logs = sorted(pod.tail(next(c for c in pod.containers if c.init), 400) for pod in pods)
        created = ["empty mlflow database: created its tables" in log for log in init_logs]
        current = ["mlflow database schema is up to date" in log for log in init_logs]
        assert sorted(zip(created, current)) == [(False, True), (True, False)], init_logs

        assert together(Pod.start) == [None, None]
        for pod in pods:
            pod.wait_ready(timeout=240)
        time.sleep(2)  # a server that lost a race exits right after its workers start
        # A str, not a list: pytest cuts a non-str message's repr to about 240 characters.
        exited = "\n\n".join(f"pod {i} log:\n{pod.tail(pod.main[0], 80)}" for i, pod in enumerate(pods))
        assert [pod.process.poll() for pod in pods] == [None, None], exited
        for pod in pods:
            status, body = harness.http_get(pod.readiness[1], "/api/2.0/mlflow/experiments/search?max_results=5")
            assert status == 200, body
    finally:
        for pod in pods:
            pod.stop()
