"""STAC metadata of a batch-mapping run (pystac): an Item per class map and a Collection.

Each Item's ``classification`` asset lists every class's value, name and colour (classification
extension, with pixel counts), its bands' data type and nodata (raster extension) and its grid
(projection extension); links point to the source scene (``derived_from``, its STAC Item when
it came from one) and to the bundle that made it. Catalogue tools (stac-browser, pystac-client,
QGIS's STAC source) read the run without knowing hsikit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rasterio.warp import transform_geom

from hsikit import __version__
from hsikit.classes import ClassTable
from hsikit.scene import Grid, is_pixel_grid
from hsikit.writers.atomic import MARKER, staged_output
from hsikit.writers.classmap import CLASS_NODATA, SCORE_NODATA

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MODEL_REL = "ml-model"  # the link relation the STAC MLM extension uses for a model


@dataclass(frozen=True)
class MapRecord:
    """What the STAC Item of one map says: its id, files, grid, source and class counts."""

    id: str
    map_path: Path
    confidence_path: Path | None
    grid: Grid
    source: str
    source_item: str | None
    pixels: dict[int, int]


def _footprint(grid: Grid) -> tuple[dict | None, list[float] | None]:
    """The map's outline in WGS 84 (densified edges) and its bbox; None without a CRS."""
    t = grid.transform
    if grid.crs is None or is_pixel_grid(t, grid.crs):
        return None, None
    steps = 4
    ring = []
    for i in range(steps):
        ring.append(t @ (grid.width * i / steps, 0))
    for i in range(steps):
        ring.append(t @ (grid.width, grid.height * i / steps))
    for i in range(steps):
        ring.append(t @ (grid.width * (1 - i / steps), grid.height))
    for i in range(steps):
        ring.append(t @ (0, grid.height * (1 - i / steps)))
    ring.append(ring[0])
    polygon = {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}
    geometry = transform_geom(grid.crs, "EPSG:4326", polygon, precision=7)
    lons = [p[0] for p in geometry["coordinates"][0]]
    lats = [p[1] for p in geometry["coordinates"][0]]
    return dict(geometry), [min(lons), min(lats), max(lons), max(lats)]


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_-]+", "-", name).strip("-") or "class"


def _item(record: MapRecord, folder: Path, table: ClassTable, bundle: Path, when: datetime):
    import pystac
    from pystac.extensions.classification import Classification, ClassificationExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    geometry, bbox = _footprint(record.grid)
    item = pystac.Item(
        id=record.id,
        geometry=geometry,
        bbox=bbox,
        datetime=when,
        properties={"created": when.isoformat(), "hsikit:version": __version__},
    )
    item_folder = folder / record.id

    def asset(path: Path, title: str) -> pystac.Asset:
        href = os.path.relpath(path, item_folder)
        return pystac.Asset(href=href, media_type=COG, roles=["data"], title=title)

    total = sum(record.pixels.values()) or 1
    classes_asset = asset(record.map_path, "land-cover classes")
    item.add_asset("classification", classes_asset)
    ClassificationExtension.ext(classes_asset, add_if_missing=True).classes = [
        Classification.create(value=CLASS_NODATA, description="nodata", name="nodata", nodata=True),
        *(
            Classification.create(
                value=e.value,
                description=e.name,
                name=_slug(e.name),
                color_hint="{:02X}{:02X}{:02X}".format(*e.colour),
                count=record.pixels.get(e.value, 0),
                percentage=100.0 * record.pixels.get(e.value, 0) / total,
            )
            for e in table.entries
        ),
    ]
    resolution = abs(record.grid.transform.a) if geometry is not None else None
    dtype = DataType.UINT8 if table.max_value <= 255 else DataType.UINT16
    RasterExtension.ext(classes_asset, add_if_missing=True).bands = [
        RasterBand.create(nodata=CLASS_NODATA, data_type=dtype, spatial_resolution=resolution)
    ]
    if record.confidence_path is not None:
        confidence = asset(record.confidence_path, "confidence of the mapped class (%)")
        item.add_asset("confidence", confidence)
        RasterExtension.ext(confidence, add_if_missing=True).bands = [
            RasterBand.create(
                nodata=SCORE_NODATA,
                data_type=DataType.UINT8,
                unit="%",
                spatial_resolution=resolution,
            )
        ]
    if geometry is not None and record.grid.crs is not None:
        projection = ProjectionExtension.ext(item, add_if_missing=True)
        code = record.grid.crs.to_epsg()
        if code:
            projection.code = f"EPSG:{code}"
        else:
            projection.wkt2 = record.grid.crs.to_wkt()
        projection.shape = [record.grid.height, record.grid.width]
        projection.transform = list(record.grid.transform)[:6]
    source = record.source_item or record.source
    item.add_link(
        pystac.Link(
            "derived_from",
            os.path.relpath(os.path.abspath(source), item_folder)
            if os.path.exists(source)
            else source,
            media_type="application/json" if record.source_item else None,
            title="source scene",
        )
    )
    item.add_link(
        pystac.Link(
            MODEL_REL,
            os.path.relpath(os.path.abspath(bundle), item_folder),
            media_type="application/octet-stream",
            title="hsikit bundle (safetensors)",
        )
    )
    return item


def write_stac(
    records: list[MapRecord],
    folder: Path,
    table: ClassTable,
    *,
    bundle: Path,
    when: datetime,
    run_id: str,
) -> Path:
    """The run's Collection (``folder/collection.json``) and an Item per map beside it,
    written together, replacing an earlier run's STAC folder only once complete."""
    import pystac

    items = [_item(r, folder, table, bundle, when) for r in records]
    boxes = [i.bbox for i in items if i.bbox is not None]
    bbox = (
        [
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        ]
        if boxes
        else [-180.0, -90.0, 180.0, 90.0]
    )
    collection = pystac.Collection(
        id=run_id,
        description=f"Land-cover maps of {len(items)} scenes made by hsikit {__version__}",
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[when, when]])),
        license="other",
        summaries=pystac.Summaries(
            {
                "classification:classes": [
                    {
                        "value": e.value,
                        "description": e.name,
                        "name": _slug(e.name),
                        "color_hint": "{:02X}{:02X}{:02X}".format(*e.colour),
                    }
                    for e in table.entries
                ]
            }
        ),
    )
    collection.add_items(items)
    with staged_output(folder, what="the run's STAC catalogue") as stage:
        collection.normalize_hrefs(str(stage / folder.name))
        collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        (stage / folder.name / MARKER).touch()
    return folder / "collection.json"
