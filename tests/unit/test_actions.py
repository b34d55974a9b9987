"""actions.yaml and the move-to-workspace action's pure parts.

Juju 2.9 runs a pod-spec charm's action in the workload pod unless its params
hold `workload-context: false`, filled from the action's own `default:`
(worker/uniter/runner/runner.go `RunAction`; state/unit.go
`PrepareActionPayload`). An action that forgets to say where it runs would run
where its code cannot work.
"""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = yaml.safe_load((ROOT / "actions.yaml").read_text())
IN_MLFLOW_CONTAINER = set()


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_says_where_it_runs(name):
    param = ACTIONS[name]["params"]["workload-context"]
    assert param["type"] == "boolean"
    assert param["default"] is (name in IN_MLFLOW_CONTAINER)


def test_every_action_has_a_handler():
    charm = (ROOT / "src" / "charm.py").read_text()
    for name in ACTIONS:
        assert f"self.on.{name.replace('-', '_')}_action" in charm
