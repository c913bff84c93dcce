"""Make the small committed sample in this folder from full ``cnnkit visualize units`` runs.

The scan is not repeated: each run's ``scan.ckpt`` is resumed (it is complete, so nothing is
computed) and the first UNITS units of every layer are drawn again, as JPEG, to keep the sample small.

    python docs/visualize/make_sample.py vgg19 /tmp/photos /tmp/vis/vgg19 --units 16 --batch-size 8
    python docs/visualize/make_sample.py ecg200.safetensors ECG200_TRAIN.tsv /tmp/vis/ecg --units 8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    from cnnkit.cli.visualize import _load_model, _default_layers
    from cnnkit.visualize.filters import filter_image
    from cnnkit.visualize.render import contact_sheet
    from cnnkit.visualize.report import layer_file_name
    from cnnkit.visualize.scan import scan_top_units
    from cnnkit.visualize.sources import open_source

    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("outdir", help="the -o folder of the full run (holds scan.ckpt)")
    parser.add_argument("--layers", default=None)
    parser.add_argument("--units", type=int, default=16, help="as in the full run")
    parser.add_argument("--batch-size", type=int, default=16, help="as in the full run")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--show", type=int, default=8, help="units drawn per layer")
    parser.add_argument("--prefix", default=None)
    parser.add_argument("--cell", type=int, default=None, help="cell side in pixels [default: by field size]")
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality")
    args = parser.parse_args()
    layers = args.layers.split(",") if args.layers else None
    model, name, _ = _load_model(args.model, layers, "cpu")
    data = open_source(args.data, size=args.size)
    layers = layers or _default_layers(model, name, data[0])
    ckpt = Path(args.outdir) / "scan.ckpt"
    result = scan_top_units(model, data, layers, top=9, units=args.units, batch_size=args.batch_size,
                            checkpoint=ckpt, progress=False)
    prefix = args.prefix or name
    for layer, table in result.layers.items():
        sheet = contact_sheet(table, data, title=f"{name} {layer}", max_units=args.show, cell=args.cell)
        photo = table.receptive_field.ndim == 2  # photos compress as JPEG, plots and slices as PNG
        target = HERE / f"{prefix}_{layer_file_name(layer)}.{'jpg' if photo else 'png'}"
        if photo:
            sheet.save(target, quality=args.quality, optimize=True)
        else:
            sheet.quantize(64).save(target, optimize=True)
        print(f"{target.name}: {sheet.size[0]}x{sheet.size[1]}, {target.stat().st_size // 1024} KB")
    target = HERE / f"{prefix}_filters.png"
    filter_image(model).save(target, optimize=True)
    print(f"{target.name}: {target.stat().st_size // 1024} KB; {result.seen} inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
