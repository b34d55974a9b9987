"""Random sequences of what Juju, the peers and Kubernetes do, checked against a model of the world.

A hypothesis RuleBasedStateMachine drives the charm through Scenario as Juju
would: each hook's output State (our relation bags, stored state) is the next
hook's input. Next to it the machine keeps `World`, a small model of what is
true outside the charm: which peers are related and what they sent, the
config, leadership, the image resource, the bucket, the pods (one per planned
unit) and MLflow's /health. After every hook:

- no hook raised (Scenario re-raises an uncaught exception: the step fails);
- the unit status is the kind `expected_status(world)` derives from the
  model, never from the charm's own output;
- nothing already published is lost, and what is published is true to the
  model (pod-defaults key, ingress request, MinIO keys, SDI versions);
- a pod spec is set exactly when its inputs changed (no needless restarts);
- the leak check of conftest.py saw the run (no secret in logs, statuses,
  the plain spec).

The model follows the charm's own memos where they are its intended
semantics: a settled update-status asks MLflow's /health and nothing else
(the loopback fake of conftest.py, which the machine keeps in step with the
pod); the bucket is checked again only when its keys, name or create option
change, after a failed /health or after standby; a bucket proxied by a spec
with serve_artifacts stays proxied until the confirm-artifacts-copied
action, and serve_artifacts with another default_artifact_root is Blocked.
That bucket is the application's, not the leader's: it sits in the
`replicas` peer bag once that relation is listed (in the unit's stored state
before), and another unit that takes over leadership, with none of this
unit's stored state, proxies and refuses as this one did.

Readings the model makes where the issue is silent: MinIO keys minio sent
valid on this relation stand while its newer data is malformed or not there
yet (nothing published is lost), but never once minio is gone or
serve_artifacts is on; MLflow's service answers /health while any of its
pods is Ready, so a settled unit notices a scaled-out pod that stops being
Ready only on the next hook that reconciles; the confirm action moves the
proxy at once, also on a unit that had settled.

Bounded for CI: derandomized (the same sequences on every run, no example
database; see fuzz_strategies.py), 30 sequences of up to 20 steps; `make
fuzz` runs more, randomized. The steps run are counted in the
terminal summary ("fuzzing").
"""

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Optional, Set, Tuple

import pytest
import scenario
from fuzz_strategies import assert_human_status, examples
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test
from ops._private.harness import ActionFailed

import world
from charm import MlflowServerCharm
from contracts import ISTIO_PILOT_APP_DATA, MARIADB_UNIT_DATA, MINIO_APP_DATA

# fuzz_strategies' profile (derandomized unless `make fuzz`) and FUZZ_SCALE, but never
# fewer than 9 sequences: the test below checks that the sequences reach every rule,
# and derandomized, 6 (FUZZ_SCALE 0.2) never created a relation.
MACHINE_SETTINGS = settings(examples(30, least=9), stateful_step_count=20)

OS, DB, INGRESS, PD = "object-storage", "db", "ingress", "pod-defaults"
ENDPOINTS = frozenset(world.ALL)
STANDBY = "standby: the leader unit manages the MLflow pod"
REPLICAS_ID = 99  # the peer relation `replicas`, there once the application scales
PROXIED_KEY = "proxied-bucket"  # in the `replicas` app bag (src/proxied_bucket.py)

# --- what the peers can send -------------------------------------------------

_MINIO_DATA = MINIO_APP_DATA["data"]
MINIO_BAGS = {
    "valid": dict(MINIO_APP_DATA),
    # minio's operator changed its keys: a distinctive secret, so the leak check looks for it verbatim
    "rotated": {
        **MINIO_APP_DATA,
        "data": _MINIO_DATA.replace("access-key: minio\n", "access-key: minio-rotated\n").replace(
            "secret-key: minio123\n", "secret-key: Rot4ted-s3cret-Key\n"
        ),
    },
    "malformed": {"_supported_versions": "- v1\n", "data": "access-key: minio\nport: nine\n"},
    "missing-field": {**MINIO_APP_DATA, "data": _MINIO_DATA.replace("secret-key: minio123\n", "")},
    "unversioned": {"data": _MINIO_DATA},
    "no-data": {"_supported_versions": "- v1\n"},
    "nothing-yet": {},
}
MINIO_KEYS = {"valid": ("minio", "minio123"), "rotated": ("minio-rotated", "Rot4ted-s3cret-Key")}
# Per CONTRACTS.md: data that is not there yet is awaited, data that is wrong needs a human.
MINIO_PROBLEM = {
    "valid": None,
    "rotated": None,
    "malformed": "blocked",
    "missing-field": "blocked",
    "unversioned": "waiting",
    "no-data": "waiting",
    "nothing-yet": "waiting",
}
DB_FIELDS = ("database", "host", "port", "user", "password")
BAD_DB_PORT = "nine"

# --- config: option -> values the machine sets; INVALID ones must block -----

