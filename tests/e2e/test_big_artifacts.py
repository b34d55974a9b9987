"""Big artifacts with serve_artifacts=true (issue 11.2), through the real server and a notebook's env.

From multipart_upload_chunk_size up, a notebook sends an artifact to MinIO
in parts, each to a URL the server presigns: the part uploads carry their
signature in the query (X-Amz-Signature), which the server's own S3 calls
never do (boto3 signs those in headers). Below the chunk size the bytes go
through the server. The bench (bench/artifacts.py) measures the same paths
at 64 MiB to 1 GiB; here they are checked at a few MiB.
"""

import os

import harness
import pytest
from mlflow_venvs import VERSIONS

MIB = 1024 * 1024

pytestmark = pytest.mark.e2e


def _presigned(requests, method: str, name: str):
    return [r for r in requests if r.startswith(f"{method} ") and name in r and "X-Amz-Signature=" in r]


def _round_trip(deploy, s3, version: str, path, size_mib: int):
    """A fresh proxied deployment with 5 MiB parts; `path` (random bytes) up and back from a notebook.
    Returns the client's report and the S3 requests made meanwhile."""
    deployment = deploy(version, {"serve_artifacts": True, "multipart_upload_chunk_size": 5})
    env = harness.notebook_env(deployment.notebook_env, deployment.workdir, deployment.image_bin)
    assert not [name for name in env if name.startswith("AWS_")], "a proxied notebook holds no keys"
    path.write_bytes(os.urandom(size_mib * MIB))
    seen = len(s3.server.requests)
    report = harness.run_artifact_client(env, path, path.stem, "", deployment.workdir, deployment.image_bin)
    assert report["intact"], "the artifact came back altered"
    return report, s3.server.requests[seen:]


@pytest.mark.parametrize("version", VERSIONS)
def test_an_artifact_over_the_chunk_size_goes_to_minio_in_presigned_parts(deploy, s3, version, tmp_path):
    _, requests = _round_trip(deploy, s3, version, tmp_path / "model.bin", 12)  # parts of 5, 5 and 2 MiB

    parts = [r for r in _presigned(requests, "PUT", "model.bin") if "partNumber=" in r]
    assert len(parts) == 3, requests
    stored = [key for key in s3.keys(harness.BUCKET) if key.endswith("/model.bin")]
    assert len(stored) == 1
    assert s3.client().head_object(Bucket=harness.BUCKET, Key=stored[0])["ContentLength"] == 12 * MIB
    if int(version.split(".")[0]) >= 3:
        # MLflow 3.x clients read it back in ranges straight from MinIO, on a cold server too: the
        # PodDefault's MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD spares them the /server-info question
        # that a busy worker can miss (3 s timeout), after which they would go through the server.
        assert _presigned(requests, "GET", "model.bin"), requests
    else:
        # MLflow 2.22's server fetches it for the client.
        assert not _presigned(requests, "GET", "model.bin"), requests


@pytest.mark.parametrize("version", VERSIONS)
def test_an_artifact_under_the_chunk_size_goes_through_the_server(deploy, s3, version, tmp_path):
    _, requests = _round_trip(deploy, s3, version, tmp_path / "small.bin", 4)

    assert not _presigned(requests, "PUT", "small.bin"), requests
    assert [r for r in requests if r.startswith("PUT ") and r.split("?")[0].endswith("/small.bin")], requests
