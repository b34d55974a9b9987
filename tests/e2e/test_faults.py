"""Faults in the middle of a load: nothing acknowledged is lost.

Two MLflow servers from one rendered spec sit behind a loopback round robin
(the Kubernetes Service); 8 training loops log through it (load_clients.py)
while one thing fails: a server is SIGKILLed and restarted, MariaDB stops
for 10 seconds, SeaweedFS is SIGKILLed during uploads and started again 10 s later (direct and proxied), or
the spec rolls to a new config. Afterwards every acknowledged metric, param,
tag, artifact, model version and run end is in the store exactly once, a
write whose answer was lost is there at most once, and no run is left
RUNNING or FAILED without its client having been told of an error.

These are the short forms (5 s of load before the fault, through it, 8 s after); bench/load.py
runs longer loads and more clients. `make test` runs every fault on the image's MLflow (2.22.0,
gunicorn) and, on MLflow 3.17.2, the short form of the connection budget's proof
(bench/load.py --budget-proof): 16 clients for 30 s with MariaDB's max_connections at the
budget. `make faults` (FAULTS_MATRIX=full) also runs every fault on 3.17.2, whose server kill
(a restarted uvicorn server takes tens of seconds to answer /health) and database outage took
134 s of e2e test time in a loaded `make test`, which must stay within 25 minutes.
"""

import os
import time
import uuid

import harness
import pytest
from load_clients import (
    DatabaseConnections,
    Load,
    LoadConfig,
    LoadResult,
    audit,
    bucket_keys,
    read_store,
    resent_creates,
)
from mlflow_venvs import NEWEST_MLFLOW, ensure_venv, image_mlflow_version, image_of
from server_set import ServerSet
from servers import S3Server

import db_connections
from fakes.kubernetes_api import FakeKubernetesApi
from fakes.network_guard import free_port

pytestmark = pytest.mark.e2e

CLIENTS = 8
FAULT_AT = 5  # seconds of load before the fault, once the clients' first writes are stored
TAIL = 8  # seconds of load after the fault is over and the store took new writes
RECOVERY = 180  # the most to wait for that: MLflow's client backs off up to a minute between retries
LIMIT = 400  # the most a load may last, should a fault never end
OUTAGE = 10
MODEL = "load-model"
DEFAULT_BUDGET = 100  # config.yaml's db_connection_budget, said here so a change of it is seen
FULL_MATRIX = os.environ.get("FAULTS_MATRIX") == "full"


def fleets(paths=("direct",)) -> list:
    """The `fleet` parameters of a fault: (MLflow version, proxied uploads) each."""
    versions = [image_mlflow_version()]
    if FULL_MATRIX:
        versions.append(NEWEST_MLFLOW)
    return [pytest.param((v, p == "proxied"), id=f"{v}-{p}") for v in versions for p in paths]


