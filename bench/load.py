"""Many notebooks logging at once through two MLflow servers: throughput, latency, errors, database connections.

    python bench/load.py                 # K = 8, 32, 64 clients, 60 s each, MLflow 2.22.0 and 3.17.2
    python bench/load.py --short         # CI: K = 8 for 20 s, the image's MLflow only
    python bench/load.py --clients 32 --seconds 30 --mlflow 3.17.2 --config workers=8
    python bench/load.py --budget-proof  # MariaDB's max_connections at db_connection_budget, K = 64
    python bench/load.py --sweep-workers 1 2 4   # K = 32 against each `workers`, both versions

The servers are two replicas of the pod spec the charm renders (its
tutorial, run by tests/e2e's charm driver, with the charm's default config
unless --config says otherwise), started by tests/e2e/server_set.py behind a
loopback round robin standing in for the Kubernetes Service, with MariaDB and
SeaweedFS on loopback (bench/stack.py). K training loops
(tests/e2e/load_client.py, with the image's MLflow, the notebook's env from
the PodDefault) each start a run, log a param and a tag, log_batch 3 metrics
a step for 20 steps, log a small artifact, search runs and end the run, over
and over for the given time. Then the store is audited against every
client's ledger (tests/e2e/load_clients.py): every acknowledged write stored
exactly once.

Reported per version, setting and K: metrics acknowledged per second, p50
and p99 latency of each call, client errors, the audit's problems, and
MariaDB's connections: Max_used_connections since a FLUSH STATUS before the
load, the peak of Threads_connected and of MLflow's user's connections
(sampled every half second), and the refused ones ("Too many connections").
Targets, enforced in every mode: 0 client errors, 0 audit problems, 0
refused connections, both servers alive. Speed is reported, never enforced:
this machine's load decides it.

--budget-proof is issue 25's proof of db_connection_budget: the spec
rendered for one unit (the charm counts two pods at once for it: the unit
and a rollout's surge pod), run as those two pods, each with the biggest
pools the budget allows (4 + 1 a store and worker at 100 with 4 workers:
at most 2 x 45 = 90 connections), MariaDB's max_connections set to the
budget before any server connects, and the heaviest load of the bench
(K = 64). Its added target: MLflow's peak connections within the budget.

--sweep-workers starts the servers once per `workers` value (one MariaDB
and SeaweedFS per version) and runs the same K against each.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from stack import Stack, load_average  # first: it puts src/ and tests/ on the path

# isort: split

import harness  # noqa: E402 - on the path stack.py sets
from load_clients import (  # noqa: E402
    DatabaseConnections,
    Load,
    LoadConfig,
    audit,
    bucket_keys,
    read_store,
    resent_creates,
)
from mlflow_venvs import CACHE, NEWEST_MLFLOW, image_mlflow_version  # noqa: E402
from server_set import ServerSet  # noqa: E402

import db_connections  # noqa: E402

FULL_CLIENTS = (8, 32, 64)
SHORT_CLIENTS = (8,)
PROOF_CLIENTS = (64,)
SWEEP_CLIENTS = (32,)
FULL_SECONDS = 60
SHORT_SECONDS = 20
WARM_UP_SECONDS = 10
POLL_SECONDS = 0.5
CALLS = ("create_run", "log_batch", "log_artifact", "search_runs", "end_run")
# The charm's defaults (config.yaml): what a setting means when --config does not say.
DEFAULT_BUDGET = 100
DEFAULT_WORKERS = 4


def _config_value(text: str):
    key, _, value = text.partition("=")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value, value)


def run_version(version: str, settings: List[Dict], clients: List[int], seconds: float, workroot: Path,
                max_connections: Optional[int]) -> List[Dict]:  # fmt: skip
    """Each charm config in `settings` as two servers, one after the other, each loaded with every K."""
    rows = []
    with Stack(workroot, version, max_connections) as stack:
        for config in settings:
            outcome, database = stack.render(config)
            pools = next(c for c in outcome.spec["containers"] if not c.get("init"))["envConfig"]
            started = time.monotonic()
            servers = ServerSet(outcome.spec, stack.image_bin, workroot / f"servers-{database}",
                                log=lambda line: print(f"bench: {line}"))  # fmt: skip
            try:
                servers.start()
                print(
                    f"bench: MLflow {version} {config or 'defaults'}: two servers ready in"
                    f" {time.monotonic() - started:.0f} s; pools {pools.get('MLFLOW_SQLALCHEMYSTORE_POOL_SIZE')}"
                    f" + {pools.get('MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW')}",
                    flush=True,
                )
                env = stack.notebook_env(outcome)
                env["MLFLOW_TRACKING_URI"] = servers.url
                # Not measured: each server worker's first requests load much of MLflow
                # (seconds each on 2 cores), which would land on the first K.
                warm_up = LoadConfig(
                    clients=4, seconds=WARM_UP_SECONDS, experiment="warm-up", prefix="warm-up", steps=2
                )
                Load(env, stack.image_bin, workroot / database / "warm-up", warm_up).start().wait()
                for k in clients:
                    rows.append(_load(stack, servers, env, database, version, config, k, seconds, workroot))
            finally:
                servers.stop()
    return rows


def _load(stack: Stack, servers: ServerSet, env: Dict, database: str, version: str, config: Dict, k: int,
          seconds: float, workroot: Path) -> Dict:  # fmt: skip
    name = f"k{k}"
    load_config = LoadConfig(clients=k, seconds=seconds, experiment=name, prefix=name)
    connections = DatabaseConnections(stack.mariadb).start(poll=POLL_SECONDS)
    before = load_average()
    result = Load(env, stack.image_bin, workroot / database / name, load_config).start().wait()
    db = connections.read()
    keys = bucket_keys(stack.s3.client(), harness.BUCKET)
    store = read_store(stack.mariadb, database, result.experiment_id, keys, None)
    problems = audit(result, store) + [f"empty run {u} of a resent create_run" for u in resent_creates(result, store)]
    row = {
        "mlflow": version,
        "config": config,
        "workers": config.get("workers", DEFAULT_WORKERS),
        "clients": k,
        "seconds": round(result.seconds, 1),
        "metrics_per_s": round(result.metrics_per_second, 1),
        "runs_finished": len([e for e in result.acked("end_run") if e["status"] == "FINISHED"]),
        "latency": result.latency_table(),
        "errors": sum(result.errors.values()),
        "error_lines": result.error_lines(5),
        # The lines above group by exception; what a 400 said is in its message.
        "error_samples": sorted({e["error"][:400] for e in result.unknown()})[:5],
        "audit_problems": len(problems),
        "audit_first": problems[:5],
        "db": db,
        "servers_alive": servers.alive(),
        "load_average": f"{before} -> {load_average()}",
    }
    print(_row_line(row), flush=True)
    for line in row["error_lines"] + row["error_samples"] + row["audit_first"]:
        print(f"bench:   {line}")
    return row


def _row_line(row: Dict) -> str:
    latency = "  ".join(
        f"{call} {row['latency'][call]['p50_ms']:.0f}/{row['latency'][call]['p99_ms']:.0f}"
        for call in CALLS
        if call in row["latency"]
    )
    db = row["db"]
    return (
        f"bench: MLflow {row['mlflow']:<7} workers {row['workers']} K={row['clients']:<3}"
        f" {row['metrics_per_s']:7.1f} metrics/s  runs {row['runs_finished']:<4} errors {row['errors']:<3}"
        f" audit {row['audit_problems']:<3} db max_used {db['peak']}/{db['max_connections']}"
        f" threads_connected {db.get('threads_connected_peak')} mlflow {db.get('mlflow_peak')}"
        f" refused {db['refused_too_many']}  p50/p99 ms: {latency}  (load {row['load_average']})"
    )


def targets(rows: List[Dict], budget: Optional[int] = None) -> bool:
    ok = True
    for row in rows:
        checks = [
            (row["errors"] == 0, f"{row['errors']} client errors"),
            (row["audit_problems"] == 0, f"{row['audit_problems']} writes not stored as acknowledged"),
            (row["db"]["refused_too_many"] == 0, f"{row['db']['refused_too_many']} connections refused"),
            (all(row["servers_alive"]), "both servers alive after the load"),
        ]
        if budget:
            peak = row["db"]["mlflow_peak"]
            checks.append((peak <= budget, f"MLflow's peak connections {peak} within the budget {budget}"))
        for passed, text in checks:
            ok = ok and passed
            print(
                f"{'PASS' if passed else 'FAIL'}  MLflow {row['mlflow']} workers {row['workers']}"
                f" K={row['clients']}: {text}"
            )
    return ok


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="CI mode: K=8 for 20 s, the image's MLflow only")
    parser.add_argument("--mlflow", nargs="+", help="MLflow versions (default: the image's and the newest 3.x)")
    parser.add_argument("--clients", type=int, nargs="+", help="numbers of concurrent clients (default 8 32 64)")
    parser.add_argument("--seconds", type=float, help="load time per K (default 60)")
    parser.add_argument("--config", action="append", default=[], help="charm config key=value (repeatable)")
    parser.add_argument("--max-connections", type=int, help="MariaDB's max_connections (default: MariaDB's, 151)")
    parser.add_argument(
        "--budget-proof",
        action="store_true",
        help="max_connections = db_connection_budget (default 100), K=64; MLflow's peak within the budget",
    )
    parser.add_argument("--sweep-workers", type=int, nargs="+", metavar="N", help="one run per `workers` value (K=32)")
    # `make bench` hands every bench the same BENCH_ARGS; the other benches' own are not ours.
    args, _ = parser.parse_known_args(argv)
    versions = args.mlflow or ([image_mlflow_version()] if args.short else [image_mlflow_version(), NEWEST_MLFLOW])
    default_clients = SHORT_CLIENTS if args.short else FULL_CLIENTS
    if args.budget_proof:
        default_clients = PROOF_CLIENTS
    elif args.sweep_workers:
        default_clients = SWEEP_CLIENTS
    clients = args.clients or list(default_clients)
    seconds = args.seconds or (SHORT_SECONDS if args.short else FULL_SECONDS)
    config = dict(_config_value(item) for item in args.config)
    settings = [{**config, "workers": n} for n in args.sweep_workers] if args.sweep_workers else [config]
    budget = None
    max_connections = args.max_connections
    if args.budget_proof:
        budget = int(config.get("db_connection_budget", DEFAULT_BUDGET))
        workers = int(config.get("workers", DEFAULT_WORKERS))
        # The two servers are the two pods the charm counts for one unit: the unit and a rollout's surge.
        assert db_connections.pods_at_once(1) == 2, "the proof runs two servers: the pods one unit's budget counts"
        sizing = db_connections.pool_sizing(budget, 1, workers)
        most = 2 * db_connections.connections_per_pod(workers, sizing.per_engine) if sizing else None
        print(f"bench: budget proof: budget {budget}, workers {workers}, pools {sizing}, at most {most} connections")
        max_connections = budget
    print(f"bench: load on {os.cpu_count()} CPUs, load average {load_average()}; charm config {config or 'defaults'}")
    started = time.monotonic()
    rows = []
    for version in versions:
        workroot = CACHE / "bench-load" / f"run-{os.getpid()}-{version}"
        try:
            rows += run_version(version, settings, clients, seconds, workroot, max_connections)
        finally:
            shutil.rmtree(workroot, ignore_errors=True)
    mode = "budget-proof" if args.budget_proof else "sweep" if args.sweep_workers else "results"
    (CACHE / "bench-load" / f"{mode}.json").write_text(json.dumps(rows, indent=1))
    print(f"\nbench: load took {time.monotonic() - started:.0f} s; load average now {load_average()}")
    for row in rows:
        print(_row_line(row))
    return 0 if targets(rows, budget) else 1


if __name__ == "__main__":
    sys.exit(main())
