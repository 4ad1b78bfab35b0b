"""Open class maps in QGIS (headless) as an analyst would, and report what it shows.

Run with the Python that has QGIS's bindings (Debian: ``/usr/bin/python3``, package
``python3-qgis``): ``QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_check.py MAP.tif …``.
Prints one JSON object per map: the value QGIS identifies at the centres of the top-left and
bottom-right pixels, the renderer it chose (with the ``.qml`` beside the map, if any) and its
legend entries.
"""

from __future__ import annotations

import json
import sys

from qgis.core import QgsApplication, QgsPointXY, QgsRaster, QgsRasterLayer


def describe(path: str) -> dict:
    layer = QgsRasterLayer(path, "map")  # loads the .qml beside it, as QGIS does
    if not layer.isValid():
        return {"path": path, "valid": False}
    extent = layer.extent()
    step_x = layer.rasterUnitsPerPixelX()
    step_y = layer.rasterUnitsPerPixelY()
    provider = layer.dataProvider()

    def value_at(x: float, y: float) -> float | None:
        result = provider.identify(QgsPointXY(x, y), QgsRaster.IdentifyFormatValue).results()
        return result.get(1)

    renderer = layer.renderer()
    legend = (
        [[int(c.value), c.label] for c in renderer.classes()]
        if renderer.type() == "paletted"
        else []
    )
    return {
        "path": path,
        "valid": True,
        "crs": layer.crs().authid(),
        "top_left": value_at(extent.xMinimum() + step_x / 2, extent.yMaximum() - step_y / 2),
        "bottom_right": value_at(extent.xMaximum() - step_x / 2, extent.yMinimum() + step_y / 2),
        "renderer": renderer.type(),
        "legend": legend,
        "band_description": provider.generateBandName(1),
    }


def main() -> None:
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    for path in sys.argv[1:]:
        print(json.dumps(describe(path)), flush=True)
    app.exitQgis()


if __name__ == "__main__":
    main()
