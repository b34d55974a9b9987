"""The bucket check against a real S3 server, and readiness from the Kubernetes API."""

import dataclasses

from scenario import ActiveStatus, BlockedStatus, WaitingStatus

import world
from pod_readiness import NO_POD_OF_SPEC


def test_missing_bucket_without_permission_to_create_blocks_with_the_fix(ctx, tmp_path, s3_buckets, pod_specs):
    state = world.state(tmp_path, config={"create_default_artifact_root_if_missing": False})
    out = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(out.unit_status, BlockedStatus)
    assert "'mlflow'" in out.unit_status.message
    assert "create_default_artifact_root_if_missing=true" in out.unit_status.message
    assert s3_buckets.list_buckets()["Buckets"] == []
    assert len(pod_specs) == 1, "the server can run; only artifact logging needs the bucket"

    s3_buckets.create_bucket(Bucket="mlflow")
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    assert len(pod_specs) == 1


def test_existing_bucket_is_used_as_is(ctx, tmp_path, s3_buckets):
    s3_buckets.create_bucket(Bucket="mlflow")
    s3_buckets.put_object(Bucket="mlflow", Key="0/keep.txt", Body=b"kept")
    out = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    assert out.unit_status == ActiveStatus()
    assert s3_buckets.get_object(Bucket="mlflow", Key="0/keep.txt")["Body"].read() == b"kept"


def test_pod_not_ready_waits_and_update_status_rechecks(ctx, tmp_path, kubernetes):
    kubernetes.pod_ready = False
    out = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    assert isinstance(out.unit_status, WaitingStatus) and "readiness probe" in out.unit_status.message

    kubernetes.pod_ready = True
    asked = len(kubernetes.requests)
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    assert len(kubernetes.requests) == asked + 1


def test_the_hook_that_sets_a_spec_waits_for_its_rollout_and_asks_nobody(ctx, tmp_path, kubernetes, pod_specs):
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path))
    assert out.unit_status == world.ROLLOUT
    assert len(pod_specs) == 1 and kubernetes.requests == [], "Juju applies the spec after the hook"


def test_a_ready_pod_of_the_previous_spec_does_not_count(ctx, tmp_path, kubernetes, pod_specs):
    out = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    assert out.unit_status == ActiveStatus()
    previous = dict(kubernetes.pod_annotations)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"workers": 2}))
    kubernetes.pod_annotations = previous  # the rollout is stuck: only the old pod runs
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == WaitingStatus(NO_POD_OF_SPEC)


def test_no_pod_yet_waits_for_kubernetes(ctx, tmp_path, kubernetes):
    kubernetes.pod_count = 0
    out = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    assert isinstance(out.unit_status, WaitingStatus) and "start the MLflow pod" in out.unit_status.message


def test_kubernetes_api_refusing_says_so(ctx, tmp_path, kubernetes):
    kubernetes.status_code = 403
    out = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    assert isinstance(out.unit_status, WaitingStatus)
    assert "cannot ask the Kubernetes API" in out.unit_status.message


def test_once_active_update_status_asks_nobody(ctx, tmp_path, kubernetes, pod_specs):
    out = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    assert out.unit_status == ActiveStatus()
    asked = len(kubernetes.requests)
    for _ in range(3):
        out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    assert len(kubernetes.requests) == asked and len(pod_specs) == 1


def test_secure_minio_gives_https_everywhere(ctx, tmp_path, pod_specs):
    data = "access-key: minio\nnamespace: kubeflow\nport: 9000\nsecret-key: minio123\nsecure: true\nservice: minio\n"
    state = world.state(tmp_path, object_storage={"remote_app_data": {"_supported_versions": "- v1\n", "data": data}})
    out = world.active(ctx, ctx.on.config_changed(), state)
    server = next(c for c in pod_specs[-1]["containers"] if c["name"] == "mlflow-server")
    assert server["envConfig"]["MLFLOW_S3_ENDPOINT_URL"] == "https://minio.kubeflow:9000"
    assert '"MLFLOW_S3_ENDPOINT_URL": "https://minio.kubeflow:9000"' in world.bag(out, "pod-defaults")["pod-defaults"]
    # moto serves plain HTTP: the charm's TLS handshake fails, which it reports as unreachable
    # (a real TLS MinIO, trusted and not: tests/e2e/test_https_minio.py).
    assert isinstance(out.unit_status, WaitingStatus) and "https://minio.kubeflow:9000" in out.unit_status.message
