"""What the Kubernetes authorization of enable_workspaces costs a notebook's call.

    python bench/workspaces_latency.py            # 300 timed calls of each kind, 20 cold tokens
    python bench/workspaces_latency.py --short    # 60 calls, 5 cold tokens

In one run, on the same MariaDB and SeaweedFS: the token-mode server of the
spec the charm renders with enable_workspaces (MLflow 3.17.2 with
mlflow-kubernetes-plugins 2.1.0, the image's lock), reaching the loopback
Kubernetes API of tests/fakes/kubernetes_cluster.py that decides from
Kubeflow's RBAC objects, as tests/e2e/test_workspaces.py starts it; and the
server of the spec rendered without the mode, run by the same venv. Both with
workers=1, each on its own database.

The calls are MLflow's REST calls of `log_metric`, `search_runs` and
`get_experiment`, sent one at a time on a kept-alive connection as MLflow's
client sends them: to the token-mode server with alice's `default-editor`
token and her workspace, to the plain server with neither.

- warm: after a warm-up, so every decision is in the plugin's cache
  (`MLFLOW_K8S_AUTH_CACHE_TTL_SECONDS`, the charm's workspaces_auth_cache_ttl).
- cold: the first call of each kind for a token the server has not seen (a
  fresh user bound into alice's profile as an editor), which is what every
  call costs once the cache lifetime ran out. The plugin refuses a lifetime
  of 0 (auth/authorizer.py), so fresh tokens are the way to time it.

Reported: p50 and p99 of each, and the ratio token-mode/plain at p50 (target:
at most 1.5x warm; shown, not enforced: the machine's load decides it). Not
in `make bench`: two MLflow servers take longer to start than CI's short
bench may. Figures: CONTRIBUTING.md, "Latency with enable_workspaces".
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

import kubeflow_rbac  # noqa: E402
import workspace_pods  # noqa: E402
from charm_driver import CharmDriver  # noqa: E402
from mlflow_venvs import CACHE, NEWEST_MLFLOW, NoPython, ensure_workspaces_venv, image_of  # noqa: E402
from pod_runner import containers  # noqa: E402
from servers import MariaDB, S3Server, free_port, mariadb_available  # noqa: E402
from test_workspaces import _admin_rbac, _wait_healthy  # noqa: E402  (the e2e fixture's own steps)

from contracts import APP  # noqa: E402
from contracts import MODEL as JUJU_MODEL  # noqa: E402
from fakes.kubernetes_api import FakeKubernetesApi  # noqa: E402
from fakes.kubernetes_cluster import FakeCluster  # noqa: E402

CALLS = ("log_metric", "search_runs", "get_experiment")
TARGET = 1.5
WARM_UP = 20
MAX_SECONDS_PER_KIND = 120  # each timed loop also stops here, whatever its count
API = "/api/2.0/mlflow"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Caller:
    """One kept-alive connection, as MLflow's client (a requests Session) keeps one."""

    def __init__(self, port: int, token: Optional[str] = None, workspace: Optional[str] = None):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if workspace:
            self.headers["X-MLFLOW-WORKSPACE"] = workspace

    def request(self, method: str, path: str, body: Optional[dict] = None) -> Tuple[float, dict]:
        payload = json.dumps(body) if body is not None else None
        try:
            started = time.perf_counter()
            self.connection.request(method, path, body=payload, headers=self.headers)
            response = self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # uvicorn closes a connection idle for 5 s; urllib3 (under MLflow's
            # client) opens another and sends again, and so does this.
            self.connection.close()
            started = time.perf_counter()
            self.connection.request(method, path, body=payload, headers=self.headers)
            response = self.connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"bench: {method} {path} answered {response.status}: {data[:300]!r}")
        return elapsed, json.loads(data or b"{}")

    def close(self) -> None:
        self.connection.close()


def one_call(caller: Caller, kind: str, experiment: str, run_id: str, step: int) -> float:
    if kind == "log_metric":
        body = {
            "run_id": run_id,
            "key": "loss",
            "value": 1.0 / (step + 1),
            "timestamp": int(time.time() * 1000),
            "step": step,
        }
        return caller.request("POST", f"{API}/runs/log-metric", body)[0]
    if kind == "search_runs":
        return caller.request("POST", f"{API}/runs/search", {"experiment_ids": [experiment], "max_results": 100})[0]
    return caller.request("GET", f"{API}/experiments/get?experiment_id={experiment}")[0]


