"""Build the photo folder used for the VGG19 sample in this folder: the first photo of 490 LFW people
(every 11th person in name order, from ../shared/data/faces/lfw) plus the colour photos that ship with
scikit-image and scikit-learn. The folder holds symbolic links; no image is committed.

    python docs/visualize/photos.py /tmp/photos [LFW_DIR]
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(out: str, lfw: str = "../shared/data/faces/lfw") -> int:
    import skimage
    import sklearn.datasets

    target = Path(out)
    (target / "lfw").mkdir(parents=True, exist_ok=True)
    (target / "misc").mkdir(exist_ok=True)
    people = sorted(p for p in Path(lfw).iterdir() if p.is_dir())[::11][:490]
    count = 0
    for person in people:
        first = sorted(person.glob("*.jpg"))[:1]
        for f in first:
            link = target / "lfw" / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
            count += 1
    skdata = Path(skimage.__file__).parent / "data"
    photos = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
              "hubble_deep_field.jpg", "retina.jpg", "immunohistochemistry.png", "ihc.png", "color.png",
              "camera.png", "brick.png", "grass.png", "gravel.png", "horse.png", "moon.png", "page.png",
              "coins.png"]
    sklearn_images = Path(sklearn.datasets.__file__).parent / "images"
    candidates = [skdata / p for p in photos] + sorted(sklearn_images.glob("*.jpg"))
    for f in candidates:
        if f.is_file():
            link = target / "misc" / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
            count += 1
    print(f"{target}: {count} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
