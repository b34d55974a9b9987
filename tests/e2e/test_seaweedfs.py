"""The S3 server of the e2e suite, the demo and the artifact bench (tests/fakes/seaweedfs.py).

These hold SeaweedFS to what the other tests rely on from MinIO: it refuses
keys it does not know, takes keys holding `$`, keeps objects across a
SIGKILL and a restart on the same port, serves https, and its request log
shows each request's query, which is how the e2e tests tell presigned
requests from the server's own.
"""

import os
import urllib.request

import botocore.exceptions
import pytest
from servers import S3_DOLLAR_ACCESS_KEY, S3_DOLLAR_SECRET_KEY, S3_SECRET_KEY

from fakes.seaweedfs import self_signed_certificate

MIB = 1024 * 1024
DATA = os.urandom(3 * MIB + 7)
# Characters a key may hold that need percent-encoding in a path, or are signed differently.
ODD_KEY = "dir with space/ü+%20&=?#~$(HOME)'.bin"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bucket(s3):
    """conftest's session server and a client of it, with a bucket for these tests."""
    client = s3.client()
    client.create_bucket(Bucket="seaweedfs-test")
    yield s3.server, client
    s3.empty("seaweedfs-test")
    client.delete_bucket(Bucket="seaweedfs-test")


@pytest.mark.parametrize(
    "access, secret, code",
    [
        ("minio", S3_SECRET_KEY + "x", "SignatureDoesNotMatch"),
        ("nobody", S3_SECRET_KEY, "InvalidAccessKeyId"),
    ],
)
def test_unknown_keys_are_refused(bucket, access, secret, code) -> None:
    server, _ = bucket
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        server.client(access, secret).list_objects_v2(Bucket="seaweedfs-test")
    assert refused.value.response["Error"]["Code"] == code


def test_keys_holding_dollars_sign_requests(bucket) -> None:
    server, _ = bucket
    client = server.client(S3_DOLLAR_ACCESS_KEY, S3_DOLLAR_SECRET_KEY)
    client.put_object(Bucket="seaweedfs-test", Key="dollars", Body=b"$$")
    assert client.get_object(Bucket="seaweedfs-test", Key="dollars")["Body"].read() == b"$$"


def test_an_odd_key_round_trips_and_the_log_shows_presigned_queries(bucket) -> None:
    server, client = bucket
    client.put_object(Bucket="seaweedfs-test", Key=ODD_KEY, Body=DATA)
    assert ODD_KEY in [o["Key"] for o in client.list_objects_v2(Bucket="seaweedfs-test")["Contents"]]
    url = client.generate_presigned_url("get_object", Params={"Bucket": "seaweedfs-test", "Key": ODD_KEY})
    before = len(server.requests)
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=5-1048580"})) as got:  # noqa: S310
        assert (got.status, got.read()) == (206, DATA[5:1048581])
    (request,) = server.requests[before:]
    assert request.startswith(f"GET /seaweedfs-test/{ODD_KEY}?") and "X-Amz-Signature=" in request


def test_objects_survive_a_sigkill_and_a_restart_on_the_same_port(seaweedfs) -> None:
    server = seaweedfs()
    client = server.client()
    client.create_bucket(Bucket="kept")
    client.put_object(Bucket="kept", Key=ODD_KEY, Body=DATA)
    url = server.url
    server.kill()
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        server.client().head_bucket(Bucket="kept")
    server.start(timeout=60)
    assert server.url == url
    assert server.client().get_object(Bucket="kept", Key=ODD_KEY)["Body"].read() == DATA


def test_https_with_a_self_signed_certificate(seaweedfs, tmp_path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = seaweedfs(tls=(cert, key))
    assert server.url.startswith("https://")
    client = server.client(verify=str(cert))
    client.create_bucket(Bucket="tls")
    client.put_object(Bucket="tls", Key="a", Body=b"over tls")
    assert client.get_object(Bucket="tls", Key="a")["Body"].read() == b"over tls"
    with pytest.raises(botocore.exceptions.SSLError):
        server.client().list_buckets()  # the system's CAs do not know this certificate
