"""The pod spec is a pure function of its inputs: byte-identical across processes, hash seeds and dict orders.

Juju restarts the MLflow pod whenever the spec changes, and the charm decides
"changed" by hashing the rendered bytes. Any run-to-run variation (set or dict
iteration order under a different PYTHONHASHSEED, the order a peer's keys
arrived in) would restart the pod for nothing. Secrets are included: their
base64 text is part of the bytes.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Renders the spec from inputs built in the order given on the command line.
RENDER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from charm_config import parse_config
from pod_spec import PodSpecInputs, render_pod_spec
from relation_data import Database, ObjectStorage

reverse = sys.argv[2] == "reversed"
def ordered(pairs):
    return dict(reversed(pairs) if reverse else pairs)

config = parse_config(ordered([
    ("mlflow_port", 5000), ("default_artifact_root", "mlflow"),
    ("create_default_artifact_root_if_missing", True), ("serve_artifacts", False), ("workers", 4),
    ("enable_mlflow_nodeport", True), ("mlflow_nodeport", 31380),
    ("allowed_hosts", "10.64.140.43.nip.io,mlflow.example.com"),
    ("cors_allowed_origins", "http://10.64.140.43.nip.io"),
    ("enable_telemetry", False), ("worker_timeout", 600), ("multipart_upload_chunk_size", 100),
    ("sync_profiles", True), ("db_connection_budget", 100),
]))
image = ordered([("imagePath", "docker.io/charmedkubeflow/mlflow:2.22.0-5be7a7a"),
                 ("username", "u"), ("password", "p@ss")])
database = Database(host="10.152.183.27", port=3306, name="database", user="mysql",
                    password="pa:ss@w/rd%{}\u00e9\u2713")
storage = ObjectStorage(access_key="minio", secret_key="s3cr3t: {[yaml]}\n\u00fc", service="minio",
                        port=9000, namespace="kubeflow", secure=False)
inputs = PodSpecInputs("mlflow-server", "kubeflow", image, config, database, storage)
spec = render_pod_spec(inputs)
sys.stdout.buffer.write(spec.encode("utf-8"))
"""


def render(hash_seed: str, order: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        [sys.executable, "-c", RENDER, str(ROOT / "src"), order],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout


def test_spec_bytes_identical_across_processes_hash_seeds_and_dict_orders():
    renders = {(seed, order): render(seed, order) for seed in ("0", "1", "4242") for order in ("forward", "reversed")}
    digests = {key: hashlib.sha256(spec).hexdigest() for key, spec in renders.items()}
    assert len(set(digests.values())) == 1, digests
    spec = next(iter(renders.values()))
    # The render did include the secrets (as base64 in Secret data) and every option.
    assert b"kubernetesResources" in spec and b"mlflow-server-nodeport" in spec
    assert b"MLFLOW_SERVER_CORS_ALLOWED_ORIGINS" in spec
