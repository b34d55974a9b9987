"""A low db_connection_budget, run for real: MariaDB's max_connections at the budget, clients
logging at once, and the server's connections to its database counted while they do.

The heaviest load against the budget, with faults, is tests/e2e/test_faults.py's; this proves
the sizing itself reaches MLflow and holds for one pod of the spec. Its pools of 1 + 1 are
where MLflow 3.x's nested sessions would deadlock (src/db_connections.py): 8 clients on 2
uvicorn workers, each log_batch holding one connection and waiting for a second, answered
HTTP 400 "QueuePool limit" after 30 s until the spec limited each worker to its pool.
"""

import subprocess
import threading
import time

import harness
import pytest
from mlflow_venvs import VERSIONS

import db_connections

pytestmark = pytest.mark.e2e

WORKERS = 2
BUDGET = db_connections.minimum_budget(1, WORKERS)  # pools of 1 + 1: the tightest the charm renders
CLIENTS = 8
SECONDS = 20

# A training loop per thread: a run, metrics every step, a search, the end of the run.
CLIENT = r"""
import sys, threading, time
from mlflow import MlflowClient
from mlflow.entities import Metric
client = MlflowClient()
experiment = client.create_experiment("budget")
stop = time.monotonic() + float(sys.argv[2])
errors, calls = [], [0]
def loop():
    while time.monotonic() < stop:
        try:
            run = client.create_run(experiment)
            for step in range(5):
                metrics = [Metric(f"m{k}", float(step), int(time.time() * 1000), step) for k in range(5)]
                client.log_batch(run.info.run_id, metrics=metrics)
                calls[0] += 1
            client.search_runs([experiment], max_results=5)
            client.set_terminated(run.info.run_id)
        except Exception as e:
            errors.append(repr(e)[:300])
threads = [threading.Thread(target=loop) for _ in range(int(sys.argv[1]))]
[t.start() for t in threads]
[t.join() for t in threads]
print("calls", calls[0])
for e in errors:
    print("error", e)
"""


def _connections(mariadb, database: str) -> int:
    """Connections open to the deployment's database (the counting session has none)."""
    out = mariadb.sql(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{database}';")
    return int(out.split()[-1])


@pytest.mark.parametrize("version", VERSIONS)
def test_one_pod_stays_inside_its_share_of_a_low_budget(deploy, mariadb, version):
    share = BUDGET // db_connections.pods_at_once(1)
    before = mariadb.sql("SELECT @@GLOBAL.max_connections;").split()[-1]
    # Other sessions of this MariaDB (this counter, earlier tests' leftovers) get their own room.
    others = int(mariadb.sql("SHOW STATUS LIKE 'Threads_connected';").split()[-1])
    mariadb.sql(f"SET GLOBAL max_connections = {BUDGET + others};")
    try:
        deployment = deploy(version, {"db_connection_budget": BUDGET, "workers": WORKERS})
        env = deployment.pod.main[0].env
        assert (env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"], env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]) == ("1", "1")
        uvicorn = int(version.split(".")[0]) >= 3
        assert env.get("UVICORN_LIMIT_CONCURRENCY") == ("2" if uvicorn else None)

        peak, done = [0], threading.Event()

        def watch():
            while not done.is_set():
                peak[0] = max(peak[0], _connections(mariadb, deployment.database))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            client_env = harness.notebook_env(deployment.notebook_env, deployment.workdir, deployment.image_bin)
            result = subprocess.run(
                [str(deployment.image_bin / "python"), "-c", CLIENT, str(CLIENTS), str(SECONDS)],
                env=client_env,
                cwd=deployment.workdir,
                capture_output=True,
                text=True,
                timeout=SECONDS + 600,
                check=False,
            )
        finally:
            done.set()
            watcher.join()
        server_log = deployment.pod.tail(deployment.pod.main[0], 100000)
        errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
        calls = int(next(line for line in result.stdout.splitlines() if line.startswith("calls")).split()[1])
        print(f"MLflow {version}: {calls} log_batch calls, peak {peak[0]} connections (share {share}), {errors[:3]}")
        assert calls > 0, result.stdout + result.stderr
        assert "pool options {'pool_size': 1, 'max_overflow': 1}" in server_log
        assert "Too many connections" not in server_log + result.stdout
        assert "QueuePool limit" not in server_log + result.stdout
        assert errors == [], errors[:5]
        assert 0 < peak[0] <= share
        if uvicorn:  # the limit was reached, and the client's retries of its 503s went through
            assert "Exceeded concurrency limit" in server_log
    finally:
        mariadb.sql(f"SET GLOBAL max_connections = {before};")
