"""The MLflow workload: server command, URIs, and the env every consumer needs.

Pure functions of the charm's typed inputs; the pod spec template lays them out.
"""

import base64
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote

from charm_config import CharmConfig
from problems import Blocked
from relation_data import Database, ObjectStorage

CONTAINER = "mlflow-server"
HEALTH_PATH = "/health"
METRICS_DIR = "/tmp/mlflow-metrics"  # noqa: S108 - pod-local, emptied on restart
INGRESS_PREFIX = "/mlflow/"


def kubernetes_literal(value: str) -> str:
    """`value` as written into a plain env value, command or args of a pod.

    Kubernetes expands `$(VAR)` and turns `$$` into `$` there (PodDefault env
    included, once merged into a pod); doubling every `$` makes it deliver the
    value unchanged, whatever a key or option holds.
    """
    return value.replace("$", "$$")


def backend_store_uri(db: Database) -> str:
    """SQLAlchemy URI of the MariaDB database; user and password quoted whole."""
    host = f"[{db.host}]" if ":" in db.host else db.host
    user, password = quote(db.user, safe=""), quote(db.password, safe="")
    return f"mysql+pymysql://{user}:{password}@{host}:{db.port}/{db.name}"


def s3_endpoint_url(storage: ObjectStorage) -> str:
    """MinIO's address as seen from inside the cluster."""
    scheme = "https" if storage.secure else "http"
    host = storage.service if storage.namespace is None else f"{storage.service}.{storage.namespace}"
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address: its colons would read as a port
    return f"{scheme}://{host}:{storage.port}"


def service_hosts(app: str, model: str) -> Tuple[str, ...]:
    """Every name the in-cluster service answers to."""
    return (app, f"{app}.{model}", f"{app}.{model}.svc", f"{app}.{model}.svc.cluster.local")


def tracking_uri(app: str, model: str, port: int) -> str:
    return f"http://{service_hosts(app, model)[-1]}:{port}"


def proxy_bucket(config: CharmConfig, proxied_bucket: Optional[str]) -> Optional[str]:
    """The bucket behind the server's artifact proxy, or None while nothing was proxied.

    `proxied_bucket` is the bucket a spec with serve_artifacts once proxied:
    runs logged through it hold `mlflow-artifacts:/` URIs that only the proxy
    resolves, so it keeps serving that bucket after serve_artifacts is off.
    """
    return proxied_bucket or (config.bucket if config.serve_artifacts else None)


def server_command(config: CharmConfig, proxied_bucket: Optional[str] = None) -> List[str]:
    """`mlflow server` with every option that both MLflow 2.x and 3.x know.

    The backend store URI holds the database password, so it is not an
    argument: MLflow reads it from MLFLOW_BACKEND_STORE_URI, which the pod
    gets from a Kubernetes Secret.
    """
    command = ["mlflow", "server", "--host", "0.0.0.0", "--port", str(config.port)]  # noqa: S104 - the pod must accept traffic from its service
    command += ["--workers", str(config.workers), "--expose-prometheus", METRICS_DIR]
    proxy = proxy_bucket(config, proxied_bucket)
    if proxy is not None:
        command += ["--serve-artifacts", "--artifacts-destination", f"s3://{proxy}/"]
    if not config.serve_artifacts:
        # New experiments write to S3 directly; older proxied runs still resolve.
        command += ["--default-artifact-root", f"s3://{config.bucket}/"]
    return command


def refuse_stranded_artifacts(config: CharmConfig, proxied_bucket: Optional[str]) -> None:
    """Raise Blocked when serving artifacts from default_artifact_root would hide
    those already proxied to another bucket: one server proxies one bucket."""
    if not config.serve_artifacts or not proxied_bucket or proxied_bucket == config.bucket:
        return
    raise Blocked(
        f"serve_artifacts=true with a new default_artifact_root strands artifacts proxied to bucket "
        f"{proxied_bucket!r}: set it back, or copy them to the new bucket and run action confirm-artifacts-copied"
    )


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
    env.update({**telemetry_env(config), **worker_timeout_env(config), **multipart_upload_env(config)})
    return env


