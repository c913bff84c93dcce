"""Running the service: where its data lives by default, who may reach it, and uvicorn until Ctrl-C."""
from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable

import uvicorn

from cnnkit.core.errors import CnnkitError
from cnnkit.serve.app import create_app
from cnnkit.serve.keys import KeyStore
from cnnkit.serve.service import ServeConfig, Service

__all__ = ["KeyStore", "ServeConfig", "default_db", "is_loopback", "run_server"]


def default_db() -> str:
    """The data store when none is named: ``$CNNKIT_SERVE_DB``, else ``$XDG_DATA_HOME/cnnkit/serve``."""
    from cnnkit.core.paths import data_dir

    return os.environ.get("CNNKIT_SERVE_DB") or str(data_dir() / "serve")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` (``localhost`` or an address) serves this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000, access_log: bool = True,
               log: Callable[[str], None] = print) -> None:
    """Load the models once, then serve ``config``'s galleries with uvicorn until Ctrl-C: running
    requests finish (30 s at most), then every gallery is closed. ``log`` gets one line when the
    server is ready and one when it has stopped.

    Raises:
        CnnkitError: ``host`` is not loopback and the store holds no API key yet, so anyone who can
            reach the address could use and change the galleries.
    """
    t0 = time.perf_counter()
    service = Service(config)
    if not is_loopback(host) and not service.keys.any():
        raise CnnkitError(f"refusing to listen on {host} without API keys; create one with "
                          f"`cnnkit serve keys add --db {config.db} --role admin`, or bind to 127.0.0.1")
    service.load()
    auth = "API keys required" if service.keys.any() else "no API keys yet: open to this machine only"
    if config.capture_unknown:
        auth += f"; capturing unknown faces (kept {config.capture_retention_days:g} days)"
    log(f"cnnkit serve: models loaded in {time.perf_counter() - t0:.1f} s; data {config.db}; {auth}; "
        f"http://{host}:{port}/")
    server = uvicorn.Config(create_app(service), host=host, port=port, log_level="info", access_log=access_log,
                            server_header=False, timeout_graceful_shutdown=30)
    try:
        uvicorn.Server(server).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after its graceful shutdown
        pass
    finally:
        service.close()
        log("cnnkit serve: stopped; galleries closed")
