"""Session-wide peers (one MariaDB, one S3 server: SeaweedFS) and a per-test deployment of the charm.

`deploy(version, config)` runs the tutorial's deploy-and-relate sequence
against those peers, turns the pod spec the charm set into processes with
the MLflow venv of the image's version, waits on the spec's readiness probe,
and lets the charm see the pod ready (update-status -> active).

tox runs the suite on two pytest-xdist workers (`--dist loadgroup`). Each
worker is a pytest session of its own: its own MariaDB, SeaweedFS and work
directory, and ports from `free_port`. A module whose tests share a
module-scoped fixture (a fleet of servers, the workspaces deployment) runs
on one worker, so that fixture starts once (`pytest_xdist_make_scheduler`).
"""

import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Set

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
from charm_driver import CharmDriver, Outcome  # noqa: E402
from mlflow_venvs import CACHE, ensure_venv, image_of, mlflow_version_of  # noqa: E402
from pod_runner import Pod  # noqa: E402
from servers import MariaDB, S3Server, free_port, mariadb_available  # noqa: E402

from fakes.kubernetes_api import FakeKubernetesApi  # noqa: E402
from fakes.seaweedfs import SeaweedFS  # noqa: E402


def modules_sharing_fixtures(rootpath: Path) -> Set[str]:
    """The test files (as in node ids) that define a module-scoped fixture."""
    return {
        path.relative_to(rootpath).as_posix()
        for path in sorted(HERE.glob("test_*.py"))
        if 'scope="module"' in path.read_text()
    }


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` as this suite needs it: a module that defines a module-scoped
    fixture (a fleet of servers, the workspaces deployment) runs whole on one worker, so
    that fixture starts once; every other test goes to whichever worker is free.

    Not xdist's own loadgroup with xdist_group marks: xdist 3.8 groups by
    rewriting `item._nodeid`, which pytest 9 no longer reads, so those marks
    group nothing. The controller sees node ids only, hence the files' source."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    grouped = modules_sharing_fixtures(config.rootpath)

    class ModulesSharingFixtures(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in grouped else nodeid

    return ModulesSharingFixtures(config, log)


@pytest.fixture(scope="session")
def workroot():
    # Under the repo, not /tmp, so each pod can be given a private /tmp.
    root = CACHE / "e2e-work" / f"session-{os.getpid()}"
    root.mkdir(parents=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb(workroot):
    reason = mariadb_available()
    if reason:
        pytest.skip(reason)
    (workroot / "mariadb").mkdir()
    db = MariaDB(workroot / "mariadb").start()
    yield db
    db.stop()


@pytest.fixture(scope="session")
def s3(workroot):
    """The session's S3 server (SeaweedFS behind its request log), which every deployment uses."""
    server = S3Server(workroot).start()
    yield server
    server.stop()


@pytest.fixture
def seaweedfs(tmp_path):
    """A factory of SeaweedFS servers of this test alone, for tests that kill, restart or
    reconfigure one: `seaweedfs(**kwargs)` takes tests/fakes/seaweedfs.py's SeaweedFS
    arguments but the workdir and returns it started; each is stopped after the test."""
    started: List[SeaweedFS] = []

    def start(**kwargs) -> SeaweedFS:
        server = SeaweedFS(tmp_path / f"seaweedfs-{len(started)}", **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@dataclass
class Deployment:
    version: str
    driver: CharmDriver
    outcome: Outcome
    pod: Pod
    image_bin: Path
    workdir: Path
    config: dict
    database: str
    pods: List[Pod] = field(default_factory=list)

    @property
    def spec(self) -> dict:
        return self.outcome.spec

    @property
    def port(self) -> int:
        return self.pod.readiness[1]

    @property
    def notebook_env(self) -> dict:
        return self.outcome.pod_defaults["minio"]["env"]

    def run_notebook(self) -> dict:
        return harness.run_notebook(self.notebook_env, self.workdir, self.image_bin)


@pytest.fixture
def deploy(request, workroot, mariadb, s3, tmp_path):
    """A factory: deploy(version, config) -> a Deployment whose MLflow pod serves."""
    kubernetes = FakeKubernetesApi().__enter__()
    kubeconfig = kubernetes.write_kubeconfig(tmp_path / "kubeconfig")
    started: List[Pod] = []

    def start_pod(outcome: Outcome, workdir: Path, run_init: bool = True) -> Pod:
        version = mlflow_version_of(outcome.spec["containers"][0]["imageDetails"]["imagePath"])
        pod = Pod(outcome.spec, ensure_venv(version), workdir / f"pod-{len(started)}")
        started.append(pod)
        if run_init:
            pod.run_init_containers()
        pod.start()
        return pod

    def factory(
        version: str, config: Optional[dict] = None, database: Optional[str] = None, minio: Optional[dict] = None
    ) -> Deployment:
        database = database or f"mlflow_{uuid.uuid4().hex[:8]}"
        mariadb.create_database(database)
        # A fresh bucket per deployment: the charm creates it again.
        if harness.BUCKET in [b["Name"] for b in s3.client().list_buckets().get("Buckets", [])]:
            s3.empty(harness.BUCKET)
            s3.client().delete_bucket(Bucket=harness.BUCKET)
        workdir = workroot / f"{request.node.name}-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        kubernetes.pod_count = 0
        driver = CharmDriver(workdir, kubeconfig)
        full_config = {"mlflow_port": free_port(), "workers": 2, **(config or {})}
        outcome = driver.tutorial(
            image_of(version), s3.app_data(**(minio or {})), mariadb.unit_data(database), full_config
        )
        image_bin = ensure_venv(version)
        pod = start_pod(outcome, workdir)
        pod.wait_ready(timeout=240)
        # As Juju and Kubernetes do after the hook: the pod runs the spec the charm set.
        kubernetes.apply_spec(outcome.spec)
        kubernetes.pod_count, kubernetes.pod_ready = 1, True
        outcome = driver.update_status(outcome.state)
        return Deployment(version, driver, outcome, pod, image_bin, workdir, full_config, database)

    factory.start_pod = start_pod
    factory.kubernetes = kubernetes
    yield factory
    for pod in started:
        pod.stop()
    kubernetes.__exit__(None, None, None)
