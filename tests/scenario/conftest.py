"""Scenario runs the charm as Juju would; these fixtures give it a world to talk to.

- `pod_specs`: Scenario refuses pod-spec-set, so the mock backend's
  pod_spec_set records every spec the charm sets, in order.
- a real S3 server at MinIO's in-cluster address (see tests/fakes/s3_server.py)
- a Kubernetes API on loopback that reports the MLflow pod ready or not.
"""

import pytest
import scenario
from scenario.mocking import _MockModelBackend

from charm import MlflowServerCharm
from fakes.kubernetes_api import FakeKubernetesApi
from fakes.s3_server import loopback_names, s3_server


@pytest.fixture(scope="session")
def s3():
    with s3_server(port=9000) as url, loopback_names():
        yield url


@pytest.fixture(autouse=True)
def s3_buckets(s3):
    """A boto3 client of the S3 server; every test starts with no bucket."""
    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3, aws_access_key_id="minio", aws_secret_access_key="minio123", region_name="us-east-1"
    )
    for bucket in client.list_buckets().get("Buckets", []):
        for obj in client.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            client.delete_object(Bucket=bucket["Name"], Key=obj["Key"])
        client.delete_bucket(Bucket=bucket["Name"])
    return client


@pytest.fixture(autouse=True)
def kubernetes(tmp_path, monkeypatch):
    with FakeKubernetesApi() as api:
        monkeypatch.setenv("KUBECONFIG", str(api.write_kubeconfig(tmp_path / "kubeconfig")))
        yield api


@pytest.fixture(autouse=True)
def pod_specs(monkeypatch):
    recorded = []

    def pod_spec_set(self, spec, k8s_resources=None):
        recorded.append(spec)

    monkeypatch.setattr(_MockModelBackend, "pod_spec_set", pod_spec_set, raising=True)
    return recorded


@pytest.fixture
def ctx():
    return scenario.Context(MlflowServerCharm)
