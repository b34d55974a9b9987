"""The memo that lets a settled hook do nothing.

A hook whose inputs equal those of the last hook that ended Active would do
the same work again and reach the same status, so it is skipped. Only keyed
digests are stored: stored state never holds relation values, and whoever
reads it cannot test guesses at a password against a plain hash.
"""

import hashlib
import hmac
import json
import secrets
from typing import Any, Dict, Iterable


class SettledInputs:
    """Keyed digests of the inputs of the last hook that ended Active, whole and per endpoint."""

    def __init__(self, stored: Any):
        stored.set_default(settled_inputs="", settled_endpoints="", digest_key=secrets.token_hex(16))
        self._stored = stored

    def digest(self, value: Any) -> str:
        data = json.dumps(value, sort_keys=True, default=str).encode()
        return hmac.new(str(self._stored.digest_key).encode(), data, hashlib.sha256).hexdigest()

    def __bool__(self) -> bool:
        return bool(self._stored.settled_inputs)

    def hold(self, inputs: Dict[str, Any]) -> bool:
        """Whether these inputs are those the unit settled on."""
        return bool(self) and self.digest(inputs) == self._stored.settled_inputs

    def hold_for(self, endpoint: str, seen: Any) -> bool:
        """Whether one endpoint's bags are those the unit settled on."""
        if not self:
            return False
        settled: Dict[str, str] = json.loads(self._stored.settled_endpoints or "{}")
        return self.digest(seen) == settled.get(endpoint)

    def remember(self, inputs: Dict[str, Any], endpoints: Iterable[str]) -> None:
        self._stored.settled_inputs = self.digest(inputs)
        self._stored.settled_endpoints = json.dumps({ep: self.digest(inputs[ep]) for ep in endpoints})

    def forget(self) -> None:
        self._stored.settled_inputs = ""
