"""``cnnkit demo``: the main job on the AT&T/ORL faces that ship inside the cnnkit package.

Enrol one photo (1.pgm) of each of s1..s30 into a fresh SQLite gallery, then identify all other
photos of s1..s30 and every photo of s31..s40 (never enrolled). The threshold is not given: it is
estimated from the gallery itself. Prints rank-1 accuracy on the enrolled people, the rate at which
strangers were rejected, and the time per face, and writes an HTML report with thumbnails.
"""
from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import click

from cnnkit.cli._options import current_threads, device_option, format_option, threads_option
from cnnkit.cli._output import emit, progress_bar


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="ORL folder (s1..s40/N.pgm) [default: the copy shipped in the cnnkit package].")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="demo-out", show_default=True,
              help="Folder for the gallery and report.html (the gallery is recreated).")
@click.option("--enrolled", type=int, default=30, show_default=True, help="People s1..sN are enrolled.")
@click.option("--encoder", default=None, help="Face encoder [default: cnnkit.faces.encoders.DEFAULT_ENCODER].")
@device_option
@threads_option
@format_option
def demo(data_dir: str | None, out_dir: str, enrolled: int, encoder: str | None, device: str, fmt: str) -> None:
    """One-shot recognition on ORL: enrol one photo per person, identify everyone else."""
    from cnnkit.core.errors import CnnkitError
    from cnnkit.core.assets import orl_dir
    from cnnkit.eval.identification import open_set_report
    from cnnkit.faces import FacePipeline
    from cnnkit.faces.recognition import enrol_photos, identify_photo, resolve_threshold
    from cnnkit.store import SQLiteGallery

    root = Path(data_dir) if data_dir else orl_dir()
    people = sorted((p for p in root.glob("s*") if p.is_dir()), key=lambda p: int(p.name[1:]))
    if not people:
        raise click.ClickException(f"{root}: no ORL person folders s1..s40 found")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "gallery.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    known = {p.name for p in people[:enrolled]}
    enrol_items = [(p.name, p / "1.pgm") for p in people[:enrolled]]
    probes = [(p.name, f) for p in people for f in sorted(p.glob("*.pgm"), key=lambda f: int(f.stem))
              if not (p.name in known and f.name == "1.pgm")]

    click.echo(f"demo: enrolling photo 1 of {len(enrol_items)} people from {root} into {db}, then identifying "
               f"{len(probes)} photos", err=True)
    pipeline = FacePipeline(encoder, device=device, threads=current_threads())
    with SQLiteGallery(db) as gallery:
        t0 = time.perf_counter()
        with progress_bar(len(enrol_items), "enrolling") as bar:
            outcomes = []
            for outcome in enrol_photos(pipeline, gallery, enrol_items):
                outcomes.append(outcome)
                bar.update(1)
        enrol_seconds = time.perf_counter() - t0
        failed = [o for o in outcomes if o.status == "error"]
        for o in failed:
            click.echo(f"error: {o.error}", err=True)
        thr = resolve_threshold(gallery, pipeline.tag, pipeline.default_threshold)
        predicted, records = [], []
        t0 = time.perf_counter()
        bar = progress_bar(len(probes), "identifying")
        for truth, photo in probes:
            bar.update(1)
            try:
                faces = identify_photo(pipeline, gallery, photo, threshold=thr.value, k=3)
            except CnnkitError as exc:
                faces, err = [], str(exc)
            else:
                err = None
            best = faces[0] if faces else None
            predicted.append(best.name if best else None)
            records.append({"image": str(photo), "truth": truth, "enrolled": truth in known,
                            "name": best.name if best else None,
                            "distance": None if best is None or best.distance is None else round(best.distance, 4),
                            "error": err})
        bar.close()
        identify_seconds = time.perf_counter() - t0
        n_people = len(gallery.people())
    report = open_set_report(predicted, [t for t, _ in probes], known)
    summary = {
        "enrolled_people": n_people, "enrol_failures": len(failed),
        "probes_enrolled_people": report.enrolled_probes, "probes_strangers": report.unknown_probes,
        "rank1": round(report.rank1, 4), "rejection": round(report.rejection, 4),
        "threshold": round(thr.value, 4), "threshold_source": thr.source,
        "seconds_per_face": round(identify_seconds / max(len(probes), 1), 4),
        "enrol_seconds_per_face": round(enrol_seconds / max(len(enrol_items), 1), 4),
        "encoder": pipeline.tag, "report": str(out / "report.html"), "gallery": str(db),
    }
    (out / "results.json").write_text(json.dumps({"summary": summary, "probes": records}, indent=1))
    _write_report(out / "report.html", summary, records, enrol_items)
    emit(summary, fmt, rows=[{"metric": k, "value": v} for k, v in summary.items()])


def _thumb(path: str | Path) -> str:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        im.thumbnail((64, 78))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _write_report(path: Path, summary: dict, records: list[dict], enrol_items: list) -> None:
    cells = []
    for r in records:
        if r["enrolled"]:
            ok = r["name"] == r["truth"]
        else:
            ok = r["name"] is None
        label = html.escape(r["name"] or "unknown")
        dist = "" if r["distance"] is None else f" {r['distance']:.3f}"
        cells.append(
            f'<figure class="{"ok" if ok else "bad"}"><img src="{_thumb(r["image"])}" alt="">'
            f'<figcaption>{html.escape(r["truth"])} &rarr; {label}{dist}</figcaption></figure>'
        )
    gallery = "".join(
        f'<figure><img src="{_thumb(p)}" alt=""><figcaption>{html.escape(n)}</figcaption></figure>'
        for n, p in enrol_items
    )
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items())
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>cnnkit demo: one-shot faces</title>
<style>body{{font-family:sans-serif;margin:1.5em}}figure{{display:inline-block;margin:3px;padding:2px;
border:3px solid #ccc;text-align:center;font-size:10px;width:70px}}figure.ok{{border-color:#2a2}}
figure.bad{{border-color:#d22}}table{{border-collapse:collapse}}td,th{{padding:2px 8px;text-align:left}}</style>
</head><body><h1>One-shot face recognition on AT&amp;T/ORL</h1>
<p>One photo per person enrolled; every other photo identified. Green: right name (enrolled people)
or "unknown" (never-enrolled people); red: wrong. Faces: AT&amp;T Laboratories Cambridge.</p>
<table>{rows}</table><h2>Gallery (one photo each)</h2>{gallery}<h2>Probes</h2>{"".join(cells)}
</body></html>""")
