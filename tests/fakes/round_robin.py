"""A loopback TCP round robin: what a Kubernetes Service does for the pods behind it.

kube-proxy balances connections, not requests: each new TCP connection goes
to one ready endpoint and stays there, so a client's keep-alive connection
sticks to one pod. An endpoint leaves the Service when its pod stops being
ready (the kubelet marks a pod whose container died not ready at once; a
failing readiness probe takes `failureThreshold` periods) and comes back when
its readiness probe answers again. This does the same on loopback:

- `backends` are (host, port, readiness path); a poller thread GETs each
  path every `period` seconds, a backend is ready after one 2xx/3xx and
  unready after `failure_threshold` failures in a row;
- `set_ready(port, False)` takes a backend out at once (a pod killed or
  terminating, as the endpoints controller would);
- a connection whose backend refuses it is reset (SO_LINGER 0), as a client
  of a Service sees a pod that died between the endpoint update and its
  connect: kube-proxy does not try another endpoint;
- with no ready backend a connection is reset too (a Service without
  endpoints rejects connections).

Every loop is bounded by `stop()`; the poller's requests and the relays use
short timeouts. Bytes are relayed unchanged, so an HTTP response cut by a
killed server reaches the client cut.
"""

import http.client
import itertools
import selectors
import socket
import struct
import threading
from typing import Dict, List, Optional, Tuple

from fakes.network_guard import free_port

Backend = Tuple[str, int, str]  # host, port, readiness path


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class RoundRobin:
    def __init__(
        self,
        backends: List[Backend],
        port: Optional[int] = None,
        period: float = 1.0,
        failure_threshold: int = 3,
        probe_timeout: float = 2.0,
    ):
        self.port = port or free_port()
        self.period, self.failure_threshold, self.probe_timeout = period, failure_threshold, probe_timeout
        self._lock = threading.Lock()
        self._backends: Dict[int, Backend] = {}
        self._ready: Dict[int, bool] = {}
        self._failures: Dict[int, int] = {}
        self._turn = itertools.count()
        self.connections: Dict[int, int] = {}  # backend port -> connections relayed
        self.resets = 0  # connections reset: backend refused, or no backend ready
        for backend in backends:
            self.add(backend, ready=False)
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(256)
        self._listener.settimeout(0.2)
        self._threads = [
            threading.Thread(target=self._accept, daemon=True, name="round-robin-accept"),
            threading.Thread(target=self._poll, daemon=True, name="round-robin-probe"),
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RoundRobin":
        for thread in self._threads:
            thread.start()
        return self

    def add(self, backend: Backend, ready: bool = False) -> None:
        """A new endpoint (a new pod): unready until its probe answers, unless told."""
        with self._lock:
            self._backends[backend[1]] = backend
            self._ready[backend[1]] = ready
            self._failures[backend[1]] = 0
            self.connections.setdefault(backend[1], 0)

    def remove(self, port: int) -> None:
        """The pod is gone from the Service for good (deleted)."""
        with self._lock:
            self._backends.pop(port, None)
            self._ready.pop(port, None)

    def set_ready(self, port: int, ready: bool) -> None:
        with self._lock:
            if port in self._ready:
                self._ready[port] = ready
                self._failures[port] = 0

    def ready_ports(self) -> List[int]:
        with self._lock:
            return sorted(p for p, ready in self._ready.items() if ready)

    def _pick(self) -> Optional[Backend]:
        with self._lock:
            ready = [self._backends[p] for p in sorted(self._backends) if self._ready[p]]
            if not ready:
                return None
            return ready[next(self._turn) % len(ready)]

    def _probe(self, backend: Backend) -> bool:
        host, port, path = backend
        connection = http.client.HTTPConnection(host, port, timeout=self.probe_timeout)
        try:
            connection.request("GET", path)
            return 200 <= connection.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                backends = list(self._backends.values())
            for backend in backends:
                ok = self._probe(backend)
                with self._lock:
                    port = backend[1]
                    if port not in self._ready:
                        continue
                    if ok:
                        self._ready[port], self._failures[port] = True, 0
                    else:
                        self._failures[port] += 1
                        if self._failures[port] >= self.failure_threshold:
                            self._ready[port] = False

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        backend = self._pick()
        if backend is None:
            self.resets += 1
            _reset(client)
            return
        try:
            upstream = socket.create_connection(backend[:2], timeout=5)
        except OSError:
            self.resets += 1
            _reset(client)
            return
        with self._lock:
            self.connections[backend[1]] = self.connections.get(backend[1], 0) + 1
        self._pump(client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes; a reset on one side resets the other."""
        peers = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            open_ends = 2
            while open_ends and not self._stop.is_set():
                for key, _ in selector.select(timeout=0.5):
                    sock = key.fileobj
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        # A killed server's kernel resets the connection: pass the reset on.
                        _reset(peers[sock])
                        sock.close()
                        return
                    if not data:
                        selector.unregister(sock)
                        open_ends -= 1
                        try:
                            peers[sock].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    try:
                        peers[sock].setblocking(True)
                        peers[sock].settimeout(60)
                        peers[sock].sendall(data)
                        peers[sock].setblocking(False)
                    except OSError:
                        _reset(sock)
                        peers[sock].close()
                        return
        client.close()
        upstream.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> "RoundRobin":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