def telemetry_env(config: CharmConfig) -> Dict[str, str]:
    """MLflow 3.x reports usage to its maintainers unless told not to; a
    platform in a private cluster must not phone home unless asked."""
    if config.telemetry:
        return {}
    return {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def worker_timeout_env(config: CharmConfig) -> Dict[str, str]:
    """How long a worker may be busy or silent before its supervisor replaces it.

    MLflow 2.x serves with gunicorn, whose sync workers are killed after 30 s
    on one request: a large proxied artifact needs longer. MLflow 3.x serves
    with uvicorn, which does not cut long requests but kills a worker that
    misses its supervisor's ping for 5 s (uvicorn/supervisors/multiprocess.py):
    an overloaded pod then loses the requests in flight, writes that may
    have been committed included. Each server reads its own variable (uvicorn
    through click's UVICORN_ prefix, since 0.16; the health check timeout
    since 0.37): an older one ignores it, where an unknown flag in
    MLFLOW_UVICORN_OPTS would stop uvicorn from starting.
    """
    return {
        "GUNICORN_CMD_ARGS": f"--timeout {config.worker_timeout}",
        "UVICORN_TIMEOUT_WORKER_HEALTHCHECK": str(config.worker_timeout),
    }


def metrics_dir_env() -> Dict[str, str]:
    """For MLflow 2.x: the `--expose-prometheus` directory made before any worker starts.

    2.x's gunicorn workers each make it when they import the app, check then
    create (mlflow/server/__init__.py, 2.22.0: `os.makedirs` without
    `exist_ok`). Two workers booting together race; the loser's
    FileExistsError is gunicorn's "Worker failed to boot", which stops the
    whole server. With the variable in the container's env, `mlflow server`
    makes the directory when it imports mlflow.server itself, before gunicorn
    starts a worker. MLflow 3.x makes it with `exist_ok` and needs nothing.
    """
    return {"prometheus_multiproc_dir": METRICS_DIR}


def multipart_upload_env(config: CharmConfig) -> Dict[str, str]:
    """What makes an MLflow client upload big proxied artifacts in parts.

    The client decides (MLflow's HTTP artifact repository reads these): it
    asks the server for one presigned MinIO URL a part and sends the parts
    there, so no request carries the whole file. Files from one chunk up go
    in parts (MLflow's own threshold is 500 MiB).
    """
    if not config.serve_artifacts:
        return {}
    chunk = str(config.multipart_chunk_mib * 1024 * 1024)
    return {
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
        "MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE": chunk,
        "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": chunk,
    }


def presigned_download_env(config: CharmConfig, server_mlflow: Optional[Tuple[int, int]]) -> Dict[str, str]:
    """What makes an MLflow 3.x client download proxied artifacts straight from MinIO.

    A 3.x server with an S3 destination hands out presigned download URLs,
    but a client left to choose asks the server's /server-info once, with a
    3 s timeout and no retry (mlflow/utils/server_info.py), and on any
    failure quietly downloads through the server for as long as it runs,
    which is two to ten times slower. Set, the variable skips that question
    (mlflow/store/artifact/mlflow_artifacts_repo.py). Only for a server the
    image's tag says is 3.x or later (`server_mlflow`): a 2.x server has no
    presigned downloads, and a 3.x client told to use them asks anyway for
    every file, gets a 404 and logs a warning before it falls back, where
    left alone it asks /server-info once. MLflow 2.x clients ignore it.
    """
    if not config.serve_artifacts or server_mlflow is None or server_mlflow < (3, 0):
        return {}
    return {"MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true"}


def s3_credentials_env(storage: ObjectStorage) -> Dict[str, str]:
    """The MinIO keys as boto3 reads them: for the server's Secret and for notebooks."""
    return {"AWS_ACCESS_KEY_ID": storage.access_key, "AWS_SECRET_ACCESS_KEY": storage.secret_key}


def notebook_env(
    config: CharmConfig,
    storage: Optional[ObjectStorage],
    app: str,
    model: str,
    server_mlflow: Optional[Tuple[int, int]] = None,
) -> Dict[str, str]:
    """What a Kubeflow notebook needs to log runs and models to this server.

    With proxied artifacts the server talks to MinIO itself, so notebooks get
    no keys; until object-storage is ready they get the tracking URI alone.
    With workspaces, the pod's own token instead (src/workspaces.py).
    `server_mlflow` is the server's MLflow as the image's tag says, if it does.
    """
    if config.workspaces:
        import workspaces

        return workspaces.notebook_env(tracking_uri(app, model, config.port))
    env = {"MLFLOW_TRACKING_URI": tracking_uri(app, model, config.port)}
    if storage is not None and not config.serve_artifacts:
        env["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint_url(storage)
        env.update(s3_credentials_env(storage))
    env.update({**multipart_upload_env(config), **presigned_download_env(config, server_mlflow)})
    return env


def pod_defaults(
    config: CharmConfig,
    storage: Optional[ObjectStorage],
    app: str,
    model: str,
    server_mlflow: Optional[Tuple[int, int]] = None,
) -> Dict[str, Any]:
    """The `pod-defaults` payload: admission-webhook makes PodDefault <app>-minio of it.

    Its plain env lands in the notebook's container, where Kubernetes expands it.
    """
    env = notebook_env(config, storage, app, model, server_mlflow)
    return {"minio": {"env": {name: kubernetes_literal(value) for name, value in env.items()}}}


def without_minio_keys(pod_defaults: Mapping[str, Any]) -> Dict[str, Any]:
    """A published payload less MinIO's endpoint and keys: what notebooks may
    keep when minio left or the server proxies artifacts, whatever the config."""
    if not isinstance(pod_defaults.get("minio"), dict):
        return dict(pod_defaults)  # nothing published for notebooks yet
    env = pod_defaults["minio"].get("env") or {}
    kept = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_AUTH")
    return {"minio": {"env": {k: v for k, v in env.items() if k in kept}}}


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


def ingress_request(config: CharmConfig, app: str, model: str, version: str) -> Dict[str, Any]:
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


def profile_secret(config: CharmConfig, storage: Optional[ObjectStorage], app: str) -> Optional[Dict[str, Any]]:
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


def profile_pod_default(
    config: CharmConfig,
    storage: Optional[ObjectStorage],
    app: str,
    model: str,
    server_mlflow: Optional[Tuple[int, int]] = None,
) -> Optional[Dict[str, Any]]:
    """The PodDefault of a profile namespace: notebook_env, keys by reference.

    The keys come from the profile's own Secret (a pod resolves secretKeyRef
    in its own namespace), so the PodDefault body, which every user of the
    namespace can read, never holds them.
    """
    if storage is None:
        return None
    name = profile_object_name(app)
    keys = s3_credentials_env(storage)
    env: List[Dict[str, Any]] = []
    for var, value in notebook_env(config, storage, app, model, server_mlflow).items():
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


def profile_objects(
    config: CharmConfig,
    storage: Optional[ObjectStorage],
    app: str,
    model: str,
    server_mlflow: Optional[Tuple[int, int]] = None,
) -> Dict[str, Optional[Dict[str, Any]]]:
    """{kind: manifest or None} in the order they must be applied: the Secret
    exists before a PodDefault refers to it. None means: remove ours."""
    objects = {
        "Secret": profile_secret(config, storage, app),
        "PodDefault": profile_pod_default(config, storage, app, model, server_mlflow),
    }
    if config.workspaces:
        import workspaces

        return workspaces.profile_objects(objects, objects["PodDefault"])
    return objects
