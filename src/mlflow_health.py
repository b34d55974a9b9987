"""Is MLflow serving? One bounded GET of /health on its in-cluster service.

This is all a settled update-status does besides `is-leader`, so it uses
the standard library only (ops has already imported urllib): no lightkube,
boto3 or jinja2 import on that path. Tests and the bench point the service's
host name at a loopback server by name resolution, as they do MinIO's.
"""

import urllib.request

TIMEOUT_SECONDS = 3


def serving(url: str, timeout: float = TIMEOUT_SECONDS) -> bool:
    """True when `url` answers 200 within `timeout` seconds."""
    if not url.startswith("http://"):
        return False  # nothing recorded yet (a unit settled by an older revision)
    # A cluster-local service is never reached through a proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):  # refused, reset, timed out, HTTP errors, bad URL
        return False
