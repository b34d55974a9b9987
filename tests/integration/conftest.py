"""The real-cluster suite runs only where a Juju 2.9 controller answers.

Anywhere else (a laptop without Juju, CI) every test here is collected and
skipped, and the reason is printed in the report header and in the skip
summary. Nothing here imports pytest-operator or python-libjuju, so a plain
`pytest` in the dev env collects this folder too.
"""

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest

HERE = Path(__file__).resolve().parent
JUJU_TIMEOUT_SECONDS = 60


def _juju(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["juju", *args], capture_output=True, text=True, timeout=JUJU_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL
    )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


@functools.lru_cache(maxsize=None)
def controller_problem(wanted: Optional[str]) -> Optional[str]:
    """Why the suite cannot run here, or None when a Juju 2.9 controller answers."""
    if shutil.which("juju") is None:
        return "no `juju` command on PATH (install Juju 2.9 and bootstrap MicroK8s to run this suite)"
    try:
        listed = _juju("controllers", "--format=json")
        if listed.returncode != 0:
            return f"`juju controllers` failed: {_first_line(listed.stderr)}"
        controllers = json.loads(listed.stdout or "{}")
        name = wanted or os.environ.get("JUJU_CONTROLLER") or controllers.get("current-controller")
        if not name or name not in (controllers.get("controllers") or {}):
            return "no Juju controller is registered here (`juju controllers` lists none, or not the one asked for)"
        version = str(controllers["controllers"][name].get("agent-version", ""))
        if version and not version.startswith("2.9."):
            return (
                f"controller {name} runs Juju {version}; this pod-spec charm and the pinned "
                "python-libjuju 2.9 need a Juju 2.9 controller"
            )
        reached = _juju("models", "--controller", name, "--format=json")
        if reached.returncode != 0:
            return f"controller {name} is not reachable: {_first_line(reached.stderr)}"
    except subprocess.TimeoutExpired:
        return f"`juju` did not answer within {JUJU_TIMEOUT_SECONDS} s"
    except (OSError, ValueError) as e:
        return f"cannot ask `juju` for its controllers ({type(e).__name__})"
    return None


def _wanted_controller(config) -> Optional[str]:
    try:
        return config.getoption("--controller")  # pytest-operator's option, when it is installed
    except ValueError:
        return None


def _integration_items(items):
    return [item for item in items if HERE in Path(str(item.fspath)).resolve().parents]


def pytest_collection_modifyitems(config, items):
    ours = _integration_items(items)
    if not ours:
        return
    problem = controller_problem(_wanted_controller(config))
    if problem is None:
        return
    marker = pytest.mark.skip(reason=f"no Juju controller to test against: {problem}")
    for item in ours:
        item.add_marker(marker)


def pytest_report_header(config):
    problem = controller_problem(_wanted_controller(config))
    if problem is not None:
        return f"integration: skipped: {problem}"
    return "integration: a Juju 2.9 controller answers; running against it"
