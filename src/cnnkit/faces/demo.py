"""The demo protocol (``cnnkit demo``): the main job on the AT&T/ORL faces that ship inside the cnnkit package.

Enroll one photo (1.pgm) of each of s1..sN into a fresh SQLite gallery, then identify all other
photos of s1..sN and every photo of the others (never enrolled). The threshold is not given: it
is estimated from the gallery itself. :func:`run_demo` returns rank-1 accuracy on the enrolled
people, the rate at which strangers were rejected and the time per face, and writes
``results.json`` and an HTML report with thumbnails.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from cnnkit.core.errors import CnnkitError
from cnnkit.core.paths import output_folder
from cnnkit.eval.identification import open_set_report
from cnnkit.faces.recognition import enroll_photos, identify_photo, resolve_decision
from cnnkit.store.sqlite import SQLiteGallery

__all__ = ["run_demo", "write_report"]


def run_demo(root: str | os.PathLike[str], out_dir: str | os.PathLike[str], pipeline: Any, *, enrolled: int = 30,
             on_status: Callable[[str], None] = lambda msg: None, on_error: Callable[[str], None] = lambda msg: None,
             progress: Callable[[int, str], Any] | None = None) -> dict[str, Any]:
    """Run the protocol on ORL person folders ``root/s1..s40``; returns the summary.

    Args:
        out_dir: gets ``gallery.sqlite`` (recreated), ``results.json`` and ``report.html``.
        on_status: called once at the start with what is about to happen.
        on_error: called with the message of each photo that failed to enroll.
        progress: ``progress(total, label)`` returns a bar with ``update(n)`` and ``close()``, one
            for enrolling and one for identifying.

    Raises:
        CnnkitError: ``root`` holds no ORL person folders.
    """
    root = Path(root)
    people = sorted((p for p in root.glob("s*") if p.is_dir() and p.name[1:].isdigit()), key=lambda p: int(p.name[1:]))
    if not people:
        raise CnnkitError(f"{root}: no ORL person folders s1..s40 found")
    out = output_folder(out_dir)
    db = out / "gallery.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    known = {p.name for p in people[:enrolled]}
    enroll_items = [(p.name, p / "1.pgm") for p in people[:enrolled]]
    probes = [(p.name, f) for p in people for f in sorted(p.glob("*.pgm"), key=lambda f: int(f.stem))
              if not (p.name in known and f.name == "1.pgm")]
    on_status(f"demo: enrolling photo 1 of {len(enroll_items)} people from {root} into {db}, then identifying "
              f"{len(probes)} photos")
    with SQLiteGallery(db) as gallery:
        t0 = time.perf_counter()
        bar = progress(len(enroll_items), "enrolling") if progress is not None else None
        outcomes = []
        for outcome in enroll_photos(pipeline, gallery, enroll_items):
            outcomes.append(outcome)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        enroll_seconds = time.perf_counter() - t0
        failed = [o for o in outcomes if o.status == "error"]
        for o in failed:
            on_error(str(o.error))
        decision = resolve_decision(gallery, pipeline, method="distance")
        predicted, records = [], []
        t0 = time.perf_counter()
        bar = progress(len(probes), "identifying") if progress is not None else None
        for truth, photo in probes:
            if bar is not None:
                bar.update(1)
            try:
                faces, err = identify_photo(pipeline, gallery, photo, decision, k=3), None
            except CnnkitError as exc:
                faces, err = [], str(exc)
            best = faces[0] if faces else None
            predicted.append(best.name if best else None)
            records.append({"image": str(photo), "truth": truth, "enrolled": truth in known,
                            "name": best.name if best else None,
                            "distance": None if best is None or best.distance is None else round(best.distance, 4),
                            "error": err})
        if bar is not None:
            bar.close()
        identify_seconds = time.perf_counter() - t0
        n_people = len(gallery.people())
    report = open_set_report(predicted, [t for t, _ in probes], known)
    summary = {
        "enrolled_people": n_people, "enroll_failures": len(failed),
        "probes_enrolled_people": report.enrolled_probes, "probes_strangers": report.unknown_probes,
        "rank1": round(report.rank1, 4), "rejection": round(report.rejection, 4),
        "threshold": round(decision.threshold, 4), "threshold_source": decision.threshold_source,
        "seconds_per_face": round(identify_seconds / max(len(probes), 1), 4),
        "enroll_seconds_per_face": round(enroll_seconds / max(len(enroll_items), 1), 4),
        "encoder": pipeline.tag, "report": str(out / "report.html"), "gallery": str(db),
    }
    (out / "results.json").write_text(json.dumps({"summary": summary, "probes": records}, indent=1))
    write_report(out / "report.html", summary, records, enroll_items)
    return summary


def _thumb(path: str | Path) -> str:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        im.thumbnail((64, 78))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def write_report(path: Path, summary: dict, records: list[dict], enroll_items: list) -> None:
    """The HTML report: the summary table, the gallery and every probe, green when right."""
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
        for n, p in enroll_items
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
