"""Many notebooks at once, and the audit of what they were told was stored.

What the load bench (bench/load.py) and the fault tests (test_faults.py)
share: `Load` starts K training loops (load_client.py, run with the image's
MLflow in a few processes of many threads) against a tracking URI, in the
background, so a fault can be injected while they log; `Load.wait()` gives a
`LoadResult` with every client's ledger. `audit()` reads the database (as
root, over MariaDB's socket) and the bucket and lists every way the store
disagrees with the ledgers:

- an acknowledged write (metric, param, tag, artifact, model version, run,
  run end) missing, or stored more than once;
- a write whose answer was lost ("unknown") stored more than once;
- a stored row or model version that no client ever sent;
- a run left RUNNING or FAILED whose client was not told something failed.

`DatabaseConnections` reads MariaDB's connection counters around a load, and samples
Threads_connected while it runs.
"""

import json
import math
import os
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

HERE = Path(__file__).resolve().parent

# One process per this many client threads: enough processes that one
# client's GIL does not pace the others, few enough for two cores.
THREADS_PER_PROCESS = 16


@dataclass
class LoadConfig:
    clients: int
    seconds: float
    experiment: str
    prefix: str
    steps: int = 20
    metrics: int = 3
    artifact: bool = True
    model: Optional[str] = None
    model_every: int = 4

    def split(self) -> List[int]:
        processes = max(1, math.ceil(self.clients / THREADS_PER_PROCESS))
        return [self.clients // processes + (1 if i < self.clients % processes else 0) for i in range(processes)]


def percentile(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class LoadResult:
    config: LoadConfig
    seconds: float
    ledger: List[dict]
    latencies: Dict[str, List[float]]
    errors: Dict[str, int]
    experiment_id: str
    mlflow_version: str

    def acked(self, call: str) -> List[dict]:
        return [e for e in self.ledger if e["call"] == call and e["outcome"] == "ack"]

    def unknown(self) -> List[dict]:
        return [e for e in self.ledger if e["outcome"] != "ack"]

    @property
    def metrics_logged(self) -> int:
        return sum(len(e["metrics"]) for e in self.acked("log_batch"))

    @property
    def metrics_per_second(self) -> float:
        return self.metrics_logged / self.seconds if self.seconds else 0.0

    def latency_table(self) -> Dict[str, Dict[str, float]]:
        return {
            name: {"n": len(v), "p50_ms": percentile(v, 50) * 1000, "p99_ms": percentile(v, 99) * 1000}
            for name, v in sorted(self.latencies.items())
        }

    def error_lines(self, limit: int = 10) -> List[str]:
        # By call and exception (and root cause): messages differ by run id and URL.
        counts = Counter(f"{e['call']}: {e['error'].split(':', 1)[0]}{_cause(e['error'])}" for e in self.unknown())
        return [f"{n} x {text}" for text, n in counts.most_common(limit)]


def _cause(error: str) -> str:
    return f" <- {error.rsplit(' <- ', 1)[1]}" if " <- " in error else ""


class Load:
    """K training loops in the background against `env`'s tracking URI."""

    def __init__(self, env: Mapping[str, str], image_bin: Path, workdir: Path, config: LoadConfig,
                 headers: Optional[Mapping[str, str]] = None):  # fmt: skip
        self.env = dict(env)
        if headers:
            self.env["LOAD_CLIENT_HEADERS"] = json.dumps(dict(headers))
        self.image_bin = Path(image_bin)
        self.workdir = Path(workdir)
        self.config = config
        self.processes: List[subprocess.Popen] = []
        self.ledgers: List[Path] = []
        self.started = 0.0
        self.stop_file = self.workdir / "stop"

    def start(self) -> "Load":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        for index, threads in enumerate(self.config.split()):
            config = {**self.config.__dict__, "threads": threads, "process": index, "stop_file": str(self.stop_file)}
            config_path = self.workdir / f"load-{index}.json"
            config_path.write_text(json.dumps(config))
            ledger = self.workdir / f"ledger-{index}.json"
            self.ledgers.append(ledger)
            log = open(self.workdir / f"load-{index}.log", "wb")  # noqa: SIM115 - closed with the process
            self.processes.append(
                subprocess.Popen(
                    [str(self.image_bin / "python"), str(HERE / "load_client.py"), str(config_path), str(ledger)],
                    env=self.env,
                    cwd=self.workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        return self

    def finish(self, tail: float, grace: float = 300) -> LoadResult:
        """Let the loops log `tail` seconds more, then stop them (each ends its run) and wait."""
        time.sleep(tail)
        self.stop_file.touch()
        return self.wait(grace)

    def wait(self, grace: float = 300) -> LoadResult:
        """The clients' ledgers; a client still running `grace` seconds after its time is killed and fails the load."""
        deadline = self.started + self.config.seconds + grace
        for process in self.processes:
            try:
                process.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
                raise AssertionError(f"a load client ran past {self.config.seconds + grace:.0f} s and was killed")
        seconds = time.monotonic() - self.started
        ledger, latencies, errors, versions, experiments = [], {}, Counter(), set(), set()
        for index, path in enumerate(self.ledgers):
            log = (self.workdir / f"load-{index}.log").read_text(errors="replace")
            if not path.exists():
                raise AssertionError(f"load client {index} wrote no ledger:\n{log[-3000:]}")
            out = json.loads(path.read_text())
            if "fatal" in out:
                raise AssertionError(f"load client {index} failed before its loops:\n{out['fatal']}")
            ledger.extend(out["ledger"])
            for name, values in out["latencies"].items():
                latencies.setdefault(name, []).extend(values)
            errors.update(out["errors"])
            versions.add(out["mlflow_version"])
            experiments.add(out["experiment_id"])
        (experiment_id,) = experiments
        (version,) = versions
        return LoadResult(self.config, seconds, ledger, latencies, dict(errors), experiment_id, version)

    def stop(self) -> None:
        """End the load now, whatever state it is in (a failed test's cleanup)."""
        if self.processes:
            self.stop_file.touch()
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()


# --- what the store holds -------------------------------------------------


def _rows(mariadb, database: str, query: str) -> List[List[str]]:
    out = mariadb.sql(f"USE `{database}`; {query}")
    lines = out.splitlines()
    return [line.split("\t") for line in lines[1:]]  # the first line is the header


@dataclass
class Store:
    runs: Dict[str, dict] = field(default_factory=dict)  # run_uuid -> {name, status}
    metrics: Counter = field(default_factory=Counter)  # (run, key, step, timestamp, value) -> rows
    params: Dict[tuple, str] = field(default_factory=dict)  # (run, key) -> value
    tags: Dict[tuple, str] = field(default_factory=dict)
    model_versions: Counter = field(default_factory=Counter)  # (model, run_id) -> versions
    artifacts: Counter = field(default_factory=Counter)  # run_id -> notes.txt objects


def read_store(mariadb, database: str, experiment_id: str, s3_keys: List[str], model: Optional[str]) -> Store:
    store = Store()
    in_experiment = f"(SELECT run_uuid FROM runs WHERE experiment_id = {int(experiment_id)})"
    for run_uuid, name, status in _rows(
        mariadb, database, f"SELECT run_uuid, name, status FROM runs WHERE experiment_id = {int(experiment_id)};"
    ):
        store.runs[run_uuid] = {"name": name, "status": status}
    for run, key, step, stamp, value in _rows(
        mariadb,
        database,
        f"SELECT run_uuid, `key`, step, timestamp, value FROM metrics WHERE run_uuid IN {in_experiment};",
    ):
        store.metrics[(run, key, int(step), int(stamp), round(float(value), 6))] += 1
    for run, key, value in _rows(
        mariadb, database, f"SELECT run_uuid, `key`, value FROM params WHERE run_uuid IN {in_experiment};"
    ):
        store.params[(run, key)] = value
    for run, key, value in _rows(
        mariadb, database, f"SELECT run_uuid, `key`, value FROM tags WHERE run_uuid IN {in_experiment};"
    ):
        store.tags[(run, key)] = value
    if model:
        query = f"SELECT name, run_id FROM model_versions WHERE name LIKE '{model}-%';"
        for name, run_id in _rows(mariadb, database, query):
            store.model_versions[(name, run_id)] += 1
    for key in s3_keys:
        parts = key.split("/")
        if len(parts) >= 3 and parts[-2:] == ["artifacts", "notes.txt"]:
            store.artifacts[parts[-3]] += 1
    return store


def resent_creates(result: LoadResult, store: Store) -> List[str]:
    """Runs a server created while its answer was lost, which MLflow's client sent again.

    A server killed after committing a create_run but before answering resets
    the connection; MLflow's client retries a reset connection (POST too) and
    the notebook gets the second run. The first stays behind: named like the
    acknowledged one, never named in any answer, RUNNING, and empty (no
    metric or param: the client logs only to the run it was given). Seen once
    on 2.22.0 in a clean-clone make test (tests/e2e/test_faults.py, the kill).
    """
    answered = {e["run_id"] for e in result.ledger if "run_id" in e}
    created = {e["run_name"] for e in result.ledger if e["call"] == "create_run" and e["outcome"] == "ack"}
    used = {row[0] for row in store.metrics} | {run for run, _ in store.params}
    return sorted(
        uuid
        for uuid, run in store.runs.items()
        if uuid not in answered and run["name"] in created and run["status"] == "RUNNING" and uuid not in used
    )


def audit(result: LoadResult, store: Store) -> List[str]:
    """Every disagreement between the clients' ledgers and the store; empty when none.

    A resent create's empty run (`resent_creates`) is not one: the caller reports it."""
    problems: List[str] = []
    ledger = result.ledger
    by_name: Dict[str, List[dict]] = {}  # a run whose creation was not answered has a name but no id here
    for entry in ledger:
        if "run_name" in entry:
            by_name.setdefault(entry["run_name"], []).append(entry)

    resent = set(resent_creates(result, store))
    names = Counter(run["name"] for uuid, run in store.runs.items() if uuid not in resent)
    for entry in (e for e in ledger if e["call"] == "create_run"):
        stored = names.get(entry["run_name"], 0)
        if entry["outcome"] == "ack" and stored != 1:
            problems.append(f"run {entry['run_name']} acknowledged, stored {stored} times")
        if entry["outcome"] != "ack" and stored > 1:
            problems.append(f"run {entry['run_name']} (answer lost) stored {stored} times")
    started = {e["run_name"] for e in ledger if e["call"] == "create_run"}
    problems += [f"run {r['name']} stored, never sent" for r in store.runs.values() if r["name"] not in started]

    sent_metrics = set()
    for entry in (e for e in ledger if e["call"] == "log_batch"):
        for key, value in entry["metrics"].items():
            row = (entry["run_id"], key, entry["step"], entry["timestamp"], round(value, 6))
            sent_metrics.add(row)
            stored = store.metrics.get(row, 0)
            if (entry["outcome"] == "ack" and stored != 1) or stored > 1:
                problems.append(f"metric {row} ({entry['outcome']}) stored {stored} times")
    problems += [f"metric {row} stored, never sent" for row in store.metrics if row not in sent_metrics]

    for call, table in (("log_param", store.params), ("set_tag", store.tags)):
        for entry in result.acked(call):
            value = table.get((entry["run_id"], entry["key"]))
            if value != entry["value"]:
                problems.append(f"{call} {entry['run_id']}/{entry['key']} acknowledged, stored {value!r}")

    for entry in (e for e in ledger if e["call"] == "log_artifact"):
        stored = store.artifacts.get(entry["run_id"], 0)
        if (entry["outcome"] == "ack" and stored != 1) or stored > 1:
            problems.append(f"artifact of run {entry['run_id']} ({entry['outcome']}) in the bucket {stored} times")

    sent_versions = set()
    for entry in (e for e in ledger if e["call"] == "create_model_version"):
        key = (entry["model"], entry["run_id"])
        sent_versions.add(key)
        stored = store.model_versions.get(key, 0)
        if (entry["outcome"] == "ack" and stored != 1) or stored > 1:
            problems.append(f"model version of run {entry['run_id']} ({entry['outcome']}) stored {stored} times")
    problems += [f"model version {k} stored, never sent" for k in store.model_versions if k not in sent_versions]

    for uuid, run in store.runs.items():
        if uuid in resent:
            continue
        entries = by_name.get(run["name"], [])
        ends = [e for e in entries if e["call"] == "end_run"]
        told_failed = any(e["outcome"] != "ack" for e in entries)
        acked_end = [e["status"] for e in ends if e["outcome"] == "ack"]
        if acked_end and run["status"] != acked_end[-1]:
            problems.append(f"run {run['name']} ended {acked_end[-1]} (acknowledged), stored {run['status']}")
        if run["status"] != "FINISHED" and not told_failed and not acked_end:
            problems.append(f"run {run['name']} left {run['status']}, its client never told of a failure")
    return problems


class DatabaseConnections:
    """MariaDB's connection counters over a load: FLUSH STATUS starts the window.

    With `poll` (seconds), a thread also samples Threads_connected and the
    connections of MLflow's database user (PROCESSLIST) that often: MariaDB
    keeps no peak of either. Each sample is one short root session over the
    socket, counted in Threads_connected (not in MLflow's), and a sample
    while MariaDB is down is skipped.
    """

    def __init__(self, mariadb, user: str = "mlflow"):
        self.mariadb = mariadb
        self.user = user
        self.peaks = {"threads_connected_peak": 0, "mlflow_peak": 0}
        self._done = threading.Event()
        self._poller: Optional[threading.Thread] = None

    def _status(self) -> Dict[str, int]:
        out = self.mariadb.sql(
            "SHOW GLOBAL STATUS WHERE Variable_name IN "
            "('Max_used_connections', 'Threads_connected', 'Connection_errors_max_connections', 'Aborted_connects');"
        )
        return {name: int(value) for name, value in (line.split("\t") for line in out.splitlines()[1:])}

    def _sample(self) -> None:
        out = self.mariadb.sql(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'THREADS_CONNECTED';"
            f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{self.user}';"
        )
        threads, mlflow = (int(line) for line in out.splitlines() if line.strip().isdigit())
        self.peaks["threads_connected_peak"] = max(self.peaks["threads_connected_peak"], threads)
        self.peaks["mlflow_peak"] = max(self.peaks["mlflow_peak"], mlflow)

    def _poll(self, every: float) -> None:
        while not self._done.wait(every):
            try:
                self._sample()
            except (subprocess.CalledProcessError, ValueError):
                pass

    def start(self, poll: Optional[float] = None) -> "DatabaseConnections":
        self.mariadb.sql("FLUSH STATUS;")
        self.before = self._status()
        if poll:
            self._poller = threading.Thread(target=self._poll, args=(poll,), daemon=True)
            self._poller.start()
        return self

    def read(self) -> Dict[str, int]:
        """Peak connections since start, the refused ones ("Too many connections") and max_connections;
        with polling, the peaks sampled (and the polling ends)."""
        if self._poller is not None:
            self._done.set()
            self._poller.join()
            self._sample()
        now = self._status()
        limit = int(self.mariadb.sql("SELECT @@max_connections;").split()[-1])
        return {
            "peak": now["Max_used_connections"],
            "now": now["Threads_connected"],
            "refused_too_many": now["Connection_errors_max_connections"]
            - self.before["Connection_errors_max_connections"],
            "max_connections": limit,
            **(self.peaks if self._poller is not None else {}),
        }


def bucket_keys(s3_client, bucket: str) -> List[str]:
    """Every key in the bucket (list_objects_v2 pages by 1000)."""
    keys: List[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys
