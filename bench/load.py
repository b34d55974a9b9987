"""Many notebooks logging at once through two MLflow servers: throughput, latency, errors, database connections.

    python bench/load.py                 # K = 8, 32, 64 clients, 60 s each, MLflow 2.22.0 and 3.17.2
    python bench/load.py --short         # CI: K = 8 for 20 s, the image's MLflow only
    python bench/load.py --clients 32 --seconds 30 --mlflow 3.17.2 --config workers=8

The servers are two replicas of the pod spec the charm renders (its
tutorial, run by tests/e2e's charm driver, with the charm's default config
unless --config says otherwise), started by tests/e2e/server_set.py behind a
loopback round robin standing in for the Kubernetes Service, with MariaDB and
SeaweedFS (tests/fakes/seaweedfs.py) on loopback. K training loops
(tests/e2e/load_client.py, with the image's MLflow, the notebook's env from
the PodDefault) each start a run, log a param and a tag, log_batch 3 metrics
a step for 20 steps, log a small artifact, search runs and end the run, over
and over for the given time. Then the store is audited against every
client's ledger (tests/e2e/load_clients.py): every acknowledged write stored
exactly once.

Reported per version and K: metrics acknowledged per second, p50 and p99
latency of each call, client errors, the audit's problems, and MariaDB's peak
connections (Max_used_connections since a FLUSH STATUS before the load) and
refused connections ("Too many connections"). Targets, enforced in both
modes: 0 client errors, 0 audit problems, 0 refused connections. Speed is
reported, never enforced: this machine's load decides it.
"""

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

import harness  # noqa: E402
from charm_driver import CharmDriver  # noqa: E402
from load_clients import DatabaseConnections, Load, LoadConfig, audit, bucket_keys, read_store  # noqa: E402
from mlflow_venvs import CACHE, NEWEST_MLFLOW, ensure_venv, image_mlflow_version, image_of  # noqa: E402
from server_set import ServerSet  # noqa: E402
from servers import MariaDB, S3Server, free_port, mariadb_available  # noqa: E402

from fakes.kubernetes_api import FakeKubernetesApi  # noqa: E402

FULL_CLIENTS = (8, 32, 64)
SHORT_CLIENTS = (8,)
FULL_SECONDS = 60
SHORT_SECONDS = 20
WARM_UP_SECONDS = 10
CALLS = ("create_run", "log_batch", "log_artifact", "search_runs", "end_run")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _config_value(text: str):
    key, _, value = text.partition("=")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value, value)


def run_version(version: str, clients: List[int], seconds: float, config: Dict, workroot: Path,
                max_connections: Optional[int]) -> List[Dict]:  # fmt: skip
    image_bin = ensure_venv(version)
    (workroot / "mariadb").mkdir(parents=True)
    mariadb = MariaDB(workroot / "mariadb").start()
    if max_connections:
        mariadb.sql(f"SET GLOBAL max_connections = {int(max_connections)};")
    s3 = S3Server(workroot, record_requests=False).start()  # SeaweedFS itself, no Python proxy in front
    servers: Optional[ServerSet] = None
    rows = []
    try:
        with FakeKubernetesApi() as kubernetes:
            database = f"mlflow_{uuid.uuid4().hex[:8]}"
            mariadb.create_database(database)
            driver = CharmDriver(workroot, kubernetes.write_kubeconfig(workroot / "kubeconfig"))
            full_config = {"mlflow_port": free_port(), **config}
            outcome = driver.tutorial(image_of(version), s3.app_data(), mariadb.unit_data(database), full_config)
            started = time.monotonic()
            servers = ServerSet(outcome.spec, image_bin, workroot / "servers", log=lambda line: print(f"bench: {line}"))
            servers.start()
            print(f"bench: MLflow {version}: two servers ready in {time.monotonic() - started:.0f} s", flush=True)
            env = harness.notebook_env(outcome.pod_defaults["minio"]["env"], workroot, image_bin)
            env["MLFLOW_TRACKING_URI"] = servers.url
            # Not measured: each server worker's first requests load much of MLflow
            # (seconds each on 2 cores), which would land on the first K.
            warm_up = LoadConfig(clients=4, seconds=WARM_UP_SECONDS, experiment="warm-up", prefix="warm-up", steps=2)
            Load(env, image_bin, workroot / "warm-up", warm_up).start().wait()
            for k in clients:
                name = f"k{k}"
                load_config = LoadConfig(clients=k, seconds=seconds, experiment=name, prefix=name)
                connections = DatabaseConnections(mariadb).start()
                before = load_average()
                result = Load(env, image_bin, workroot / name, load_config).start().wait()
                db = connections.read()
                keys = bucket_keys(s3.client(), harness.BUCKET)
                problems = audit(result, read_store(mariadb, database, result.experiment_id, keys, None))
                row = {
                    "mlflow": version,
                    "clients": k,
                    "seconds": round(result.seconds, 1),
                    "metrics_per_s": round(result.metrics_per_second, 1),
                    "runs_finished": len([e for e in result.acked("end_run") if e["status"] == "FINISHED"]),
                    "latency": result.latency_table(),
                    "errors": sum(result.errors.values()),
                    "error_lines": result.error_lines(5),
                    "audit_problems": len(problems),
                    "audit_first": problems[:5],
                    "db": db,
                    "servers_alive": servers.alive(),
                    "load_average": f"{before} -> {load_average()}",
                }
                rows.append(row)
                print(_row_line(row), flush=True)
                for line in row["error_lines"] + row["audit_first"]:
                    print(f"bench:   {line}")
    finally:
        if servers is not None:
            servers.stop()
        s3.stop()
        mariadb.stop()
    return rows