class Fleet:
    """The charm's tutorial, then its spec run as two replicas behind a Service."""

    def __init__(self, workroot, mariadb, s3, config: dict, version: str):
        self.mariadb, self.s3, self.version = mariadb, s3, version
        self.proxied = bool(config.get("serve_artifacts"))
        self.workdir = workroot / f"faults-{uuid.uuid4().hex[:6]}"
        self.workdir.mkdir()
        self.database = f"mlflow_{uuid.uuid4().hex[:8]}"
        mariadb.create_database(self.database)
        self.kubernetes = FakeKubernetesApi().__enter__()
        from charm_driver import CharmDriver

        self.driver = CharmDriver(self.workdir, self.kubernetes.write_kubeconfig(self.workdir / "kubeconfig"))
        config = {"mlflow_port": free_port(), "workers": 2, "db_connection_budget": DEFAULT_BUDGET, **config}
        self.config = config
        self.outcome = self.driver.tutorial(image_of(version), s3.app_data(), mariadb.unit_data(self.database), config)
        self.image_bin = ensure_venv(version)
        self.servers = ServerSet(self.outcome.spec, self.image_bin, self.workdir / "servers").start()

    def env(self) -> dict:
        env = harness.notebook_env(self.outcome.pod_defaults["minio"]["env"], self.workdir, self.image_bin)
        env["MLFLOW_TRACKING_URI"] = self.servers.url
        return env

    def load(self, name: str, **overrides) -> Load:
        config = LoadConfig(
            clients=CLIENTS, seconds=LIMIT, experiment=name, prefix=name, model=f"{MODEL}-{name}", **overrides
        )
        load = Load(self.env(), self.image_bin, self.workdir / name, config)
        STARTED.append(load)
        started = time.time()
        load.start()
        # The clients' own start (importing MLflow) takes seconds to tens of
        # seconds on a loaded machine: the fault waits for their first write.
        self.wait_for(self.metrics_after(started), "the load's first metric")
        return load

    def wait_for(self, check, what: str) -> None:
        deadline = time.monotonic() + RECOVERY
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {RECOVERY} s")
            time.sleep(1)

    def finish(self, load: Load, recovered) -> LoadResult:
        """End `load` TAIL seconds after `recovered()` says the store takes writes
        again (the clients' retries back off exponentially: a fixed tail could
        end the load before any of them came back), or after RECOVERY seconds."""
        deadline = time.monotonic() + RECOVERY
        while time.monotonic() < deadline and not recovered():
            time.sleep(1)
        return load.finish(TAIL)

    def metrics_after(self, moment: float):
        """A check: has the store a metric the clients stamped after `moment`?"""
        query = f"USE `{self.database}`; SELECT COUNT(*) FROM metrics WHERE timestamp > {int(moment * 1000)};"
        return lambda: int(self.mariadb.sql(query).split()[-1]) > 0

    def more_objects(self):
        """A check: has the bucket more objects than now?"""
        now = len(bucket_keys(self.s3.client(), harness.BUCKET))
        return lambda: len(bucket_keys(self.s3.client(), harness.BUCKET)) > now

    def audit(self, result) -> list:
        """The audit's problems; the empty runs of resent creates are printed, not problems."""
        keys = bucket_keys(self.s3.client(), harness.BUCKET)
        store = read_store(self.mariadb, self.database, result.experiment_id, keys, result.config.model)
        resent = resent_creates(result, store)
        if resent:
            print(f"{len(resent)} empty RUNNING run(s) of a create_run resent after its answer was lost: {resent}")
        return audit(result, store)

    def stop(self) -> None:
        self.servers.stop()
        self.kubernetes.__exit__(None, None, None)


STARTED = []  # every Load of this module, stopped after each test whatever its end


@pytest.fixture(autouse=True)
def _no_load_outlives_its_test():
    yield
    while STARTED:
        STARTED.pop().stop()


