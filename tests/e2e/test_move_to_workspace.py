"""The move-to-workspace action against what a 2.22 deployment really left behind (issue 24).

MLflow 2.22.0, deployed by the charm's own spec with its defaults (notebooks
write to S3 directly, `s3://mlflow/<experiment>/...`), logs two experiments
with runs, metrics, artifacts and registered models into MariaDB and the S3
server. Then, as an upgrade to enable_workspaces does: the multi-tenant
spec's init container upgrades the schema (templates/db_upgrade.py under the
image's MLflow 3.17.2), and its token server runs against the loopback
Kubernetes API with profiles alice and bob. The action's own code path
(src/workspace_move.py running templates/move_to_workspace.py with the
interpreter of the container's `mlflow` command and the container's env)
moves one experiment, then, after a dry run and two interruptions, all.
Alice then reads everything through the proxy with her own token; bob
sees none of it.

The steps build on each other, in file order, on one module fixture.
"""

import json
import subprocess
import uuid
from pathlib import Path
from typing import Dict, Optional

import harness
import kubeflow_rbac
import pytest
import workspace_pods
from charm_driver import CharmDriver
from harness import BUCKET
from mlflow_venvs import NEWEST_MLFLOW, ensure_venv, image_of
from pod_runner import Pod, containers
from test_workspaces import PROFILES, _admin_rbac, _fresh_store, _rendered_spec, _wait_healthy

import workspace_move
from contracts import APP
from contracts import MODEL as JUJU_MODEL
from fakes.kubernetes_api import FakeKubernetesApi
from fakes.kubernetes_cluster import FakeCluster
from fakes.network_guard import free_port

HERE = Path(__file__).resolve().parent
LEGACY = "2.22.0"
WINE, IRIS = "legacy-wine", "legacy-iris"  # legacy_client.py's experiments
LEGACY_MODEL, MIXED_MODEL = "LegacyWine", "LegacyMixed"


class Upgraded:
    """A 2.22 deployment's data, upgraded, served by the multi-tenant token server."""

    def __init__(self, cluster: FakeCluster, mariadb, s3, database: str, workdir: Path, legacy: dict):
        self.cluster, self.mariadb, self.s3, self.database = cluster, mariadb, s3, database
        self.workdir, self.legacy = workdir, legacy
        self.token_port = 0
        self.script_env: Dict[str, str] = {}
        self.destination = ""
        self.image_bin = Path()
        self.legacy_keys: Dict[str, str] = {}  # key -> ETag, before any move

    # --- the action's code path ------------------------------------------------------

    def request(self, experiments: str, namespace: str = "alice", dry_run: bool = False):
        params = {"experiments": experiments, "namespace": namespace, "dry-run": dry_run}
        return workspace_move.parse_params(params, self.destination)

    def python(self) -> str:
        python = workspace_move.mlflow_python(self.script_env)
        assert python is not None
        return python

    def move(self, experiments: str, namespace: str = "alice", dry_run: bool = False) -> dict:
        return workspace_move.run(self.request(experiments, namespace, dry_run), self.python(), self.script_env, 300)

    def interrupted_move(self, experiments: str, stop: str) -> dict:
        """The same script, ended where a kill could end it ('before-rows', 'before-move')."""
        code = "import sys; sys.path.insert(0, sys.argv[1]); import move_to_workspace as m; m.main(stop=sys.argv[2])"
        done = subprocess.run(
            [self.python(), "-c", code, str(workspace_move.SCRIPT.parent), stop],
            input=self.request(experiments).payload(),
            env=self.script_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout.splitlines()[-1])["report"]

    # --- what is stored ----------------------------------------------------------------

    def rows(self) -> str:
        """Every row the move may change, as text."""
        return self.mariadb.sql(
            f"USE `{self.database}`;"
            " SELECT experiment_id, name, workspace, artifact_location FROM experiments ORDER BY experiment_id;"
            " SELECT run_uuid, experiment_id, artifact_uri FROM runs ORDER BY run_uuid;"
            " SELECT name, workspace FROM registered_models ORDER BY name;"
            " SELECT name, version, workspace, source, storage_location, run_id FROM model_versions"
            " ORDER BY name, version;"
        )

    def objects(self) -> Dict[str, str]:
        client = self.s3.client()
        found: Dict[str, str] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["ETag"]
        return found

    # --- a profile's notebook ----------------------------------------------------------

    def read_as(self, namespace: str, model_uri: str = "") -> dict:
        identity = workspace_pods.identity_for(self.cluster, self.workdir, namespace, "default-editor")
        home = self.workdir / f"reader-{namespace}-{uuid.uuid4().hex[:6]}"
        home.mkdir()
        env = {
            "PATH": f"{self.image_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            # The keyless PodDefault: the tracking URI and the client's auth, no S3 keys.
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{self.token_port}",
            "MLFLOW_TRACKING_AUTH": "kubernetes-namespaced",
        }
        argv = [str(self.image_bin / "python"), str(HERE / "profile_reader.py"), str(home), model_uri]
        done = workspace_pods.run_in_pod(
            argv, workspace_pods.pod_env(self.cluster, identity, env), identity, home, timeout=300
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("PROFILE-REPORT ")]
        assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-3000:]
        return json.loads(lines[-1].split(" ", 1)[1])


