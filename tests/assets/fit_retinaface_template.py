"""Generator of RETINAFACE_TEMPLATE and HOG_BOX_TEMPLATE in ``cnnkit/faces/align.py``.

For LFW images where dlib's HOG detector finds exactly one face, dlib's 5-point shape predictor
gives the frame dlib's own face chips are cut in (``DLIB5_TEMPLATE`` -> image). RetinaFace's five
landmarks and the HOG box are mapped into that unit frame and averaged (median, robust to the odd
mismatched face). Run:

    .venv/bin/python tests/assets/fit_retinaface_template.py --lfw ../shared/data/faces/lfw \
        --pairs pairsDevTrain.txt --limit 600

and paste the printed arrays into ``align.py``. Only training-split images are used.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from cnnkit.data.image_io import load_image
from cnnkit.faces.align import DLIB5_TEMPLATE, apply_transform, similarity_transform
from cnnkit.faces.detect import create_detector
from cnnkit.faces.pairs import lfw_image_path, read_pairs
from cnnkit.faces.pipeline import primary_face


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", required=True)
    ap.add_argument("--pairs", default="pairsDevTrain.txt")
    ap.add_argument("--limit", type=int, default=600)
    args = ap.parse_args()
    pairs = read_pairs(f"{args.lfw}/{args.pairs}")
    hog = create_detector("hog")
    rf = create_detector("retinaface", score_threshold=0.5)
    rf_pts, boxes = [], []
    for name, idx in pairs.images()[: args.limit]:
        rgb = load_image(lfw_image_path(args.lfw, name, idx))
        h = hog.detect(rgb)
        r = rf.detect(rgb)
        if len(h) != 1 or not r:
            continue
        det = primary_face(r, rgb.shape)
        m = similarity_transform(DLIB5_TEMPLATE, h[0].landmarks)  # unit frame -> image
        inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
        unit = apply_transform(inv, det.landmarks)
        if np.abs(unit - np.median(np.array(rf_pts), 0) if rf_pts else 0).max() > 0.25:
            continue  # the two detectors found different faces
        rf_pts.append(unit)
        x1, y1, x2, y2 = h[0].box
        centre = apply_transform(inv, np.array([[(x1 + x2) / 2, (y1 + y2) / 2]]))[0]
        side = (x2 - x1) / float(np.hypot(m[0, 0], m[1, 0]))
        boxes.append([centre[0], centre[1], side])
    rf_arr, box_arr = np.array(rf_pts), np.array(boxes)
    template = np.median(rf_arr, 0)
    spread = np.median(np.abs(rf_arr - template), 0)
    print(json.dumps({
        "images_used": len(rf_arr),
        "RETINAFACE_TEMPLATE": np.round(template, 4).tolist(),
        "median_abs_deviation": np.round(spread, 4).tolist(),
        "HOG_BOX_TEMPLATE": np.round(np.median(box_arr, 0), 4).tolist(),
    }, indent=1))


if __name__ == "__main__":
    main()
