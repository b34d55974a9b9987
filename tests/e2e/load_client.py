"""Training loops at once, each keeping a ledger of what the server acknowledged.

Run with the image's MLflow by tests/e2e/load_clients.py (never imported by the tests):

    python load_client.py <config.json> <ledger.json>

config: {"threads", "seconds", "steps", "metrics", "experiment", "prefix",
"model" (a registered model name or null), "model_every", "artifact" (bool),
"stop_file"}. A loop also stops once `stop_file` exists, so a test can end
the load when its fault is over, however long that took.
The environment is the notebook's (the PodDefault's env and the tracking
URI); LOAD_CLIENT_HEADERS (a JSON object) adds headers to every request,
through MLflow's request-header provider registry.

Each thread does what a training loop does, until `seconds` have passed:
start a run, log a param and a tag, log_batch `metrics` metrics every step
for `steps` steps, log a small artifact, search runs, maybe register a model
version, end the run. A call that raised is what `with mlflow.start_run()`
makes of an exception in the cell: the run is ended FAILED (if that call
gets through) and the thread starts the next run.

The ledger holds every write with its outcome: "ack" when the call returned
(the server said 2xx), "unknown" when it raised. A raised call's write may
still be stored: a response cut by a killed server (IncompleteRead, a reset)
says nothing about the commit before it. Latencies are kept for calls that
returned.
"""

import json
import os
import sys
import threading
import time
import traceback
import warnings

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider  # noqa: E402
from mlflow.tracking.request_header.registry import _request_header_provider_registry  # noqa: E402


class _Headers(RequestHeaderProvider):
    def __init__(self, headers):
        self.headers = headers

    def in_context(self):
        return True

    def request_headers(self):
        return dict(self.headers)


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    # The root cause names what happened on the wire (IncompleteRead, ConnectionResetError).
    cause = exc.__cause__ or exc.__context__
    while cause is not None and (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        text += f" <- {type(cause).__name__}"
    return text[:400]


def stopped(config: dict, deadline: float) -> bool:
    return time.monotonic() > deadline or os.path.exists(config["stop_file"])


class Loop:
    def __init__(self, config: dict, index: int, experiment_id: str):
        self.config = config
        self.index = index
        self.experiment_id = experiment_id
        self.client = mlflow.MlflowClient()
        self.ledger = []
        self.latencies = {}
        self.errors = {}
        # A registered model of its own: MLflow numbers versions max + 1 inside
        # the insert's transaction, so clients registering versions of one model
        # at once collide (IntegrityError, answered 400) without any fault.
        self.model = f"{config['model']}-{index}" if config["model"] else None

    def call(self, name: str, record: dict, fn, *args, **kwargs):
        """Call fn; ledger the write (record) with its outcome; re-raise what it raised."""
        began, started = time.time(), time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except (MlflowException, OSError, Exception) as exc:  # noqa: BLE001 - every failure is ledgered
            error = _error(exc)
            self.errors[name] = self.errors.get(name, 0) + 1
            if record is not None:
                self.ledger.append(
                    {**record, "call": name, "outcome": "unknown", "error": error, "began": began, "at": time.time()}
                )
            raise
        took = time.monotonic() - started
        self.latencies.setdefault(name, []).append(round(took, 4))
        if record is not None:
            self.ledger.append({**record, "call": name, "outcome": "ack", "began": began, "at": time.time()})
        return result

    def one_run(self, number: int, deadline: float) -> None:
        config = self.config
        name = f"{config['prefix']}-{self.index}-{number}"
        base = {"run_name": name}
        run = self.call("create_run", dict(base), self.client.create_run, self.experiment_id, run_name=name)
        run_id = run.info.run_id
        base["run_id"] = run_id
        self.ledger[-1]["run_id"] = run_id  # the run the create's answer named (its retry's, if it was resent)
        try:
            self.call("log_param", {**base, "key": "loop", "value": name}, self.client.log_param, run_id, "loop", name)
            self.call("set_tag", {**base, "key": "client", "value": str(self.index)}, self.client.set_tag, run_id,
                      "client", str(self.index))  # fmt: skip
            for step in range(config["steps"]):
                if stopped(config, deadline):
                    break
                stamp = int(time.time() * 1000)
                metrics = [Metric(f"m{j}", step + j / 10, stamp, step) for j in range(config["metrics"])]
                record = {**base, "step": step, "timestamp": stamp, "metrics": {m.key: m.value for m in metrics}}
                self.call("log_batch", record, self.client.log_batch, run_id, metrics=metrics)
            if config["artifact"]:
                self.call("log_artifact", {**base, "path": "notes.txt", "text": name}, self.client.log_text, run_id,
                          name, "notes.txt")  # fmt: skip
            self.call("search_runs", None, self.client.search_runs, [self.experiment_id], max_results=10)
            if self.model and number % config["model_every"] == 0:
                source = f"{run.info.artifact_uri}/model"
                self.call("create_model_version", {**base, "model": self.model, "source": source},
                          self.client.create_model_version, self.model, source, run_id)  # fmt: skip
            self.call("end_run", {**base, "status": "FINISHED"}, self.client.set_terminated, run_id, "FINISHED")
        except Exception:  # noqa: BLE001 - the notebook's cell raised; mlflow.start_run() ends the run FAILED
            try:
                self.call("end_run", {**base, "status": "FAILED"}, self.client.set_terminated, run_id, "FAILED")
            except Exception:  # noqa: BLE001,S110 - ledgered as unknown; the run stays RUNNING, reported
                pass

    def run(self, deadline: float) -> None:
        if self.model:
            try:
                self.call("create_registered_model", None, ensure_model, self.model)
            except Exception:  # noqa: BLE001 - counted in errors; this loop registers nothing
                self.model = None
        number = 0
        while not stopped(self.config, deadline) and number < self.config.get("max_runs", 10_000):
            try:
                self.one_run(number, deadline)
            except Exception:  # noqa: BLE001,S110 - create_run failed: ledgered; the next run tries again
                time.sleep(0.2)
            number += 1


def ensure_model(name: str) -> None:
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise


def _experiment(client, name: str) -> str:
    """The experiment's id; every client process asks at once, so another may create it first."""
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
        return client.get_experiment_by_name(name).experiment_id


def main(config: dict) -> dict:
    headers = json.loads(os.environ.get("LOAD_CLIENT_HEADERS") or "{}")
    if headers:
        _request_header_provider_registry.register(lambda: _Headers(headers))
    client = mlflow.MlflowClient()
    experiment_id = _experiment(client, config["experiment"])
    loops = [Loop(config, f"{config['process']}.{i}", experiment_id) for i in range(config["threads"])]
    started = time.monotonic()
    deadline = started + config["seconds"]
    threads = [threading.Thread(target=loop.run, args=(deadline,), daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies, errors = {}, {}
    for loop in loops:
        for name, values in loop.latencies.items():
            latencies.setdefault(name, []).extend(values)
        for name, count in loop.errors.items():
            errors[name] = errors.get(name, 0) + count
    return {
        "mlflow_version": mlflow.__version__,
        "experiment_id": experiment_id,
        "seconds": time.monotonic() - started,
        "ledger": [entry for loop in loops for entry in loop.ledger],
        "latencies": latencies,
        "errors": errors,
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    try:
        out = main(cfg)
    except Exception:  # noqa: BLE001 - the parent reads the traceback from the ledger file
        out = {"fatal": traceback.format_exc()}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)
    print("LOAD-REPORT " + json.dumps({k: out[k] for k in ("seconds", "errors", "fatal") if k in out}))
