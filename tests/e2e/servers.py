"""The peers the charm relates to, run for real on loopback: MariaDB and an S3 server.

MariaDB is Debian's mariadbd with a throw-away datadir; the S3 server is
SeaweedFS (tests/fakes/seaweedfs.py), a Go server that checks signatures as
MinIO does.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from fakes.network_guard import free_port
from fakes.seaweedfs import SeaweedFS

# What the mariadb charm would hand out, with a password that needs quoting
# in a URI (@ : / # %), in SQL (') and in a shell (space).
DB_USER = "mlflow"
DB_PASSWORD = "p@ss:w/rd#50% it's"  # noqa: S105 - a test password, local to this run
DB_ROOT_PASSWORD = "r00t:@/#% 'pw'"  # noqa: S105 - idem
S3_ACCESS_KEY = "minio"
S3_SECRET_KEY = "minio123"  # noqa: S105 - the contract's example secret-key
# Keys Kubernetes would rewrite ($$ to $, $(HOME) to the notebook's home) were they sent as written.
S3_DOLLAR_ACCESS_KEY = "pa$$w0rd$(HOME)x"
S3_DOLLAR_SECRET_KEY = "s3$(AWS_ACCESS_KEY_ID)cr$$t$"  # noqa: S105 - a test key
S3_CREDENTIALS = ((S3_ACCESS_KEY, S3_SECRET_KEY), (S3_DOLLAR_ACCESS_KEY, S3_DOLLAR_SECRET_KEY))


def wait_for_port(port: int, timeout: float, process: Optional[subprocess.Popen] = None, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a process started in its own session, and its children, politely first."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def mariadb_available() -> Optional[str]:
    """Why MariaDB cannot run here, or None when it can."""
    missing = [b for b in ("mariadbd", "mariadb-install-db", "mariadb") if not _which(b)]
    if missing:
        return f"{', '.join(missing)} not found: install Debian's mariadb-server (as .ci/run does)"
    return None


def _which(binary: str) -> Optional[str]:
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")


class MariaDB:
    """A private mariadbd on a free loopback port with its own datadir."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.socket = str(workdir / "mariadb.sock")
        self.process: Optional[subprocess.Popen] = None
        self.log = workdir / "mariadbd.log"
        self.tmpdir = workdir / "tmp"

    def start(self) -> "MariaDB":
        datadir = self.workdir / "data"
        datadir.mkdir(parents=True)
        self.tmpdir.mkdir(parents=True)
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        # Its own tmpdir: two bootstraps at once (two xdist workers, or a bench beside
        # the tests) sharing /tmp failed half the time here, "Unknown table
        # 'mysql.tmp_user_sys'" after "Could not remove temporary table '/tmp/#sql-...'".
        installed = subprocess.run(
            [
                _which("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={datadir}",
                f"--tmpdir={self.tmpdir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *as_root,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if installed.returncode != 0:
            tail = "\n".join(installed.stdout.decode(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"mariadb-install-db exited {installed.returncode}:\n{tail}")
        self._launch()
        self.sql(
            f"CREATE USER {_sql_string(DB_USER)}@'%' IDENTIFIED BY {_sql_string(DB_PASSWORD)};"
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY {_sql_string(DB_ROOT_PASSWORD)};",
            root_password="",
        )
        return self

    def _launch(self) -> None:
        datadir = self.workdir / "data"
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    _which("mariadbd"),
                    "--no-defaults",
                    f"--datadir={datadir}",
                    f"--tmpdir={self.tmpdir}",
                    f"--socket={self.socket}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--pid-file={self.workdir / 'mariadbd.pid'}",
                    "--skip-name-resolve",
                    "--innodb-buffer-pool-size=64M",
                    *as_root,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.port, 60, self.process, "mariadbd")

    def restart(self) -> None:
        """Start mariadbd again after `stop()`: same datadir, port and users, as a
        database pod Kubernetes restarts on its volume."""
        self._launch()

    def sql(self, statements: str, root_password: Optional[str] = None) -> str:
        """Run SQL as root over the socket; passwords go through env and stdin, never argv."""
        password = DB_ROOT_PASSWORD if root_password is None else root_password
        env = {**os.environ, "MYSQL_PWD": password}
        result = subprocess.run(
            [_which("mariadb"), "--no-defaults", f"--socket={self.socket}", "-uroot", "--batch"],
            input=statements,
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        return result.stdout

    def create_database(self, name: str) -> None:
        self.sql(f"CREATE DATABASE `{name}`; GRANT ALL PRIVILEGES ON `{name}`.* TO {_sql_string(DB_USER)}@'%';")

    def unit_data(self, database: str) -> dict:
        """The mariadb unit bag (CONTRACTS.md shape) pointing at this server."""
        return {
            "database": database,
            "host": "127.0.0.1",
            "port": str(self.port),
            "user": DB_USER,
            "password": DB_PASSWORD,
            "root_password": DB_ROOT_PASSWORD,
        }

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, timeout=60)


def minio_app_data(port: int, **fields) -> dict:
    """minio's object-storage app bag (CONTRACTS.md shape) for an S3 server on localhost:`port`."""
    import yaml

    data = {
        "access-key": S3_ACCESS_KEY,
        "namespace": None,
        "port": port,
        "secret-key": S3_SECRET_KEY,
        "secure": False,
        "service": "localhost",
        **fields,
    }
    return {"_supported_versions": "- v1\n", "data": yaml.safe_dump(data, sort_keys=True)}


class S3Server:
    """SeaweedFS (tests/fakes/seaweedfs.py) on a free loopback port, addressed as http://localhost:<port>.

    MinIO's object-storage data gives a service name and an optional
    namespace; with service `localhost` and namespace null the charm's
    endpoint is http://localhost:<port>, which every process here resolves to
    loopback without a hosts-file entry or a resolver patch. The server knows
    the keys in S3_CREDENTIALS and refuses any other, as MinIO would.
    `record_requests` puts SeaweedFS's request-listing proxy in front (the
    endpoint is then the proxy's): the e2e tests read `server.requests`; the
    artifact bench leaves it off to measure the server alone.
    """

    service = "localhost"

    def __init__(self, workdir: Path, record_requests: bool = True):
        (workdir / "seaweedfs").mkdir(parents=True, exist_ok=True)
        self.server = SeaweedFS(workdir / "seaweedfs", credentials=S3_CREDENTIALS, record_requests=record_requests)
        self.port = self.server.port
        self.endpoint = f"http://{self.service}:{self.port}"

    def start(self) -> "S3Server":
        self.server.start()
        return self

    def app_data(self, **fields) -> dict:
        """minio's object-storage app bag (CONTRACTS.md shape) pointing at this server;
        `fields` change some (keys outside S3_CREDENTIALS are refused)."""
        return minio_app_data(self.port, **fields)

    def client(self):
        return self.server.client()

    def keys(self, bucket: str):
        return [o["Key"] for o in self.client().list_objects_v2(Bucket=bucket).get("Contents", [])]

    def empty(self, bucket: str) -> None:
        client = self.client()
        for key in self.keys(bucket):
            client.delete_object(Bucket=bucket, Key=key)

    def stop(self) -> None:
        self.server.stop()
