#!/usr/bin/env python3
"""The mlflow-server charm: every event runs one reconcile path.

    gather   config and the four relations, parsed into typed values or Problems
    render   the pod spec (pure), pod-defaults and the ingress request
    apply    set the spec only when it changed; publish; ensure the bucket
    report   Active only once Kubernetes reports the MLflow pod ready

A hook whose inputs equal those of the last hook that ended Active does
nothing at all: it costs a few hook tool calls and restarts no pod.
"""

import logging
import secrets
import time
from typing import Any, Dict, Optional, Sequence, Tuple

from ops.charm import ActionEvent, CharmBase, RelationBrokenEvent, RelationChangedEvent
from ops.framework import EventBase, StoredState
from ops.model import ActiveStatus, BlockedStatus, Relation, WaitingStatus

import controller_storage
import mlflow_workload as workload
import relation_data as peers
import workspaces
from charm_config import CharmConfig, parse_config
from problems import Blocked, Problem, Problems, Waiting
from proxied_bucket import ProxiedBucket
from settled_inputs import SettledInputs

logger = logging.getLogger(__name__)

ENDPOINTS = (peers.DB, peers.OBJECT_STORAGE, peers.INGRESS, peers.POD_DEFAULTS)
STATUS = {"blocked": BlockedStatus, "waiting": WaitingStatus, "active": ActiveStatus}
STANDBY = "standby: the leader unit manages the MLflow pod"
ROLLOUT = "pod spec updated: waiting for Kubernetes to roll out the MLflow pod"
# A bucket deleted by hand is noticed within this many seconds of settled
# update-status hooks (Juju runs one every 5 minutes by default).
BUCKET_RECHECK_SECONDS = 3600
# Without the grant (kubeflow-profiles-rbac.yaml), a settled update-status asks
# Kubernetes whether it came at most this often: the untrusted default then
# costs what it did before the profile sync; `sync-profiles` asks at once.
GRANT_RECHECK_SECONDS = 3600


def unreachable(app: str, model: str) -> str:
    return (
        f"the MLflow pod is Ready but its service does not answer /health: "
        f"check `kubectl -n {model} get endpoints {app}`; re-checked on update-status"
    )


