"""The multi-tenant mode (enable_workspaces): one MLflow workspace per Kubeflow profile.

Pure: given the config and the inputs, what the mode changes. The renderer,
the pod-defaults publisher and the profile writer ask it; with the mode off
nothing here is asked, and today's output stays byte-identical.

Who may see what is never decided here: MLflow's `mlflow-kubernetes-plugins`
(2.1.0, with MLflow 3.17) asks Kubernetes RBAC for every request, and the
charm only ships what the plugin needs. Facts below come from reading those
sources; each one names where.

The pod then runs two servers of one command over the same database and
bucket:
- the token server (mlflow_port): notebooks send their service-account
  token; the plugin checks it with a SelfSubjectAccessReview under that token.
  It never trusts identity headers.
- the UI server (workspaces_ui_port): behind the Istio gateway, which sets
  `kubeflow-userid`/`kubeflow-groups`; the plugin checks that user with a
  SubjectAccessReview. One MLflow process serves one auth mode (the plugin
  reads its mode once, from the environment), hence a second container.
"""

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import oci_image
from charm_config import CharmConfig
from problems import Blocked

UI_CONTAINER = "mlflow-ui"
UI_PORT_NAME = "ui"
API_GROUP = "mlflow.kubeflow.org"
# Each profile namespace is a workspace of the same name. The plugin lists and
# watches namespaces with this selector (MLFLOW_K8S_WORKSPACE_LABEL_SELECTOR,
# workspace_plugin/provider.py); the profile controller sets the label.
PROFILE_SELECTOR = "app.kubernetes.io/part-of=kubeflow-profile"
# Kubeflow's auth service (arrikto/oidc-authservice, as CKF 1.6 ships it) sets
# these on every request the gateway lets through, the groups joined with ","
# (common/settings.go, common/util.go; authorizer_groups.go). The plugin's own
# default separator is "|" (auth/constants.py): without ours a user in two
# groups would be checked as one group named "a,b".
USER_HEADER = "kubeflow-userid"
GROUPS_HEADER = "kubeflow-groups"
GROUPS_SEPARATOR = ","
# MLflow's client sends the pod's token and its namespace as the workspace
# (mlflow/tracking/request_auth/kubernetes_request_auth_provider.py).
NOTEBOOK_AUTH = "kubernetes-namespaced"
# mlflow-kubernetes-plugins 2.1.0 requires mlflow>=3.17,<3.18 (its METADATA).
MIN_MLFLOW = (3, 17)
ATTACH_HINT = "build image/ and run `juju attach-resource mlflow-server oci-image=<that image>`"

# What the plugin checks, on API group mlflow.kubeflow.org: its resources
# (auth/constants.py ALLOWED_RESOURCES) and the `use` subresources it asks
# `create` on (auth/core.py, auth/rules.py).
RESOURCES: Tuple[str, ...] = (
    "assistants",
    "datasets",
    "experiments",
    "gatewaybudgets",
    "gatewayendpoints",
    "gatewayguardrails",
    "gatewaymodeldefinitions",
    "gatewaysecrets",
    "mcpservers",
    "registeredmodels",
    "skills",
)
USE_SUBRESOURCES: Tuple[str, ...] = ("gatewayendpoints/use", "gatewaymodeldefinitions/use", "gatewaysecrets/use")

CRD_NAME = f"mlflowconfigs.{API_GROUP}"
# Relative, no "." or ".." segment: what the plugin's own CRD says with CEL
# rules. Kubernetes matches patterns with Go's RE2: no lookahead.
_SEGMENT = r"(?:[^/.][^/]*|\.[^./][^/]*)"
RELATIVE_PATH = rf"^(?:{_SEGMENT}(?:/{_SEGMENT})*)?$"


# What Active says when the user's serve_artifacts=false does not hold.
OVERRIDDEN = "serve_artifacts=false overridden: enable_workspaces proxies every artifact (notebooks get no MinIO keys)"


# --- the image --------------------------------------------------------------


