"""Relation data exactly as ../shared/CONTRACTS.md gives it, for every test layer.

Strings are copied byte for byte; where the contract shows a placeholder
(mariadb's `10.152.183.x`) one concrete address stands in.
"""

from dataclasses import dataclass, field
from typing import Dict, Mapping

MINIO_APP_DATA = {
    "_supported_versions": "- v1\n",
    "data": "access-key: minio\nnamespace: kubeflow\nport: 9000\nsecret-key: minio123\nsecure: false\nservice: minio\n",
}
MINIO_SECRET_KEY = "minio123"

MARIADB_UNIT_DATA = {
    "database": "database",
    "host": "10.152.183.27",
    "port": "3306",
    "user": "mysql",
    "password": "password",
    "root_password": "root",
}

ISTIO_PILOT_APP_DATA = {"_supported_versions": "- v1\n- v2\n"}

# admission-webhook reads our bag and writes nothing of its own.
ADMISSION_WEBHOOK_APP_DATA: dict = {}

# The ingress request the charm sends, per CONTRACTS.md.
INGRESS_V1_DATA = "port: 5000\nprefix: /mlflow/\nrewrite: /\nservice: mlflow-server\n"

MODEL = "kubeflow"
APP = "mlflow-server"
IMAGE = "docker.io/charmedkubeflow/mlflow:2.22.0-5be7a7a"


@dataclass(frozen=True)
class Peer:
    """One of the tutorial's four relations as every test layer builds it."""

    interface: str
    remote_app: str
    relation_id: int
    app_data: Mapping[str, str] = field(default_factory=dict)
    unit_data: Mapping[str, str] = field(default_factory=dict)


# endpoint -> peer, in the order the tutorial relates them. The one table of
# peer data: the Scenario world, the e2e driver and the bench all build theirs from it.
PEERS: Dict[str, Peer] = {
    "object-storage": Peer("object-storage", "minio", 2, app_data=MINIO_APP_DATA),
    "ingress": Peer("ingress", "istio-pilot", 3, app_data=ISTIO_PILOT_APP_DATA),
    "db": Peer("mysql", "mlflow-db", 1, unit_data=MARIADB_UNIT_DATA),
    "pod-defaults": Peer("pod-defaults", "admission-webhook", 4, app_data=ADMISSION_WEBHOOK_APP_DATA),
}
RELATION_IDS = {endpoint: peer.relation_id for endpoint, peer in PEERS.items()}

# metrics-endpoint (interface prometheus_scrape), the shape prometheus-k8s's
# charm library reads (charms.prometheus_k8s.v0.prometheus_scrape): JSON
# strings in our app bag. prometheus-k8s writes nothing we read.
PROMETHEUS_APP_DATA: dict = {}
MODEL_UUID = "4a0d3c4e-7b3c-4d5e-9f60-0123456789ab"  # Juju's are version-4 UUIDs
METRICS_ENDPOINT_APP_DATA = {
    "scrape_jobs": '[{"metrics_path": "/metrics", "static_configs": '
    '[{"targets": ["mlflow-server.kubeflow.svc.cluster.local:5000"]}]}]',
    "scrape_metadata": '{"application": "mlflow-server", "charm_name": "mlflow-server", "model": "kubeflow", '
    f'"model_uuid": "{MODEL_UUID}", "unit": "mlflow-server/0"}}',
}
