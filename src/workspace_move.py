"""The move-to-workspace action: experiments from MLflow's `default` workspace into a profile's.

The move itself is templates/move_to_workspace.py, run with the MLflow
image's own Python: it needs MLflow 3.17 (its ORM tables and its
`move_resources`), SQLAlchemy, pymysql and boto3, which the operator pod
(Python 3.8) does not have, and the database URI and S3 keys, which live in
the MLflow container's env (Kubernetes Secrets). So this action runs in
Juju's workload context, the MLflow pod's first container (the token
server): Juju 2.9's default for an action of a pod-spec charm
(worker/uniter/runner/runner.go `RunAction`; worker/caasoperator/action.go
execs into the unit's pod). The charm's own code reaches that container
because the operator copies the charm directory into the pod at unit init
(worker/caasoperator/initializer.go, `jujud caas-unit-init --charm-dir`).

Here: the parameters checked, the request built, the script run and its
report read. The request holds no secret: the script reads those from the
env it inherits.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

SCRIPT = Path(__file__).resolve().parent.parent / "templates" / "move_to_workspace.py"
# The env only the MLflow containers carry (the database Secret's key).
WORKLOAD_MARKER = "MLFLOW_BACKEND_STORE_URI"
DEFAULT_WORKSPACE = "default"
# Kubernetes namespace names are DNS-1123 labels.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A move of many experiments copies many objects: long, but never unbounded.
TIMEOUT_SECONDS = 3 * 3600


class MoveFailed(Exception):
    """The action's failure message: what is wrong and what to do."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class MoveRequest:
    experiments: str  # "all", or ids and names, comma-separated
    namespace: str
    dry_run: bool
    artifacts_destination: str  # s3://bucket/ the server proxies
    workspace_store_uri: str = "kubernetes://"

    def payload(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def parse_params(params: Mapping[str, Any], artifacts_destination: str) -> MoveRequest:
    """The action's parameters checked; MoveFailed names the one that is wrong."""
    experiments = params.get("experiments")
    if not isinstance(experiments, str) or not [t for t in experiments.split(",") if t.strip()]:
        raise MoveFailed("experiments: give experiment ids or names, comma-separated, or `all`")
    namespace = params.get("namespace")
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise MoveFailed(f"namespace: {namespace!r} is not a Kubernetes namespace name (a Kubeflow profile's)")
    if namespace == DEFAULT_WORKSPACE:
        raise MoveFailed("namespace: `default` is MLflow's default workspace, where the experiments come from")
    dry_run = params.get("dry-run", False)
    if not isinstance(dry_run, bool):
        raise MoveFailed("dry-run: true or false")
    return MoveRequest(experiments.strip(), namespace, dry_run, artifacts_destination)


def mlflow_python(environ: Mapping[str, str]) -> Optional[str]:
    """The interpreter of the container's `mlflow` command (its shebang), or None
    outside an MLflow container. The image's `python3` need not be that one."""
    if WORKLOAD_MARKER not in environ:
        return None
    mlflow = shutil.which("mlflow", path=environ.get("PATH"))
    if mlflow is None:
        return None
    with open(mlflow, "rb") as script:
        first = script.readline().decode(errors="replace").strip()
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if words and words[0].endswith("/env") and len(words) > 1:
        return shutil.which(words[1], path=environ.get("PATH"))
    return words[0] if words else None


def script_env(environ: Mapping[str, str], charm_dir: str) -> Dict[str, str]:
    """The container's env without the charm's own packages on PYTHONPATH (dispatch
    puts them first): MLflow must import the image's packages, not the charm's."""
    env = dict(environ)
    charm = os.path.realpath(charm_dir)
    kept: List[str] = []
    for entry in environ.get("PYTHONPATH", "").split(os.pathsep):
        if not entry or not os.path.isabs(entry):
            continue  # dispatch's `lib`, `venv`: relative to the charm directory
        real = os.path.realpath(entry)
        if real != charm and not real.startswith(charm + os.sep):
            kept.append(entry)
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        env.pop("PYTHONPATH", None)
    return env


def run(request: MoveRequest, python: str, env: Mapping[str, str], timeout: float = TIMEOUT_SECONDS) -> Dict[str, Any]:
    """Run the move; its report, or MoveFailed with the script's own reason."""
    try:
        done = subprocess.run(  # noqa: S603 - the image's interpreter and our own script
            [python, str(SCRIPT)],
            input=request.payload(),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MoveFailed(
            f"the move did not end within {timeout:.0f} s: run it again, it carries on where it stopped"
        ) from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if answer.get("ok") is True and isinstance(answer.get("report"), dict):
        report: Dict[str, Any] = answer["report"]
        return report
    message = answer.get("message") or f"the move script exited with {done.returncode} and no report"
    raise MoveFailed(f"move-to-workspace: {message}")


def results(report: Mapping[str, Any]) -> Dict[str, str]:
    """The report as action results (Juju keeps strings; empty lists say `none`)."""
    return {
        key: (str(value).lower() if isinstance(value, bool) else str(value) or "none") for key, value in report.items()
    }
