"""Stored state on the Juju controller: one read and at most one write a hook.

ops keeps a pod-spec charm's state on the controller (`JujuStorage`), but
spends one hook tool process on every key it touches: ops 2.23.6 calls
`state-get` 13-17 times and `state-set` 8-10 times in each of this charm's
hooks (its event snapshot and "#notices#" list go back and forth around every
event), which took a settled update-status from 1 hook tool call to 23.
Juju already holds the unit's whole state in the hook context, so this
backend asks for all of it once, serves every read from that copy, and hands
back only the keys that changed, once, when ops commits the framework.

The shapes, from Juju 2.9.31 (worker/uniter/runner/jujuc/state-get.go,
state-set.go, state-delete.go and worker/uniter/runner/context/context.go):
- `state-get --format=yaml` without a key prints every key of the unit's
  state as a YAML map of string to string (`{}` or `null` when it has none).
- `state-set --file -` reads a YAML map of string to string from stdin and
  sets each key in the hook context; `state-delete KEY` removes one key
  (a missing key is a no-op). The context writes them to the controller only
  when the hook succeeds, so a hook that raises stores nothing, batched or
  not.
The values are ops' own encoding (the YAML its `JujuStorage` writes), so state
written by ops' backend reads back here unchanged, and the other way round
(tests/unit/test_controller_storage.py holds both directions).

ops.main has no parameter for the storage: `main` runs ops' own manager with
`_make_storage` swapped, the one place this charm leans on ops internals. ops
is pinned (requirements.txt) and the tests run the swap against that pin.
"""

import subprocess
from typing import Any, Dict, List, Optional, Type

import ops
import yaml
from ops._main import _Abort, _Dispatcher, _Manager
from ops.storage import JujuStorage, SQLiteStorage, _JujuStorageBackend, _SimpleDumper, _SimpleLoader

import yaml_text

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _run(args: List[str], stdin: Optional[str] = None) -> str:
    # Fixed hook tool names; the keys and values travel as arguments and stdin, no shell.
    done = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, check=True, encoding="utf-8")  # noqa: S603
    return done.stdout


class BatchedStateBackend(_JujuStorageBackend):
    """ops' state-get/state-set backend, reading once and writing once a hook."""

    def __init__(self) -> None:
        self._stored: Optional[Dict[str, str]] = None  # as the controller has it
        self._current: Dict[str, str] = {}  # as this hook left it, ops-encoded

    def _state(self) -> Dict[str, str]:
        if self._stored is None:
            loaded = yaml_text.safe_load(_run(["state-get", "--format=yaml"]))
            self._stored = {str(k): str(v) for k, v in (loaded or {}).items()}
            self._current = dict(self._stored)
        return self._current

    def get(self, key: str) -> Any:
        raw = self._state().get(key, "")
        if raw in ("", "\n"):  # what ops' backend takes for an absent key
            raise KeyError(key)
        return yaml.load(raw, Loader=_SimpleLoader)  # noqa: S506

    def set(self, key: str, value: Any) -> None:
        self._state()[key] = yaml.dump(value, Dumper=_SimpleDumper, default_flow_style=None)

    def delete(self, key: str) -> None:
        self._state().pop(key, None)

    def flush(self) -> None:
        """Hand Juju the keys this hook changed: one state-set, a state-delete a dropped key."""
        if self._stored is None:
            return  # nothing was read, so nothing was written
        changed = {k: v for k, v in self._current.items() if self._stored.get(k) != v}
        if changed:
            content = yaml.dump(changed, Dumper=_Dumper, default_style="|", default_flow_style=False)
            _run(["state-set", "--file", "-"], stdin=content)
        for key in sorted(self._stored.keys() - self._current.keys()):
            _run(["state-delete", key])
        self._stored = dict(self._current)


class BatchedJujuStorage(JujuStorage):
    """JujuStorage whose commit is the one moment the state goes back to Juju."""

    def __init__(self) -> None:
        self._batched = BatchedStateBackend()
        super().__init__(self._batched)

    def commit(self) -> None:
        self._batched.flush()


class _BatchedManager(_Manager):
    def _make_storage(self, dispatcher: _Dispatcher) -> "JujuStorage | SQLiteStorage":
        # ops decides (and refuses restricted contexts, warns) as it always does.
        store = super()._make_storage(dispatcher)
        return BatchedJujuStorage() if isinstance(store, JujuStorage) else store


def main(charm_class: Type[ops.CharmBase]) -> None:
    """`ops.main(charm_class, use_juju_for_storage=True)`, with batched state."""
    manager = None
    try:
        manager = _BatchedManager(charm_class, use_juju_for_storage=True)
        manager.run()  # type: ignore[no-untyped-call]  # ops' manager is untyped
    except _Abort as e:
        raise SystemExit(e.exit_code) from None
    finally:
        if manager:
            manager.destroy()  # type: ignore[no-untyped-call]
