"""The replicas of one rendered pod spec behind a loopback round robin, as a scaled
application's pods sit behind their Kubernetes Service.

Kubernetes gives each replica its own IP; on loopback the replicas differ
only in port (`on_port`). The set starts from any rendered spec with any
image (an MLflow venv's bin/), so the bench, the fault tests and other modes'
tests start their servers the same way. What Kubernetes does to pods is a
method each:

- `kill(i)`: the container's processes SIGKILLed (OOM kill, node trouble);
  the pod leaves the Service at once, as the kubelet marks it not ready;
- `restart(i)`: the kubelet starts the container again (no init
  containers), and the pod rejoins the Service when its readiness probe
  answers;
- `roll(spec)`: a rolling update of the spec (maxSurge 1, maxUnavailable 0,
  Deployment's defaults rounded for two replicas): a pod of the new spec
  starts, runs its init containers and becomes ready, then one old pod
  leaves the Service and gets SIGTERM; once per replica.
"""

import copy
import os
import signal
import time
from pathlib import Path
from typing import List, Mapping, Optional

from pod_runner import Pod

from fakes.network_guard import free_port
from fakes.round_robin import RoundRobin


def on_port(spec: Mapping, port: int) -> dict:
    """The same spec, its server on `port`: a replica's own address on loopback."""
    spec = copy.deepcopy(dict(spec))
    main = next(c for c in spec["containers"] if not c.get("init"))
    command = main["command"]
    command[command.index("--port") + 1] = str(port)
    main["ports"][0]["containerPort"] = port
    for probe in ("readinessProbe", "livenessProbe"):
        for action in ("httpGet", "tcpSocket"):  # liveness is a TCP check on a uvicorn server (src/pod_spec.py)
            if action in main["kubernetes"][probe]:
                main["kubernetes"][probe][action]["port"] = port
    return spec


class ServerSet:
    def __init__(self, spec: Mapping, image_bin: Path, workdir: Path, replicas: int = 2, log=print):
        self.image_bin = Path(image_bin)
        self.workdir = Path(workdir)
        self.replicas = replicas
        self.log = log
        self.spec = dict(spec)
        self.pods: List[Pod] = []
        self._made = 0
        path = next(c for c in spec["containers"] if not c.get("init"))["kubernetes"]["readinessProbe"]["httpGet"]
        self.health_path = path["path"]
        self.service = RoundRobin([])
        self.events: List[str] = []  # what happened, with seconds since start, for failure messages
        self._t0 = time.monotonic()

    def _note(self, text: str) -> None:
        line = f"{time.monotonic() - self._t0:7.1f}s {text}"
        self.events.append(line)
        self.log(f"servers: {line}")

    @property
    def url(self) -> str:
        """The Service's address: what the notebooks' tracking URI points at."""
        return self.service.url

    def ports(self) -> List[int]:
        return [pod.readiness[1] for pod in self.pods]

    def _new_pod(self, spec: Mapping, env_overrides: Optional[Mapping] = None) -> Pod:
        self._made += 1
        return Pod(on_port(spec, free_port()), self.image_bin, self.workdir / f"pod-{self._made}", env_overrides)

    def start(self, ready_timeout: float = 300) -> "ServerSet":
        """Every replica, one after the other, so a failure names its pod.
        (Together works too: the init container creates an empty database's
        tables under its lock; test_replicas.py starts two at once.)"""
        self.service.start()
        self.pods = [self._new_pod(self.spec) for _ in range(self.replicas)]
        for pod in self.pods:
            pod.run_init_containers()
            pod.start()
            pod.wait_ready(ready_timeout)
            self.service.add(("127.0.0.1", pod.readiness[1], self.health_path), ready=True)
        self._note(f"{self.replicas} replicas ready on ports {self.ports()}, service on {self.service.port}")
        return self

    def kill(self, index: int) -> None:
        pod = self.pods[index]
        os.killpg(pod.process.pid, signal.SIGKILL)
        self.service.set_ready(pod.readiness[1], False)
        pod.process.wait(timeout=30)
        self._note(f"replica {index} (port {pod.readiness[1]}) SIGKILLed")

    def restart(self, index: int, ready_timeout: float = 300) -> float:
        """Start the killed container again; seconds until its readiness probe answered."""
        pod = self.pods[index]
        started = time.monotonic()
        pod.start()
        pod.wait_ready(ready_timeout)
        took = time.monotonic() - started
        self.service.set_ready(pod.readiness[1], True)
        self._note(f"replica {index} restarted, ready after {took:.1f} s")
        return took

    def roll(self, spec: Mapping, ready_timeout: float = 300) -> List[float]:
        """A rolling update to `spec`; the seconds each new pod took to be ready."""
        took = []
        for index, old in enumerate(list(self.pods)):
            new = self._new_pod(spec)
            started = time.monotonic()
            new.run_init_containers()
            new.start()
            new.wait_ready(ready_timeout)
            took.append(time.monotonic() - started)
            self.service.add(("127.0.0.1", new.readiness[1], self.health_path), ready=True)
            self.service.set_ready(old.readiness[1], False)
            old.stop()  # SIGTERM, SIGKILL after the grace period
            self.service.remove(old.readiness[1])
            self.pods[index] = new
            self._note(f"replica {index} rolled to port {new.readiness[1]} ({took[-1]:.1f} s to ready)")
        self.spec = dict(spec)
        return took

    def alive(self) -> List[bool]:
        return [pod.process is not None and pod.process.poll() is None for pod in self.pods]

    def tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- pod {i}\n{pod.tail(pod.main[0], lines)}" for i, pod in enumerate(self.pods))

    def stop(self) -> None:
        for pod in self.pods:
            pod.stop()
        self.service.stop()
