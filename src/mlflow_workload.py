"""The MLflow workload: server command, URIs, and the env every consumer needs.

Pure functions of the charm's typed inputs; the pod spec template lays them out.
"""

import base64
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote

from charm_config import CharmConfig
from relation_data import Database, ObjectStorage

CONTAINER = "mlflow-server"
HEALTH_PATH = "/health"
METRICS_DIR = "/tmp/mlflow-metrics"  # noqa: S108 - pod-local, emptied on restart
INGRESS_PREFIX = "/mlflow/"


def backend_store_uri(db: Database) -> str:
    """SQLAlchemy URI of the MariaDB database; user and password quoted whole."""
    host = f"[{db.host}]" if ":" in db.host else db.host
    user, password = quote(db.user, safe=""), quote(db.password, safe="")
    return f"mysql+pymysql://{user}:{password}@{host}:{db.port}/{db.name}"


def s3_endpoint_url(storage: ObjectStorage) -> str:
    """MinIO's address as seen from inside the cluster."""
    scheme = "https" if storage.secure else "http"
    host = storage.service if storage.namespace is None else f"{storage.service}.{storage.namespace}"
    return f"{scheme}://{host}:{storage.port}"


def service_hosts(app: str, model: str) -> Tuple[str, ...]:
    """Every name the in-cluster service answers to."""
    return (app, f"{app}.{model}", f"{app}.{model}.svc", f"{app}.{model}.svc.cluster.local")


def tracking_uri(app: str, model: str, port: int) -> str:
    return f"http://{service_hosts(app, model)[-1]}:{port}"


def server_command(config: CharmConfig) -> List[str]:
    """`mlflow server` with every option that both MLflow 2.x and 3.x know.

    The backend store URI holds the database password, so it is not an
    argument: MLflow reads it from MLFLOW_BACKEND_STORE_URI, which the pod
    gets from a Kubernetes Secret.
    """
    command = ["mlflow", "server", "--host", "0.0.0.0", "--port", str(config.port)]  # noqa: S104 - the pod must accept traffic from its service
    command += ["--workers", str(config.workers), "--expose-prometheus", METRICS_DIR]
    bucket = f"s3://{config.bucket}/"
    if config.serve_artifacts:
        command += ["--serve-artifacts", "--artifacts-destination", bucket]
    else:
        command += ["--default-artifact-root", bucket]
    return command


def allowed_hosts(config: CharmConfig, app: str, model: str) -> str:
    """MLFLOW_SERVER_ALLOWED_HOSTS: the service names, plus the configured hosts.

    MLflow 3.5+ rejects other Host headers with 403; 2.x ignores the
    variable. Health probes are exempt from the check, so the kubelet always
    gets through.
    """
    if "*" in config.allowed_hosts:
        return "*"
    hosts = [h for name in service_hosts(app, model) for h in (name, f"{name}:{config.port}")]
    hosts += ["localhost", f"localhost:{config.port}"]
    return ",".join(dict.fromkeys(hosts + list(config.allowed_hosts)))


def server_env(config: CharmConfig, storage: ObjectStorage, app: str, model: str) -> Dict[str, str]:
    """Plain (non-secret) env of the server container."""
    env = {
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint_url(storage),
        "MLFLOW_SERVER_ALLOWED_HOSTS": allowed_hosts(config, app, model),
    }
    if config.cors_allowed_origins:
        env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"] = ",".join(config.cors_allowed_origins)
    return env


def s3_credentials_env(storage: ObjectStorage) -> Dict[str, str]:
    """The MinIO keys as boto3 reads them: for the server's Secret and for notebooks."""
    return {"AWS_ACCESS_KEY_ID": storage.access_key, "AWS_SECRET_ACCESS_KEY": storage.secret_key}