def prepare(caller: Caller) -> Tuple[str, str]:
    """An experiment with a run, made through the server under test."""
    _, body = caller.request("POST", f"{API}/experiments/create", {"name": f"latency-{uuid.uuid4().hex[:8]}"})
    experiment = body["experiment_id"]
    _, body = caller.request("POST", f"{API}/runs/create", {"experiment_id": experiment, "start_time": 0})
    return experiment, body["run"]["info"]["run_id"]


def timed(targets: Dict[str, Tuple[Caller, str, str]], calls: int) -> Dict[str, Dict[str, List[float]]]:
    """Each call alternates between the servers, so load from elsewhere on the
    machine falls on both alike."""
    for step in range(WARM_UP):
        for kind in CALLS:
            for caller, experiment, run_id in targets.values():
                one_call(caller, kind, experiment, run_id, step)
    samples: Dict[str, Dict[str, List[float]]] = {name: {kind: [] for kind in CALLS} for name in targets}
    for kind in CALLS:
        deadline = time.monotonic() + MAX_SECONDS_PER_KIND
        for step in range(calls):
            for name, (caller, experiment, run_id) in targets.items():
                samples[name][kind].append(one_call(caller, kind, experiment, run_id, WARM_UP + step))
            if time.monotonic() > deadline:
                break
    return samples


def percentiles(values: List[float]) -> Dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"n": len(ordered), "p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000}


def render(workdir: Path, s3, mariadb, database: str, config: dict) -> dict:
    with FakeKubernetesApi() as charm_api:
        driver = CharmDriver(workdir, charm_api.write_kubeconfig(workdir / f"charm-kubeconfig-{database}"))
        outcome = driver.tutorial(image_of(NEWEST_MLFLOW), s3.app_data(), mariadb.unit_data(database), config)
    return outcome.spec


