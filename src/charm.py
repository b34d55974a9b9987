#!/usr/bin/env python3
"""The mlflow-server charm: every event runs one reconcile path.

    gather   config and the four relations, parsed into typed values or Problems
    render   the pod spec (pure), pod-defaults and the ingress request
    apply    set the spec only when it changed; publish; ensure the bucket
    report   Active only once Kubernetes reports the MLflow pod ready

A hook whose inputs equal those of the last hook that ended Active does
nothing at all: it costs a few hook tool calls and restarts no pod.
"""

import hashlib
import hmac
import json
import logging
import secrets
from typing import Dict, List, Optional, Tuple

import ops
from ops.charm import ActionEvent, CharmBase, RelationBrokenEvent, RelationChangedEvent
from ops.framework import EventBase, StoredState
from ops.model import ActiveStatus, BlockedStatus, Relation, WaitingStatus

import mlflow_workload as workload
import relation_data as peers
from charm_config import CharmConfig, parse_config
from problems import Blocked, Problem, Waiting, first_problem

logger = logging.getLogger(__name__)

ENDPOINTS = (peers.DB, peers.OBJECT_STORAGE, peers.INGRESS, peers.POD_DEFAULTS)
REQUIRED_FOR_SPEC = (peers.DB, peers.OBJECT_STORAGE)
STATUS = {"blocked": BlockedStatus, "waiting": WaitingStatus}


