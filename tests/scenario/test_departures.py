"""Each relation leaves and comes back: the status says what is missing, the
published data stays true to what is still related, and the pod is not
restarted needlessly."""

import json

import pytest
from scenario import ActiveStatus, BlockedStatus

import world

TRACKING_ONLY = {"MLFLOW_TRACKING_URI": "http://mlflow-server.kubeflow.svc.cluster.local:5000"}


def env_of(state):
    return json.loads(world.bag(state, "pod-defaults")["pod-defaults"])["minio"]["env"]


@pytest.mark.parametrize(
    "endpoint, command",
    [
        ("object-storage", "juju relate minio mlflow-server"),
        ("db", "juju relate mlflow-db mlflow-server"),
        ("ingress", "juju relate istio-pilot mlflow-server"),
        ("pod-defaults", "juju relate mlflow-server admission-webhook"),
    ],
)
def test_leaving_blocks_with_the_command_keeps_what_still_holds_and_returning_restores_it(
    ctx, settled, pod_specs, endpoint, command
):
    before = {ep: world.bag(settled, ep) for ep in ("pod-defaults", "ingress")}
    gone = world.unrelate(ctx, settled, endpoint)
    assert gone.unit_status == BlockedStatus(f"missing relation {endpoint}: run `{command}`")
    assert len(pod_specs) == 1, "a departure must not re-render a pod from partial data"
    if endpoint == "object-storage":
        # minio is gone: notebooks keep the tracking URI, not the keys of a MinIO no longer related
        assert env_of(gone) == TRACKING_ONLY
    elif endpoint != "pod-defaults":
        assert world.bag(gone, "pod-defaults") == before["pod-defaults"]
    if endpoint != "ingress":
        assert world.bag(gone, "ingress") == before["ingress"]

    back = world.relate(ctx, gone, endpoint)
    assert back.unit_status == ActiveStatus()
    assert len(pod_specs) == 1, "same inputs again: the spec is unchanged, the pod is not restarted"
    assert env_of(back) == env_of(settled)
    assert env_of(back)["AWS_SECRET_ACCESS_KEY"] == "minio123"


def test_two_relations_broken_name_both(ctx, settled):
    gone = world.without(settled, "db")
    out = ctx.run(ctx.on.relation_broken(gone.get_relation(world.RELATION_IDS["object-storage"])), gone)
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("missing relations db, object-storage: ")


def test_every_relation_leaving_in_turn_ends_blocked_naming_all(ctx, settled):
    state = settled
    for endpoint in world.ALL:
        state = world.unrelate(ctx, state, endpoint)
    assert isinstance(state.unit_status, BlockedStatus)
    for endpoint in world.ALL:
        assert endpoint in state.unit_status.message


def test_mariadb_unit_departing_waits_for_new_data(ctx, settled, pod_specs):
    rel = settled.get_relation(world.RELATION_IDS["db"])
    state = world.update_relation(settled, "db", remote_units_data={})
    state = ctx.run(ctx.on.relation_departed(state.get_relation(rel.id), remote_unit=0, departing_unit=0), state)
    assert state.unit_status.name == "waiting"
    assert "mlflow-db" in state.unit_status.message
    assert len(pod_specs) == 1


def test_malformed_minio_data_keeps_the_published_keys(ctx, settled, pod_specs):
    before = world.bag(settled, "pod-defaults")
    broken = {"_supported_versions": "- v1\n", "data": "access-key: minio\nport: nine\n"}
    state = world.update_relation(settled, "object-storage", remote_app_data=broken)
    state = ctx.run(ctx.on.relation_changed(state.get_relation(world.RELATION_IDS["object-storage"])), state)
    assert isinstance(state.unit_status, BlockedStatus) and "invalid object-storage data" in state.unit_status.message
    assert world.bag(state, "pod-defaults") == before
    assert len(pod_specs) == 1
