"""The S3 fake answers ranged GETs itself (tests/fakes/s3_server.py): exact bytes, S3's headers.

boto3 and MLflow fetch big objects in 8 MiB ranges; moto alone reads the
whole object for each. These hold the fake to what S3 returns, so the
artifact bench measures MLflow rather than the fake.
"""

import os
import urllib.request

import botocore.exceptions
import pytest

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def ranges(s3):
    """conftest's session S3 fake (tests/fakes/s3_server.py) and a client of it, with a bucket for these tests."""
    client = s3.client()
    client.create_bucket(Bucket="ranges")
    yield s3.server, client
    for key in s3.keys("ranges"):
        client.delete_object(Bucket="ranges", Key=key)
    client.delete_bucket(Bucket="ranges")


DATA = os.urandom(3 * MIB + 7)


@pytest.mark.parametrize(
    "header, expected",
    [
        ("bytes=5-1048580", DATA[5:1048581]),  # answered by the fake
        ("bytes=3145000-", DATA[3145000:]),  # open-ended, answered by the fake
        ("bytes=0-99999999", DATA),  # past the end: clipped, as S3 does
        ("bytes=-10", DATA[-10:]),  # suffix range: moto's
    ],
)
def test_a_ranged_get_returns_exactly_the_range(ranges, header: str, expected: bytes) -> None:
    _, client = ranges
    client.put_object(Bucket="ranges", Key="dir/object.bin", Body=DATA)
    got = client.get_object(Bucket="ranges", Key="dir/object.bin", Range=header)
    assert got["Body"].read() == expected
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"].endswith(f"/{len(DATA)}")
    assert got["ETag"] == client.head_object(Bucket="ranges", Key="dir/object.bin")["ETag"]


def test_a_range_past_the_end_is_still_refused(ranges) -> None:
    _, client = ranges
    client.put_object(Bucket="ranges", Key="small", Body=b"0123456789")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.get_object(Bucket="ranges", Key="small", Range="bytes=10-")
    assert refused.value.response["Error"]["Code"] == "InvalidRange"


def test_a_presigned_ranged_get_and_a_whole_download(ranges, tmp_path) -> None:
    server, client = ranges
    client.put_object(Bucket="ranges", Key="big.bin", Body=DATA * 7)  # 21 MiB: three 8 MiB ranges
    url = client.generate_presigned_url("get_object", Params={"Bucket": "ranges", "Key": "big.bin"})
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=0-9"})) as got:  # noqa: S310
        assert (got.status, got.read()) == (206, DATA[:10])
    before = len(server.requests)
    client.download_file("ranges", "big.bin", str(tmp_path / "big.bin"))
    assert (tmp_path / "big.bin").read_bytes() == DATA * 7
    assert len([r for r in server.requests[before:] if r.startswith("GET ")]) >= 3  # ranged, in parts
