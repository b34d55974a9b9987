"""The charm under Scenario, driven through the tutorial's deploy and relate commands.

    juju deploy mlflow-server                  install, leader-elected, config-changed
    juju relate minio mlflow-server            object-storage: created, joined, changed
    juju relate istio-pilot mlflow-server      ingress: created, joined, changed
    juju relate mlflow-db mlflow-server        db: created, joined, changed
    juju relate mlflow-server admission-webhook  pod-defaults: created, joined, changed

Scenario refuses pod-spec-set, so the mock backend's pod_spec_set records
each spec the charm sets. The charm's bucket check talks to the real S3
server named in minio's data; its pod readiness check asks a loopback
Kubernetes API (tests/fakes) that reports whatever pod the harness runs.
"""

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple
from unittest import mock

import scenario
import scenario_libyaml
from scenario.mocking import _MockModelBackend

from charm import MlflowServerCharm
from contracts import APP, MODEL, PEERS, RELATION_IDS
from fakes.mlflow_server import MLFLOW_HOST
from fakes.network_guard import loopback_only

scenario_libyaml.install()


@dataclasses.dataclass
class Outcome:
    state: scenario.State
    specs: List[dict]
    history: List[Tuple[str, str]]  # (event, unit status after it)
    spec_hooks: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (event, status) where a spec was set

    @property
    def spec(self) -> dict:
        if not self.specs:
            raise AssertionError(f"the charm set no pod spec; statuses: {self.history}")
        return self.specs[-1]

    @property
    def status(self) -> str:
        return self.history[-1][1]

    def app_bag(self, endpoint: str) -> Dict[str, str]:
        return dict(self.state.get_relation(RELATION_IDS[endpoint]).local_app_data)

    @property
    def pod_defaults(self) -> dict:
        return json.loads(self.app_bag("pod-defaults")["pod-defaults"])


def _status(state: scenario.State) -> str:
    status = state.unit_status
    return f"{status.name}: {status.message}" if status.message else status.name


class CharmDriver:
    def __init__(self, workdir: Path, kubeconfig: Path, log: Callable[[str], None] = lambda _: None):
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.log = log
        self.ctx = scenario.Context(MlflowServerCharm, app_name=APP)
        self.specs: List[dict] = []
        self.history: List[Tuple[str, str]] = []
        self.spec_hooks: List[Tuple[str, str]] = []

    def run(self, label: str, event, state: scenario.State) -> scenario.State:
        def pod_spec_set(_backend, spec, k8s_resources=None):
            self.specs.append(spec)

        specs_before = len(self.specs)
        # MLflow's in-cluster name reaches the pod the harness runs on loopback,
        # as the Scenario layer resolves it (the charm's settled health check).
        with mock.patch.object(_MockModelBackend, "pod_spec_set", pod_spec_set):
            with mock.patch.dict(os.environ, {"KUBECONFIG": str(self.kubeconfig)}), loopback_only((MLFLOW_HOST,)):
                out = self.ctx.run(event, state)
        self.history.append((label, _status(out)))
        if len(self.specs) > specs_before:
            self.spec_hooks.append((label, _status(out)))
        self.log(f"  {label:<40} -> {_status(out)}")
        return out

    def image_resource(self, image: str) -> scenario.Resource:
        path = self.workdir / f"oci-image-{len(self.history)}.yaml"
        path.write_text(f"registrypath: {image}\nusername: ''\npassword: ''\n")
        return scenario.Resource(name="oci-image", path=path)

    def deploy(self, image: str, config: Optional[dict] = None) -> scenario.State:
        state = scenario.State(
            leader=True,
            model=scenario.Model(name=MODEL),
            config=dict(config or {}),
            resources={self.image_resource(image)},
        )
        for label, event in (
            ("install", self.ctx.on.install()),
            ("leader-elected", self.ctx.on.leader_elected()),
            ("config-changed", self.ctx.on.config_changed()),
        ):
            state = self.run(label, event, state)
        return state

    def relate(self, state: scenario.State, relation: scenario.Relation) -> scenario.State:
        state = dataclasses.replace(state, relations={*state.relations, relation})
        relation = state.get_relation(relation.id)
        name = relation.endpoint
        state = self.run(f"{name}-relation-created", self.ctx.on.relation_created(relation), state)
        relation = state.get_relation(relation.id)
        state = self.run(f"{name}-relation-joined", self.ctx.on.relation_joined(relation, remote_unit=0), state)
        relation = state.get_relation(relation.id)
        return self.run(f"{name}-relation-changed", self.ctx.on.relation_changed(relation, remote_unit=0), state)

    def tutorial(self, image: str, minio_app_data: dict, mariadb_unit_data: dict, config: Optional[dict] = None):
        """The tutorial's deploy and relate commands, in its order."""
        state = self.deploy(image, config)
        # The harness's own MinIO and MariaDB stand in for the contract's.
        served = {"object-storage": {"app_data": minio_app_data}, "db": {"unit_data": mariadb_unit_data}}
        relations = []
        for endpoint, peer in PEERS.items():
            peer = dataclasses.replace(peer, **served.get(endpoint, {}))
            data = {"remote_units_data": {0: dict(peer.unit_data)}} if peer.unit_data else {}
            relations.append(
                scenario.Relation(
                    endpoint=endpoint,
                    interface=peer.interface,
                    id=peer.relation_id,
                    remote_app_name=peer.remote_app,
                    remote_app_data=dict(peer.app_data),
                    **data,
                )
            )
        for relation in relations:
            state = self.relate(state, relation)
        return self.outcome(state)

    def update_status(self, state: scenario.State) -> "Outcome":
        return self.outcome(self.run("update-status", self.ctx.on.update_status(), state))

    def attach_image(self, state: scenario.State, image: str) -> "Outcome":
        """`juju attach-resource mlflow-server oci-image=<image>`: Juju runs upgrade-charm."""
        state = dataclasses.replace(state, resources={self.image_resource(image)})
        return self.outcome(self.run("upgrade-charm (new oci-image)", self.ctx.on.upgrade_charm(), state))

    def change_config(self, state: scenario.State, config: dict) -> "Outcome":
        """`juju config mlflow-server key=value ...`: Juju runs config-changed."""
        state = dataclasses.replace(state, config={**state.config, **config})
        return self.outcome(self.run("config-changed", self.ctx.on.config_changed(), state))

    def outcome(self, state: scenario.State) -> Outcome:
        return Outcome(state, list(self.specs), list(self.history), list(self.spec_hooks))
