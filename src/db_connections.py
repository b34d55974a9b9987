"""The database connection budget: how big each MLflow process's SQLAlchemy pools may be.

What connects, read in MLflow 2.22.0 and 3.17.2 (mlflow/store/db/utils.py,
mlflow/server/__init__.py, mlflow/server/jobs/utils.py) and counted with
`ss` against MariaDB:

- every server worker process (gunicorn on 2.x, uvicorn on 3.x) keeps one
  engine per store it has used: the tracking store and the model-registry
  store, each a QueuePool of `pool_size` + `max_overflow` connections
  (MLFLOW_SQLALCHEMYSTORE_POOL_SIZE / _MAX_OVERFLOW; MLflow's defaults 5 + 10).
  A 2.x sync worker serves one request at a time; a 3.x worker runs up to
  40 Flask requests at once in its thread pool, so it can fill its pools.
- the `mlflow server` process itself opens both stores before it starts the
  workers and keeps what it opened (3 connections, idle) for its lifetime.
- MLflow 3.x also starts a job runner (its job store: 1 connection from its
  start) and a periodic-task consumer (1 from its first minute). Its seven
  job consumers connect only while a GenAI job (scorers, prompt
  optimisation) runs: they are outside this count (see docs/sizing.md).
- the init container's schema upgrade (at most 3) runs before its pod's
  server, inside the share of a pod that is starting.

MLflow ignores a pool size or overflow of 0 (it only passes truthy values),
so the smallest bounded pool is 1 + 1.

A bounded pool needs a bound on the requests a 3.x worker runs at once.
MLflow's SqlAlchemyStore nests sessions: `log_batch` holds one connection
while `_log_params`, `_log_metrics` and `_set_tags` each take a second from
the same pool (3.17.2 mlflow/store/tracking/sqlalchemy_store.py, log_batch;
`create_run` likewise). When as many such requests run as the pool holds,
each holds one connection and waits for another: nothing moves until
SQLAlchemy's 30-s pool timeout, then MLflow answers HTTP 400 "QueuePool
limit", which its client does not retry. Measured on 3.17.2, one uvicorn
worker, pool 1 + 1: two concurrent log_batch calls, one a 400 after 31 s;
four with a pool of 4 + 1, all 200 within 2.3 s. uvicorn's
`--limit-concurrency` (`UVICORN_LIMIT_CONCURRENCY`) answers 503, which the
client retries, once a worker holds that many connections (the asking one
included; uvicorn/protocols/http/h11_impl.py), so a worker
limited to its pool's size runs at most one request fewer than its pool
holds, and one of them can always take its second connection. A 2.x
(gunicorn, sync) worker runs one request at a time and never waits on its
pool.
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional

from problems import Blocked

OPTION = "db_connection_budget"
# The tracking and model-registry stores; a mode that adds a store (the
# workspace store) passes its own count.
STORES_PER_PROCESS = 2
# The `mlflow server` process (3) and MLflow 3.x's job runner and periodic consumer (1 + 1).
PER_POD_OVERHEAD = 5
# MLflow's own pool shape: the charm trims it, never grows it.
MLFLOW_POOL_SIZE = 5
MLFLOW_MAX_OVERFLOW = 10
SMALLEST_POOL = 2  # pool_size 1 + max_overflow 1: a 0 would be ignored


@dataclass(frozen=True)
class PoolSizing:
    """One engine's pool: at most `pool_size + max_overflow` connections."""

    pool_size: int
    max_overflow: int

    @property
    def per_engine(self) -> int:
        return self.pool_size + self.max_overflow

    def env(self) -> Dict[str, str]:
        return {
            "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": str(self.pool_size),
            "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": str(self.max_overflow),
        }

    def uvicorn_env(self) -> Dict[str, str]:
        """The limit that keeps a uvicorn worker's nested sessions from waiting
        on each other (module docstring); gunicorn ignores it."""
        return {"UVICORN_LIMIT_CONCURRENCY": str(self.per_engine)}


def pods_at_once(units: int) -> int:
    """Pods that may run at once: Juju 2.9 makes a Deployment without a rollout
    strategy, so Kubernetes' default surge of 25% (rounded up) adds pods of the
    new spec beside the old ones during every rollout."""
    units = max(units, 1)
    return units + math.ceil(units / 4)


def connections_per_pod(workers: int, per_engine: int, stores: int = STORES_PER_PROCESS, servers: int = 1) -> int:
    return servers * (PER_POD_OVERHEAD + workers * stores * per_engine)


def minimum_budget(units: int, workers: int, stores: int = STORES_PER_PROCESS, servers: int = 1) -> int:
    """The smallest budget that gives every engine the smallest bounded pool."""
    return pods_at_once(units) * connections_per_pod(workers, SMALLEST_POOL, stores, servers)


def pool_sizing(
    budget: int, units: int, workers: int, stores: int = STORES_PER_PROCESS, servers: int = 1
) -> Optional[PoolSizing]:
    """The pool every engine of every process gets so that `units` pods of
    `servers` MLflow servers of `workers` workers hold at most `budget`
    connections, rollouts included (enable_workspaces runs two servers a pod,
    each counted with a whole server's overhead, though it runs no job runner).

    None when the budget is off (0): MLflow keeps its own defaults. Raises
    Blocked when even the smallest pools do not fit.
    """
    if budget == 0:
        return None
    per_server = budget // pods_at_once(units) // servers
    per_engine = (per_server - PER_POD_OVERHEAD) // (workers * stores)
    if per_engine < SMALLEST_POOL:
        raise Blocked(
            f"{OPTION}={budget} is too small for {max(units, 1)} units of {workers} workers"
            f"{' (two servers a pod with enable_workspaces)' if servers > 1 else ''}: "
            f"it needs at least {minimum_budget(units, workers, stores, servers)}; "
            "raise it (and MariaDB's max_connections) or lower workers"
        )
    per_engine = min(per_engine, MLFLOW_POOL_SIZE + MLFLOW_MAX_OVERFLOW)
    # Overflow first: connections beyond pool_size are closed when returned,
    # so trimming it keeps the connections MLflow holds warm.
    pool_size = min(MLFLOW_POOL_SIZE, per_engine - 1)
    return PoolSizing(pool_size, per_engine - pool_size)
