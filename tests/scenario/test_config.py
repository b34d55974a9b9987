"""Config changes re-render what depends on them; bad values block naming the option."""

import dataclasses
import json

import pytest
from scenario import ActiveStatus, BlockedStatus

import world


def configure(ctx, state, **options):
    """`juju config`, then the update-status that sees the rolled-out pod."""
    return world.active(ctx, ctx.on.config_changed(), dataclasses.replace(state, config={**state.config, **options}))


def server(spec):
    return next(c for c in spec["containers"] if c["name"] == "mlflow-server")


def test_port_change_moves_the_server_the_tracking_uri_and_the_route(ctx, settled, pod_specs):
    state = configure(ctx, settled, mlflow_port=5001)
    assert state.unit_status == ActiveStatus()
    assert len(pod_specs) == 2
    assert server(pod_specs[-1])["ports"][0]["containerPort"] == 5001
    env = json.loads(world.bag(state, "pod-defaults")["pod-defaults"])["minio"]["env"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow-server.kubeflow.svc.cluster.local:5001"
    assert "port: 5001\n" in world.bag(state, "ingress")["data"]


def test_proxied_artifacts_take_the_keys_out_of_the_pod_defaults(ctx, settled, pod_specs):
    state = configure(ctx, settled, serve_artifacts=True)
    command = server(pod_specs[-1])["command"]
    assert "--serve-artifacts" in command and "--artifacts-destination" in command
    env = json.loads(world.bag(state, "pod-defaults")["pod-defaults"])["minio"]["env"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow-server.kubeflow.svc.cluster.local:5000"
    assert not [k for k in env if k.startswith("AWS_") or k == "MLFLOW_S3_ENDPOINT_URL"]
    # Big artifacts go up in parts, each to MinIO through a URL the server presigns.
    assert env["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "true"
    # A 2.x server has no presigned downloads: a 3.x client told to use them would ask for each file.
    assert "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD" not in env


def test_a_3x_image_lets_proxied_notebooks_download_from_presigned_urls(ctx, settled, tmp_path, pod_specs):
    state = world.with_image(settled, tmp_path, "docker.io/example/mlflow:3.17.2")
    state = configure(ctx, state, serve_artifacts=True)
    env = json.loads(world.bag(state, "pod-defaults")["pod-defaults"])["minio"]["env"]
    # Straight from MinIO through presigned URLs, without a /server-info question first.
    assert env["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "true"
    assert pod_specs[-1]["containers"][0]["imageDetails"]["imagePath"] == "docker.io/example/mlflow:3.17.2"


def test_nodeport_and_workers(ctx, settled, pod_specs):
    configure(ctx, settled, enable_mlflow_nodeport=True, mlflow_nodeport=31390, workers=2)
    spec = pod_specs[-1]
    assert spec["kubernetesResources"]["services"][0]["spec"]["ports"][0]["nodePort"] == 31390
    command = server(spec)["command"]
    assert command[command.index("--workers") + 1] == "2"


def test_a_new_bucket_is_created(ctx, settled, s3_buckets):
    state = configure(ctx, settled, default_artifact_root="models")
    assert state.unit_status == ActiveStatus()
    assert {b["Name"] for b in s3_buckets.list_buckets()["Buckets"]} == {"mlflow", "models"}


@pytest.mark.parametrize(
    "option, value",
    [("mlflow_port", 80), ("default_artifact_root", "s3://Bad_Bucket"), ("workers", 0), ("mlflow_nodeport", 1)],
)
def test_bad_config_blocks_naming_the_option_and_keeps_what_was_published(ctx, settled, pod_specs, option, value):
    before = {ep: world.bag(settled, ep) for ep in ("pod-defaults", "ingress")}
    state = configure(ctx, settled, **{option: value})
    assert isinstance(state.unit_status, BlockedStatus)
    assert option in state.unit_status.message
    assert {ep: world.bag(state, ep) for ep in before} == before
    assert len(pod_specs) == 1

    fixed = configure(ctx, state, **{option: world.DEFAULTS[option]})
    assert fixed.unit_status == ActiveStatus()
    assert len(pod_specs) == 1, "back to the same config: same spec, no restart"


def test_narrowed_allowed_hosts_reach_the_server_env(ctx, settled, pod_specs):
    configure(ctx, settled, allowed_hosts="10.64.140.43.nip.io", cors_allowed_origins="http://10.64.140.43.nip.io")
    env = server(pod_specs[-1])["envConfig"]
    assert "mlflow-server.kubeflow.svc.cluster.local" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "10.64.140.43.nip.io" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"] == "http://10.64.140.43.nip.io"


def test_bad_config_before_admission_webhook_still_gives_it_its_key(ctx, tmp_path):
    state = world.deployed(ctx, tmp_path, config={"mlflow_port": 80})
    rel = world.relation("pod-defaults")
    out = ctx.run(ctx.on.relation_created(rel), world.with_relation(state, rel))
    assert isinstance(out.unit_status, BlockedStatus) and "mlflow_port" in out.unit_status.message
    assert world.bag(out, "pod-defaults") == {"pod-defaults": "{}"}, "the webhook indexes the key: it must exist"