CONFIG_DEFAULTS = {
    "workers": 4,
    "mlflow_port": 5000,
    "default_artifact_root": "mlflow",
    "serve_artifacts": False,
    "create_default_artifact_root_if_missing": True,
}
CONFIG_VALUES = {
    "workers": (4, 2, 0),
    "mlflow_port": (5000, 5001, 80),
    "default_artifact_root": ("mlflow", "artifacts", "s3://mlflow"),
    "serve_artifacts": (False, True),
    "create_default_artifact_root_if_missing": (True, False),
}
INVALID = {("workers", 0), ("mlflow_port", 80), ("default_artifact_root", "s3://mlflow")}
NOT_IN_SPEC = ("create_default_artifact_root_if_missing",)  # read by the bucket check only

# "service-down": Kubernetes calls the pod Ready but its service does not answer /health.
POD_STATES = ("ready", "unready", "gone", "api-refuses", "service-down")


@dataclasses.dataclass
class World:
    """What is true outside the charm, as the machine has made it."""

    leader: bool = True
    config: Dict[str, Any] = dataclasses.field(default_factory=lambda: dict(CONFIG_DEFAULTS))
    related: Set[str] = dataclasses.field(default_factory=set)
    minio: str = "nothing-yet"  # a MINIO_BAGS name
    minio_keys_sent: Set[Tuple[str, str]] = dataclasses.field(default_factory=set)  # valid keys since relating
    mariadb: Optional[Dict[str, str]] = None  # its unit's bag; None: no unit on the relation
    istio_listed: bool = False
    image_ok: bool = True
    proxied: Optional[str] = None  # the bucket a spec with serve_artifacts proxied (the application's memory)
    units: int = 1  # planned units of the application: one MLflow pod each

    @property
    def config_valid(self) -> bool:
        return not any((option, value) in INVALID for option, value in self.config.items())

    @property
    def storage_problem(self) -> Optional[str]:
        return MINIO_PROBLEM[self.minio] if OS in self.related else None

    @property
    def db_problem(self) -> Optional[str]:
        if DB not in self.related:
            return None
        bag = self.mariadb or {}
        if not all(bag.get(field) for field in DB_FIELDS):
            return "waiting"
        return "blocked" if bag["port"] == BAD_DB_PORT else None

    @property
    def ingress_problem(self) -> Optional[str]:
        return "waiting" if INGRESS in self.related and not self.istio_listed else None

    @property
    def spec_inputs_usable(self) -> bool:
        """Everything the pod spec is rendered from is there and valid."""
        return (
            self.config_valid
            and {OS, DB} <= self.related
            and self.storage_problem is None
            and self.db_problem is None
            and self.image_ok
        )

    @property
    def stranded(self) -> bool:
        """serve_artifacts from another bucket than the one proxied: refused until confirmed."""
        serve, bucket = self.config["serve_artifacts"], self.config["default_artifact_root"]
        return self.config_valid and serve and self.proxied is not None and self.proxied != bucket

    @property
    def proxy(self) -> Optional[str]:
        """The bucket the spec rendered now proxies: once proxied, always proxied."""
        return self.proxied or (self.config["default_artifact_root"] if self.config["serve_artifacts"] else None)

    def spec_key(self) -> Tuple:
        """What the rendered spec depends on: equal keys, equal specs."""
        config = tuple(sorted((k, v) for k, v in self.config.items() if k not in NOT_IN_SPEC))
        db = tuple(self.mariadb[f] for f in DB_FIELDS)
        # The units share the database connection budget: each count sizes the pools anew.
        return config, MINIO_KEYS[self.minio], db, self.image_ok, self.proxy, self.units

    def bucket_key(self) -> Tuple:
        """What the charm's bucket check is remembered by."""
        create = self.config["create_default_artifact_root_if_missing"]
        return MINIO_KEYS[self.minio], self.config["default_artifact_root"], create

    def inputs_key(self) -> Tuple:
        """What the charm reads from Juju in a hook (config, peers' data): equal keys, a settled no-op."""
        return (
            tuple(sorted(self.config.items())),
            tuple(sorted(self.related)),
            self.minio if OS in self.related else None,
            tuple(sorted((self.mariadb or {}).items())) if DB in self.related else None,
            self.mariadb is None,
            self.istio_listed if INGRESS in self.related else None,
        )

    def without(self, endpoint: str) -> "World":
        return dataclasses.replace(self, related=self.related - {endpoint})


def expected_status(model: World, spec_set: bool, bucket_ok: bool, pod_serving: bool) -> str:
    """The status kind a hook that reconciles must leave: "active", "blocked", "waiting" or "standby".

    A human must act (missing relation, wrong data or config, no image, a
    bucket that may not be created) -> blocked, before anything merely
    awaited (a peer's data, the rollout of a new spec, the pod) -> waiting.
    The bucket and the pod are only looked at once both the db and the
    object storage are usable; the pod only once nothing else is wrong.
    """
    if not model.leader:
        return "standby"
    if not model.config_valid:
        return "blocked"
    problems = ["blocked" if not ENDPOINTS <= model.related else None]
    problems += [model.storage_problem, model.db_problem, model.ingress_problem]
    if {OS, DB} <= model.related and model.storage_problem is None and model.db_problem is None:
        if model.stranded:
            return "blocked"  # the spec in force stays; no bucket check, no pod check
        problems.append(None if model.image_ok else "blocked")
        problems.append("waiting" if spec_set else None)  # Juju rolls the new pod out after the hook
        problems.append(None if bucket_ok else "blocked")
        if not any(problems) and not pod_serving:
            problems.append("waiting")
    if "blocked" in problems:
        return "blocked"
    return "waiting" if "waiting" in problems else "active"