def _log_with_legacy_mlflow(workdir: Path, s3, mariadb, database: str) -> dict:
    """The charm's 2.22 spec with its defaults, run; the legacy client logs through it; the pod stops."""
    with FakeKubernetesApi() as charm_api:
        driver = CharmDriver(workdir, charm_api.write_kubeconfig(workdir / "legacy-kubeconfig"))
        config = {"mlflow_port": free_port(), "workers": 1}
        outcome = driver.tutorial(image_of(LEGACY), s3.app_data(), mariadb.unit_data(database), config)
    image_bin = ensure_venv(LEGACY)
    pod = Pod(outcome.spec, image_bin, workdir / "pod-2.22")
    try:
        pod.run_init_containers()
        pod.start()
        pod.wait_ready(timeout=240)
        env = harness.notebook_env(outcome.pod_defaults["minio"]["env"], workdir / "legacy", image_bin)
        return harness._run_reporting("legacy_client.py", [str(workdir / "legacy")], env, workdir, image_bin, 600)
    finally:
        pod.stop()


@pytest.fixture(scope="module")
def upgraded(workroot, mariadb, s3):
    image_bin, workdir, database = _fresh_store(workroot, mariadb, s3, "move")
    legacy = _log_with_legacy_mlflow(workdir, s3, mariadb, database)
    assert legacy["mlflow_version"] == LEGACY

    token_port, ui_port = free_port(), free_port()
    spec, _ = _rendered_spec(workdir, s3, mariadb, database, token_port, ui_port)
    assert NEWEST_MLFLOW in spec["containers"][0]["imageDetails"]["imagePath"]
    init = [c for c in containers(spec) if c.init]
    token = next(c for c in containers(spec) if not c.init and c.readiness[1] == token_port)

    with FakeCluster(workdir / "cluster") as cluster:
        cluster.add_namespace(JUJU_MODEL)
        for namespace in PROFILES:
            cluster.add_profile(namespace)
        cluster.load(kubeflow_rbac.kubeflow_roles())
        cluster.load(_admin_rbac())
        for namespace, owner in PROFILES.items():
            cluster.load(kubeflow_rbac.profile_bindings(namespace, owner))
        for role in spec["serviceAccount"]["roles"]:
            cluster.load(kubeflow_rbac.global_role_documents(JUJU_MODEL, APP, role["rules"]))
        identity = workspace_pods.identity_for(cluster, workdir, JUJU_MODEL, APP)
        state = Upgraded(cluster, mariadb, s3, database, workdir, legacy)
        state.token_port, state.image_bin = token_port, image_bin

        def pod_env(container, extra: Optional[dict] = None) -> dict:
            env = {"PATH": f"{image_bin}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **container.env}
            env["HOME"] = str(workdir / f"home-{container.name}")
            return workspace_pods.pod_env(cluster, identity, {**env, **(extra or {})})

        for container in init:  # the serialized schema upgrade, 2.22 -> 3.17.2
            process = workspace_pods.PodProcess(container.name, container.argv, pod_env(container), identity, workdir)
            assert process.process.wait(timeout=600) == 0, process.tail()
        server = workspace_pods.PodProcess(token.name, token.argv, pod_env(token), identity, workdir)
        try:
            _wait_healthy(server, token_port)
            # The action runs in this container: its env, its service account. The
            # script reaches the API through a kubeconfig of that account (the plugin's
            # second path), so it needs no private mount of its own.
            sa_token, sa_namespace = (identity / "token").read_text(), (identity / "namespace").read_text()
            kubeconfig = cluster.kubeconfig(workdir / "action-kubeconfig", sa_token, sa_namespace)
            env = {"PATH": f"{image_bin}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **token.env}
            env.update({"HOME": str(workdir / "home-action"), "KUBECONFIG": str(kubeconfig)})
            state.script_env = env
            state.destination = token.argv[token.argv.index("--artifacts-destination") + 1]
            state.legacy_keys = state.objects()
            yield state
        finally:
            server.stop()


def _legacy_run(upgraded: Upgraded, experiment: str) -> dict:
    return upgraded.legacy["runs"][experiment]


def _assert_reads_back(report: dict, upgraded: Upgraded, experiment: str) -> None:
    legacy = _legacy_run(upgraded, experiment)
    seen = report["experiments"][experiment]
    assert seen["id"] == legacy["experiment_id"]
    run = seen["runs"][legacy["run_id"]]
    assert (
        run["artifact_uri"]
        == f"mlflow-artifacts:/workspaces/alice/{legacy['experiment_id']}/{legacy['run_id']}/artifacts"
    )
    assert run["params"] == legacy["params"]
    assert run["loss"] == legacy["loss"]
    assert run["artifacts"] == legacy["artifacts"]  # every file, byte for byte, through the proxy


# --- the steps ---------------------------------------------------------------------------


def test_legacy_data_is_in_the_default_workspace_where_no_profile_sees_it(upgraded):
    wine = _legacy_run(upgraded, WINE)
    assert wine["artifact_uri"] == f"s3://{BUCKET}/{wine['experiment_id']}/{wine['run_id']}/artifacts"
    assert "\tdefault\t" in upgraded.rows()
    assert upgraded.read_as("alice")["experiments"] == {}


def test_a_namespace_that_is_no_profile_is_refused(upgraded):
    before = upgraded.rows()
    # The model's namespace exists but is no profile: the server's store does not serve it.
    with pytest.raises(workspace_move.MoveFailed) as failed:
        upgraded.move("all", JUJU_MODEL)
    assert f"namespace {JUJU_MODEL!r} is not an MLflow workspace" in failed.value.message
    with pytest.raises(workspace_move.MoveFailed, match="no experiment has the id or name 'nope'"):
        upgraded.move(f"{WINE},nope")
    assert upgraded.rows() == before


def test_dry_run_reports_and_changes_nothing(upgraded):
    rows, objects = upgraded.rows(), upgraded.objects()
    report = upgraded.move("all", dry_run=True)
    assert report["dry-run"] is True
    assert report["experiments-moved"] == 3  # both, and 2.22's own "Default"
    assert report["runs-moved"] == 2 and report["models-moved"] == 2
    assert report["objects-copied"] > 0 and report["objects-present"] == 0
    assert upgraded.rows() == rows and upgraded.objects() == objects


def test_move_one_experiment_leaves_a_model_with_versions_elsewhere(upgraded):
    wine = _legacy_run(upgraded, WINE)
    report = upgraded.move(WINE)
    assert report["experiments"] == f"{wine['experiment_id']}:{WINE}"
    assert report["runs-moved"] == 1
    assert report["models"] == LEGACY_MODEL
    assert f"registered model {MIXED_MODEL}: has versions from runs that stay outside 'alice'" in report["skipped"]
    prefix = f"workspaces/alice/{wine['experiment_id']}/{wine['run_id']}/artifacts/"
    copied = [k for k in upgraded.objects() if k.startswith(prefix)]
    assert report["objects-copied"] == len(copied) > 0

    alice = upgraded.read_as("alice", f"models:/{LEGACY_MODEL}/1")
    assert sorted(alice["experiments"]) == [WINE] and alice["models"] == [LEGACY_MODEL]
    _assert_reads_back(alice, upgraded, WINE)
    assert alice["predictions"] == pytest.approx(wine["predictions"])


def test_a_move_killed_before_the_rows_completes_on_the_next_run(upgraded):
    iris = _legacy_run(upgraded, IRIS)
    rows = upgraded.rows()
    copied = upgraded.interrupted_move("all", stop="before-rows")
    assert copied["objects-copied"] > 0
    assert upgraded.rows() == rows  # objects copied, not a row changed
    rewritten = upgraded.interrupted_move("all", stop="before-move")
    assert rewritten["objects-copied"] == 0 and rewritten["uris-rewritten"] > 0
    assert f"mlflow-artifacts:/workspaces/alice/{iris['experiment_id']}/{iris['run_id']}/artifacts" in upgraded.rows()
    # Rewritten, not moved: the experiment is still in the default workspace, where no
    # profile sees it (the first step read that through the server), and the re-run
    # finishes the job.
    assert f"{iris['experiment_id']}\t{IRIS}\tdefault\t" in upgraded.rows()
    report = upgraded.move("all")
    assert report["objects-copied"] == 0 and report["uris-rewritten"] == 0
    assert report["experiments-moved"] == 2 and report["models"] == MIXED_MODEL


def test_alice_reads_everything_through_the_proxy_after_all(upgraded):
    alice = upgraded.read_as("alice", f"models:/{MIXED_MODEL}/2")
    assert {WINE, IRIS} <= set(alice["experiments"])
    assert alice["models"] == sorted([MIXED_MODEL, LEGACY_MODEL])
    for experiment in (WINE, IRIS):
        _assert_reads_back(alice, upgraded, experiment)
    assert alice["predictions"] == pytest.approx(_legacy_run(upgraded, IRIS)["predictions"])


def test_bob_sees_none_of_it(upgraded):
    bob = upgraded.read_as("bob")
    assert bob["experiments"] == {} and bob["models"] == []


def test_a_rerun_is_a_no_op(upgraded):
    rows, objects = upgraded.rows(), upgraded.objects()
    report = upgraded.move("all")
    assert report["experiments-moved"] == 0 and report["models-moved"] == 0
    assert report["objects-copied"] == 0 and report["uris-rewritten"] == 0
    named = upgraded.move(WINE)
    assert named["already-in-workspace"].endswith(f":{WINE}") and named["experiments-moved"] == 0
    assert upgraded.rows() == rows and upgraded.objects() == objects


def test_nothing_of_the_old_copy_was_deleted(upgraded):
    now = upgraded.objects()
    assert all(now.get(key) == etag for key, etag in upgraded.legacy_keys.items())
    assert "\tdefault\t" not in upgraded.rows()  # no experiment, model or version left behind
