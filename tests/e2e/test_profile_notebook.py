"""The tutorial's notebook in a user's namespace, fed as Kubeflow would feed it.

The charm syncs its Secret and PodDefault into the profile namespace `admin`
of the loopback Kubernetes API. The notebook's env is then built as the
admission webhook and the kubelet build it: the PodDefault whose selector
matches the notebook pod's label is merged into the pod, and each
`secretKeyRef` is resolved from that namespace's Secret. No kubectl copy.
"""

import base64
import json

import harness
import pytest
from mlflow_venvs import image_mlflow_version
from servers import S3_SECRET_KEY

from contracts import APP

pytestmark = pytest.mark.e2e

NAME = f"{APP}-minio"
NOTEBOOK_LABELS = {NAME: "true"}  # what ticking the box in the notebook form sets


def _selected(pod_default: dict, pod_labels: dict) -> bool:
    wanted = pod_default["spec"]["selector"]["matchLabels"]
    return all(pod_labels.get(k) == v for k, v in wanted.items())


def kubelet_env(api, namespace: str, pod_labels: dict) -> dict:
    """The notebook container's env: the matching PodDefault's, references resolved in `namespace`."""
    pod_default = api.get("poddefaults", namespace, NAME)
    assert pod_default is not None, f"no PodDefault {NAME} in {namespace}"
    assert _selected(pod_default, pod_labels)
    env = {}
    for var in pod_default["spec"]["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        secret = api.get("secrets", namespace, ref["name"])
        assert secret is not None, f"{var['name']} refers to a missing Secret {ref['name']}"
        env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    return env


def test_a_profile_notebook_runs_the_tutorial_with_the_synced_objects(deploy):
    deploy.kubernetes.add_namespace("default")
    deploy.kubernetes.add_profile("admin")
    deployment = deploy(image_mlflow_version())
    assert deployment.outcome.status == "active"

    pod_default = deploy.kubernetes.get("poddefaults", "admin", NAME)
    assert S3_SECRET_KEY not in json.dumps(pod_default)
    assert deploy.kubernetes.get("poddefaults", "default", NAME) is None
    assert not _selected(pod_default, {})  # a notebook without the box ticked gets nothing

    env = kubelet_env(deploy.kubernetes, "admin", NOTEBOOK_LABELS)
    # What the kubeflow namespace's PodDefault (admission-webhook's, plain values) gives, by reference here.
    assert env == deployment.notebook_env

    report = harness.run_notebook(env, deployment.workdir, deployment.image_bin)
    assert report["params"] == {"alpha": "0.5", "l1_ratio": "0.5"}
    assert set(report["metrics"]) == {"rmse", "mae", "r2"}
    assert report["model_versions"] == [1]
    assert report["predictions_match"] is True
    assert report["artifact_uri"].startswith(f"s3://{harness.BUCKET}/")
    assert report["requirements_key"] in report["bucket_keys"]  # the keys from the Secret reach MinIO
