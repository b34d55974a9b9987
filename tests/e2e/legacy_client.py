"""What a Kubeflow notebook logged with MLflow 2.22.0 before enable_workspaces, as a script.

Two named experiments, each with a run holding params, a metric history and
artifacts (a file at the top, one in a sub-directory), the first with a
scikit-learn model registered as LEGACY_MODEL; and a model MIXED_MODEL with
one version from each experiment. It prints one JSON object: ids, the
artifacts' SHA-256 by path, params, metric histories and the model's
predictions, for the test to compare with what a profile reads afterwards.

    python legacy_client.py <workdir>
"""

import hashlib
import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402
import mlflow.sklearn  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

EXPERIMENTS = ("legacy-wine", "legacy-iris")
LEGACY_MODEL = "LegacyWine"
MIXED_MODEL = "LegacyMixed"
X = np.arange(12, dtype=float).reshape(6, 2)


def log_run(experiment: str, index: int, workdir: Path) -> dict:
    mlflow.set_experiment(experiment)
    files = {
        "notes.txt": f"legacy run {index}\n",
        "plots/data.csv": "x,y\n" + "\n".join(f"{i},{i * index}" for i in range(500)),
    }
    with mlflow.start_run() as run:
        mlflow.log_params({"alpha": str(0.1 * (index + 1)), "index": str(index)})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1 + index), step=step)
        for name, text in files.items():
            path = workdir / f"run{index}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            mlflow.log_artifact(str(path), artifact_path=str(Path(name).parent) if "/" in name else None)
        model = LinearRegression().fit(X, X @ np.array([1.0, 2.0 + index]))
        mlflow.sklearn.log_model(model, "model", registered_model_name=LEGACY_MODEL if index == 0 else None)
        mlflow.register_model(f"runs:/{run.info.run_id}/model", MIXED_MODEL)
    logged = mlflow.get_run(run.info.run_id)
    client = mlflow.MlflowClient()
    artifacts = {}
    for name, text in files.items():
        artifacts[name] = hashlib.sha256(text.encode()).hexdigest()
    return {
        "experiment_id": logged.info.experiment_id,
        "run_id": run.info.run_id,
        "artifact_uri": logged.info.artifact_uri,
        "params": logged.data.params,
        "loss": [m.value for m in client.get_metric_history(run.info.run_id, "loss")],
        "artifacts": artifacts,
        "predictions": [float(p) for p in model.predict(X)],
    }


if __name__ == "__main__":
    work = Path(sys.argv[1])
    runs = {name: log_run(name, index, work) for index, name in enumerate(EXPERIMENTS)}
    report = {"mlflow_version": mlflow.__version__, "runs": runs}
    print("LEGACY-REPORT " + json.dumps(report, sort_keys=True))