class MlflowServerCharm(CharmBase):
    _stored = StoredState()

    def __init__(self, *args):
        super().__init__(*args)
        # Digests only: stored state never holds relation values. They are
        # keyed, so whoever reads the state cannot test guesses at a password.
        self._stored.set_default(
            spec_hash="",
            spec_revision="",
            spec_generation=0,
            settled_inputs="",
            settled_endpoints="",
            bucket_checked="",
            digest_key=secrets.token_hex(16),
            profiles_seen="",
            profiles_synced="",
        )
        for event in (
            self.on.install,
            self.on.upgrade_charm,
            self.on.config_changed,
            self.on.leader_elected,
            self.on.update_status,
        ):
            self.framework.observe(event, self._reconcile)
        for endpoint in ENDPOINTS:
            relation_events = self.on[endpoint]
            for event in (
                relation_events.relation_created,
                relation_events.relation_joined,
                relation_events.relation_changed,
                relation_events.relation_departed,
                relation_events.relation_broken,
            ):
                self.framework.observe(event, self._reconcile)
        self.framework.observe(self.on.get_minio_credentials_action, self._on_get_minio_credentials)
        self.framework.observe(self.on.sync_profiles_action, self._on_sync_profiles)
        self.framework.observe(self.on.remove, self._on_remove)

    # --- the reconcile path -----------------------------------------------

    def _reconcile(self, event: EventBase) -> None:
        if not self.unit.is_leader():
            self.unit.status = ActiveStatus("standby: the leader unit manages the MLflow pod")
            # Another leader may change the spec and bucket meanwhile: on
            # regaining leadership, check, set and report everything again.
            self._stored.settled_inputs = self._stored.spec_hash = self._stored.bucket_checked = ""
            return
        if event.handle.kind == "update_status" and self._profiles_changed():
            # A Kubeflow profile came or went: no hook tells us, so update-status asks.
            self._stored.settled_inputs = self._stored.profiles_synced = ""
        if event.handle.kind == "update_status" and self._stored.settled_inputs:
            return  # settled, and every input change comes with a hook of its own
        if isinstance(event, RelationChangedEvent) and self._stored.settled_inputs:
            # Settled: only this endpoint's data can have changed in this hook.
            endpoint = event.relation.name
            settled = json.loads(self._stored.settled_endpoints or "{}").get(endpoint)
            if self._digest(self._endpoint_inputs(endpoint, self.model.relations[endpoint])) == settled:
                return
        if event.handle.kind == "upgrade_charm":
            self._stored.settled_inputs = ""  # a new charm or image may render differently
        relations = self._relations(event)
        raw = self._raw_inputs(relations)
        inputs = self._digest(raw)
        if inputs == self._stored.settled_inputs:
            return
        problem = self._converge(relations)
        if problem is None:
            self.unit.status = ActiveStatus()
            self._stored.settled_inputs = inputs
            self._stored.settled_endpoints = json.dumps({ep: self._digest(raw[ep]) for ep in ENDPOINTS})
        else:
            self.unit.status = STATUS[problem.kind](problem.message)
            self._stored.settled_inputs = ""
        logger.info("%s: %s", event.handle.kind, problem.message if problem else "active")

    def _digest(self, value) -> str:
        data = json.dumps(value, sort_keys=True, default=str).encode()
        return hmac.new(self._stored.digest_key.encode(), data, hashlib.sha256).hexdigest()

    def _relations(self, event: EventBase) -> Dict[str, List[Relation]]:
        # During relation-broken the relation is still listed; it is gone for us.
        broken = event.relation.id if isinstance(event, RelationBrokenEvent) else None
        return {ep: [r for r in self.model.relations[ep] if r.id != broken] for ep in ENDPOINTS}

    def _raw_inputs(self, relations: Dict[str, List[Relation]]) -> Dict:
        """Everything a hook's outcome depends on, as read from Juju, for a digest."""
        raw: Dict = {"config": dict(self.config), "app": self.app.name, "model": self.model.name}
        for endpoint, rels in relations.items():
            raw[endpoint] = self._endpoint_inputs(endpoint, rels)
        return raw

    @staticmethod
    def _endpoint_inputs(endpoint: str, rels: List[Relation]) -> List[Dict]:
        return [
            {
                "id": r.id,
                "app": r.app.name if r.app else None,
                "app_data": dict(r.data[r.app]) if r.app and endpoint != peers.POD_DEFAULTS else {},
                "units": {u.name: dict(r.data[u]) for u in r.units} if endpoint == peers.DB else {},
            }
            for r in rels
        ]

    def _converge(self, relations: Dict[str, List[Relation]]) -> Optional[Problem]:
        try:
            config = parse_config(self.config)
        except Blocked as problem:
            # Publish nothing from a bad config, but admission-webhook needs the key.
            self._publish_pod_defaults({}, relations[peers.POD_DEFAULTS], keep=True)
            return problem
        for endpoint in (peers.OBJECT_STORAGE, peers.INGRESS):
            for relation in relations[endpoint]:
                peers.send_versions(self, relation)

        missing = [ep for ep in ENDPOINTS if not relations[ep]]
        storage, storage_problem = self._read(self._object_storage, relations[peers.OBJECT_STORAGE])
        database, db_problem = self._read(peers.read_database, relations[peers.DB])
        self._publish_pod_defaults(
            workload.pod_defaults(config, storage, self.app.name, self.model.name),
            relations[peers.POD_DEFAULTS],
            keep=storage_problem is not None,
        )
        ingress_problem = self._publish_ingress(config, relations[peers.INGRESS])
        # Reported after MLflow's own problems: the server matters more than the profiles' copies.
        profiles_problem = None if storage_problem else self._sync_profiles(config, storage)
        problem = first_problem(
            peers.missing_relations(missing, self.app.name), storage_problem, db_problem, ingress_problem
        )
        if storage is None or database is None:
            return problem or profiles_problem
        revision, spec_problem = self._apply_pod_spec(config, storage, database)
        problem = first_problem(problem, self._ensure_bucket(config, storage), spec_problem)
        return problem or self._pod_readiness(revision) or profiles_problem

    def _object_storage(self, relation: Relation):
        return peers.read_object_storage(self, relation)

    @staticmethod
    def _read(reader, relations: List[Relation]):
        """(value, None) from the endpoint's relation, (None, problem), or (None, None) unrelated."""
        if not relations:
            return None, None
        try:
            return reader(relations[0]), None
        except Problem as problem:
            return None, problem

    # --- apply ------------------------------------------------------------

    def _publish_pod_defaults(self, payload: Dict, relations: List[Relation], keep: bool) -> None:
        """Always leave the key in place (the webhook indexes it); with `keep`,
        the inputs are unusable right now, so what was published stands and
        `payload` only fills a bag that has no key yet."""
        for relation in relations:
            if not (keep and relation.data[self.app].get("pod-defaults")):
                peers.publish_pod_defaults(self, relation, payload)

    def _publish_ingress(self, config: CharmConfig, relations: List[Relation]) -> Optional[Problem]:
        problems = []
        for relation in relations:
            try:
                version = peers.ingress_version(self, relation)
            except Problem as problem:
                problems.append(problem)
                continue
            request = workload.ingress_request(config, self.app.name, self.model.name, version)
            peers.send_ingress(self, relation, version, request)
        return first_problem(*problems)

    def _apply_pod_spec(self, config: CharmConfig, storage, database) -> Tuple[str, Optional[Problem]]:
        """(revision of the spec in force, None) or ("", problem). Juju applies a
        spec after the hook, so a hook that sets one cannot see its pod: Waiting."""
        import yaml

        from oci_image import read_image_details
        from pod_spec import PodSpecInputs, render_pod_spec

        try:
            image = read_image_details(self.model.resources)
        except Problem as problem:
            return "", problem
        inputs = PodSpecInputs(self.app.name, self.model.name, image, config, database, storage)
        revision = self._stored.spec_revision
        if self._digest(render_pod_spec(inputs, revision)) == self._stored.spec_hash:
            return revision, None
        self._stored.spec_generation += 1
        revision = f"{self.unit.name}#{self._stored.spec_generation}"
        text = render_pod_spec(inputs, revision)
        logger.info("pod spec changed: setting revision %s", revision)
        self.model.pod.set_spec(yaml.safe_load(text))
        self._stored.spec_hash, self._stored.spec_revision = self._digest(text), revision
        return revision, Waiting("pod spec updated: waiting for Kubernetes to roll out the MLflow pod")

    def _ensure_bucket(self, config: CharmConfig, storage) -> Optional[Problem]:
        from s3_bucket import ensure_bucket

        endpoint = workload.s3_endpoint_url(storage)
        checked = self._digest([endpoint, storage.access_key, storage.secret_key, config.bucket])
        if checked == self._stored.bucket_checked:
            return None
        try:
            created = ensure_bucket(
                endpoint,
                storage.access_key,
                storage.secret_key,
                config.bucket,
                config.create_bucket,
            )
        except Problem as problem:
            return problem
        if created:
            logger.info("created bucket %r", config.bucket)
        self._stored.bucket_checked = checked
        return None

    def _pod_readiness(self, revision: str) -> Optional[Problem]:
        from pod_readiness import check_pod_ready
        from pod_spec import REVISION_ANNOTATION

        try:
            check_pod_ready(self.app.name, self.model.name, REVISION_ANNOTATION, revision)
        except Problem as problem:
            return problem
        return None

    # --- Kubeflow profiles (src/kubeflow_profiles.py) ----------------------

    def _sync_profiles(self, config: CharmConfig, storage) -> Optional[Problem]:
        """Every profile namespace gets the rendered objects (or loses ours).
        Not granted is not a problem: profiles then stay as they are today."""
        from kubeflow_profiles import NotGranted, sync_profiles

        objects = workload.profile_objects(config, storage if config.sync_profiles else None, *self._app_model)
        nothing = all(manifest is None for manifest in objects.values())
        synced = self._digest(objects)
        if synced == self._stored.profiles_synced:
            return None  # same objects, same profiles (update-status watches those)
        self._stored.profiles_synced = ""
        try:
            report = sync_profiles(workload.profile_object_name(self.app.name), objects, *self._app_model)
        except NotGranted:
            self._stored.profiles_seen = "off" if nothing else "not granted"
            self._stored.profiles_synced = synced
            return None
        except Problem as problem:
            return problem
        logger.info("kubeflow profiles: %s", {k: len(v) for k, v in vars(report).items() if v})
        problem = report.problem(workload.profile_object_name(self.app.name))
        if problem is None:
            self._stored.profiles_seen = "off" if nothing else "\n".join(report.namespaces)
            self._stored.profiles_synced = synced
        return problem

    def _profiles_changed(self) -> bool:
        """Did a profile come or go since the last sync? One request, none while
        there is nothing to place or no sync has finished yet."""
        if self._stored.profiles_seen in ("off", "") or not self._stored.profiles_synced:
            return False
        from kubeflow_profiles import profiles_marker

        try:
            return profiles_marker(self.model.name) != self._stored.profiles_seen
        except Problem:
            return True  # the full reconcile says what is wrong

    @property
    def _app_model(self) -> Tuple[str, str]:
        return self.app.name, self.model.name

    def _on_remove(self, _event: EventBase) -> None:
        """The application goes: take back what it put in the profiles."""
        from kubeflow_profiles import NotGranted, sync_profiles

        if not self.unit.is_leader():
            return  # a scale-down: the application and its profile objects stay
        try:
            sync_profiles(
                workload.profile_object_name(self.app.name), {"PodDefault": None, "Secret": None}, *self._app_model
            )
        except NotGranted:
            pass
        except Problem as problem:
            logger.warning("could not remove the Kubeflow profile objects: %s", problem.message)

    def _on_sync_profiles(self, event: ActionEvent) -> None:
        from kubeflow_profiles import NOT_GRANTED_MESSAGE, NotGranted, sync_profiles

        if not self.unit.is_leader():
            event.fail("only the leader unit syncs Kubeflow profiles: run the action on it (juju status marks it)")
            return
        try:
            config = parse_config(self.config)
        except Problem as problem:
            event.fail(f"cannot sync Kubeflow profiles: {problem.message}")
            return
        if not config.sync_profiles:
            event.fail("config option sync_profiles is false: juju config mlflow-server sync_profiles=true")
            return
        storage, problem = self._read(self._object_storage, self.model.relations[peers.OBJECT_STORAGE])
        if problem is not None:
            event.fail(f"cannot sync Kubeflow profiles: {problem.message}")
            return
        objects = workload.profile_objects(config, storage, *self._app_model)
        try:
            report = sync_profiles(workload.profile_object_name(self.app.name), objects, *self._app_model)
        except NotGranted:
            event.fail(NOT_GRANTED_MESSAGE)
            return
        except Problem as problem:
            event.fail(problem.message)
            return
        event.set_results(report.results())
        problem = report.problem(workload.profile_object_name(self.app.name))
        if problem is not None:
            event.fail(problem.message)

    # --- actions ----------------------------------------------------------

    def _on_get_minio_credentials(self, event: ActionEvent) -> None:
        relations = self.model.relations[peers.OBJECT_STORAGE]
        storage, problem = self._read(self._object_storage, relations)
        if problem is None and storage is None:
            problem = peers.missing_relations([peers.OBJECT_STORAGE], self.app.name)
        if problem is not None:
            event.fail(f"no MinIO credentials yet: {problem.message}")
            return
        event.set_results({"access-key": storage.access_key, "secret-access-key": storage.secret_key})


if __name__ == "__main__":
    ops.main(MlflowServerCharm)
