"""Run a Juju pod-spec v3 as local processes, with Kubernetes' semantics.

What Kubernetes does with the pod Juju makes of the spec, and what this does:

- `command` replaces the image's entrypoint and `args` are appended; `$(VAR)`
  in either expands from the container's env (`$$` escapes a `$`, an unknown
  `$(VAR)` stays as written).
- `envConfig`: a plain value is an env var; `{secret: {name: S}}` injects every
  key of secret S from `kubernetesResources.secrets` (Juju's envFrom), its
  `data` base64-decoded. Plain env wins over a secret key of the same name.
  Plain values are expanded like command and args, each from the secrets' keys
  and the plain values before it; values from secrets are never expanded.
- a PodDefault's env is appended to the env of the container it selects, and
  expanded the same way (`merge_pod_default_env`).
- init containers (`init: true`) run first, one by one, each to completion;
  a failing one stops the pod from starting.
- the readiness probe's httpGet path and port say when the pod serves.

The image is a directory of executables (an MLflow venv's bin/) put first on
PATH. Each container gets its own working directory and, where the process
may make a mount namespace (root with util-linux's unshare) and the working
directory is not itself under /tmp, its own empty /tmp, as a container's
filesystem would be.
"""

import base64
import functools
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


# What this machine adds to every process, as a node's runtime would: MLflow
# 3.x reports usage to an outside service unless told not to, and nothing
# here may leave loopback.
NODE_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


class PodSpecError(ValueError):
    """The spec asks for something Kubernetes (or this runner) cannot do."""


class InitContainerFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Container:
    name: str
    argv: Tuple[str, ...]
    env: Mapping[str, str]
    init: bool
    readiness: Optional[Tuple[str, int]]  # (path, port) of the httpGet readiness probe


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command and args."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REFERENCE.sub(replace, text)


def secrets(spec: Mapping) -> Dict[str, Dict[str, str]]:
    """Every secret of the spec by name, its data decoded."""
    decoded = {}
    for secret in (spec.get("kubernetesResources") or {}).get("secrets", []):
        data = secret.get("data") or {}
        decoded[secret["name"]] = {k: base64.b64decode(v, validate=True).decode("utf-8") for k, v in data.items()}
        decoded[secret["name"]].update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return decoded


