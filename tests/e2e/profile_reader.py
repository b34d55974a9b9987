"""What a profile's notebook reads back after move-to-workspace, as a script.

Run with the multi-tenant image's MLflow and the keyless PodDefault's env
(MLFLOW_TRACKING_AUTH=kubernetes-namespaced): it sees only its own
workspace. For every experiment it finds: each run's params, its `loss`
history, the SHA-256 of every artifact it downloads through the server's
proxy; and, when asked, the predictions of a registered model version.

    python profile_reader.py <download-dir> [<model-uri>]
"""

import hashlib
import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402

X = np.arange(12, dtype=float).reshape(6, 2)


def files(client: mlflow.MlflowClient, run_id: str, path: str = ""):
    for item in client.list_artifacts(run_id, path or None):
        if item.is_dir:
            yield from files(client, run_id, item.path)
        else:
            yield item.path


def main(downloads: Path, model_uri: str) -> dict:
    client = mlflow.MlflowClient()
    report = {"experiments": {}, "models": sorted(m.name for m in client.search_registered_models())}
    for experiment in client.search_experiments():
        runs = {}
        for run in client.search_runs([experiment.experiment_id]):
            artifacts = {}
            for path in files(client, run.info.run_id):
                if path.startswith("model/"):
                    continue
                local = mlflow.artifacts.download_artifacts(
                    run_id=run.info.run_id, artifact_path=path, dst_path=str(downloads / run.info.run_id)
                )
                artifacts[path] = hashlib.sha256(Path(local).read_bytes()).hexdigest()
            runs[run.info.run_id] = {
                "artifact_uri": run.info.artifact_uri,
                "params": run.data.params,
                "loss": [m.value for m in client.get_metric_history(run.info.run_id, "loss")],
                "artifacts": artifacts,
            }
        report["experiments"][experiment.name] = {"id": experiment.experiment_id, "runs": runs}
    if model_uri:
        report["predictions"] = [float(p) for p in mlflow.pyfunc.load_model(model_uri).predict(X)]
    return report


if __name__ == "__main__":
    result = main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
    print("PROFILE-REPORT " + json.dumps(result, sort_keys=True))