def check_image(image_path: str) -> None:
    """Blocked when the image's tag names an MLflow that cannot run the plugin.

    A tag that names no version is let through: the pod then never becomes
    Ready if the plugin is missing, and the charm stays Waiting on it.
    """
    version = oci_image.image_mlflow_version(image_path)
    if version is not None and version < MIN_MLFLOW:
        raise Blocked(
            f"enable_workspaces needs an image with MLflow 3.17 and mlflow-kubernetes-plugins, "
            f"the oci-image resource has MLflow {version[0]}.{version[1]}: {ATTACH_HINT}"
        )


# --- the admin-applied file ------------------------------------------------------

# The objects of the admin-applied mlflow-workspaces-rbac.yaml (for app
# mlflow-server); the charm reads them to know the file is applied.
RBAC_FILE = "mlflow-workspaces-rbac.yaml"
ROLE_LEVELS = ("view", "edit", "admin")


def cluster_role_names(app: str) -> Tuple[str, ...]:
    """The ClusterRoles Kubeflow aggregates into kubeflow-view/-edit/-admin."""
    return tuple(f"{app}-workspaces-{level}" for level in ROLE_LEVELS)


def network_policy_name(app: str) -> str:
    """The NetworkPolicy that lets only the Istio gateway reach the UI port."""
    return f"{app}-ui"


# --- the two servers ----------------------------------------------------------


def server_args() -> List[str]:
    """What both servers add to today's `mlflow server` command.

    The store URI alone is ignored without --enable-workspaces (mlflow/cli).
    No default workspace: a request that names none fails rather than land
    in a space every profile shares. Flags, not MLFLOW_* variables: a server
    too old for them should exit, not serve every profile one open space.
    """
    return ["--enable-workspaces", "--workspace-store-uri", "kubernetes://", "--app-name", "kubernetes-auth"]


def ui_command(token_command: List[str], config: CharmConfig) -> List[str]:
    """The UI server: the token server's command on the UI port."""
    command = list(token_command)
    command[command.index("--port") + 1] = str(config.workspaces_ui_port)
    return command


