"""The Kubeflow tutorial's deploy-then-relate sequence, in several orders."""

import itertools
import json

import pytest
from scenario import ActiveStatus, BlockedStatus, WaitingStatus

import world
from contracts import MINIO_SECRET_KEY

TUTORIAL_POD_DEFAULTS = (
    '{"minio": {"env": {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": "minio123", '
    '"MLFLOW_S3_ENDPOINT_URL": "http://minio.kubeflow:9000", '
    '"MLFLOW_TRACKING_URI": "http://mlflow-server.kubeflow.svc.cluster.local:5000"}}}'
)
INGRESS_V2 = "namespace: kubeflow\nport: 5000\nprefix: /mlflow/\nrewrite: /\nservice: mlflow-server\n"


def test_deployed_alone_blocks_naming_every_relation_and_its_command(ctx, tmp_path, pod_specs):
    state = world.deployed(ctx, tmp_path)
    assert isinstance(state.unit_status, BlockedStatus)
    for command in (
        "juju relate mlflow-db mlflow-server",
        "juju relate minio mlflow-server",
        "juju relate istio-pilot mlflow-server",
        "juju relate mlflow-server admission-webhook",
    ):
        assert command in state.unit_status.message
    assert pod_specs == []


def test_tutorial_order_ends_active_with_everything_published(ctx, tmp_path, pod_specs, s3_buckets, kubernetes):
    state = world.deployed(ctx, tmp_path)
    for endpoint in world.ALL:
        state = world.relate(ctx, state, endpoint)
    assert state.unit_status == ActiveStatus(), "the spec was set at db (third); pod-defaults found its pod ready"
    assert len(pod_specs) == 1
    assert world.bag(state, "pod-defaults") == {"pod-defaults": TUTORIAL_POD_DEFAULTS}
    assert world.bag(state, "ingress") == {"_supported_versions": "- v1\n- v2\n", "data": INGRESS_V2}
    assert world.bag(state, "object-storage") == {"_supported_versions": "- v1\n"}
    assert world.bag(state, "db") == {}
    assert [b["Name"] for b in s3_buckets.list_buckets()["Buckets"]] == ["mlflow"]
    assert kubernetes.requests, "Active must come from asking Kubernetes"


def _intermediate_status(related, spec_set_now):
    if set(related) == set(world.ALL):
        return WaitingStatus if spec_set_now else ActiveStatus
    return BlockedStatus


ORDERS = [
    world.ALL,
    ("db", "object-storage", "ingress", "pod-defaults"),
    ("pod-defaults", "ingress", "object-storage", "db"),
    ("ingress", "db", "pod-defaults", "object-storage"),
    ("pod-defaults", "db", "ingress", "object-storage"),
    ("db", "pod-defaults", "object-storage", "ingress"),
]


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_any_relate_order_converges_to_the_same_result(ctx, tmp_path, pod_specs, order):
    state = world.deployed(ctx, tmp_path)
    for i, endpoint in enumerate(order):
        specs_before = len(pod_specs)
        state = world.relate(ctx, state, endpoint)
        expected = _intermediate_status(order[: i + 1], spec_set_now=len(pod_specs) > specs_before)
        assert type(state.unit_status) is expected, state.unit_status
        still_missing = [ep for ep in world.ALL if ep not in order[: i + 1]]
        for endpoint_missing in still_missing:
            assert endpoint_missing in state.unit_status.message
    state = world.rolled_out(ctx, state)
    assert state.unit_status == ActiveStatus()
    assert len(pod_specs) == 1
    assert world.bag(state, "pod-defaults") == {"pod-defaults": TUTORIAL_POD_DEFAULTS}
    assert world.bag(state, "ingress")["data"] == INGRESS_V2


def test_pod_defaults_are_written_as_soon_as_the_relation_joins(ctx, tmp_path):
    state = world.deployed(ctx, tmp_path)
    rel = world.relation("pod-defaults")
    state = ctx.run(ctx.on.relation_created(rel), world.with_relation(state, rel))
    published = json.loads(world.bag(state, "pod-defaults")["pod-defaults"])
    assert published == {
        "minio": {"env": {"MLFLOW_TRACKING_URI": "http://mlflow-server.kubeflow.svc.cluster.local:5000"}}
    }

    state = world.relate(ctx, state, "object-storage")
    env = json.loads(world.bag(state, "pod-defaults")["pod-defaults"])["minio"]["env"]
    assert env["AWS_SECRET_ACCESS_KEY"] == MINIO_SECRET_KEY
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.kubeflow:9000"


def test_waiting_for_mariadb_names_the_missing_fields(ctx, tmp_path):
    state = world.deployed(ctx, tmp_path)
    empty = world.relation("db", remote_units_data={0: {}})
    state = ctx.run(ctx.on.relation_joined(empty, remote_unit=0), world.with_relation(state, empty))
    state = world.relate(ctx, state, "object-storage")
    state = world.relate(ctx, state, "ingress")
    state = world.relate(ctx, state, "pod-defaults")
    assert isinstance(state.unit_status, WaitingStatus)
    assert "mlflow-db" in state.unit_status.message and "password" in state.unit_status.message


def test_waiting_for_minio_data_after_it_listed_versions(ctx, tmp_path, pod_specs):
    state = world.state(tmp_path, object_storage={"remote_app_data": {"_supported_versions": "- v1\n"}})
    state = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(state.unit_status, WaitingStatus)
    assert "minio" in state.unit_status.message and "object-storage" in state.unit_status.message
    assert pod_specs == []


@pytest.mark.parametrize("endpoints", list(itertools.combinations(world.ALL, 3)))
def test_three_of_four_relations_never_report_active(ctx, tmp_path, endpoints):
    state = ctx.run(ctx.on.config_changed(), world.state(tmp_path, endpoints=endpoints))
    (missing,) = set(world.ALL) - set(endpoints)
    assert isinstance(state.unit_status, BlockedStatus)
    assert missing in state.unit_status.message
