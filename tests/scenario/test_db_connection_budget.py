"""db_connection_budget: the pools in the spec follow the units and workers; too small blocks."""

import dataclasses

import scenario
from scenario import ActiveStatus, BlockedStatus

import world

POOL = ("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW")


def server_env(spec):
    return next(c for c in spec["containers"] if c["name"] == "mlflow-server")["envConfig"]


def pools(spec):
    env = server_env(spec)
    return tuple(env.get(name) for name in POOL)


def scaled(ctx, state, units, kubernetes):
    """`juju scale-application mlflow-server <units>`: the leader hears it on the peer relation."""
    peers = scenario.PeerRelation(
        endpoint="replicas", interface="mlflow_server_replicas", id=99, peers_data={n: {} for n in range(1, units)}
    )
    kubernetes.pod_count = kubernetes.ready_pods = units
    others = {r for r in state.relations if r.endpoint != "replicas"}
    state = dataclasses.replace(state, planned_units=units, relations=others | {peers})
    return ctx.run(ctx.on.relation_joined(peers, remote_unit=units - 1), state)


def test_the_default_budget_bounds_one_pods_pools_and_reaches_uvicorn_too(settled, pod_specs):
    assert pools(pod_specs[-1]) == ("4", "1")
    assert server_env(pod_specs[-1])["UVICORN_TIMEOUT_WORKER_HEALTHCHECK"] == "600"


def test_scaling_out_shrinks_every_pods_pools_and_rolls_them_once(ctx, settled, pod_specs, kubernetes):
    out = scaled(ctx, settled, 3, kubernetes)
    assert out.unit_status == world.ROLLOUT
    assert len(pod_specs) == 2 and pools(pod_specs[-1]) == ("1", "1")
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    assert len(pod_specs) == 2


def test_a_budget_too_small_for_the_scale_blocks_and_keeps_the_spec_in_force(ctx, settled, pod_specs, kubernetes):
    out = scaled(ctx, settled, 4, kubernetes)
    assert out.unit_status == BlockedStatus(
        "db_connection_budget=100 is too small for 4 units of 4 workers: it needs at least 105; "
        "raise it (and MariaDB's max_connections) or lower workers"
    )
    assert len(pod_specs) == 1, "the running pods keep their spec"
    # What was published for notebooks stands.
    assert world.bag(out, "pod-defaults") == world.bag(settled, "pod-defaults")

    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={**out.config, "db_connection_budget": 151}))
    assert out.unit_status == world.ROLLOUT
    assert pools(pod_specs[-1]) == ("2", "1")  # 151 over 5 pods of 4 workers
    assert ctx.run(ctx.on.update_status(), out).unit_status == ActiveStatus()


def test_fewer_workers_fit_where_more_did_not(ctx, settled, pod_specs, kubernetes):
    out = scaled(ctx, settled, 4, kubernetes)
    assert out.unit_status.name == "blocked"
    out = world.active(ctx, ctx.on.config_changed(), dataclasses.replace(out, config={**out.config, "workers": 2}))
    assert out.unit_status == ActiveStatus()
    assert pools(pod_specs[-1]) == ("2", "1")


def test_budget_zero_leaves_mlflows_own_pools(ctx, settled, pod_specs):
    out = world.active(ctx, ctx.on.config_changed(), dataclasses.replace(settled, config={"db_connection_budget": 0}))
    assert out.unit_status == ActiveStatus()
    assert pools(pod_specs[-1]) == (None, None)


def test_a_budget_out_of_range_blocks_naming_the_option(ctx, settled, pod_specs):
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(settled, config={"db_connection_budget": -1}))
    assert out.unit_status == BlockedStatus("config option db_connection_budget=-1 is out of range 0-100000")
    assert len(pod_specs) == 1
