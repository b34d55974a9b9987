"""What every bench that runs MLflow stands on: MariaDB, SeaweedFS and the charm's tutorial, on loopback.

    with Stack(workroot, "3.17.2", max_connections=100) as stack:
        outcome, database = stack.render({"workers": 2})   # the charm's spec for that config
        env = stack.notebook_env(outcome)                    # the PodDefault's env, as a notebook gets it

The peers are the e2e suite's (tests/e2e/servers.py), SeaweedFS without
its request-listing proxy, so the benches measure the S3 server itself.
Each `render` gets a database of its own and runs the charm's tutorial
(tests/e2e/charm_driver.py) with a free port for MLflow, so one stack can
serve several settings one after the other.
"""

import sys
import uuid
from pathlib import Path
from typing import Dict, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

import harness  # noqa: E402
from charm_driver import CharmDriver, Outcome  # noqa: E402
from mlflow_venvs import ensure_venv, image_of  # noqa: E402
from servers import MariaDB, S3Server, free_port, mariadb_available  # noqa: E402

from fakes.kubernetes_api import FakeKubernetesApi  # noqa: E402


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Stack:
    def __init__(self, workroot: Path, version: str, max_connections: Optional[int] = None):
        self.workroot, self.version, self.max_connections = Path(workroot), version, max_connections

    def __enter__(self) -> "Stack":
        reason = mariadb_available()
        if reason:
            raise SystemExit(f"bench: {reason}")
        self.image_bin = ensure_venv(self.version)
        (self.workroot / "mariadb").mkdir(parents=True)
        self.mariadb = MariaDB(self.workroot / "mariadb").start()
        self.s3: Optional[S3Server] = None
        self.kubernetes: Optional[FakeKubernetesApi] = None
        try:
            if self.max_connections:
                # Before any MLflow process connects: as if mariadbd had started with it.
                self.mariadb.sql(f"SET GLOBAL max_connections = {int(self.max_connections)};")
            self.s3 = S3Server(self.workroot, record_requests=False).start()
            self.kubernetes = FakeKubernetesApi().__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def render(self, config: Dict) -> Tuple[Outcome, str]:
        """The charm's tutorial with `config` over the charm's defaults: its outcome and its database."""
        assert self.s3 is not None and self.kubernetes is not None
        database = f"mlflow_{uuid.uuid4().hex[:8]}"
        self.mariadb.create_database(database)
        workdir = self.workroot / database
        workdir.mkdir()
        driver = CharmDriver(workdir, self.kubernetes.write_kubeconfig(workdir / "kubeconfig"))
        full_config = {"mlflow_port": free_port(), **config}
        outcome = driver.tutorial(
            image_of(self.version), self.s3.app_data(), self.mariadb.unit_data(database), full_config
        )
        return outcome, database

    def notebook_env(self, outcome: Outcome) -> Dict[str, str]:
        return harness.notebook_env(outcome.pod_defaults["minio"]["env"], self.workroot, self.image_bin)

    def __exit__(self, *exc) -> None:
        if self.kubernetes is not None:
            self.kubernetes.__exit__(None, None, None)
        if self.s3 is not None:
            self.s3.stop()
        self.mariadb.stop()
