"""``cnnkit serve``: run the HTTP service; ``cnnkit serve keys add|list|revoke``: its API keys."""
from __future__ import annotations

import ipaddress
import os
import sys
import time

import click

from cnnkit.cli._options import threads_option
from cnnkit.core.errors import CnnkitError

_ROLES = ("read", "write", "admin")


def _default_dir() -> str:
    from cnnkit.core.paths import data_dir

    return os.environ.get("CNNKIT_SERVE_DB") or str(data_dir() / "serve")


def db_dir_option(fn):
    return click.option("--db", "db", default=None, metavar="DIR|URL",
                        help="Data store: a directory (one SQLite file per gallery) or a postgresql:// URL "
                             "(one schema per gallery) [default: $CNNKIT_SERVE_DB, else "
                             "$XDG_DATA_HOME/cnnkit/serve].")(fn)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _extra_missing(exc: ImportError) -> None:
    raise click.ClickException(f"the server needs the serve extra: pip install 'cnnkit[serve]' ({exc})")


@click.group(invoke_without_command=True)
@db_dir_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs API keys (`cnnkit serve keys add`).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers-threads", "workers", type=int, default=2, show_default=True,
              help="Inference threads (the models are loaded once and shared).")
@click.option("--queue", type=int, default=32, show_default=True,
              help="Requests admitted beyond the running ones; more get 429 with Retry-After.")
@click.option("--max-upload", type=int, default=10 * 1024 * 1024, show_default=True, help="Largest request body, bytes.")
@click.option("--encoder", default=None,
              help="Encoder name, a fusion (dlib_resnet+sface), or a trained model directory "
                   "[default: cnnkit.faces.encoders.DEFAULT_ENCODER].")
@click.option("--detector", default="retinaface", show_default=True, help="retinaface or hog.")
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.option("--capture-unknown/--no-capture-unknown", default=False, show_default=True,
              help="Keep each face identify names nobody (chip + embedding) to cluster and name later.")
@click.option("--capture-retention-days", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Delete captured unknown faces last seen longer ago than this.")
@threads_option
@click.pass_context
def serve(ctx: click.Context, db: str | None, host: str, port: int, workers: int, queue: int, max_upload: int,
          encoder: str | None, detector: str, access_log: bool, capture_unknown: bool,
          capture_retention_days: float) -> None:
    """Serve the face galleries over HTTP (API under /v1, web page at /, docs at /docs).

    Ctrl-C stops it cleanly: running requests finish, then every gallery is closed."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        import uvicorn

        from cnnkit.serve import ServeConfig, Service, create_app
    except ImportError as exc:
        _extra_missing(exc)
    t0 = time.perf_counter()
    target = db or _default_dir()
    service = Service(ServeConfig(db=target, workers=workers, queue=queue, max_upload=max_upload,
                                  encoder=encoder, detector=detector, capture_unknown=capture_unknown,
                                  capture_retention_days=capture_retention_days))
    if not _loopback(host) and not service.keys.any():
        raise CnnkitError(f"refusing to listen on {host} without API keys; create one with "
                          f"`cnnkit serve keys add --db {target} --role admin`, or bind to 127.0.0.1")
    service.load()
    auth = "API keys required" if service.keys.any() else "no API keys yet: open to this machine only"
    if capture_unknown:
        auth += f"; capturing unknown faces (kept {capture_retention_days:g} days)"
    click.echo(f"cnnkit serve: models loaded in {time.perf_counter() - t0:.1f} s; data {target}; {auth}; "
               f"http://{host}:{port}/", err=True)
    config = uvicorn.Config(create_app(service), host=host, port=port, log_level="info", access_log=access_log,
                            server_header=False, timeout_graceful_shutdown=30)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after its graceful shutdown
        pass
    finally:
        service.close()
        click.echo("cnnkit serve: stopped; galleries closed", err=True)


@serve.group()
def keys() -> None:
    """API keys: created once (printed only then), stored hashed, revoked by id."""


def _store(db: str | None):
    try:
        from cnnkit.serve.keys import KeyStore
    except ImportError as exc:
        _extra_missing(exc)
    return KeyStore(db or _default_dir())


@keys.command("add")
@db_dir_option
@click.option("--role", type=click.Choice(_ROLES), required=True,
              help="read: verify/identify/embed; write: also enroll/delete; admin: also galleries.")
@click.option("--gallery", default="*", show_default=True, help="The one gallery this key may use (* for all).")
@click.option("--note", default=None, help="What the key is for.")
def keys_add(db: str | None, role: str, gallery: str, note: str | None) -> None:
    """Create a key. The key is the last line printed; it is not shown again."""
    key, rec = _store(db).add(role, gallery, note)
    click.echo(f"key {rec.id}: role {rec.role}, gallery {rec.gallery}; store it now, it is shown only once:")
    click.echo(key)


@keys.command("list")
@db_dir_option
def keys_list(db: str | None) -> None:
    """Every key: id, role, gallery, created, revoked (never the key)."""
    from cnnkit.cli._output import emit

    rows = [{"id": k.id, "role": k.role, "gallery": k.gallery, "created_at": k.created_at,
             "revoked_at": k.revoked_at or "", "note": k.note or ""} for k in _store(db).list()]
    emit(rows, "table", rows=rows, columns=["id", "role", "gallery", "created_at", "revoked_at", "note"])


@keys.command("revoke")
@db_dir_option
@click.argument("key_id")
def keys_revoke(db: str | None, key_id: str) -> None:
    """Revoke the key with id KEY_ID (the 8 characters after cnk_); it stops working at once."""
    rec = _store(db).revoke(key_id)
    click.echo(f"key {rec.id} revoked at {rec.revoked_at}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve())
