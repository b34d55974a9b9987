"""Render templates/ into the pod spec: pure, so equal inputs give equal bytes."""

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import jinja2

import db_connections
import mlflow_workload as workload
import oci_image
from charm_config import CharmConfig
from relation_data import Database, ObjectStorage

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# On the pod template: the charm changes it with anything in the spec, Secrets
# included, so Kubernetes rolls the pod when only a key or password changed,
# and the readiness check can tell the current pod from the previous one.
REVISION_ANNOTATION = "mlflow-server.charm/spec-revision"


@dataclass(frozen=True)
class PodSpecInputs:
    app: str
    model: str
    image: Mapping[str, str]
    config: CharmConfig
    database: Database
    storage: ObjectStorage
    # The bucket artifacts were once proxied to (see workload.proxy_bucket).
    proxied_bucket: Optional[str] = None
    # Units Juju plans (one pod each): the connection budget is shared by all.
    units: int = 1


def secret_names(app: str) -> Dict[str, str]:
    return {
        "db": f"{app}-db",
        "minio": f"{app}-minio",
        "seldon": f"{app}-seldon-init-container-s3-credentials",
    }


def nodeport_service_name(app: str) -> str:
    return f"{app}-nodeport"


def _tojson(value: Any) -> str:
    # Sorted, ASCII-only JSON is valid YAML and byte-stable across processes.
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML; values go through tojson
        keep_trailing_newline=True,
    )
    env.filters["tojson"] = _tojson
    env.filters["b64"] = _b64
    return env


def _secrets(inputs: PodSpecInputs) -> List[Dict[str, Any]]:
    names = secret_names(inputs.app)
    backend_store = {"MLFLOW_BACKEND_STORE_URI": workload.backend_store_uri(inputs.database)}
    return [
        {"name": names["db"], "env": True, "data": backend_store},
        {"name": names["minio"], "env": True, "data": workload.s3_credentials_env(inputs.storage)},
        {"name": names["seldon"], "env": False, "data": workload.seldon_rclone_env(inputs.storage)},
    ]


def serves_with_uvicorn(image: Mapping[str, str]) -> bool:
    """Whether the image's server may be uvicorn (MLflow 3.x): its tag says 3.x
    or says nothing; a tag of 2.x means gunicorn, and its spec stays as it was."""
    version = oci_image.image_mlflow_version(image.get("imagePath", ""))
    return version is None or version >= (3, 0)


def render_pod_spec(inputs: PodSpecInputs) -> str:
    """The pod spec as YAML text, without its revision: the text the charm
    compares to the spec it set last, so the revision cannot hide a change."""
    config = inputs.config
    literal = workload.kubernetes_literal
    env = workload.server_env(config, inputs.storage, inputs.app, inputs.model)
    # Each server of the pod (the mode's UI server too) keeps its own pools; the
    # mode's workspace store is the Kubernetes API, not the database.
    servers = 2 if config.workspaces else 1
    sizing = db_connections.pool_sizing(config.db_connection_budget, inputs.units, config.workers, servers=servers)
    uvicorn = serves_with_uvicorn(inputs.image)
    limited = sizing is not None and uvicorn
    if sizing is not None:
        env.update(sizing.env())
        if limited:
            env.update(sizing.uvicorn_env())
    if not uvicorn:
        env.update(workload.metrics_dir_env())
    command = workload.server_command(config, inputs.proxied_bucket)
    mode: Dict[str, Any] = {"ui": None, "service_account": None, "crds": None}
    if config.workspaces:
        mode = _workspaces(inputs, command, env)
        command, env = mode["command"], mode["env"]
    # Juju 2.9 never deletes a service a spec stops declaring: off, the
    # NodePort service stays declared, as a ClusterIP one that no node exposes.
    # Declared from the start, so an upgrade also closes one an older charm left.
    nodeport = {
        "name": nodeport_service_name(inputs.app),
        "type": "NodePort" if config.nodeport_enabled else "ClusterIP",
        "port": config.nodeport if config.nodeport_enabled else None,
    }
    return (
        _environment()
        .get_template("pod_spec.yaml.j2")
        .render(
            app=inputs.app,
            container=workload.CONTAINER,
            image=dict(inputs.image),
            port=config.port,
            command=[literal(arg) for arg in command],
            env={name: literal(value) for name, value in env.items()},
            secrets=_secrets(inputs),
            db_secret=secret_names(inputs.app)["db"],
            db_upgrade_script=literal((TEMPLATES / "db_upgrade.py").read_text()),
            health_path=workload.HEALTH_PATH,
            # A worker at its concurrency limit answers /health with 503 too:
            # a busy pod must not be restarted for it, so liveness asks only
            # that the server accepts connections (uvicorn's supervisor
            # replaces a hung worker); readiness stays on /health, so a full
            # pod takes no new connections until it has room.
            liveness_tcp=limited,
            nodeport=nodeport,
            annotations={},
            ui=mode["ui"],
            service_account=mode["service_account"],
            crds=mode["crds"],
        )
    )


def _workspaces(inputs: PodSpecInputs, command: List[str], env: Dict[str, str]) -> Dict[str, Any]:
    """What enable_workspaces changes in the spec: src/workspaces.py decides,
    this lays it out (the second server, its service account, the CRD)."""
    import workspaces

    config, literal = inputs.config, workload.kubernetes_literal
    command = command + workspaces.server_args()
    ui_hosts = workload.allowed_hosts(workspaces.ui_config(config), inputs.app, inputs.model)
    ui_env = workspaces.ui_server_env(env, config, ui_hosts)
    return {
        "command": command,
        "env": workspaces.token_server_env(env, config),
        "ui": {
            "name": workspaces.UI_CONTAINER,
            "port_name": workspaces.UI_PORT_NAME,
            "port": config.workspaces_ui_port,
            "command": [literal(arg) for arg in workspaces.ui_command(command, config)],
            "env": {name: literal(value) for name, value in ui_env.items()},
        },
        "service_account": workspaces.service_account(),
        "crds": workspaces.custom_resource_definitions(),
    }


def with_revision(text: str, revision: str) -> Dict[str, Any]:
    """The spec `pod-spec-set` takes, its pod annotated with `revision` (an opaque
    name the charm gives each spec it sets; it says nothing of the content)."""
    import yaml_text

    spec: Dict[str, Any] = yaml_text.safe_load(text)
    spec["kubernetesResources"]["pod"]["annotations"] = {REVISION_ANNOTATION: revision}
    return spec
