"""Creating the artifact bucket when MinIO says no, or says it is already ours.

GIVEN a MinIO without the bucket (HEAD answers 404), WHEN the charm creates
it and MinIO refuses (a bucket of that name owned by someone else), THEN the
unit is Blocked naming the bucket and the fix; WHEN MinIO answers that the
bucket is already ours (created meanwhile), THEN that is success.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

import world
from contracts import MINIO_APP_DATA


class MinioWithoutTheBucket:
    """HEAD: 404; PUT (create bucket): `status` with S3 error `code`."""

    def __init__(self, status: int, code: str):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body=b""):
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                outer.requests.append(("HEAD", self.path))
                self._reply(404)

            def do_PUT(self):
                outer.requests.append(("PUT", self.path))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._reply(status, f'<?xml version="1.0"?><Error><Code>{code}</Code></Error>'.encode())

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


def with_minio_at(tmp_path, port):
    data = {**yaml.safe_load(MINIO_APP_DATA["data"]), "port": port}
    relation = world.relation("object-storage", remote_app_data={**MINIO_APP_DATA, "data": yaml.safe_dump(data)})
    return world.with_relation(world.state(tmp_path), relation)


@pytest.mark.parametrize("status, code", [(409, "BucketAlreadyExists"), (403, "AccessDenied")])
def test_minio_refusing_to_create_the_bucket_blocks_naming_it(ctx, tmp_path, status, code):
    with MinioWithoutTheBucket(status, code) as minio:
        out = ctx.run(ctx.on.config_changed(), with_minio_at(tmp_path, minio.port))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message == f"MinIO refused to create bucket 'mlflow' ({code}): create it by hand"
    assert [verb for verb, _ in minio.requests] == ["HEAD", "PUT"]


def test_a_bucket_created_meanwhile_by_the_same_keys_is_used(ctx, tmp_path, pod_specs):
    with MinioWithoutTheBucket(409, "BucketAlreadyOwnedByYou") as minio:
        out = ctx.run(ctx.on.config_changed(), with_minio_at(tmp_path, minio.port))
    assert out.unit_status == world.ROLLOUT, "nothing wrong: only the rollout is awaited"
    assert len(pod_specs) == 1
