"""Keep the test process on loopback, whatever host names the charm is fed.

The charm builds its S3 endpoint from relation data (http://<service>.<namespace>:<port>)
and fuzzed relation data makes up host names, some of which the C resolver reads
as IP addresses ("10" is 0.0.0.10, "1.2" is 1.0.0.2). Inside `loopback_only()`:

- name resolution answers 127.0.0.1 for the fakes' aliases (minio.kubeflow, ...),
  passes loopback names through, and fails at once (EAI_NONAME) for any other
  name or address: no DNS query leaves the process;
- a connect() to a non-loopback address is refused before any packet is sent,
  and recorded in `violations` so the test that caused it fails;
- `alias_ports` moves an alias's port elsewhere on loopback (minio.kubeflow:9000
  can be served from a free port, so parallel test runs do not fight over 9000);
- `host_ports` moves every port of one alias to one loopback port (MLflow's
  service name, whatever mlflow_port says, reaches the fake /health);
- `loopback_ports`, when set, also refuses loopback ports outside that set, so a
  fuzzed port cannot reach another service running on this machine.
"""

import contextlib
import errno
import ipaddress
import socket
from typing import Dict, List, Optional, Set, Tuple

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "ip6-localhost")


class NetworkGuard:
    def __init__(self, aliases):
        self.aliases = frozenset(aliases)
        self.violations: List[Tuple[str, object]] = []
        self.loopback_ports: Optional[Set[int]] = None
        self.alias_ports: Dict[int, int] = {}
        self.host_ports: Dict[str, int] = {}

    def resolve(self, real, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or name in LOOPBACK_NAMES:
            return real(host, port, *args, **kwargs)
        if name in self.aliases:
            if name in self.host_ports:
                port = self.host_ports[name]
            elif port is not None and int(port) in self.alias_ports:
                port = self.alias_ports[int(port)]
            return real("127.0.0.1", port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"name resolution is loopback-only in tests: {name!r}")

    def allow(self, sock, address) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # unix sockets stay on this machine
        host, port = address[0], address[1]
        try:
            loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self.violations.append(("connect", address))
            raise OSError(errno.ENETUNREACH, f"non-loopback connect refused by the test guard: {address!r}")
        if self.loopback_ports is not None and port not in self.loopback_ports:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"loopback port {port} is not a test fake's")


@contextlib.contextmanager
def loopback_only(aliases=()):
    guard = NetworkGuard(aliases)
    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host, port, *args, **kwargs):
        return guard.resolve(real_getaddrinfo, host, port, *args, **kwargs)

    def connect(self, address):
        guard.allow(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        try:
            guard.allow(self, address)
        except OSError as e:
            return e.errno
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    try:
        yield guard
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect
        socket.socket.connect_ex = real_connect_ex


# serve_forever's poll interval for the loopback servers of tests/fakes: shutdown()
# waits up to one interval, and the stdlib's 0.5 s was paid by every Scenario test
# (two servers each) at teardown.
SHUTDOWN_POLL = 0.05


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on right now (connecting to it is refused):
    the one helper every layer takes its ports from."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