def mlflow_answers(mlflow) -> bool:
    """Does MLflow's service answer /health? What a settled update-status asks, and only that."""
    return mlflow.status == 200


def pod_serving(kubernetes, mlflow, health_failed: bool, units: int) -> bool:
    """Is the MLflow pod of the current spec serving, as a reconcile finds out? The only place the model asks.

    Kubernetes is asked first; the service's /health only after a settled
    update-status found it failing (until it answers again)."""
    # The fake's pods always carry the annotation of the last spec set (apply_spec).
    ready = kubernetes.pod_count * kubernetes.pod_ready if kubernetes.ready_pods is None else kubernetes.ready_pods
    pod_ready = kubernetes.status_code == 200 and kubernetes.pod_count > 0 and ready >= units
    return pod_ready and (mlflow_answers(mlflow) or not health_failed)


# --- the machine -------------------------------------------------------------


class CharmMachine(RuleBasedStateMachine):
    # set by the test below: pytest fixtures cannot reach a state machine directly
    fixtures: Dict[str, Any] = {}

    def __init__(self):
        super().__init__()
        f = self.fixtures
        self.ctx, self.kubernetes, self.s3, self.pod_specs = f["ctx"], f["kubernetes"], f["s3"], f["pod_specs"]
        self.mlflow = f["mlflow"]
        self.tmp: Path = f["tmp"]
        self.count_step, self.hooks = f["count_step"], f["hooks"]
        # every sequence starts from a fresh world: no bucket, one ready pod
        for bucket in self.s3.list_buckets().get("Buckets", []):
            for obj in self.s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
                self.s3.delete_object(Bucket=bucket["Name"], Key=obj["Key"])
            self.s3.delete_bucket(Bucket=bucket["Name"])
        self.kubernetes.pod_ready, self.kubernetes.pod_count, self.kubernetes.status_code = True, 1, 200
        self.kubernetes.ready_pods, self.kubernetes.pod_annotations = None, {}
        self.mlflow.status = 200
        self.unit_id = 0  # the unit the hooks run on; another takes over in `another_unit_leads`
        self.world = World()
        self.state: scenario.State = None
        self.settled: Optional[Tuple] = None  # inputs_key of the hook that ended Active
        self.spec_key: Optional[Tuple] = None  # spec_key of the last spec set by this leadership
        self.bucket_checked: Optional[Tuple] = None  # bucket_key of the last bucket check that passed
        self.health_failed = False  # a settled update-status found /health failing; not answered since

    # --- running a hook and checking it ---------------------------------

    def _hook(self, event, kind: str, broken: Optional[str] = None) -> None:
        """Run one hook on the current state; `broken`: the endpoint whose relation-broken this is."""
        seen = self.world.without(broken) if broken else self.world
        settled_check = seen.leader and self.settled is not None and kind == "update_status"
        if settled_check and not mlflow_answers(self.mlflow):
            # the full reconcile runs, and checks the bucket and /health again
            self.health_failed, self.bucket_checked, self.settled = True, None, None
        noop = (
            seen.leader
            and self.settled is not None
            and kind != "upgrade_charm"
            and ((settled_check and mlflow_answers(self.mlflow)) or seen.inputs_key() == self.settled)
        )
        serving = pod_serving(self.kubernetes, self.mlflow, self.health_failed, seen.units)
        converges = not noop and seen.leader and seen.spec_inputs_usable and not seen.stranded
        spec_set = converges and seen.spec_key() != self.spec_key
        # the bucket is checked whatever the image: only the spec needs that
        checks_bucket = not noop and dataclasses.replace(seen, image_ok=True).spec_inputs_usable and not seen.stranded
        bucket_ok = checks_bucket and (
            seen.bucket_key() == self.bucket_checked
            or self._bucket_exists(seen)
            or seen.config["create_default_artifact_root_if_missing"]
        )
        expected = "active" if noop else expected_status(seen, spec_set, bucket_ok, serving)
        bags_before = self._our_bags()
        specs_before = len(self.pod_specs)

        out = self.ctx.run(event, self.state)  # an uncaught exception in the charm fails the step here
        self.hooks.append((kind, expected))
        self.state = out

        status = out.unit_status
        assert_human_status(status)
        if expected == "standby":
            assert status == scenario.ActiveStatus(STANDBY), f"{kind}: non-leader, got {status}"
        elif expected == "active":
            assert status == scenario.ActiveStatus(), f"{kind}: expected Active, got {status}"
        else:
            assert status.name == expected, f"{kind}: expected {expected}, got {status}"
        assert len(self.pod_specs) - specs_before == (1 if spec_set else 0), (
            f"{kind}: a spec must be set exactly when its inputs changed (expected {int(spec_set)})"
        )

        if not seen.leader:
            # a leader elsewhere may change the spec and the bucket meanwhile
            self.settled = self.spec_key = self.bucket_checked = None
        elif not noop:
            self.settled = seen.inputs_key() if expected == "active" else None
            if converges:
                self.world.proxied = seen.proxy  # from here on the spec in force proxies it
            if spec_set:
                self.spec_key = seen.spec_key()
            if checks_bucket and bucket_ok:
                self.bucket_checked = seen.bucket_key()
            if expected == "active":
                self.health_failed = False  # the reconcile found /health answering again
        self._check_published(bags_before, seen, skip=broken)
        if seen.leader:
            self._check_proxied_home(self.world.proxied)

    def _check_proxied_home(self, proxied: Optional[str]) -> None:
        """After a leader's hook the proxied bucket has one home: the peer bag once listed."""
        stored = self.state.get_stored_state("_stored", owner_path="MlflowServerCharm").content
        in_unit = stored.get("proxied_bucket") or None
        try:
            in_bag = self.state.get_relation(REPLICAS_ID).local_app_data.get(PROXIED_KEY)
        except KeyError:  # no peer relation listed yet
            assert in_unit == proxied, f"stored state: proxied {in_unit!r}, expected {proxied!r}"
            return
        assert (in_bag, in_unit) == (proxied, None), f"peer bag / stored state: {in_bag!r} / {in_unit!r}"

    def _bucket_exists(self, seen: World) -> bool:
        names = {b["Name"] for b in self.s3.list_buckets().get("Buckets", [])}
        return seen.config["default_artifact_root"] in names

    def _our_bags(self) -> Dict[str, Dict[str, str]]:
        return {r.endpoint: dict(r.local_app_data) for r in self.state.relations}

    def _check_published(self, before: Dict[str, Dict[str, str]], seen: World, skip: Optional[str]) -> None:
        after = self._our_bags()
        for endpoint, bag in before.items():
            if endpoint != skip:
                lost = set(bag) - set(after.get(endpoint, {}))
                assert not lost, f"{endpoint}: published keys lost: {sorted(lost)}"
        if not seen.leader:
            return  # only the leader writes; what it wrote stays (checked above)
        # issue 14 item 2: SDI peers read our versions in their constructors, whatever our config
        for endpoint in (OS, INGRESS):
            if endpoint in seen.related:
                assert "_supported_versions" in after[endpoint], f"{endpoint}: no _supported_versions in our bag"
        if INGRESS in seen.related and seen.istio_listed and seen.config_valid:
            data = after[INGRESS].get("data", "")
            assert f"port: {seen.config['mlflow_port']}\n" in data and "prefix: /mlflow/" in data, (
                f"ingress: our request is missing or stale: {data!r}"
            )
        if PD in seen.related:
            self._check_pod_defaults(after[PD], seen)

    def _check_pod_defaults(self, bag: Dict[str, str], seen: World) -> None:
        # admission-webhook indexes the key: it must always be there, one JSON object
        assert "pod-defaults" in bag, "pod-defaults: admission-webhook needs the key"
        payload = json.loads(bag["pod-defaults"])
        assert isinstance(payload, dict), "pod-defaults: not a JSON object"
        env = payload.get("minio", {}).get("env", {})
        keys = (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"))
        if keys != (None, None):
            # issue 14 item 6: withdrawing the keys must not depend on the rest of the config
            assert OS in seen.related, "pod-defaults: MinIO keys published while minio is not related"
            assert not seen.config["serve_artifacts"], "pod-defaults: MinIO keys published while serve_artifacts"
            assert keys in seen.minio_keys_sent, "pod-defaults: MinIO keys minio never sent on this relation"
        if seen.config_valid and seen.minio in MINIO_KEYS and OS in seen.related and not seen.config["serve_artifacts"]:
            assert keys == MINIO_KEYS[seen.minio], "pod-defaults: not the keys minio sends now"

    # --- the world's events ---------------------------------------------

    @initialize(related=st.booleans(), leader=st.sampled_from([True, True, True, False]), proxy=st.booleans())
    def deploy(self, related, leader, proxy=False):
        """`juju deploy` (with serve_artifacts, or not), then (or not) the tutorial's relations already there."""
        self.count_step()
        self.world.leader = leader
        # drawn here, or sequences seldom reach a proxied bucket and the action that moves it
        config = {"serve_artifacts": True} if proxy else {}
        self.world.config.update(config)
        self.state = world.state(self.tmp, endpoints=world.ALL if related else (), leader=leader, config=config)
        if related:
            self.world.related = set(world.ALL)
            self.world.minio, self.world.minio_keys_sent = "valid", {MINIO_KEYS["valid"]}
            self.world.mariadb, self.world.istio_listed = dict(MARIADB_UNIT_DATA), True
        self._hook(self.ctx.on.install(), "install")
        if leader:
            self._hook(self.ctx.on.leader_elected(), "leader_elected")
        self._hook(self.ctx.on.config_changed(), "config_changed")
        if related:
            self._hook(self.ctx.on.update_status(), "update_status")  # the pod of the spec just set is up

    def _relation(self, endpoint: str) -> scenario.Relation:
        return self.state.get_relation(world.RELATION_IDS[endpoint])

    def _peer_sends(self, endpoint: str, **changes) -> None:
        self.state = world.update_relation(self.state, endpoint, **changes)
        self._hook(self.ctx.on.relation_changed(self._relation(endpoint), remote_unit=0), "relation_changed")

    @precondition(lambda self: len(self.world.related) < len(world.ALL))
    @rule(data=st.data(), with_data=st.booleans())
    def relate(self, data, with_data):
        self.count_step()
        self.relate_to(data.draw(st.sampled_from(sorted(ENDPOINTS - self.world.related)), label="endpoint"), with_data)

    def relate_to(self, endpoint: str, with_data: bool) -> None:
        """`juju relate`: created and joined with empty bags; then, or later, the peer's data."""
        empty = world.relation(endpoint, remote_app_data={}, remote_units_data={0: {}})
        self.state = world.with_relation(self.state, empty)
        self.world.related.add(endpoint)
        if endpoint == OS:
            self.world.minio, self.world.minio_keys_sent = "nothing-yet", set()
        elif endpoint == DB:
            self.world.mariadb = {}
        elif endpoint == INGRESS:
            self.world.istio_listed = False
        self._hook(self.ctx.on.relation_created(self._relation(endpoint)), "relation_created")
        self._hook(self.ctx.on.relation_joined(self._relation(endpoint), remote_unit=0), "relation_joined")
        if with_data:
            full = world.relation(endpoint)
            self._model_peer_data(endpoint, full)
            self._peer_sends(endpoint, remote_app_data=full.remote_app_data, remote_units_data=full.remote_units_data)

    def _model_peer_data(self, endpoint: str, full: scenario.Relation) -> None:
        if endpoint == OS:
            self._model_minio("valid")
        elif endpoint == DB:
            self.world.mariadb = dict(full.remote_units_data[0])
        elif endpoint == INGRESS:
            self.world.istio_listed = True

    def _model_minio(self, variant: str) -> None:
        self.world.minio = variant
        if variant in MINIO_KEYS:
            self.world.minio_keys_sent.add(MINIO_KEYS[variant])

    @precondition(lambda self: self.world.related)
    @rule(data=st.data())
    def unrelate(self, data):
        self.count_step()
        self.unrelate_from(data.draw(st.sampled_from(sorted(self.world.related)), label="endpoint"))

    def unrelate_from(self, endpoint: str) -> None:
        """`juju remove-relation`: the peer's unit departs, relation-broken, then the relation is gone."""
        self.state = world.update_relation(self.state, endpoint, remote_units_data={})
        if endpoint == DB:
            self.world.mariadb = None
        relation = self._relation(endpoint)
        self._hook(self.ctx.on.relation_departed(relation, remote_unit=0, departing_unit=0), "relation_departed")
        self._hook(self.ctx.on.relation_broken(self._relation(endpoint)), "relation_broken", broken=endpoint)
        self.state = world.without(self.state, endpoint)
        self.world.related.discard(endpoint)
        if endpoint == OS:
            self.world.minio, self.world.minio_keys_sent = "nothing-yet", set()

    @precondition(lambda self: OS in self.world.related)
    @rule(variant=st.sampled_from(sorted(MINIO_BAGS)))
    def minio_sends(self, variant):
        """minio's app bag changes: valid, rotated keys, malformed, a field missing, versions or data missing."""
        self.count_step()
        self._model_minio(variant)
        self._peer_sends(OS, remote_app_data=dict(MINIO_BAGS[variant]))

    @precondition(lambda self: DB in self.world.related and self.world.mariadb is not None)
    @rule(fields=st.sets(st.sampled_from(sorted(MARIADB_UNIT_DATA)), min_size=1))
    def mariadb_sends(self, fields):
        """mariadb fills its unit bag in parts, as its database comes up."""
        self.count_step()
        self.world.mariadb = {**self.world.mariadb, **{f: MARIADB_UNIT_DATA[f] for f in fields}}
        self._peer_sends(DB, remote_units_data={0: dict(self.world.mariadb)})

    @precondition(lambda self: DB in self.world.related and self.world.mariadb is not None)
    @rule()
    def mariadb_sends_a_bad_port(self):
        self.count_step()
        self.world.mariadb = {**self.world.mariadb, "port": BAD_DB_PORT}
        self._peer_sends(DB, remote_units_data={0: dict(self.world.mariadb)})

    @precondition(lambda self: INGRESS in self.world.related and not self.world.istio_listed)
    @rule()
    def istio_lists_its_versions(self):
        self.count_step()
        self.world.istio_listed = True
        self._peer_sends(INGRESS, remote_app_data=dict(ISTIO_PILOT_APP_DATA))

    @rule(setting=st.sampled_from([(option, value) for option, values in CONFIG_VALUES.items() for value in values]))
    def juju_config(self, setting):
        """`juju config`: one option to a valid or an invalid value (serve_artifacts toggles)."""
        self.count_step()
        option, value = setting
        self.world.config[option] = value
        overrides = {k: v for k, v in self.world.config.items() if v != CONFIG_DEFAULTS[k]}
        self.state = dataclasses.replace(self.state, config=overrides)
        self._hook(self.ctx.on.config_changed(), "config_changed")

    @precondition(lambda self: self.world.leader)
    @rule()
    def leadership_lost(self):
        """Another unit leads; the next hook this unit runs is update-status."""
        self.count_step()
        self.world.leader = False
        self.state = dataclasses.replace(self.state, leader=False)
        self._hook(self.ctx.on.update_status(), "update_status")

    @precondition(lambda self: not self.world.leader)
    @rule()
    def leadership_gained(self):
        self.count_step()
        self.world.leader = True
        self.state = dataclasses.replace(self.state, leader=True)
        self._hook(self.ctx.on.leader_elected(), "leader_elected")

    @rule()
    def upgrade_charm(self):
        self.count_step()
        self._hook(self.ctx.on.upgrade_charm(), "upgrade_charm")

    @rule(attached=st.booleans())
    def attach_image(self, attached):
        """`juju attach-resource`: a good or an unreadable oci-image; Juju runs upgrade-charm."""
        self.count_step()
        if attached:
            resource = world.image_resource(self.tmp)
        else:
            broken = self.tmp / "broken-oci-image.yaml"
            broken.write_text("")
            resource = scenario.Resource(name="oci-image", path=broken)
        self.world.image_ok = attached
        self.state = dataclasses.replace(self.state, resources={resource})
        self._hook(self.ctx.on.upgrade_charm(), "upgrade_charm")

    @rule(pod=st.sampled_from(POD_STATES))
    def kubernetes_pod(self, pod):
        """The MLflow pod becomes ready, unready or disappears, or the API refuses: no hook runs."""
        self.count_step()
        self.kubernetes.pod_ready, self.kubernetes.ready_pods = pod != "unready", None
        self.kubernetes.pod_count = 0 if pod == "gone" else self.world.units
        self.kubernetes.status_code = 403 if pod == "api-refuses" else 200
        # MLflow answers /health while its pod runs, whatever the API server tells us
        self.mlflow.status = 503 if pod in ("unready", "gone", "service-down") else 200

    @rule(exists=st.booleans())
    def bucket_by_hand(self, exists):
        """Someone deletes (or creates) the artifact bucket in MinIO by hand: no hook runs."""
        self.count_step()
        bucket = self.world.config["default_artifact_root"]
        if not bucket.replace(".", "").replace("-", "").isalnum():
            return  # an invalid bucket name: nothing to create or delete
        names = {b["Name"] for b in self.s3.list_buckets().get("Buckets", [])}
        if exists and bucket not in names:
            self.s3.create_bucket(Bucket=bucket)
        elif not exists and bucket in names:
            for obj in self.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                self.s3.delete_object(Bucket=bucket, Key=obj["Key"])
            self.s3.delete_bucket(Bucket=bucket)

    @rule()
    def update_status(self):
        self.count_step()
        self._hook(self.ctx.on.update_status(), "update_status")

    @rule(units=st.integers(1, 3), data=st.data())
    def scale(self, units, data):
        """`juju scale-application`: a pod per unit, some of them Ready; the leader hears it on `replicas`."""
        self.count_step()
        ready = data.draw(st.integers(0, units), label="ready pods")
        previous, self.world.units = self.world.units, units
        self.kubernetes.pod_count, self.kubernetes.ready_pods = units, ready
        self.mlflow.status = 200 if ready else 503  # the service routes to Ready pods only
        bag = next((dict(r.local_app_data) for r in self.state.relations if r.id == REPLICAS_ID), {})
        peers = scenario.PeerRelation(
            endpoint="replicas",
            interface="mlflow_server_replicas",
            id=REPLICAS_ID,
            local_app_data=bag,  # Juju keeps the application's bag whatever the unit count
            peers_data={unit: {} for unit in self._other_units(max(units, previous))},
        )
        others = {r for r in self.state.relations if r.id != REPLICAS_ID}
        self.state = dataclasses.replace(self.state, planned_units=units, relations={*others, peers})
        if units == previous:
            return  # no unit came or went: no hook
        if self.world.leader:
            self.settled = None  # same inputs, another number of pods to wait for
        if units > previous:
            self._hook(self.ctx.on.relation_joined(peers, remote_unit=self._other_units(units)[-1]), "replicas_joined")
        else:
            departing = self._other_units(previous)[-1]
            self._hook(self.ctx.on.relation_departed(peers, remote_unit=departing), "replicas_departed")
            # what the hook wrote stays: only the departed unit leaves the relation
            after = self.state.get_relation(REPLICAS_ID)
            gone = dataclasses.replace(after, peers_data={unit: {} for unit in self._other_units(units)})
            others = {r for r in self.state.relations if r.id != REPLICAS_ID}
            self.state = dataclasses.replace(self.state, relations={*others, gone})

    def _other_units(self, units: int):
        """The ids of the application's other units, when it has `units`."""
        return [unit for unit in range(units + 1) if unit != self.unit_id][: units - 1]

    @precondition(lambda self: self.world.leader and self.world.units >= 2)
    @rule()
    def another_unit_leads(self):
        """The leader's pod is replaced (or Juju moves leadership): a unit that never set a spec leads.
        It shares only the application's bags with this one: no stored state, no memos."""
        self.count_step()
        self.unit_id += 1
        self.ctx = scenario.Context(MlflowServerCharm, unit_id=self.unit_id)
        peers = dataclasses.replace(
            self.state.get_relation(REPLICAS_ID),
            peers_data={unit: {} for unit in self._other_units(self.world.units)},
        )
        others = {r for r in self.state.relations if r.id != REPLICAS_ID}
        self.state = dataclasses.replace(
            self.state, relations={*others, peers}, stored_states=set(), unit_status=scenario.UnknownStatus()
        )
        self.settled = self.spec_key = self.bucket_checked = None
        self.health_failed = False
        self._hook(self.ctx.on.leader_elected(), "leader_elected_elsewhere")

    def _can_confirm(self) -> bool:
        return bool(self.world.leader and self.world.config_valid and self.world.proxied)

    @precondition(lambda self: not self._can_confirm())
    @rule()
    def confirm_artifacts_copied_refused(self):
        """The action on a non-leader, under a bad config, or with nothing proxied: it fails, nothing runs."""
        self.count_step()
        with pytest.raises(ActionFailed):
            self.ctx.run(self.ctx.on.action("confirm-artifacts-copied"), self.state)
        self.hooks.append(("action_failed", None))

    # a rule of its own, or the random search seldom reaches it
    @precondition(lambda self: self._can_confirm())
    @rule()
    def confirm_artifacts_copied(self):
        """`juju run-action confirm-artifacts-copied`: the proxied artifacts are in default_artifact_root's bucket."""
        if not self._can_confirm():  # a replay may ask for the refused case
            self.confirm_artifacts_copied_refused()
            return
        self.count_step()
        event = self.ctx.on.action("confirm-artifacts-copied")
        previous, bucket = self.world.proxied, self.world.config["default_artifact_root"]
        self.world.proxied = bucket
        # intended: the proxy moves now, whatever the unit had settled on
        self.settled = None
        self._hook(event, "confirm_artifacts_copied")
        assert self.ctx.action_results == {"previous-bucket": previous, "bucket": bucket}


# --- the test ----------------------------------------------------------------


@pytest.fixture
def fast_hooks(network, kubernetes, mlflow, per_process_caches):
    """conftest's per-process caches, and loopback restricted to the fakes' ports."""
    network.loopback_ports = {network.alias_ports[9000], kubernetes.server.server_address[1], mlflow.port}


@pytest.fixture
def hooks(ctx, kubernetes, mlflow, s3_buckets, pod_specs, fuzz_cases, fast_hooks, tmp_path, monkeypatch):
    """Hands the fixtures to CharmMachine; every hook it runs is listed as (event, expected status)."""
    ran = []
    fixtures = {
        "ctx": ctx,
        "kubernetes": kubernetes,
        "mlflow": mlflow,
        "s3": s3_buckets,
        "pod_specs": pod_specs,
        "tmp": tmp_path,
        "count_step": fuzz_cases,
        "hooks": ran,
    }
    monkeypatch.setattr(CharmMachine, "fixtures", fixtures)
    return ran


def test_random_sequences_end_in_a_status_that_matches_the_world(hooks, secrets_never_leak):
    runs_before = secrets_never_leak.runs
    run_state_machine_as_test(CharmMachine, settings=MACHINE_SETTINGS)
    assert secrets_never_leak.runs - runs_before == len(hooks), "every hook must go through the leak check"
    events, statuses = {kind for kind, _ in hooks}, {expected for _, expected in hooks if expected}
    reached = ("relation_created", "relation_broken", "config_changed", "upgrade_charm", "leader_elected")
    for kind in (*reached, "replicas_joined", "replicas_departed", "confirm_artifacts_copied", "action_failed"):
        assert kind in events, f"no {kind} in any sequence: the machine's rules do not reach it"
    assert statuses == {"active", "blocked", "waiting", "standby"}, f"sequences only reached {sorted(statuses)}"


# Sequences that break or pin down an invariant, shrunk by hand to their
# essence: found by the machine (with more examples than CI runs) or written
# against it. Replayed on every run, whatever the random search reaches; each
# step is a rule of CharmMachine, so every check applies after each hook.
SETTLED = ("deploy", {"related": True, "leader": True})


class _Drawn:
    """Stands for `st.data()` in a replay: every draw gives `value`."""

    def __init__(self, value):
        self.value = value

    def draw(self, strategy, label=None):
        return self.value


FOUND_SEQUENCES = {
    # issue 14 item 2: SDI peers need our versions whatever our config
    "relating minio with a bad config lists our versions": [
        ("deploy", {"related": False, "leader": True}),
        ("juju_config", {"setting": ("workers", 0)}),
        ("relate_to", {"endpoint": OS, "with_data": False}),
    ],
    # issue 14 item 6: withdrawing the MinIO keys must not depend on the rest of the config
    "minio leaving under a bad config withdraws its keys": [
        SETTLED,
        ("juju_config", {"setting": ("workers", 0)}),
        ("unrelate_from", {"endpoint": OS}),
    ],
    "serve_artifacts under a bad config withdraws the keys": [
        SETTLED,
        ("juju_config", {"setting": ("workers", 0)}),
        ("juju_config", {"setting": ("serve_artifacts", True)}),
    ],
    # nor on minio's latest data being valid
    "serve_artifacts while minio's data is malformed withdraws the keys": [
        SETTLED,
        ("minio_sends", {"variant": "malformed"}),
        ("juju_config", {"setting": ("serve_artifacts", True)}),
    ],
    # the bucket check is remembered per keys and bucket name, not per create option
    "bucket deleted by hand, then creating it forbidden, blocks": [
        SETTLED,
        ("bucket_by_hand", {"exists": False}),
        ("juju_config", {"setting": ("create_default_artifact_root_if_missing", False)}),
    ],
    # a settled update-status asks /health: a pod that stops serving after Active shows on the next one
    "a pod unready after Active is seen by the next update-status": [
        SETTLED,
        ("kubernetes_pod", {"pod": "unready"}),
        ("update_status", {}),
        ("kubernetes_pod", {"pod": "ready"}),
        ("update_status", {}),
    ],
    "a service that stops answering while its pod is Ready is seen, and so is its return": [
        SETTLED,
        ("kubernetes_pod", {"pod": "service-down"}),
        ("upgrade_charm", {}),  # Kubernetes alone is asked: Active
        ("update_status", {}),
        ("minio_sends", {"variant": "rotated"}),  # /health failed: asked again until it answers
        ("kubernetes_pod", {"pod": "ready"}),
        ("update_status", {}),
    ],
    # a failed /health also checks the bucket again
    "a bucket deleted while MLflow is down is re-created on the next update-status": [
        SETTLED,
        ("bucket_by_hand", {"exists": False}),
        ("update_status", {}),  # within the hour: /health alone
        ("kubernetes_pod", {"pod": "gone"}),
        ("update_status", {}),
    ],
    # issue 14 item 5: no config change strands proxied artifacts
    "a bucket change while proxying is refused until the copy is confirmed": [
        SETTLED,
        ("juju_config", {"setting": ("serve_artifacts", True)}),
        ("update_status", {}),
        ("juju_config", {"setting": ("default_artifact_root", "artifacts")}),
        ("update_status", {}),
        ("confirm_artifacts_copied", {}),
        ("update_status", {}),
    ],
    "confirming after proxying stopped moves the proxy to the new bucket": [
        SETTLED,
        ("juju_config", {"setting": ("serve_artifacts", True)}),
        ("juju_config", {"setting": ("serve_artifacts", False)}),
        ("juju_config", {"setting": ("default_artifact_root", "artifacts")}),
        ("update_status", {}),
        ("confirm_artifacts_copied", {}),
        ("update_status", {}),
    ],
    # replicas: the leader waits for every planned pod, and hears of a scale-out on `replicas` alone
    "scaling out a settled leader waits for the new pods": [
        SETTLED,
        ("scale", {"units": 3, "data": _Drawn(1)}),
        ("update_status", {}),  # /health answers through the Ready pod, yet 1/3: still waiting
        ("scale", {"units": 3, "data": _Drawn(3)}),
        ("upgrade_charm", {}),
        ("scale", {"units": 1, "data": _Drawn(1)}),
    ],
    # issue 21 part 3: the proxied bucket survives a change of leader
    "a new leader in the middle of a bucket change refuses it too, and takes the confirmation": [
        SETTLED,
        ("juju_config", {"setting": ("serve_artifacts", True)}),
        ("update_status", {}),
        ("scale", {"units": 2, "data": _Drawn(2)}),
        ("juju_config", {"setting": ("default_artifact_root", "artifacts")}),
        ("another_unit_leads", {}),
        ("update_status", {}),
        ("confirm_artifacts_copied", {}),
        ("another_unit_leads", {}),
        ("update_status", {}),
    ],
    "a new leader keeps proxying after serve_artifacts was turned off": [
        ("deploy", {"related": True, "leader": True, "proxy": True}),
        ("juju_config", {"setting": ("serve_artifacts", False)}),
        ("scale", {"units": 3, "data": _Drawn(3)}),
        ("juju_config", {"setting": ("default_artifact_root", "artifacts")}),
        ("another_unit_leads", {}),
        ("update_status", {}),
        ("juju_config", {"setting": ("serve_artifacts", True)}),
    ],
    # found by the machine: Juju keeps the peer bag when a unit leaves
    "scaling in after a change of leader keeps the proxied bucket": [
        ("deploy", {"related": True, "leader": True, "proxy": True}),
        ("scale", {"units": 2, "data": _Drawn(2)}),
        ("another_unit_leads", {}),
        ("scale", {"units": 1, "data": _Drawn(1)}),
        ("juju_config", {"setting": ("default_artifact_root", "artifacts")}),
    ],
    "confirming with nothing proxied fails and changes nothing": [
        SETTLED,
        ("confirm_artifacts_copied", {}),
        ("update_status", {}),
    ],
}


@pytest.mark.parametrize("name", sorted(FOUND_SEQUENCES))
def test_found_sequences(hooks, name):
    machine = CharmMachine()
    for step, arguments in FOUND_SEQUENCES[name]:
        getattr(machine, step)(**arguments)
    assert hooks, "the sequence ran no hook"
