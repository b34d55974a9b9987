"""The connection budget: every pool the charm sizes keeps the whole application inside it."""

import pytest

import db_connections as dbc
from problems import Blocked


@pytest.mark.parametrize("units, pods", [(1, 2), (2, 3), (3, 4), (4, 5), (5, 7), (8, 10), (9, 12)])
def test_a_rollout_runs_a_quarter_more_pods_rounded_up(units, pods):
    assert dbc.pods_at_once(units) == pods


def test_no_budget_leaves_mlflow_its_own_pools():
    assert dbc.pool_sizing(0, units=3, workers=64) is None


def test_within_the_budget_at_every_scale_and_never_a_zero_mlflow_would_ignore():
    checked = 0
    for budget in (12, 30, 51, 100, 151, 400, 2000):
        for units in range(1, 13):
            for workers in (1, 2, 3, 4, 8, 16, 64):
                # (2, 2): enable_workspaces' two servers a pod
                for stores, servers in ((2, 1), (3, 1), (2, 2)):
                    try:
                        sizing = dbc.pool_sizing(budget, units, workers, stores, servers)
                    except Blocked:
                        assert budget < dbc.minimum_budget(units, workers, stores, servers)
                        continue
                    assert sizing is not None
                    checked += 1
                    assert sizing.pool_size >= 1 and sizing.max_overflow >= 1
                    assert sizing.per_engine <= dbc.MLFLOW_POOL_SIZE + dbc.MLFLOW_MAX_OVERFLOW
                    per_pod = dbc.connections_per_pod(workers, sizing.per_engine, stores, servers)
                    held = dbc.pods_at_once(units) * per_pod
                    assert held <= budget, (budget, units, workers, stores, servers, sizing)
    assert checked > 300  # the loop did check sizings, not only refusals


def test_the_smallest_budget_that_fits_is_accepted_and_one_less_is_not():
    for units, workers in ((1, 1), (3, 4), (4, 4), (10, 16)):
        least = dbc.minimum_budget(units, workers)
        assert dbc.pool_sizing(least, units, workers) == dbc.PoolSizing(1, 1)
        with pytest.raises(Blocked):
            dbc.pool_sizing(least - 1, units, workers)


def test_the_issues_example_fits_the_default_budget():
    # workers=4 and 3 pods: MLflow's own pools could open 3 x 4 x 2 x 15 = 360.
    sizing = dbc.pool_sizing(100, units=3, workers=4)
    assert sizing == dbc.PoolSizing(1, 1)
    assert 4 * (dbc.PER_POD_OVERHEAD + 4 * 2 * 2) <= 100


def test_one_pod_of_the_default_workers_keeps_mlflows_warm_pool_and_trims_the_overflow():
    assert dbc.pool_sizing(100, units=1, workers=4) == dbc.PoolSizing(4, 1)
    assert dbc.pool_sizing(400, units=1, workers=4) == dbc.PoolSizing(5, 10)
    assert dbc.pool_sizing(10**5, units=1, workers=1) == dbc.PoolSizing(5, 10)


def test_a_store_more_a_process_shrinks_the_pools():
    two, three = dbc.pool_sizing(151, 2, 4, stores=2), dbc.pool_sizing(151, 2, 4, stores=3)
    assert two is not None and three is not None and three.per_engine < two.per_engine


def test_too_small_says_what_it_needs_and_what_to_change():
    with pytest.raises(Blocked) as raised:
        dbc.pool_sizing(100, units=4, workers=4)
    assert raised.value.message == (
        "db_connection_budget=100 is too small for 4 units of 4 workers: it needs at least 105; "
        "raise it (and MariaDB's max_connections) or lower workers"
    )
    assert raised.value.kind == "blocked"


def test_the_env_mlflow_reads():
    assert dbc.PoolSizing(4, 1).env() == {
        "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "4",
        "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "1",
    }


def test_a_uvicorn_worker_is_limited_to_the_connections_of_one_pool():
    assert dbc.PoolSizing(4, 1).uvicorn_env() == {"UVICORN_LIMIT_CONCURRENCY": "5"}
    assert dbc.PoolSizing(1, 1).uvicorn_env() == {"UVICORN_LIMIT_CONCURRENCY": "2"}


def test_two_servers_a_pod_halve_each_servers_share_and_say_why_when_too_small():
    one, two = dbc.pool_sizing(151, 1, 4), dbc.pool_sizing(151, 1, 4, servers=2)
    assert one is not None and two is not None and two.per_engine < one.per_engine
    with pytest.raises(Blocked) as raised:
        dbc.pool_sizing(100, units=2, workers=4, servers=2)
    assert "4 workers (two servers a pod with enable_workspaces): it needs at least 126;" in raised.value.message