@pytest.fixture(scope="module")
def s3(workroot):
    """This module's own SeaweedFS, killed mid-run, without the request log in front:
    clients must meet the server's own refusals, not a proxy's."""
    server = S3Server(workroot / "faults-s3", record_requests=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(request, workroot, mariadb, s3):
    """Two servers of `request.param`'s (version, proxied) spec; pytest orders the module's
    tests so that one fleet runs at a time (its tests together, then it stops)."""
    version, proxied = request.param
    fleet = Fleet(workroot, mariadb, s3, {"serve_artifacts": True} if proxied else {}, version)
    yield fleet
    fleet.stop()


def _report(result, problems, servers) -> str:
    return "\n".join(
        [
            f"{len(problems)} problems (first 20): {problems[:20]}",
            f"client errors: {result.error_lines()}",
            *servers.events,
            servers.tails(15),
        ]
    )


def _probe(port: int, path: str, timeout: float):
    try:
        return harness.http_get(port, path, timeout=timeout)[0]
    except OSError as error:  # a timeout or a refused connection: what the kubelet would count as a miss
        return type(error).__name__


def _acked_after(result, call: str, moment: float) -> int:
    return len([e for e in result.acked(call) if e["at"] > moment])


def _acked_between(result, call: str, start: float, end: float) -> int:
    return len([e for e in result.acked(call) if start < e["at"] < end])


BUDGET_CLIENTS = 16
BUDGET_SECONDS = 30
CONNECTION_ERRORS = ("Too many connections", "QueuePool limit", "OperationalError")


@pytest.mark.parametrize("fleet", [pytest.param((NEWEST_MLFLOW, False), id=f"{NEWEST_MLFLOW}-direct")], indirect=True)
def test_the_default_budget_holds_two_pods_under_load_with_max_connections_at_it(fleet, mariadb):
    """The short form of bench/load.py --budget-proof, before any fault: the fleet's spec is one
    unit's at the default budget, and the charm counts two pods at once for it (the unit and a
    rollout's surge pod), the fleet's two. MLflow 3.x, whose uvicorn workers fill their pools
    (a 2.x sync worker holds one connection a request), with MariaDB's max_connections at the
    budget (its other sessions, root's, given their own room)."""
    budget = fleet.config["db_connection_budget"]
    sizing = db_connections.pool_sizing(budget, 1, fleet.config["workers"])
    assert db_connections.pods_at_once(1) == 2 and sizing is not None
    before = mariadb.sql("SELECT @@GLOBAL.max_connections;").split()[-1]
    others = int(mariadb.sql("SHOW STATUS LIKE 'Threads_connected';").split()[-1])
    mariadb.sql(f"SET GLOBAL max_connections = {budget + others};")
    connections = DatabaseConnections(mariadb).start(poll=0.5)
    try:
        config = LoadConfig(clients=BUDGET_CLIENTS, seconds=BUDGET_SECONDS, experiment="budget", prefix="budget")
        load = Load(fleet.env(), fleet.image_bin, fleet.workdir / "budget", config)
        STARTED.append(load)
        result = load.start().wait()
    finally:
        db = connections.read()  # also ends its sampling
        mariadb.sql(f"SET GLOBAL max_connections = {before};")
    problems = fleet.audit(result)
    print(f"budget {budget}: pools {sizing}; {result.metrics_logged} metrics; {db}; errors {result.error_lines()}")
    assert result.metrics_logged > 0
    assert problems == [], _report(result, problems, fleet.servers)
    assert db["refused_too_many"] == 0, db
    assert 0 < db["mlflow_peak"] <= budget, db
    assert not [e for e in result.unknown() if any(c in e["error"] for c in CONNECTION_ERRORS)], result.error_lines()
    assert not [c for c in CONNECTION_ERRORS[:2] if c in fleet.servers.tails(100000)]


@pytest.mark.parametrize("fleet", fleets(), indirect=True)
def test_a_server_killed_and_restarted_loses_no_acknowledged_write(fleet, mariadb):
    connections = DatabaseConnections(mariadb).start()
    load = fleet.load("kill")
    time.sleep(FAULT_AT)
    fleet.servers.kill(0)
    killed_at = time.time()
    took = fleet.servers.restart(0)
    result = fleet.finish(load, fleet.metrics_after(time.time()))
    problems = fleet.audit(result)
    assert problems == [], _report(result, problems, fleet.servers)
    # The clients went on through the other server during the restart, and through both after it.
    assert _acked_between(result, "log_batch", killed_at, killed_at + took) > 0, _report(
        result, problems, fleet.servers
    )
    assert _acked_after(result, "log_batch", killed_at + took) > 0
    assert all(fleet.servers.alive())
    # The servers' pools stayed within MariaDB's max_connections, the restart's new pool included.
    db = connections.read()
    assert db["refused_too_many"] == 0, db
    print(
        f"kill {fleet.version}: restarted server ready after {took:.1f} s; {result.metrics_logged} metrics "
        f"acknowledged; errors {result.error_lines()}; connections {db}"
    )


@pytest.mark.parametrize("fleet", fleets(), indirect=True)
def test_database_stopping_for_10_seconds_loses_no_acknowledged_write(fleet, mariadb):
    pids = [pod.process.pid for pod in fleet.servers.pods]
    connections = DatabaseConnections(mariadb).start()
    load = fleet.load("database")
    time.sleep(FAULT_AT)
    mariadb.stop()
    stopped_at = time.time()
    # What the readiness probe would see: its path, within its timeout (5 s). A 3.x worker's
    # /health waits behind the requests that fill its thread pool; the answer is recorded, not
    # required: the outage is shorter than the probe's three misses before Kubernetes acts.
    probe = next(c for c in fleet.servers.spec["containers"] if not c.get("init"))["kubernetes"]["readinessProbe"]
    health = []
    while time.time() < stopped_at + OUTAGE:
        health.append(
            [_probe(port, fleet.servers.health_path, probe["timeoutSeconds"]) for port in fleet.servers.ports()]
        )
        time.sleep(1)
    mariadb.restart()
    back_at = time.time()
    result = fleet.finish(load, fleet.metrics_after(back_at))
    problems = fleet.audit(result)
    assert problems == [], _report(result, problems, fleet.servers)
    # The same server processes serve again once the database is back: no restart was needed.
    assert [pod.process.pid for pod in fleet.servers.pods] == pids and all(fleet.servers.alive())
    assert _acked_after(result, "log_batch", back_at) > 0, _report(result, problems, fleet.servers)
    # Writes sent while the database was down were either stored later (the
    # client's retries outlasted the outage) or failed in the client: the audit
    # above holds either way; say which here.
    print(
        f"database {fleet.version}: outage {back_at - stopped_at:.0f} s; /health during it {health}; "
        f"errors {result.error_lines()}; connections {connections.read()}"
    )


@pytest.mark.parametrize("fleet", fleets(paths=("direct", "proxied")), indirect=True)
def test_s3_stopping_during_uploads_reports_only_stored_artifacts(fleet, s3):
    chosen, path = fleet, "proxied" if fleet.proxied else "direct"
    # Short runs: an upload every few seconds per client, so uploads meet the outage.
    load = chosen.load(f"s3-{path}", steps=2)
    chosen.wait_for(chosen.more_objects(), "upload")
    time.sleep(FAULT_AT)
    s3.server.kill()
    stopped_at = time.time()
    time.sleep(OUTAGE)
    s3.server.start()
    back_at = time.time()  # SeaweedFS answers S3 and knows its volumes again (start() waits)
    result = chosen.finish(load, chosen.more_objects())
    problems = chosen.audit(result)
    assert problems == [], _report(result, problems, chosen.servers)
    uploads = [e for e in result.ledger if e["call"] == "log_artifact"]
    during = [e for e in uploads if e["began"] < back_at and e["at"] > stopped_at]
    assert during, f"no upload met the outage: {len(uploads)} uploads"
    assert _acked_after(result, "log_artifact", back_at) > 0, _report(result, problems, chosen.servers)
    slowest = max(e["at"] - e["began"] for e in uploads)
    acked = len([e for e in during if e["outcome"] == "ack"])
    print(
        f"s3 {path} {fleet.version}: {len(during)} uploads met the outage, {acked} "
        f"acknowledged; slowest upload {slowest:.1f} s; errors {result.error_lines()}"
    )


@pytest.mark.parametrize("fleet", fleets(), indirect=True)
def test_a_rolling_config_change_loses_no_acknowledged_write(fleet):
    load = fleet.load("roll")
    time.sleep(FAULT_AT)
    changed = fleet.driver.change_config(fleet.outcome.state, {"workers": 3})
    assert changed.spec != fleet.outcome.spec
    rolled_at = time.time()
    took = fleet.servers.roll(changed.spec)
    fleet.outcome = changed
    result = fleet.finish(load, fleet.metrics_after(time.time()))
    problems = fleet.audit(result)
    assert problems == [], _report(result, problems, fleet.servers)
    assert _acked_after(result, "log_batch", rolled_at + sum(took)) > 0, _report(result, problems, fleet.servers)
    assert _acked_between(result, "log_batch", rolled_at, rolled_at + sum(took)) > 0
    print(f"roll {fleet.version}: new pods ready after {took} s; errors {result.error_lines()}")
