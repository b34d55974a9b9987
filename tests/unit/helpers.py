"""Typed inputs for the pure modules, built the way the charm builds them."""

import dataclasses

from charm_config import parse_config
from relation_data import Database, ObjectStorage

DEFAULT_CONFIG = {
    "mlflow_port": 5000,
    "default_artifact_root": "mlflow",
    "create_default_artifact_root_if_missing": True,
    "serve_artifacts": False,
    "workers": 4,
    "enable_mlflow_nodeport": False,
    "mlflow_nodeport": 31380,
    "allowed_hosts": "*",
    "cors_allowed_origins": "",
    "enable_telemetry": False,
    "worker_timeout": 600,
    "multipart_upload_chunk_size": 16,
    "sync_profiles": True,
    "enable_workspaces": False,
    "workspaces_auth_cache_ttl": 300,
    "workspaces_ui_port": 5001,
    "db_connection_budget": 100,
}

# Every character a URI, YAML or a shell could trip on.
HOSTILE_PASSWORD = "p@ss:w/o#r%d ' \" 🔑\n end"

STORAGE = ObjectStorage(
    access_key="minio", secret_key="minio123", service="minio", port=9000, namespace="kubeflow", secure=False
)
DATABASE = Database(host="10.152.183.27", port=3306, name="database", user="mysql", password="password")


def config(**changes):
    return parse_config({**DEFAULT_CONFIG, **changes})


def storage(**changes):
    return dataclasses.replace(STORAGE, **changes)


def database(**changes):
    return dataclasses.replace(DATABASE, **changes)