def notebook_env(config: CharmConfig, storage: Optional[ObjectStorage], app: str, model: str) -> Dict[str, str]:
    """What a Kubeflow notebook needs to log runs and models to this server.

    With proxied artifacts the server talks to MinIO itself, so notebooks get
    no keys; until object-storage is ready they get the tracking URI alone.
    """
    env = {"MLFLOW_TRACKING_URI": tracking_uri(app, model, config.port)}
    if storage is not None and not config.serve_artifacts:
        env["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint_url(storage)
        env.update(s3_credentials_env(storage))
    return env


def pod_defaults(config: CharmConfig, storage: Optional[ObjectStorage], app: str, model: str) -> Dict:
    """The `pod-defaults` payload: admission-webhook makes PodDefault <app>-minio of it."""
    return {"minio": {"env": notebook_env(config, storage, app, model)}}


def seldon_rclone_env(storage: ObjectStorage) -> Dict[str, str]:
    """rclone settings Seldon's storage initializer reads to fetch models from MinIO."""
    return {
        "RCLONE_CONFIG_S3_TYPE": "s3",
        "RCLONE_CONFIG_S3_PROVIDER": "Minio",
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": storage.access_key,
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": storage.secret_key,
        "RCLONE_CONFIG_S3_ENDPOINT": s3_endpoint_url(storage),
        "RCLONE_CONFIG_S3_ENV_AUTH": "false",
    }


def ingress_request(config: CharmConfig, app: str, model: str, version: str) -> Dict:
    """What istio-pilot needs to route /mlflow/ to the service; v2 adds the namespace."""
    request = {"service": app, "port": config.port, "prefix": INGRESS_PREFIX, "rewrite": "/"}
    if version != "v1":
        request["namespace"] = model
    return request


# --- Kubeflow profile namespaces (applied there by kubeflow_profiles.py) ---

PODDEFAULT_API_VERSION = "kubeflow.org/v1alpha1"


def profile_object_name(app: str) -> str:
    """The name admission-webhook gives its copy in the model's namespace, so
    notebooks tick the same `<app>-minio` box in every namespace."""
    return f"{app}-minio"


def profile_secret(config: CharmConfig, storage: Optional[ObjectStorage], app: str) -> Optional[Dict]:
    """The Secret a profile's PodDefault takes the MinIO keys from.

    None where notebooks need no keys (proxied artifacts) or there are none
    to give (no object-storage relation): the profile must not keep a copy.
    """
    if storage is None or config.serve_artifacts:
        return None
    data = {
        key: base64.b64encode(value.encode("utf-8")).decode("ascii")
        for key, value in sorted(s3_credentials_env(storage).items())
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": profile_object_name(app)},
        "type": "Opaque",
        "data": data,
    }


def profile_pod_default(config: CharmConfig, storage: Optional[ObjectStorage], app: str, model: str) -> Optional[Dict]:
    """The PodDefault of a profile namespace: notebook_env, keys by reference.

    The keys come from the profile's own Secret (a pod resolves secretKeyRef
    in its own namespace), so the PodDefault body, which every user of the
    namespace can read, never holds them.
    """
    if storage is None:
        return None
    name = profile_object_name(app)
    keys = s3_credentials_env(storage)
    env: List[Dict] = []
    for var, value in notebook_env(config, storage, app, model).items():
        if var in keys:
            env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": var}}})
        else:
            env.append({"name": var, "value": value})
    return {
        "apiVersion": PODDEFAULT_API_VERSION,
        "kind": "PodDefault",
        "metadata": {"name": name},
        "spec": {"desc": name, "selector": {"matchLabels": {name: "true"}}, "env": env},
    }


def profile_objects(config: CharmConfig, storage: Optional[ObjectStorage], app: str, model: str) -> Dict:
    """{kind: manifest or None} in the order they must be applied: the Secret
    exists before a PodDefault refers to it. None means: remove ours."""
    return {
        "Secret": profile_secret(config, storage, app),
        "PodDefault": profile_pod_default(config, storage, app, model),
    }