def _common_env(server_env: Dict[str, str], config: CharmConfig) -> Dict[str, str]:
    # The kubernetes-auth app runs under uvicorn's CLI (mlflow/server/__init__.py
    # `_build_uvicorn_command`), so worker_timeout reaches it as today's 3.x
    # server does: UVICORN_TIMEOUT_WORKER_HEALTHCHECK in server_env.
    return {
        "MLFLOW_K8S_WORKSPACE_LABEL_SELECTOR": PROFILE_SELECTOR,
        "MLFLOW_K8S_AUTH_CACHE_TTL_SECONDS": str(config.workspaces_auth_cache_ttl),
        # MLflow 3.17 starts a job runner and 7 huey consumers a server by
        # default (MLFLOW_SERVER_ENABLE_JOB_EXECUTION, mlflow/server): about 2 GiB
        # of Python a server, for GenAI jobs a tracking server for notebooks never runs.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def token_server_env(server_env: Dict[str, str], config: CharmConfig) -> Dict[str, str]:
    """The token server's plain env: today's, plus the plugin's default mode,
    a SelfSubjectAccessReview under the caller's own token (auth/authorizer.py)."""
    env = dict(server_env)
    env.update(_common_env(server_env, config))
    env["MLFLOW_K8S_AUTH_AUTHORIZATION_MODE"] = "self_subject_access_review"
    return env


def ui_server_env(server_env: Dict[str, str], config: CharmConfig, allowed_hosts: str) -> Dict[str, str]:
    """The UI server's plain env: today's, in trusted-header mode, with the
    allowed hosts of its own port."""
    env = dict(server_env)
    env.update(_common_env(server_env, config))
    env.update(
        {
            "MLFLOW_SERVER_ALLOWED_HOSTS": allowed_hosts,
            "MLFLOW_K8S_AUTH_AUTHORIZATION_MODE": "subject_access_review",
            "MLFLOW_K8S_AUTH_REMOTE_USER_HEADER": USER_HEADER,
            "MLFLOW_K8S_AUTH_REMOTE_GROUPS_HEADER": GROUPS_HEADER,
            "MLFLOW_K8S_AUTH_REMOTE_GROUPS_SEPARATOR": GROUPS_SEPARATOR,
        }
    )
    return env


def ui_config(config: CharmConfig) -> CharmConfig:
    """The config as the UI server sees it: its own port (for its allowed hosts)."""
    return dataclasses.replace(config, port=config.workspaces_ui_port)


# --- what Juju creates from the pod spec ----------------------------------------


def service_account() -> Dict[str, Any]:
    """The pod's service account and its one global role (Juju makes it a
    ClusterRole `<model>-<app>` and binds it; caas/specs/rbac.go, juju-2.9).

    Only what the plugin calls: namespaces and MLflowConfigs are listed and
    watched, never fetched one by one (workspace_plugin/caches.py), and the
    UI server posts SubjectAccessReviews. No Secret: the plugin reads
    Secrets only for an admin's per-namespace artifact override, and goes on
    with a warning when refused.
    """
    return {
        "roles": [
            {
                "global": True,
                "rules": [
                    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
                    {"apiGroups": [API_GROUP], "resources": ["mlflowconfigs"], "verbs": ["list", "watch"]},
                    {
                        "apiGroups": ["authorization.k8s.io"],
                        "resources": ["subjectaccessreviews"],
                        "verbs": ["create"],
                    },
                ],
            }
        ]
    }


def custom_resource_definitions() -> List[Dict[str, Any]]:
    """MLflowConfig (mlflow.kubeflow.org/v1, namespaced), which the plugin lists
    and watches (workspace_plugin/caches.py); without it every list is a 404.

    The schema holds the two fields plugin 2.1.0 reads (spec.artifactRootPath,
    spec.artifactRootSecret, caches.py `_extract_info`). Juju 2.9 decodes the
    spec strictly into apiextensions v1 of k8s 0.21 (juju-2.9 go.mod;
    caas/kubernetes/provider/specs/customresourcedefinition.go), which has no
    CEL rules: the fixed Secret name is an enum, the relative path a pattern.
    """
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "artifactRootPath": {
                        "type": "string",
                        "maxLength": 512,
                        "pattern": RELATIVE_PATH,
                    },
                    "artifactRootSecret": {"type": "string", "enum": ["mlflow-artifact-connection"]},
                },
            }
        },
    }
    return [
        {
            "name": CRD_NAME,
            "spec": {
                "group": API_GROUP,
                "scope": "Namespaced",
                "names": {
                    "kind": "MLflowConfig",
                    "listKind": "MLflowConfigList",
                    "plural": "mlflowconfigs",
                    "singular": "mlflowconfig",
                },
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
            },
        }
    ]


# --- notebooks ------------------------------------------------------------------

NOTEBOOK_EXPERIMENT = "Default"


def notebook_env(tracking_uri: str) -> Dict[str, str]:
    """All a notebook gets: no endpoint, no key. The client sends the pod's own
    token and namespace, and artifacts go through the server's proxy.

    A workspace has no experiment 0 (MLflow's "Default" lives in its default
    workspace only), so the tutorial's bare `mlflow.start_run()` would answer
    RESOURCE_DOES_NOT_EXIST; with MLFLOW_EXPERIMENT_NAME the client creates the
    experiment in the notebook's workspace on first use (MLflow 3.17.2,
    mlflow/tracking/fluent.py `_get_experiment_id_from_env`). A notebook's own
    `set_experiment` still wins."""
    return {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_TRACKING_AUTH": NOTEBOOK_AUTH,
        "MLFLOW_EXPERIMENT_NAME": NOTEBOOK_EXPERIMENT,
    }


def profile_objects(
    today: Dict[str, Optional[Dict[str, Any]]], pod_default: Optional[Dict[str, Any]]
) -> Dict[str, Optional[Dict[str, Any]]]:
    """Today's profile objects with every kind but the PodDefault withdrawn
    (None: remove ours), and the keyless PodDefault in its place."""
    return {kind: (pod_default if kind == "PodDefault" else None) for kind in today}
