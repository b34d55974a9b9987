"""A settled unit keeps telling the truth: update-status asks MLflow itself.

One GET of /health on the in-cluster service (tests/fakes/mlflow_server.py
at that name) and nothing else while MLflow serves; where it does not, the
full reconcile says why and what to do, and Active comes back with MLflow.
The bucket is checked again at least hourly, and whenever /health fails.
"""

import time

import pytest
from scenario import ActiveStatus, BlockedStatus, WaitingStatus

import charm
import world
from pod_readiness import NOT_READY


def test_a_settled_healthy_update_status_sends_one_get_and_asks_no_one_else(
    ctx, settled_in_one_hook, mlflow, kubernetes, pod_specs
):
    asked = len(kubernetes.requests)
    out = ctx.run(ctx.on.update_status(), settled_in_one_hook)
    assert out.unit_status == ActiveStatus()
    assert mlflow.requests == ["/health"]
    assert len(kubernetes.requests) == asked and len(pod_specs) == 1


def test_mlflow_crash_looping_is_reported_and_its_return_is_noticed(ctx, settled_in_one_hook, mlflow, kubernetes):
    mlflow.status, kubernetes.pod_ready = 503, False
    out = ctx.run(ctx.on.update_status(), settled_in_one_hook)
    assert out.unit_status == WaitingStatus(NOT_READY)
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == WaitingStatus(NOT_READY), "still down: still said"

    mlflow.status, kubernetes.pod_ready = 200, True
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    asked = len(mlflow.requests)
    assert ctx.run(ctx.on.update_status(), out).unit_status == ActiveStatus()
    assert len(mlflow.requests) == asked + 1, "settled again: back to one GET a hook"


def test_a_ready_pod_whose_service_does_not_answer_is_not_active(ctx, settled_in_one_hook, mlflow):
    mlflow.status = 503  # Kubernetes still calls the pod Ready
    out = ctx.run(ctx.on.update_status(), settled_in_one_hook)
    assert out.unit_status == WaitingStatus(charm.unreachable("mlflow-server", "kubeflow"))
    assert "kubectl -n kubeflow get endpoints mlflow-server" in out.unit_status.message
    mlflow.status = 200
    assert ctx.run(ctx.on.update_status(), out).unit_status == ActiveStatus()


def test_the_pod_deleted_waits_for_kubernetes_to_start_one(ctx, settled_in_one_hook, mlflow, kubernetes):
    mlflow.status, kubernetes.pod_count = 503, 0
    out = ctx.run(ctx.on.update_status(), settled_in_one_hook)
    assert out.unit_status.name == "waiting" and "start the MLflow pod" in out.unit_status.message


@pytest.fixture
def an_hour_later(monkeypatch):
    real = time.time
    monkeypatch.setattr(charm.time, "time", lambda: real() + charm.BUCKET_RECHECK_SECONDS + 1)


@pytest.mark.parametrize("create", [True, False])
def test_a_bucket_deleted_by_hand_is_noticed_within_the_hour(ctx, tmp_path, s3_buckets, mlflow, request, create):
    state = world.state(tmp_path, config={"create_default_artifact_root_if_missing": create})
    if not create:
        s3_buckets.create_bucket(Bucket="mlflow")
    settled = world.active(ctx, ctx.on.config_changed(), state)
    assert settled.unit_status == ActiveStatus()
    s3_buckets.delete_bucket(Bucket="mlflow")
    out = ctx.run(ctx.on.update_status(), settled)
    assert out.unit_status == ActiveStatus(), "within the hour MLflow's health alone is asked"

    request.getfixturevalue("an_hour_later")
    out = ctx.run(ctx.on.update_status(), out)
    if create:
        assert out.unit_status == ActiveStatus()
        assert "mlflow" in {b["Name"] for b in s3_buckets.list_buckets()["Buckets"]}
    else:
        assert isinstance(out.unit_status, BlockedStatus) and "mlflow" in out.unit_status.message


def test_a_failing_health_check_also_checks_the_bucket(ctx, settled_in_one_hook, s3_buckets, mlflow):
    s3_buckets.delete_bucket(Bucket="mlflow")
    mlflow.status = 503
    out = ctx.run(ctx.on.update_status(), settled_in_one_hook)
    assert "mlflow" in {b["Name"] for b in s3_buckets.list_buckets()["Buckets"]}, "re-created per the config"
    assert out.unit_status.name == "waiting"
