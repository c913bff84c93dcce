"""cnnkit.visualize: what the units of any 1D/2D/3D ConvNet respond to (Zeiler & Fergus, 2014).

Receptive fields (:mod:`.receptive`), a streaming top-k scan over a data set (:mod:`.scan`), data
sources (:mod:`.sources`), pictures (:mod:`.render`, :mod:`.filters`) and the report folder with
``units.json`` and ``index.html`` (:mod:`.report`). Takes any ``nn.Module``.
"""
from cnnkit.visualize.activations import capture_activations
from cnnkit.visualize.filters import filter_image, first_conv
from cnnkit.visualize.receptive import (
    ReceptiveField, UnsupportedLayerError, measured_receptive_field, receptive_field, receptive_fields,
    unit_box,
)
from cnnkit.visualize.render import activation_grid, contact_sheet, filter_grid
from cnnkit.visualize.report import units_json, write_report
from cnnkit.visualize.scan import LayerTop, ScanResult, scan_top_units
from cnnkit.visualize.sources import ImageFolder, TensorSource, open_source, series_source, volume_source

__all__ = [
    "ImageFolder", "LayerTop", "ReceptiveField", "ScanResult", "TensorSource", "UnsupportedLayerError",
    "activation_grid", "capture_activations", "contact_sheet", "filter_grid", "filter_image", "first_conv",
    "measured_receptive_field", "open_source", "receptive_field", "receptive_fields", "scan_top_units",
    "series_source", "unit_box", "units_json", "volume_source", "write_report",
]
