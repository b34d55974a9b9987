"""The Secret and PodDefault each Kubeflow profile namespace gets: rendered purely."""

import base64
import json

import mlflow_workload as workload
from helpers import HOSTILE_PASSWORD, config, storage

APP, MODEL = "mlflow-server", "kubeflow"


def _env(pod_default):
    return {e["name"]: e for e in pod_default["spec"]["env"]}


def test_the_pod_default_is_the_notebook_box_of_the_tutorial():
    pod_default = workload.profile_pod_default(config(), storage(), APP, MODEL)
    assert pod_default["apiVersion"] == "kubeflow.org/v1alpha1" and pod_default["kind"] == "PodDefault"
    assert pod_default["metadata"] == {"name": "mlflow-server-minio"}
    assert pod_default["spec"]["selector"] == {"matchLabels": {"mlflow-server-minio": "true"}}
    assert pod_default["spec"]["desc"] == "mlflow-server-minio"


def test_keys_come_from_the_profiles_secret_and_urls_by_value():
    env = _env(workload.profile_pod_default(config(), storage(), APP, MODEL))
    assert list(env) == ["MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert env["MLFLOW_TRACKING_URI"] == {
        "name": "MLFLOW_TRACKING_URI",
        "value": "http://mlflow-server.kubeflow.svc.cluster.local:5000",
    }
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.kubeflow:9000"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[var] == {"name": var, "valueFrom": {"secretKeyRef": {"name": "mlflow-server-minio", "key": var}}}


def test_no_key_in_the_pod_default_body_whatever_the_key():
    keys = storage(access_key="AKIAhostile$(HOME)", secret_key=HOSTILE_PASSWORD)
    body = json.dumps(workload.profile_pod_default(config(), keys, APP, MODEL), ensure_ascii=False)
    assert "AKIAhostile" not in body and HOSTILE_PASSWORD not in body
    assert json.dumps(HOSTILE_PASSWORD)[1:-1] not in body


def test_the_secret_holds_both_keys_exactly():
    secret = workload.profile_secret(config(), storage(secret_key=HOSTILE_PASSWORD), APP)
    assert secret["metadata"] == {"name": "mlflow-server-minio"} and secret["type"] == "Opaque"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": HOSTILE_PASSWORD}


def test_proxied_artifacts_leave_no_secret_and_no_minio_endpoint_or_key():
    proxied = config(serve_artifacts=True)
    assert workload.profile_secret(proxied, storage(), APP) is None
    env = _env(workload.profile_pod_default(proxied, storage(), APP, MODEL))
    # The tracking URI and the multipart upload settings, as the kubeflow namespace's PodDefault has them.
    assert sorted(env) == sorted(workload.notebook_env(proxied, storage(), APP, MODEL))
    assert "MLFLOW_TRACKING_URI" in env and not {"MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"} & set(env)


def test_without_object_storage_nothing_is_offered():
    assert workload.profile_objects(config(), None, APP, MODEL) == {"Secret": None, "PodDefault": None}


def test_port_and_app_name_follow_the_config():
    objects = workload.profile_objects(config(mlflow_port=5001), storage(), "registry", MODEL)
    assert list(objects) == ["Secret", "PodDefault"]  # the Secret first: the PodDefault points at it
    assert objects["Secret"]["metadata"]["name"] == "registry-minio"
    env = _env(objects["PodDefault"])
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://registry.kubeflow.svc.cluster.local:5001"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "registry-minio"


def test_rendering_is_deterministic():
    first = json.dumps(workload.profile_objects(config(), storage(), APP, MODEL), sort_keys=False)
    assert first == json.dumps(workload.profile_objects(config(), storage(), APP, MODEL), sort_keys=False)
