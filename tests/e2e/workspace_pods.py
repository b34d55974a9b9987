"""The multi-tenant mode run for real: its two MLflow servers and profile notebooks, each as a pod.

A "pod" here is a process that sees its own service-account files at
/var/run/secrets/kubernetes.io/serviceaccount/ (token, ca.crt, namespace) and
KUBERNETES_SERVICE_HOST/PORT pointing at the fake cluster: the path both the
plugin (`kubernetes.config.load_incluster_config`, tried first) and MLflow's
`kubernetes-namespaced` client auth (mlflow/tracking/request_auth/
kubernetes_request_auth_provider.py, the token and namespace files first) take
in a real pod. As root, `unshare --mount` gives each process a private mount
namespace in which that directory is a bind mount of the pod's own files; the
host's directory (made once, empty) is untouched. Without root the same
identity goes through KUBECONFIG, the second path of both.
"""

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

from pod_runner import NODE_ENV
from servers import stop

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# The headers Kubeflow's gateway sets, which the UI server trusts.
USER_HEADER = "kubeflow-userid"
GROUPS_HEADER = "kubeflow-groups"


@functools.lru_cache(maxsize=1)
def private_mounts_supported() -> bool:
    """Root with util-linux's unshare, and a mount point for the service-account files."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        SERVICE_ACCOUNT_DIR.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "--bind", "/", str(SERVICE_ACCOUNT_DIR)],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def in_pod(argv: Sequence[str], identity: Path) -> List[str]:
    """`argv` run with `identity` (a directory of token, ca.crt, namespace) as its service-account mount."""
    if not private_mounts_supported():
        return list(argv)
    # A container's own /tmp too: the spec's servers both use /tmp/mlflow-metrics.
    script = (
        'mount --bind "$0" /var/run/secrets/kubernetes.io/serviceaccount'
        ' && mount -t tmpfs -o mode=1777 tmpfs /tmp && shift && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(identity), "--", *argv]


def pod_env(cluster, identity: Path, base: Mapping[str, str]) -> Dict[str, str]:
    """The env a pod gets from the kubelet for reaching the API, or a kubeconfig where files cannot be mounted."""
    env = {**base, **NODE_ENV}
    if private_mounts_supported():
        env.update({"KUBERNETES_SERVICE_HOST": cluster.host, "KUBERNETES_SERVICE_PORT": str(cluster.port)})
    else:
        token = (identity / "token").read_text()
        namespace = (identity / "namespace").read_text()
        env["KUBECONFIG"] = str(cluster.kubeconfig(identity / "kubeconfig", token, namespace))
    return env


class PodProcess:
    """One process in its pod, output to `<workdir>/<name>.log`."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], identity: Path, workdir: Path):
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{name}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                in_pod(argv, identity),
                env=dict(env),
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self) -> None:
        stop(self.process, timeout=30)


def run_in_pod(argv: Sequence[str], env: Mapping[str, str], identity: Path, cwd: Path, timeout: float):
    return subprocess.run(
        in_pod(argv, identity), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def identity_for(cluster, root: Path, namespace: str, service_account: str) -> Path:
    return cluster.pod_identity(root / f"sa-{namespace}-{service_account}", namespace, service_account)
