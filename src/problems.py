"""What can stop the charm from reaching Active, as values a hook can report.

Every problem carries a message written for the person reading `juju status`:
it names what is wrong and what to do. Messages never hold relation or config
values, only field and option names, so no secret can reach a status.
"""

from typing import Optional

# Juju shows status messages on one line; peers can send huge field names.
MAX_MESSAGE_LENGTH = 240


def _bounded(message: str) -> str:
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 1] + "…"
    return message


class Problem(Exception):
    """Base of the charm's expected failures; `kind` is a Juju status name."""

    kind = "blocked"

    def __init__(self, message: str):
        self.message = _bounded(message)
        super().__init__(self.message)


class Blocked(Problem):
    """A human has to act: relate an application, fix a config option or data."""

    kind = "blocked"


class Waiting(Problem):
    """Something is on its way: a peer's data, a pod, a reachable service."""

    kind = "waiting"


def first_problem(*problems: Optional[Problem]) -> Optional[Problem]:
    """The problem to report: any Blocked before any Waiting, else the first given."""
    present = [p for p in problems if p is not None]
    for problem in present:
        if isinstance(problem, Blocked):
            return problem
    return present[0] if present else None
