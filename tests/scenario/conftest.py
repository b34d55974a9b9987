"""Scenario runs the charm as Juju would; these fixtures give it a world to talk to.

- `pod_specs`: Scenario refuses pod-spec-set, so the mock backend's
  pod_spec_set records every spec the charm sets, in order.
- a real S3 server at MinIO's in-cluster address (see tests/fakes/s3_server.py)
- a Kubernetes API on loopback that reports the MLflow pod ready or not.
- `mlflow`: MLflow's /health at its in-cluster name (tests/fakes/mlflow_server.py).
- `network`: the process stays on loopback whatever host the charm is fed
  (tests/fakes/network_guard.py); a test that tried to leave it fails.
- `secrets_never_leak`: after every Context run of every test, the run's
  secrets must be absent from logs, statuses, the plain pod spec, action
  output and relation data (tests/scenario/leak_check.py).
- `fuzz_cases`: hypothesis tests count their generated cases; the total is
  printed in the terminal summary.
- Scenario's own YAML goes through libyaml (tests/scenario_libyaml.py).
"""

import contextlib
import functools
import logging
from pathlib import Path

import pytest
import scenario
import scenario_libyaml
from leak_check import LeakCheck
from ops._private.harness import ActionFailed
from scenario.mocking import _MockModelBackend

import world
from charm import MlflowServerCharm
from fakes.kubernetes_api import FakeKubernetesApi
from fakes.mlflow_server import MLFLOW_HOST, HealthServer
from fakes.network_guard import free_port, loopback_only
from fakes.s3_server import HOST_ALIASES, S3Server

FUZZ_CASES = pytest.StashKey[dict]()


scenario_libyaml.install()


@pytest.fixture(scope="session", autouse=True)
def network():
    with loopback_only((*HOST_ALIASES, MLFLOW_HOST)) as guard:
        yield guard


@pytest.fixture(autouse=True)
def mlflow(network):
    """MLflow's /health at its in-cluster name, answering 200 unless the test says otherwise."""
    with HealthServer() as server:
        network.host_ports[MLFLOW_HOST] = server.port
        yield server


@pytest.fixture(autouse=True)
def no_traffic_off_loopback(network):
    network.loopback_ports = None
    before = len(network.violations)
    yield network
    network.loopback_ports = None
    assert network.violations[before:] == [], "the test tried to reach a non-loopback address"


@pytest.fixture(scope="session")
def s3(network):
    # minio.kubeflow:9000 (the contract's address) reaches a free loopback port.
    port = free_port()
    network.alias_ports[9000] = port
    with S3Server(port=port) as server:  # `network` makes minio.kubeflow loopback
        yield server.url


@pytest.fixture(autouse=True)
def s3_buckets(s3):
    """A boto3 client of the S3 server; every test starts with no bucket."""
    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3, aws_access_key_id="minio", aws_secret_access_key="minio123", region_name="us-east-1"
    )
    for bucket in client.list_buckets().get("Buckets", []):
        for obj in client.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            client.delete_object(Bucket=bucket["Name"], Key=obj["Key"])
        client.delete_bucket(Bucket=bucket["Name"])
    return client


@pytest.fixture(autouse=True)
def kubernetes(tmp_path, monkeypatch):
    with FakeKubernetesApi() as api:
        monkeypatch.setenv("KUBECONFIG", str(api.write_kubeconfig(tmp_path / "kubeconfig")))
        yield api


@pytest.fixture(autouse=True)
def pod_specs(monkeypatch, kubernetes):
    """Every spec the charm sets; Kubernetes then runs its pod (as Juju would after the hook)."""
    recorded = []

    def pod_spec_set(self, spec, k8s_resources=None):
        recorded.append(spec)
        kubernetes.apply_spec(spec)

    monkeypatch.setattr(_MockModelBackend, "pod_spec_set", pod_spec_set, raising=True)
    return recorded


@pytest.fixture
def ctx():
    return scenario.Context(MlflowServerCharm)


@pytest.fixture
def settled(ctx, tmp_path, pod_specs):
    """The tutorial's end state (deployed, then related to each peer in turn): Active, one spec set."""
    state = world.settled(ctx, tmp_path)
    assert state.unit_status == scenario.ActiveStatus() and len(pod_specs) == 1
    return state


@pytest.fixture
def settled_in_one_hook(ctx, tmp_path, pod_specs):
    """Every peer related before the first config-changed, then the rollout: Active, one spec set.
    Two hooks instead of the tutorial's seventeen, where how the unit got there does not matter."""
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path))
    assert out.unit_status == world.ROLLOUT
    out = world.rolled_out(ctx, out)
    assert out.unit_status == scenario.ActiveStatus() and len(pod_specs) == 1
    return out


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(logging.Formatter("%(levelname)s %(name)s %(message)s").format(record))


