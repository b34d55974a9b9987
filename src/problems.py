"""What can stop the charm from reaching a plain Active, as values a hook can report.

Every problem carries a message written for the person reading `juju status`:
it names what is wrong and what to do. Messages never hold relation or config
values, only field and option names, so no secret can reach a status.

One convention for the whole charm: a Problem is raised where it is found and
never returned. A hook that must go on past one (to publish what it still can)
gathers it in `Problems` and raises the one to report at the end; the charm
turns the raised Problem into a status in exactly one place.
"""

from typing import Any, Callable, List, Optional, TypeVar

T = TypeVar("T")

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


class Degraded(Problem):
    """MLflow serves, but a side task failed for a reason that may pass (an API
    error, a timeout): the unit stays Active, its message says what fails, and
    the next hook tries again."""

    kind = "active"


def first_problem(*problems: Optional[Problem]) -> Optional[Problem]:
    """The problem to report: any Blocked before any Waiting, else the first given."""
    present = [p for p in problems if p is not None]
    for problem in present:
        if isinstance(problem, Blocked):
            return problem
    return present[0] if present else None


class Problems:
    """The problems one hook went on past, in the order found."""

    def __init__(self) -> None:
        self._found: List[Problem] = []

    def attempt(self, step: Callable[..., T], *args: Any) -> Optional[T]:
        """`step(*args)`, or None with its Problem kept for `raise_first`."""
        try:
            return step(*args)
        except Problem as problem:
            self._found.append(problem)
            return None

    def passes(self, check: Callable[..., None], *args: Any) -> bool:
        """Whether `check(*args)` raised no Problem; one it raised is kept."""
        found = len(self._found)
        self.attempt(check, *args)
        return len(self._found) == found

    def raise_first(self) -> None:
        problem = first_problem(*self._found)
        if problem is not None:
            raise problem