class MlflowServerCharm(CharmBase):
    # Any: ops types stored attributes by the descriptor, not by what they hold.
    _stored: Any = StoredState()  # type: ignore[no-untyped-call]

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._stored.set_default(
            spec_hash="",
            spec_revision="",
            spec_generation=0,
            # Generated with the state: a lost state gets another, so a counter
            # that starts again cannot name a different spec as an old one did.
            spec_nonce=secrets.token_hex(6),
            bucket_checked="",
            bucket_checked_at=0.0,
            health_url="",
            health_failed=False,
            # Where earlier revisions kept the proxied bucket (see src/proxied_bucket.py).
            proxied_bucket="",
            # What the last profile sync placed, and the profiles it found ("off", "not granted").
            profiles_synced="",
            profiles_seen="",
            profiles_asked_at=0.0,
        )
        self._settled = SettledInputs(self._stored)
        self._proxied = ProxiedBucket(self.model, self._stored)
        self._units: Optional[int] = None
        self._image: Optional[Dict[str, str]] = None  # the resource, read at most once a hook
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
        self.framework.observe(self.on.confirm_artifacts_copied_action, self._on_confirm_artifacts_copied)
        # metrics-endpoint needs only config and topology, none of the reconcile's
        # inputs: it stays out of the reconcile's digests and of update-status.
        metrics_events = self.on["metrics-endpoint"]
        for event in (
            self.on.config_changed,
            self.on.leader_elected,
            self.on.upgrade_charm,
            metrics_events.relation_created,
            metrics_events.relation_joined,
        ):
            self.framework.observe(event, self._publish_scrape_job)
        # One pod a unit: a unit joining or leaving changes how many pods must be Ready.
        for event in (self.on["replicas"].relation_joined, self.on["replicas"].relation_departed):
            self.framework.observe(event, self._on_scaled)
        self.framework.observe(self.on.sync_profiles_action, self._on_sync_profiles)
        self.framework.observe(self.on.move_to_workspace_action, self._on_move_to_workspace)
        self.framework.observe(self.on.remove, self._on_remove)

    # --- the reconcile path -----------------------------------------------

    def _reconcile(self, event: EventBase) -> None:
        if not self.unit.is_leader():
            self._stand_by()
            return
        self._proxied.migrate()
        if event.handle.kind == "update_status" and self._profiles_changed():
            # A Kubeflow profile came or went: no hook tells us, so update-status asks.
            self._settled.forget()
            self._stored.profiles_synced = ""
        if self._settled and self._settled_hook_changes_nothing(event):
            return
        if event.handle.kind == "upgrade_charm":
            self._settled.forget()  # a new charm or image may render differently
        readings = self._readings(event)
        inputs = self._inputs(readings)
        if self._settled.hold(inputs):
            return
        try:
            config = self._converge(readings)
        except Problem as problem:
            self.unit.status = STATUS[problem.kind](problem.message)
            self._settled.forget()
            logger.info("%s: %s", event.handle.kind, problem.message)
            return
        self.unit.status = ActiveStatus(workspaces.OVERRIDDEN) if config.serve_artifacts_overridden else ActiveStatus()
        self._settled.remember(inputs, ENDPOINTS)
        logger.info("%s: active", event.handle.kind)

    def _stand_by(self) -> None:
        self.unit.status = ActiveStatus(STANDBY)
        # Another leader may change the spec and bucket meanwhile: on
        # regaining leadership, check, set and report everything again.
        self._settled.forget()
        self._stored.spec_hash = self._stored.bucket_checked = ""

    def _on_scaled(self, event: EventBase) -> None:
        self._settled.forget()  # same inputs, but another number of pods to wait for
        self._reconcile(event)

    def _settled_hook_changes_nothing(self, event: EventBase) -> bool:
        if event.handle.kind == "update_status":
            return self._still_serving()  # every input change comes with a hook of its own
        if isinstance(event, RelationChangedEvent):
            # Only this endpoint's data can have changed in this hook.
            endpoint = event.relation.name
            reading = peers.READERS[endpoint](self, self.model.relations[endpoint])
            return self._settled.hold_for(endpoint, reading.seen)
        return False

    def _still_serving(self) -> bool:
        """A settled update-status asks MLflow itself, at the cost of one GET.
        Where it does not answer, or the bucket is due a re-check, or the
        admin's RBAC file of enable_workspaces went, the full reconcile runs
        and its status says what is wrong."""
        from mlflow_health import serving

        if time.time() - float(self._stored.bucket_checked_at or 0) < BUCKET_RECHECK_SECONDS:
            if not serving(self._stored.health_url):
                # A dead MLflow may be a deleted bucket's doing: check both.
                self._stored.health_failed = True
            elif self._admin_grant_holds():
                return True
            else:
                self._settled.forget()
                return False
        self._stored.bucket_checked = ""
        self._settled.forget()
        return False

    def _admin_grant_holds(self) -> bool:
        """Without its RBAC file the mode runs but no profile member may use it,
        and nothing tells the charm when an admin deletes the file: every settled
        update-status asks (at most four GETs), so Active outlives it by at most
        one update-status interval. With the profile sync granted (the default),
        that update-status has imported lightkube for its own request already."""
        if self.config.get("enable_workspaces") is not True:
            return True
        from workspaces_grant import check_admin_grant

        try:
            check_admin_grant(*self._app_model)
        except Problem:
            return False
        return True

    def _readings(self, event: EventBase) -> Dict[str, peers.Reading[Any]]:
        # During relation-broken the relation is still listed; it is gone for us.
        broken = event.relation.id if isinstance(event, RelationBrokenEvent) else None
        return {
            ep: peers.READERS[ep](self, [r for r in self.model.relations[ep] if r.id != broken]) for ep in ENDPOINTS
        }

    def _inputs(self, readings: Dict[str, peers.Reading[Any]]) -> Dict[str, Any]:
        """Everything a hook's outcome depends on, as read from Juju, for the settled digest."""
        inputs: Dict[str, Any] = {"config": dict(self.config), "app": self.app.name, "model": self.model.name}
        inputs.update((ep, reading.seen) for ep, reading in readings.items())
        return inputs

    def _converge(self, readings: Dict[str, peers.Reading[Any]]) -> CharmConfig:
        """Apply what the inputs allow; raise the Problem to report, or return once
        the MLflow pod of the current spec is ready."""
        # minio and istio-pilot stop handling every relation of theirs while ours
        # lists no versions: list them whatever else is wrong.
        for endpoint in (peers.OBJECT_STORAGE, peers.INGRESS):
            for relation in readings[endpoint].relations:
                peers.send_versions(self, relation)
        pod_defaults = readings[peers.POD_DEFAULTS].relations
        storage_reading = readings[peers.OBJECT_STORAGE]
        # Keys that must go (minio left, or the server proxies artifacts) go
        # even when nothing else can be published.
        withdraw = not storage_reading.related or True in (
            self.config.get("serve_artifacts"),
            self.config.get("enable_workspaces"),
        )
        try:
            config = parse_config(self.config)
        except Blocked:
            # Publish nothing from a bad config, but admission-webhook needs the key.
            self._publish_pod_defaults({}, pod_defaults, keep=True, withdraw_keys=withdraw)
            raise

        problems = Problems()
        problems.attempt(peers.require_relations, [ep for ep in ENDPOINTS if not readings[ep].related], self.app.name)
        storage = problems.attempt(storage_reading.value)
        database = problems.attempt(readings[peers.DB].value)
        self._publish_pod_defaults(
            workload.pod_defaults(config, storage, self.app.name, self.model.name, self._server_mlflow(config)),
            pod_defaults,
            keep=storage is None and storage_reading.related,
            withdraw_keys=withdraw,
        )
        for relation in readings[peers.INGRESS].relations:
            problems.attempt(self._publish_ingress, config, relation)
        # Reported after MLflow's own problems: the server matters more than the profiles' copies.
        profiles = Problems()
        if storage is not None or not storage_reading.related:
            profiles.attempt(self._sync_profiles, config, storage)
        revision = None
        # While a change would strand proxied artifacts, the spec in force keeps
        # serving them and the new bucket is left alone.
        if (
            storage is not None
            and database is not None
            and problems.passes(workload.refuse_stranded_artifacts, config, self._proxied.get())
        ):
            problems.attempt(self._ensure_bucket, config, storage)
            revision = problems.attempt(self._apply_pod_spec, config, storage, database)
        if config.workspaces:
            from workspaces_grant import check_admin_grant

            problems.attempt(check_admin_grant, *self._app_model)
        problems.raise_first()
        if revision is not None:
            self._check_pod_ready(revision)
            self._check_serving(config)
        profiles.raise_first()
        return config

    # --- apply ------------------------------------------------------------

    def _publish_pod_defaults(
        self, payload: Dict[str, Any], relations: Sequence[Relation], keep: bool, withdraw_keys: bool
    ) -> None:
        """Always leave the key in place (the webhook indexes it); with `keep`,
        the inputs are unusable right now, so what was published stands (less
        MinIO's keys with `withdraw_keys`) and `payload` only fills a bag that
        has no key yet."""
        for relation in relations:
            published = peers.published_pod_defaults(self, relation)
            if keep and published is not None:
                if not withdraw_keys:
                    continue
                payload = workload.without_minio_keys(published)
            peers.publish_pod_defaults(self, relation, payload)

    def _image_details(self) -> Dict[str, str]:
        from oci_image import read_image_details

        if self._image is None:
            self._image = read_image_details(self.model.resources)
        return self._image

    def _server_mlflow(self, config: CharmConfig) -> Optional[Tuple[int, int]]:
        """The server's MLflow as the image's tag says, where notebooks' settings
        depend on it (proxied artifacts); the resource is read only then."""
        if not config.serve_artifacts or config.workspaces:
            return None
        from oci_image import image_mlflow_version

        try:
            return image_mlflow_version(self._image_details()["imagePath"])
        except Blocked:
            return None  # the pod spec reports the missing resource

    def _publish_ingress(self, config: CharmConfig, relation: Relation) -> None:
        version = peers.ingress_version(self, relation)
        routed = workspaces.ui_config(config) if config.workspaces else config  # the dashboard's server
        request = workload.ingress_request(routed, self.app.name, self.model.name, version)
        peers.send_ingress(self, relation, version, request)

    def _apply_pod_spec(self, config: CharmConfig, storage: peers.ObjectStorage, database: peers.Database) -> str:
        """The revision of the spec in force. Juju applies a spec after the hook,
        so a hook that sets one cannot see its pod yet: it raises Waiting."""
        from pod_spec import PodSpecInputs, render_pod_spec, with_revision

        image = self._image_details()
        if config.workspaces:
            workspaces.check_image(image["imagePath"])
        proxied = workload.proxy_bucket(config, self._proxied.get())
        units = self._planned_units()
        inputs = PodSpecInputs(self.app.name, self.model.name, image, config, database, storage, proxied, units)
        self._proxied.set(proxied or "")
        text = render_pod_spec(inputs)
        spec_hash = self._settled.digest(text)
        if spec_hash == self._stored.spec_hash:
            revision: str = self._stored.spec_revision
            return revision
        self._stored.spec_generation += 1
        revision = f"{self.unit.name}#{self._stored.spec_generation}-{self._stored.spec_nonce}"
        logger.info("pod spec changed: setting revision %s", revision)
        self.model.pod.set_spec(with_revision(text, revision))
        self._stored.spec_hash, self._stored.spec_revision = spec_hash, revision
        raise Waiting(ROLLOUT)

    def _ensure_bucket(self, config: CharmConfig, storage: peers.ObjectStorage) -> None:
        from s3_bucket import ensure_bucket

        endpoint = workload.s3_endpoint_url(storage)
        # The create option too: turned off, a bucket deleted meanwhile must be reported, not made.
        checked = self._settled.digest(
            [endpoint, storage.access_key, storage.secret_key, config.bucket, config.create_bucket]
        )
        if checked == self._stored.bucket_checked:
            return
        if ensure_bucket(endpoint, storage.access_key, storage.secret_key, config.bucket, config.create_bucket):
            logger.info("created bucket %r", config.bucket)
        self._stored.bucket_checked, self._stored.bucket_checked_at = checked, time.time()

    def _planned_units(self) -> int:
        """Units Juju plans, one pod each; read once a hook (goal-state)."""
        from pod_readiness import planned_pods

        if self._units is None:
            self._units = planned_pods(self.app.planned_units)
        return self._units

    def _check_pod_ready(self, revision: str) -> None:
        from pod_readiness import check_pod_ready
        from pod_spec import REVISION_ANNOTATION

        check_pod_ready(self.app.name, self.model.name, REVISION_ANNOTATION, revision, self._planned_units)

    def _check_serving(self, config: CharmConfig) -> None:
        """Kubernetes calls the pod Ready; after a failed health check, also ask
        MLflow through its service, the way notebooks reach it."""
        url = workload.tracking_uri(self.app.name, self.model.name, config.port) + workload.HEALTH_PATH
        self._stored.health_url = url
        if not self._stored.health_failed:
            return
        from mlflow_health import serving

        if not serving(url):
            raise Waiting(unreachable(self.app.name, self.model.name))
        self._stored.health_failed = False

    # --- metrics-endpoint (prometheus_scrape) ------------------------------

    def _publish_scrape_job(self, event: EventBase) -> None:
        """Leader: tell Prometheus where MLflow's /metrics is. Runs after the
        reconcile on shared events, so its Blocked is the one shown."""
        relations = self.model.relations["metrics-endpoint"]
        if not relations or not self.unit.is_leader():
            return
        from metrics_endpoint import ScrapeSource, publish

        try:
            port = parse_config(self.config).port
        except Blocked:
            return  # the reconcile reports the option; what was published stands
        source = ScrapeSource(self.model.name, self.model.uuid, self.app.name, self.unit.name, self.meta.name, port)
        try:
            publish([r.data[self.app] for r in relations], source)
        except Blocked as problem:
            self.unit.status = BlockedStatus(problem.message)

    # --- Kubeflow profiles (src/kubeflow_profiles.py) ----------------------

    def _sync_profiles(self, config: CharmConfig, storage: Optional[peers.ObjectStorage]) -> None:
        """Every profile namespace gets the rendered objects (or loses ours).
        Not granted is not a problem: profiles then stay as they are today."""
        from kubeflow_profiles import NOT_GRANTED, NotGranted, sync_profiles

        objects = workload.profile_objects(
            config, storage if config.sync_profiles else None, *self._app_model, self._server_mlflow(config)
        )
        nothing = all(manifest is None for manifest in objects.values())
        synced = self._settled.digest(objects)
        if synced == self._stored.profiles_synced:
            return  # same objects, same profiles (update-status watches those)
        self._stored.profiles_synced = ""
        try:
            report = sync_profiles(workload.profile_object_name(self.app.name), objects, *self._app_model)
        except NotGranted:
            self._stored.profiles_seen = "off" if nothing else NOT_GRANTED
            self._stored.profiles_asked_at = time.time()
            self._stored.profiles_synced = synced
            return
        logger.info("kubeflow profiles: %s", {k: len(v) for k, v in vars(report).items() if v})
        report.check(workload.profile_object_name(self.app.name))
        self._stored.profiles_seen = "off" if nothing else "\n".join(report.namespaces)
        self._stored.profiles_synced = synced

    def _profiles_changed(self) -> bool:
        """Did a profile come or go since the last sync? One request, none while
        there is nothing to place or no sync has finished yet."""
        if self._stored.profiles_seen in ("off", "") or not self._stored.profiles_synced:
            return False
        from kubeflow_profiles import NOT_GRANTED, profiles_marker  # lightkube only once it asks

        not_granted = self._stored.profiles_seen == NOT_GRANTED
        if not_granted and time.time() - float(self._stored.profiles_asked_at) < GRANT_RECHECK_SECONDS:
            return False
        self._stored.profiles_asked_at = time.time()
        try:
            return profiles_marker(self.model.name) != str(self._stored.profiles_seen)
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
        try:
            storage = peers.read_object_storage(self, self.model.relations[peers.OBJECT_STORAGE]).value()
        except Problem as problem:
            event.fail(f"cannot sync Kubeflow profiles: {problem.message}")
            return
        objects = workload.profile_objects(config, storage, *self._app_model, self._server_mlflow(config))
        try:
            report = sync_profiles(workload.profile_object_name(self.app.name), objects, *self._app_model)
        except NotGranted:
            event.fail(NOT_GRANTED_MESSAGE)
            return
        except Problem as problem:
            event.fail(problem.message)
            return
        event.set_results(report.results())
        try:
            report.check(workload.profile_object_name(self.app.name))
        except Problem as problem:
            event.fail(problem.message)

    # --- actions ----------------------------------------------------------

    def _on_get_minio_credentials(self, event: ActionEvent) -> None:
        reading = peers.read_object_storage(self, self.model.relations[peers.OBJECT_STORAGE])
        try:
            peers.require_relations([] if reading.related else [peers.OBJECT_STORAGE], self.app.name)
            storage = reading.value()
        except Problem as problem:
            event.fail(f"no MinIO credentials yet: {problem.message}")
            return
        assert storage is not None  # noqa: S101 - related, and a parse that returns gives a value
        event.set_results({"access-key": storage.access_key, "secret-access-key": storage.secret_key})

    def _on_confirm_artifacts_copied(self, event: ActionEvent) -> None:
        """The operator copied the proxied artifacts to default_artifact_root's bucket: proxy that one."""
        if not self.unit.is_leader():
            event.fail("run it on the leader unit: it alone sets the pod spec")
            return
        try:
            bucket = parse_config(self.config).bucket
        except Blocked as problem:
            event.fail(f"fix the config first: {problem.message}")
            return
        previous = self._proxied.get()
        if not previous:
            event.fail("no artifacts were ever proxied by this application: there is nothing to confirm")
            return
        event.set_results({"previous-bucket": previous, "bucket": bucket})
        self._proxied.set(bucket)
        # The settled inputs do not include the proxied bucket: without this the
        # spec would keep proxying the old bucket until some input changed.
        self._settled.forget()
        self._reconcile(event)

    def _on_move_to_workspace(self, event: ActionEvent) -> None:
        """Experiments logged before enable_workspaces into a profile's workspace (src/workspace_move.py)."""
        import os

        import workspace_move as move

        if not self.unit.is_leader():
            event.fail("run it on the leader unit (juju status marks it): one move at a time")
            return
        try:
            config = parse_config(self.config)
        except Blocked as problem:
            event.fail(f"fix the config first: {problem.message}")
            return
        if not config.workspaces:
            event.fail("only in the multi-tenant mode: juju config mlflow-server enable_workspaces=true, then run it")
            return
        destination = workload.proxy_bucket(config, self._proxied.get())
        try:
            request = move.parse_params(event.params, f"s3://{destination}/")
            python = move.mlflow_python(os.environ)
            if python is None:
                raise move.MoveFailed(
                    "this action runs in the MLflow container, where the database and bucket are: "
                    "run it without workload-context=false"
                )
            report = move.run(request, python, move.script_env(os.environ, str(self.charm_dir)))
        except move.MoveFailed as failed:
            event.fail(failed.message)
            return
        event.set_results(move.results(report))


if __name__ == "__main__":
    # Stored state lives on the controller (Juju 2.9's state-get/state-set), so
    # a recreated operator pod keeps it; read once and written once a hook.
    controller_storage.main(MlflowServerCharm)