def run(workroot: Path, calls: int, cold_tokens: int) -> Dict[str, Dict[str, Dict[str, float]]]:
    image_bin = ensure_workspaces_venv()
    (workroot / "mariadb").mkdir(parents=True)
    mariadb = MariaDB(workroot / "mariadb").start()
    s3 = S3Server(workroot, record_requests=False).start()
    started: List[workspace_pods.PodProcess] = []
    try:
        token_port, ui_port, plain_port = free_port(), free_port(), free_port()
        specs = {}
        token_config = {"mlflow_port": token_port, "workspaces_ui_port": ui_port, "enable_workspaces": True}
        for name, config in (
            ("token", {**token_config, "workers": 1}),
            ("plain", {"mlflow_port": plain_port, "workers": 1}),
        ):
            database = f"mlflow_lat_{name}_{uuid.uuid4().hex[:6]}"
            mariadb.create_database(database)
            specs[name] = render(workroot, s3, mariadb, database, config)
        with FakeCluster(workroot / "cluster") as cluster:
            cluster.add_namespace(JUJU_MODEL)
            cluster.add_profile("alice")
            cluster.load(kubeflow_rbac.kubeflow_roles())
            cluster.load(_admin_rbac())
            cluster.load(kubeflow_rbac.profile_bindings("alice", "alice@example.com"))
            for role in specs["token"]["serviceAccount"]["roles"]:
                cluster.load(kubeflow_rbac.global_role_documents(JUJU_MODEL, APP, role["rules"]))
            cold_users = [f"cold-{i}@example.com" for i in range(cold_tokens)]
            cluster.load([kubeflow_rbac.contributor_binding("alice", user, "edit") for user in cold_users])
            identity = workspace_pods.identity_for(cluster, workroot, JUJU_MODEL, APP)

            def launch(container, port: int) -> None:
                env = {"PATH": f"{image_bin}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **container.env}
                env["HOME"] = str(workroot / f"home-{port}")
                pod_env = workspace_pods.pod_env(cluster, identity, env)
                process = workspace_pods.PodProcess(
                    f"{container.name}-{port}", container.argv, pod_env, identity, workroot
                )
                started.append(process)
                if container.init:
                    assert process.process.wait(timeout=600) == 0, process.tail()
                else:
                    t0 = time.monotonic()
                    _wait_healthy(process, port)
                    print(f"bench: {container.name} on {port} healthy in {time.monotonic() - t0:.0f} s", flush=True)

            for name, port in (("token", token_port), ("plain", plain_port)):
                spec_containers = containers(specs[name])
                for container in [c for c in spec_containers if c.init]:
                    launch(container, port)
                launch(next(c for c in spec_containers if not c.init and c.readiness[1] == port), port)

            token = cluster.service_account_token("alice", "default-editor")
            callers = {"token": Caller(token_port, token, "alice"), "plain": Caller(plain_port)}
            targets = {name: (caller, *prepare(caller)) for name, caller in callers.items()}
            before, reviews_before = load_average(), len(cluster.reviews)
            samples = timed(targets, calls)
            warm_reviews = len(cluster.reviews) - reviews_before
            results: Dict[str, Dict[str, Dict[str, float]]] = {
                name: {kind: percentiles(values) for kind, values in by_kind.items()}
                for name, by_kind in samples.items()
            }
            results["load"] = {"warm": f"{before} -> {load_average()}"}  # type: ignore[dict-item]
            # Cold: each fresh token's first call of each kind (none of its decisions cached).
            _, experiment, run_id = targets["token"]
            before = load_average()
            cold: Dict[str, List[float]] = {kind: [] for kind in CALLS}
            reviews: Dict[str, int] = dict.fromkeys(CALLS, 0)
            for user in cold_users:
                fresh = Caller(token_port, cluster.issue_token(user, ["system:authenticated"]), "alice")
                for kind in CALLS:
                    asked = len(cluster.reviews)
                    cold[kind].append(one_call(fresh, kind, experiment, run_id, 10_000))
                    reviews[kind] += len(cluster.reviews) - asked
                fresh.close()
            results["token-cold"] = {kind: percentiles(values) for kind, values in cold.items()}
            # How many SelfSubjectAccessReviews the server asked: per cold call, and in all the warm calls.
            results["reviews"] = {kind: n / max(1, len(cold_users)) for kind, n in reviews.items()}
            results["reviews"]["warm_total"] = warm_reviews
            results["load"]["cold"] = f"{before} -> {load_average()}"  # type: ignore[index]
            for caller in callers.values():
                caller.close()
            return results
    finally:
        for process in started:
            process.stop()
        s3.stop()
        mariadb.stop()


def report(results: Dict[str, Dict[str, Dict[str, float]]]) -> None:
    print()
    heads = f"{'plain p50/p99 ms':>20}{'token warm p50/p99':>22}{'token cold p50/p99':>22}"
    print(f"{'call':<16}{heads}{'warm x':>9}{'cold x':>9}")
    for kind in CALLS:
        plain, warm, cold = results["plain"][kind], results["token"][kind], results["token-cold"][kind]
        print(
            f"{kind:<16}{plain['p50_ms']:>11.1f}/{plain['p99_ms']:<8.1f}{warm['p50_ms']:>13.1f}/{warm['p99_ms']:<8.1f}"
            f"{cold['p50_ms']:>13.1f}/{cold['p99_ms']:<8.1f}{warm['p50_ms'] / plain['p50_ms']:>9.2f}"
            f"{cold['p50_ms'] / plain['p50_ms']:>9.2f}"
        )
    print(
        f"(samples: warm {results['token'][CALLS[0]]['n']} a call, cold {results['token-cold'][CALLS[0]]['n']} tokens)"
    )
    print(f"load average: warm {results['load']['warm']}; cold {results['load']['cold']}")
    print(f"SelfSubjectAccessReviews: {results['reviews']} (per cold call of each kind; warm_total: all warm calls)")
    for kind in CALLS:
        ratio = results["token"][kind]["p50_ms"] / results["plain"][kind]["p50_ms"]
        verdict = "PASS" if ratio <= TARGET else "MISS"
        print(f"{verdict}  {kind}: token-mode/plain at p50, warm: {ratio:.2f}x (target <= {TARGET}x; not enforced)")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="60 calls of each kind, 5 cold tokens")
    parser.add_argument("--calls", type=int, help="timed calls of each kind (default 300; --short 60)")
    parser.add_argument("--cold-tokens", type=int, help="fresh tokens timed cold (default 20; --short 5)")
    args = parser.parse_args(argv)
    reason = mariadb_available()
    if reason:
        raise SystemExit(f"bench: {reason}")
    calls = args.calls or (60 if args.short else 300)
    cold_tokens = args.cold_tokens or (5 if args.short else 20)
    print(f"bench: workspaces latency on {os.cpu_count()} CPUs, load average {load_average()}", flush=True)
    workroot = CACHE / "bench-workspaces-latency" / f"run-{os.getpid()}"
    t0 = time.monotonic()
    try:
        results = run(workroot, calls, cold_tokens)
    except NoPython as missing:
        raise SystemExit(f"bench: {missing}") from None
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    (CACHE / "bench-workspaces-latency" / "results.json").write_text(json.dumps(results, indent=1))
    print(f"bench: took {time.monotonic() - t0:.0f} s; load average now {load_average()}")
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
