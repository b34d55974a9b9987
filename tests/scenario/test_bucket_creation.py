"""Creating the artifact bucket when MinIO says no, or says it is already ours.

GIVEN a MinIO without the bucket (HEAD answers 404), WHEN the charm creates
it and MinIO refuses (a bucket of that name owned by someone else), THEN the
unit is Blocked naming the bucket and the fix; WHEN MinIO answers that the
bucket is already ours (created meanwhile), THEN that is success.
"""

import pytest
import yaml

import world
from contracts import MINIO_APP_DATA
from fakes.broken_servers import StatusServer


def minio_without_the_bucket(status: int, code: str) -> StatusServer:
    """HEAD: 404; PUT (create bucket): `status` with S3 error `code`."""
    return StatusServer(status, code, head_status=404)


def with_minio_at(tmp_path, port):
    data = {**yaml.safe_load(MINIO_APP_DATA["data"]), "port": port}
    relation = world.relation("object-storage", remote_app_data={**MINIO_APP_DATA, "data": yaml.safe_dump(data)})
    return world.with_relation(world.state(tmp_path), relation)


@pytest.mark.parametrize("status, code", [(409, "BucketAlreadyExists"), (403, "AccessDenied")])
def test_minio_refusing_to_create_the_bucket_blocks_naming_it(ctx, tmp_path, status, code):
    with minio_without_the_bucket(status, code) as minio:
        out = ctx.run(ctx.on.config_changed(), with_minio_at(tmp_path, minio.port))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message == f"MinIO refused to create bucket 'mlflow' ({code}): create it by hand"
    assert [verb for verb, _ in minio.requests] == ["HEAD", "PUT"]


def test_a_bucket_created_meanwhile_by_the_same_keys_is_used(ctx, tmp_path, pod_specs):
    with minio_without_the_bucket(409, "BucketAlreadyOwnedByYou") as minio:
        out = ctx.run(ctx.on.config_changed(), with_minio_at(tmp_path, minio.port))
    assert out.unit_status == world.ROLLOUT, "nothing wrong: only the rollout is awaited"
    assert len(pod_specs) == 1
