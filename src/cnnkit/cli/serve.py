"""``cnnkit serve``: run the HTTP service; ``cnnkit serve keys add|list|revoke``: its API keys."""
from __future__ import annotations

from typing import Any

import click

from cnnkit.cli._options import emit, threads_option

_db_dir_option = click.option(
    "--db", metavar="DIR|URL",
    help="Data store: a directory (one SQLite file per gallery) or a postgresql:// URL (one schema per gallery) "
         "[default: $CNNKIT_SERVE_DB, else $XDG_DATA_HOME/cnnkit/serve].")


def _server() -> Any:
    """``cnnkit.serve.server``, or one error line naming the extra it needs."""
    try:
        from cnnkit.serve import server
    except ImportError as exc:
        raise click.ClickException(f"the server needs the serve extra: pip install 'cnnkit[serve]' ({exc})") from None
    return server


@click.group(invoke_without_command=True)
@_db_dir_option
@click.option("--host", default="127.0.0.1",
              help="Address to bind. Anything but loopback needs API keys (`cnnkit serve keys add`).")
@click.option("--port", default=8000)
@click.option("--workers-threads", "workers", default=2, help="Inference threads (the models are loaded once, shared).")
@click.option("--queue", default=32, help="Requests admitted beyond the running ones; more get 429 with Retry-After.")
@click.option("--max-upload", default=10 * 1024 * 1024, help="Largest request body, bytes.")
@click.option("--encoder", help="Encoder name, a fusion (dlib_resnet+sface), or a trained model directory "
                                "[default: cnnkit.faces.encoders.DEFAULT_ENCODER].")
@click.option("--detector", default="retinaface", help="retinaface or hog.")
@click.option("--access-log/--no-access-log", default=True)
@click.option("--capture-unknown/--no-capture-unknown", default=False,
              help="Keep each face identify names nobody (chip + embedding) to cluster and name later.")
@click.option("--capture-retention-days", type=click.FloatRange(min=0, min_open=True), default=30.0,
              help="Delete captured unknown faces last seen longer ago than this.")
@threads_option
@click.pass_context
def serve(ctx: click.Context, db: str | None, host: str, port: int, access_log: bool, **config: Any) -> None:
    """Serve the face galleries over HTTP (API under /v1, web page at /, docs at /docs).

    Ctrl-C stops it cleanly: running requests finish, then every gallery is closed."""
    if ctx.invoked_subcommand is None:
        server = _server()
        server.run_server(server.ServeConfig(db=db or server.default_db(), **config), host=host, port=port,
                          access_log=access_log, log=lambda msg: click.echo(msg, err=True))


@serve.group()
def keys() -> None:
    """API keys: created once (printed only then), stored hashed, revoked by id."""


def _keys(db: str | None) -> Any:
    """The API keys of the data store ``--db`` names."""
    server = _server()
    return server.KeyStore(db or server.default_db())


@keys.command("add")
@_db_dir_option
@click.option("--role", type=click.Choice(("read", "write", "admin")), required=True,
              help="read: verify/identify/embed; write: also enroll/delete; admin: also galleries.")
@click.option("--gallery", default="*", help="The one gallery this key may use (* for all).")
@click.option("--note", help="What the key is for.")
def keys_add(db: str | None, role: str, gallery: str, note: str | None) -> None:
    """Create a key. The key is the last line printed; it is not shown again."""
    key, rec = _keys(db).add(role, gallery, note)
    click.echo(f"key {rec.id}: role {rec.role}, gallery {rec.gallery}; store it now, it is shown only once:")
    click.echo(key)


@keys.command("list")
@_db_dir_option
def keys_list(db: str | None) -> None:
    """Every key: id, role, gallery, created, revoked (never the key)."""
    rows = [{"id": k.id, "role": k.role, "gallery": k.gallery, "created_at": k.created_at,
             "revoked_at": k.revoked_at or "", "note": k.note or ""} for k in _keys(db).list()]
    emit(rows, "table", columns=["id", "role", "gallery", "created_at", "revoked_at", "note"])


@keys.command("revoke")
@_db_dir_option
@click.argument("key_id")
def keys_revoke(db: str | None, key_id: str) -> None:
    """Revoke the key with id KEY_ID (the 8 characters after cnk_); it stops working at once."""
    rec = _keys(db).revoke(key_id)
    click.echo(f"key {rec.id} revoked at {rec.revoked_at}")
