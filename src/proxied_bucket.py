"""Which bucket the server's artifact proxy serves, kept where every leader finds it.

Runs logged through a server with serve_artifacts hold mlflow-artifacts:/
URIs that resolve in the proxied bucket only, so the application must
remember that bucket across a change of leader. It lives in the `replicas`
peer relation's application bag, `{"proxied-bucket": "<bucket>"}`: Juju
keeps that bag for the application, the leader alone writes it, and a new
leader reads what the old one wrote.

Two cases keep it in the unit's stored state instead, where earlier
revisions kept it:
- an upgrade from such a revision: the leader moves its value into the bag
  (a non-leader keeps its own until it leads, as the bag is the leader's);
- a hook that runs before Juju lists the peer relation (it exists from
  deploy in Juju 2.9, but a unit may not have entered it yet): the value
  waits in stored state and moves at the next leader hook.
"""

from typing import Any

from ops import Model

PEER = "replicas"
KEY = "proxied-bucket"


class ProxiedBucket:
    def __init__(self, model: Model, stored: Any):
        self._model = model
        self._stored = stored  # its `proxied_bucket` is the fallback home above

    def get(self) -> str:
        """The bucket a spec with serve_artifacts proxied, or "" if none ever did."""
        relation = self._model.get_relation(PEER)
        held = str(relation.data[self._model.app].get(KEY, "")) if relation is not None else ""
        return held or str(self._stored.proxied_bucket or "")

    def set(self, bucket: str) -> None:
        """Leader only: from here on the spec in force proxies `bucket`."""
        relation = self._model.get_relation(PEER)
        if relation is None:
            self._stored.proxied_bucket = bucket
            return
        if relation.data[self._model.app].get(KEY, "") != bucket:
            relation.data[self._model.app][KEY] = bucket
        self._stored.proxied_bucket = ""

    def migrate(self) -> None:
        """Leader only: move a bucket this unit remembers into the peer bag.
        Free while the unit remembers none (no hook tool call)."""
        if self._stored.proxied_bucket and self._model.get_relation(PEER) is not None:
            self.set(self.get())