@pytest.fixture(autouse=True)
def secrets_never_leak(monkeypatch, pod_specs):
    """Every Context run of every Scenario test is checked for leaked secrets.

    Wraps Context._run, which both `ctx.run` and `with ctx(...)` go through.
    Also removes the juju-log handler ops adds to the root logger on each run
    (Scenario leaves them there: after n runs every log line was handled n times).
    """
    check = LeakCheck()
    real_run = scenario.Context._run

    @contextlib.contextmanager
    def checked_run(ctx, event, state):
        root = logging.getLogger()
        handlers = list(root.handlers)
        level = root.level
        captured = _ListHandler()
        root.addHandler(captured)
        marks = (len(ctx.juju_log), len(ctx.unit_status_history), len(ctx.app_status_history), len(pod_specs))
        ctx._output_state = None
        completed, failure = False, None
        try:
            with real_run(ctx, event=event, state=state) as ops:
                yield ops
            completed = True
        except ActionFailed as e:
            completed, failure = True, e
            raise
        finally:
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
            root.setLevel(level)
            out = ctx._output_state if completed else None
            statuses = [s.message for s in ctx.unit_status_history[marks[1] :] + ctx.app_status_history[marks[2] :]]
            if out is not None:
                statuses += [out.unit_status.message, out.app_status.message]
            action_output = None
            if completed and event.action is not None:
                action_output = {
                    "results": ctx.action_results,
                    "logs": ctx.action_logs,
                    "failure": failure.message if failure else None,
                }
            found = check.after_run(
                event=event,
                state_in=state,
                state_out=out,
                log_lines=[line.message for line in ctx.juju_log[marks[0] :]] + captured.lines,
                statuses=statuses,
                specs=pod_specs[marks[3] :],
                action_output=action_output,
            )
            if found and completed:
                raise AssertionError("secret leaked: " + "; ".join(found))

    monkeypatch.setattr(scenario.Context, "_run", checked_run)
    yield check
    assert check.findings == [], "secret leaked: " + "; ".join(check.findings)


@pytest.fixture
def fuzz_cases(request):
    """Call it once per generated case: `fuzz_cases(test_name)`."""
    counts = request.config.stash.setdefault(FUZZ_CASES, {})

    def count():
        counts[request.node.name] = counts.get(request.node.name, 0) + 1

    return count


def pytest_sessionfinish(session):
    """Under pytest-xdist each worker counts its own cases: hand them to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fuzz_cases"] = session.config.stash.get(FUZZ_CASES, {})


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: the controller adds up the workers' counts
def pytest_testnodedown(node, error):
    counts = node.config.stash.setdefault(FUZZ_CASES, {})
    for name, n in getattr(node, "workeroutput", {}).get("fuzz_cases", {}).items():
        counts[name] = counts.get(name, 0) + n


def pytest_terminal_summary(terminalreporter, config):
    counts = config.stash.get(FUZZ_CASES, {})
    if counts:
        terminalreporter.section("fuzzing")
        for name, n in sorted(counts.items()):
            terminalreporter.write_line(f"{n:6d}  {name}")
        terminalreporter.write_line(
            f"{sum(counts.values()):6d}  cases in total (generated and hand-picked), each run through the charm"
        )


@pytest.fixture
def per_process_caches(monkeypatch):
    """Caches that make thousands of Scenario runs fit in minutes.

    A run that gets to the end of the reconcile path costs ~0.7 s, nearly all
    of it loading the same files again: metadata.yaml (Scenario gives each run
    a new charm directory, so the charm's cache misses), botocore's service
    models (a new boto3 session per hook) and the CA bundle (a new lightkube
    client per hook). In Juju each hook is a new process and pays that once;
    here they are loaded once per test, which no hook can observe.
    """
    import botocore.session
    import httpx

    import relation_data

    real = relation_data._sdi_metadata
    by_content = functools.lru_cache(maxsize=4)(lambda text, path: real(path))
    monkeypatch.setattr(
        relation_data,
        "_sdi_metadata",
        lambda charm_dir: by_content(Path(charm_dir, "metadata.yaml").read_text(), charm_dir),
    )
    monkeypatch.setattr(
        botocore.session, "create_loader", functools.lru_cache(maxsize=2)(botocore.session.create_loader)
    )
    real_ssl_context = httpx.create_ssl_context
    ssl_context = functools.lru_cache(maxsize=4)(
        lambda verify, trust_env: real_ssl_context(verify, trust_env=trust_env)
    )
    monkeypatch.setattr(httpx, "create_ssl_context", lambda verify=True, trust_env=True: ssl_context(verify, trust_env))
