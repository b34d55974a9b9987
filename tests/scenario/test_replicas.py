"""Several units (`juju scale-application mlflow-server 3`): one pod each, one spec, one reporter."""

import dataclasses

import scenario
from scenario import ActiveStatus, WaitingStatus

import world


def test_leader_waits_until_every_planned_pod_of_the_spec_is_ready(ctx, tmp_path, kubernetes, pod_specs):
    kubernetes.pod_count, kubernetes.ready_pods = 3, 2
    state = dataclasses.replace(world.state(tmp_path), planned_units=3)
    out = world.active(ctx, ctx.on.config_changed(), state)
    assert out.unit_status == WaitingStatus(
        "2/3 MLflow pods ready: waiting for the pods of the current pod spec to start and pass /health"
    )
    assert len(pod_specs) == 1, "one spec for every pod"

    kubernetes.ready_pods = 3
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    assert len(pod_specs) == 1


def test_pods_of_the_previous_spec_do_not_count_towards_the_planned_ones(ctx, tmp_path, kubernetes, pod_specs):
    kubernetes.pod_count = 2
    state = dataclasses.replace(world.state(tmp_path), planned_units=2)
    out = world.active(ctx, ctx.on.config_changed(), state)
    assert out.unit_status == ActiveStatus()
    previous = dict(kubernetes.pod_annotations)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"workers": 2}))
    kubernetes.pod_annotations = previous  # the rollout has not replaced the old pods yet
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status.message.startswith("0/2 MLflow pods ready")


def test_non_leader_units_set_nothing_and_ask_nobody(ctx, tmp_path, kubernetes, pod_specs):
    state = dataclasses.replace(world.state(tmp_path, leader=False), planned_units=3)
    for event in (ctx.on.config_changed(), ctx.on.update_status()):
        state = ctx.run(event, state)
        assert state.unit_status == ActiveStatus("standby: the leader unit manages the MLflow pod")
    assert pod_specs == [] and kubernetes.requests == []


def test_scaling_out_a_settled_leader_reports_the_new_pods(ctx, tmp_path, kubernetes, pod_specs):
    """`juju scale-application mlflow-server 3` on an Active unit: only the peer relation tells the leader."""
    peers = scenario.PeerRelation(endpoint="replicas", interface="mlflow_server_replicas", id=99)
    state = world.state(tmp_path)
    out = world.active(ctx, ctx.on.config_changed(), dataclasses.replace(state, relations={*state.relations, peers}))
    assert out.unit_status == ActiveStatus()

    kubernetes.pod_count, kubernetes.ready_pods = 3, 1
    peers = dataclasses.replace(out.get_relation(peers.id), peers_data={1: {}, 2: {}})
    scaled = dataclasses.replace(
        out, planned_units=3, relations={*(r for r in out.relations if r.id != peers.id), peers}
    )
    out = ctx.run(ctx.on.relation_joined(peers, remote_unit=2), scaled)
    # Three pods share the database connection budget: smaller pools, a new spec.
    assert out.unit_status == world.ROLLOUT
    assert len(pod_specs) == 2
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status.message.startswith("1/3 MLflow pods ready")
    assert len(pod_specs) == 2

    kubernetes.ready_pods = 3
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
