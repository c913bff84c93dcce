"""Faces in bad light: faces found and one-shot rank-1, before and after the detection retry on an
enhanced copy, beside the face_recognition pipeline (dlib HOG + 5 points + the dlib ResNet).

Sets (one normal photo per person enrolled, the others identified):
- ``yale``: the Yale faces' ``centerlight``, ``leftlight`` and ``rightlight`` photos (gallery: ``normal``);
- ``orl-dark`` / ``orl-side``: ORL photos 2 and 3 of s1..s40, under-exposed (x0.05 plus sensor
  noise) or dim and lit from one side (x0.1 falling to x0.005), generated here with a fixed seed
  (gallery: photo 1);
- ``lfw-dark`` / ``lfw-side``: the same on LFW image 2 of the first 60 people with two or more
  images (gallery: image 1).
The generated copies are written under ``cache_dir()/illumination`` (never into the repository);
encodings are cached per pipeline, so a rerun is free and an interrupted run resumes.
A probe without a face is a miss (rank-1 over all probes); ``found`` counts probe photos with a face.

    .venv/bin/python benchmarks/illumination.py [--data ../shared/data/faces] [--encoder dlib_resnet]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.core.paths import cache_dir
from cnnkit.faces import FacePipeline
from cnnkit.faces.pairs import encode_files

YALE_PROBES = ("centerlight", "leftlight", "rightlight")


def darken(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Under-exposed: x0.05 plus sensor noise (sigma 1)."""
    out = rgb.astype(np.float64) * 0.05 + rng.normal(0, 1.0, rgb.shape)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def side_light(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dim and lit from one side: x0.1, falling smoothly to x0.005 across the photo, plus noise."""
    w = rgb.shape[1]
    t = np.linspace(0, 1, w)
    ramp = 0.1 * (1.0 - 0.95 * (3 * t**2 - 2 * t**3))
    if rng.uniform() < 0.5:
        ramp = ramp[::-1]
    shape = (1, w, 1) if rgb.ndim == 3 else (1, w)
    out = rgb.astype(np.float64) * ramp.reshape(shape) + rng.normal(0, 1.0, rgb.shape)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _write(img: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        Image.fromarray(img).save(path)
    return path


def build_sets(data: Path, out: Path) -> dict[str, tuple[dict[str, Path], list[tuple[str, Path]]]]:
    """set name -> (gallery person -> photo, [(person, probe photo)])."""
    sets: dict[str, tuple[dict[str, Path], list[tuple[str, Path]]]] = {}
    yale = data / "yale"
    if yale.is_dir():
        gallery = {p.name: p / f"{p.name}.normal.gif" for p in sorted(yale.iterdir()) if p.is_dir()}
        probes = [(name, yale / name / f"{name}.{c}.gif") for name in gallery for c in YALE_PROBES
                  if (yale / name / f"{name}.{c}.gif").is_file()]
        sets["yale"] = (gallery, probes)
    orl = data / "orl"
    lfw = data / "lfw"
    sources: dict[str, tuple[dict[str, Path], list[tuple[str, Path]]]] = {}
    if orl.is_dir():
        people = [f"s{i}" for i in range(1, 41)]
        sources["orl"] = ({p: orl / p / "1.pgm" for p in people}, [(p, orl / p / f"{i}.pgm") for p in people for i in (2, 3)])
    if lfw.is_dir():
        people = [p.name for p in sorted(lfw.iterdir()) if p.is_dir() and (p / f"{p.name}_0002.jpg").is_file()][:60]
        sources["lfw"] = ({p: lfw / p / f"{p}_0001.jpg" for p in people}, [(p, lfw / p / f"{p}_0002.jpg") for p in people])
    for name, (gallery, originals) in sources.items():
        for kind, fn in (("dark", darken), ("side", side_light)):
            rng = np.random.default_rng(0)
            probes = []
            for person, src in originals:
                img = np.asarray(Image.open(src))
                probes.append((person, _write(fn(img, rng), out / f"{name}-{kind}" / person / (src.stem + ".png"))))
            sets[f"{name}-{kind}"] = (gallery, probes)
    return sets


def score(pipe: FacePipeline, gallery: dict[str, Path], probes: list[tuple[str, Path]]) -> dict[str, float]:
    enc = encode_files(pipe, list(gallery.values()) + [p for _, p in probes], progress=False)
    names = [n for n, f in gallery.items() if isinstance(enc[f], np.ndarray)]
    g = np.stack([enc[gallery[n]] for n in names]) if names else np.zeros((0, pipe.dim))
    found = hits = 0
    for person, f in probes:
        e = enc[f]
        if not isinstance(e, np.ndarray):
            continue
        found += 1
        if len(g) and names[int(np.linalg.norm(g - e, axis=1).argmin())] == person:
            hits += 1
    return {"probes": len(probes), "found": found, "rank1": hits / max(len(probes), 1),
            "gallery_found": len(names)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
    ap.add_argument("--data", default=os.environ.get("CNNKIT_FACES_DATA", str(default)))
    ap.add_argument("--encoder", default="dlib_resnet")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    sets = build_sets(Path(args.data), cache_dir() / "illumination" / "v2")
    def cnnkit(retry: str, chip: str) -> FacePipeline:
        return FacePipeline(args.encoder, retry_enhance=retry, chip_enhance=chip, threads=1)

    pipelines = {
        "cnnkit, no retry (before)": cnnkit("none", "none"),
        "cnnkit, retry on CLAHE copy": cnnkit("clahe", "none"),
        "cnnkit, retry on gamma copy": cnnkit("gamma", "none"),
        "cnnkit, retry on gamma+CLAHE copy": cnnkit("gamma_clahe", "none"),
        "cnnkit, retry, chip from the copy (default)": cnnkit("gamma_clahe", "retried"),
        "cnnkit, retry, every chip gamma+CLAHE": cnnkit("gamma_clahe", "gamma_clahe"),
        "face_recognition (hog + sp5)": FacePipeline("dlib_resnet", detector="hog", flip=False, retry_enhance="none"),
    }
    rows = []
    for label, pipe in pipelines.items():
        for set_name, (gallery, probes) in sets.items():
            t0 = time.time()
            r = score(pipe, gallery, probes)
            rows.append({"pipeline": label, "set": set_name, **r, "seconds": round(time.time() - t0, 1)})
            print(f"{label:44s} {set_name:9s} found {r['found']:3d}/{r['probes']:3d}  rank-1 {r['rank1']:.3f}",
                  flush=True)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"\n{'pipeline':44s} " + " ".join(f"{s:>17s}" for s in sets))
    for label in pipelines:
        cells = [next(r for r in rows if r["pipeline"] == label and r["set"] == s) for s in sets]
        print(f"{label:44s} " + " ".join(f"{c['found']:3d}/{c['probes']:<3d} r1 {c['rank1']:.3f}" for c in cells))
    print("\nfound: probe photos with a face; r1: one-shot rank-1 over all probes (no face = miss)")


if __name__ == "__main__":
    main()
