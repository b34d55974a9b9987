"""MinIO over https (`secure: true` in minio's data), against SeaweedFS serving TLS.

The charm's bucket check verifies MinIO's certificate with the CAs boto3
trusts (the system's, or AWS_CA_BUNDLE's): a certificate it cannot verify
leaves the unit Waiting, naming the https endpoint, and creates nothing;
once the certificate is trusted the same hook creates the bucket over TLS.
The Scenario layer checks the https URLs in the pod spec and PodDefault
(tests/scenario/test_bucket_and_readiness.py); this checks the handshake.
"""

import harness
import pytest
from charm_driver import CharmDriver
from mlflow_venvs import image_mlflow_version, image_of
from servers import S3_CREDENTIALS, minio_app_data

from contracts import PEERS
from fakes.kubernetes_api import FakeKubernetesApi
from fakes.seaweedfs import self_signed_certificate

pytestmark = pytest.mark.e2e


def test_the_bucket_is_checked_over_https_and_only_with_a_trusted_certificate(seaweedfs, tmp_path, monkeypatch):
    cert, key = self_signed_certificate(tmp_path)
    server = seaweedfs(tls=(cert, key), credentials=S3_CREDENTIALS)
    endpoint = f"https://localhost:{server.port}"
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    with FakeKubernetesApi() as kubernetes:
        driver = CharmDriver(tmp_path, kubernetes.write_kubeconfig(tmp_path / "kubeconfig"))
        outcome = driver.tutorial(
            image_of(image_mlflow_version()), minio_app_data(server.port, secure=True), dict(PEERS["db"].unit_data)
        )
        assert outcome.status.startswith("waiting") and endpoint in outcome.status, outcome.history[-3:]
        assert server.client(verify=str(cert)).list_buckets()["Buckets"] == []

        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
        state = driver.run("config-changed", driver.ctx.on.config_changed(), outcome.state)
    assert [b["Name"] for b in server.client(verify=str(cert)).list_buckets()["Buckets"]] == [harness.BUCKET]
    assert endpoint not in driver.outcome(state).status
    container = next(c for c in driver.outcome(state).spec["containers"] if c["name"] == "mlflow-server")
    assert container["envConfig"]["MLFLOW_S3_ENDPOINT_URL"] == endpoint