def _plain(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expand_env(defined: Mapping[str, str], plain: Iterable[Tuple[str, str]]) -> Dict[str, str]:
    """The kubelet's env: `defined` (envFrom, taken as is), then each plain
    value in order, expanded from everything defined before it."""
    env = dict(defined)
    for name, value in plain:
        env[name] = expand(value, env)
    return env


def merge_pod_default_env(container_env_: Mapping[str, str], pod_default_env: Mapping[str, str]) -> Dict[str, str]:
    """A notebook's env once the admission webhook appended a PodDefault's plain
    env to it and the kubelet expanded it."""
    return expand_env(container_env_, [(name, str(value)) for name, value in pod_default_env.items()])


def container_env(container: Mapping, all_secrets: Mapping[str, Mapping[str, str]]) -> Dict[str, str]:
    from_secrets: Dict[str, str] = {}
    plain: List[Tuple[str, str]] = []
    for name, value in (container.get("envConfig") or {}).items():
        if isinstance(value, Mapping):
            if set(value) != {"secret"}:
                raise PodSpecError(f"{container['name']}: envConfig {name!r} uses {sorted(value)}, not supported here")
            secret = value["secret"]["name"]
            if secret not in all_secrets:
                raise PodSpecError(f"{container['name']}: envConfig {name!r} names secret {secret!r}, not in the spec")
            from_secrets.update(all_secrets[secret])
        else:
            plain.append((name, _plain(value)))
    return expand_env(from_secrets, plain)


def _readiness(container: Mapping) -> Optional[Tuple[str, int]]:
    probe = ((container.get("kubernetes") or {}).get("readinessProbe") or {}).get("httpGet")
    if not probe:
        return None
    port = probe["port"]
    if isinstance(port, str) and not port.isdigit():
        named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
        if port not in named:
            raise PodSpecError(f"{container['name']}: readiness probe names unknown port {port!r}")
        port = named[port]
    return probe.get("path", "/"), int(port)


def containers(spec: Mapping) -> List[Container]:
    """The spec's containers as processes to run, init containers first (in spec order)."""
    if spec.get("version") != 3:
        raise PodSpecError(f"pod spec version {spec.get('version')!r}: only version 3 is supported")
    all_secrets = secrets(spec)
    result = []
    for c in spec["containers"]:
        env = container_env(c, all_secrets)
        if not c.get("command"):
            raise PodSpecError(f"{c['name']}: no command; the image's entrypoint is not known here")
        argv = tuple(expand(str(a), env) for a in [*c["command"], *(c.get("args") or [])])
        result.append(Container(c["name"], argv, env, bool(c.get("init")), _readiness(c)))
    return sorted(result, key=lambda c: not c.init)


@functools.lru_cache(maxsize=1)
def private_tmp_supported() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _with_private_tmp(argv: Tuple[str, ...]) -> List[str]:
    script = 'mount -t tmpfs -o mode=1777 tmpfs /tmp && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


class Pod:
    """One pod of the spec: init containers to completion, then the main container."""

    def __init__(self, spec: Mapping, image_bin: Path, workdir: Path, env_overrides: Optional[Mapping] = None):
        self.containers = containers(spec)
        self.image_bin = Path(image_bin)
        self.workdir = Path(workdir)
        self.env_overrides = dict(env_overrides or {})
        self.process: Optional[subprocess.Popen] = None
        self.main = [c for c in self.containers if not c.init]
        if len(self.main) != 1:
            raise PodSpecError(f"expected one main container, found {len(self.main)}")
        # A private /tmp would hide a working directory that lives under /tmp.
        self.private_tmp = private_tmp_supported() and not self.workdir.resolve().is_relative_to("/tmp")  # noqa: S108

    def _environ(self, container: Container) -> Dict[str, str]:
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        base = {
            "PATH": f"{self.image_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "HOSTNAME": container.name,
            "LANG": "C.UTF-8",
            **NODE_ENV,
        }
        return {**base, **container.env, **self.env_overrides}

    def _argv(self, container: Container) -> List[str]:
        return _with_private_tmp(container.argv) if self.private_tmp else list(container.argv)

    def log_path(self, container: Container) -> Path:
        return self.workdir / f"{container.name}.log"

    def run_init_containers(self, timeout: float = 600) -> List[Container]:
        ran = []
        for container in (c for c in self.containers if c.init):
            result = self._launch(container, subprocess.run, timeout=timeout, check=False)
            if result.returncode != 0:
                raise InitContainerFailed(
                    f"init container {container.name} exited with {result.returncode}:\n{self.tail(container)}"
                )
            ran.append(container)
        return ran

    def start(self) -> subprocess.Popen:
        """Start the main container (after run_init_containers, as the kubelet would)."""
        self.process = self._launch(self.main[0], subprocess.Popen, start_new_session=True)
        return self.process

    def _launch(self, container: Container, launcher, **kwargs):
        """Run or start `container`'s process in its own directory, output to its log."""
        cwd = self.workdir / container.name
        cwd.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(container), "wb") as log:
            return launcher(
                self._argv(container),
                env=self._environ(container),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                **kwargs,
            )

    def run(self, ready_timeout: float = 180) -> "Pod":
        self.run_init_containers()
        self.start()
        self.wait_ready(ready_timeout)
        return self

    @property
    def readiness(self) -> Tuple[str, int]:
        if self.main[0].readiness is None:
            raise PodSpecError(f"{self.main[0].name} has no httpGet readiness probe")
        return self.main[0].readiness

    def wait_ready(self, timeout: float) -> None:
        """Poll the readiness probe's path until it answers 2xx/3xx, as the kubelet does."""
        path, port = self.readiness
        url = f"http://127.0.0.1:{port}{path}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.main[0].name} exited with {self.process.returncode}:\n{self.tail(self.main[0])}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
                    if 200 <= response.status < 400:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{url} did not answer within {timeout:.0f} s:\n{self.tail(self.main[0])}")

    def tail(self, container: Container, lines: int = 40) -> str:
        path = self.log_path(container)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the container's process group, as the kubelet does; SIGKILL after a grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=30)
        except ProcessLookupError:
            pass