def _row_line(row: Dict) -> str:
    latency = "  ".join(
        f"{call} {row['latency'][call]['p50_ms']:.0f}/{row['latency'][call]['p99_ms']:.0f}"
        for call in CALLS
        if call in row["latency"]
    )
    return (
        f"bench: MLflow {row['mlflow']:<7} K={row['clients']:<3} {row['metrics_per_s']:7.1f} metrics/s"
        f"  runs {row['runs_finished']:<4} errors {row['errors']:<3} audit {row['audit_problems']:<3}"
        f" db peak {row['db']['peak']}/{row['db']['max_connections']} refused {row['db']['refused_too_many']}"
        f"  p50/p99 ms: {latency}  (load {row['load_average']})"
    )


def targets(rows: List[Dict]) -> bool:
    ok = True
    for row in rows:
        for passed, text in (
            (row["errors"] == 0, f"{row['errors']} client errors"),
            (row["audit_problems"] == 0, f"{row['audit_problems']} writes not stored as acknowledged"),
            (row["db"]["refused_too_many"] == 0, f"{row['db']['refused_too_many']} connections refused"),
            (all(row["servers_alive"]), "both servers alive after the load"),
        ):
            ok = ok and passed
            print(f"{'PASS' if passed else 'FAIL'}  MLflow {row['mlflow']} K={row['clients']}: {text}")
    return ok


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="CI mode: K=8 for 20 s, the image's MLflow only")
    parser.add_argument("--mlflow", nargs="+", help="MLflow versions (default: the image's and the newest 3.x)")
    parser.add_argument("--clients", type=int, nargs="+", help="numbers of concurrent clients (default 8 32 64)")
    parser.add_argument("--seconds", type=float, help="load time per K (default 60)")
    parser.add_argument("--config", action="append", default=[], help="charm config key=value (repeatable)")
    parser.add_argument("--max-connections", type=int, help="MariaDB's max_connections (default: MariaDB's, 151)")
    # `make bench` hands every bench the same BENCH_ARGS; the other benches' own are not ours.
    args, _ = parser.parse_known_args(argv)
    reason = mariadb_available()
    if reason:
        raise SystemExit(f"bench: {reason}")
    versions = args.mlflow or ([image_mlflow_version()] if args.short else [image_mlflow_version(), NEWEST_MLFLOW])
    clients = args.clients or list(SHORT_CLIENTS if args.short else FULL_CLIENTS)
    seconds = args.seconds or (SHORT_SECONDS if args.short else FULL_SECONDS)
    config = dict(_config_value(item) for item in args.config)
    print(f"bench: load on {os.cpu_count()} CPUs, load average {load_average()}; charm config {config or 'defaults'}")
    started = time.monotonic()
    rows = []
    for version in versions:
        workroot = CACHE / "bench-load" / f"run-{os.getpid()}-{version}"
        try:
            rows += run_version(version, clients, seconds, config, workroot, args.max_connections)
        finally:
            shutil.rmtree(workroot, ignore_errors=True)
    (CACHE / "bench-load" / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"\nbench: load took {time.monotonic() - started:.0f} s; load average now {load_average()}")
    for row in rows:
        print(_row_line(row))
    return 0 if targets(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
