"""Ground area of map pixels, for the area statistics of a land-cover map.

A projected CRS has one pixel area everywhere (the transform's determinant in the CRS's linear
unit, in m²). In a geographic CRS the area of a cell shrinks towards the poles: each row's cells
are zones of the CRS's own ellipsoid between two parallels, measured exactly through the
authalic latitude. Rotated geographic grids and grids without a CRS are refused with the reason,
since no honest single number exists for them.
"""

from __future__ import annotations

import math

import numpy as np

from hsikit.scene import Grid, is_pixel_grid

SQUARE_METRES_PER_HECTARE = 10_000.0


class AreaUnknown(ValueError):
    """The grid's pixels have no ground area hsikit can state (the message says why)."""


def _authalic_q(latitude_rad: np.ndarray, eccentricity: float) -> np.ndarray:
    """The ``q`` function of the authalic latitude (Snyder, Map Projections, eq. 3-12)."""
    s = np.sin(latitude_rad)
    if eccentricity == 0.0:
        return 2.0 * s
    e = eccentricity
    return (1.0 - e * e) * (
        s / (1.0 - (e * s) ** 2) - np.log((1.0 - e * s) / (1.0 + e * s)) / (2.0 * e)
    )


def row_pixel_areas(grid: Grid) -> np.ndarray:
    """``[height]`` area of one pixel in each row (m²). :class:`AreaUnknown` where the grid has
    no CRS or is a rotated geographic grid."""
    crs, t = grid.crs, grid.transform
    if crs is None or is_pixel_grid(t, crs):
        raise AreaUnknown("the map has no CRS, so its pixels have no ground area")
    if crs.is_geographic:
        if t.b != 0.0 or t.d != 0.0:
            raise AreaUnknown("the map's geographic grid is rotated; reproject it first")
        from pyproj import CRS as ProjCRS

        geographic = ProjCRS.from_wkt(crs.to_wkt())
        unit = (geographic.axis_info[0].unit_name or "").lower() if geographic.axis_info else ""
        if not unit.startswith("degree"):
            raise AreaUnknown(f"the map's geographic CRS counts angles in {unit}, not degrees")
        ellipsoid = geographic.ellipsoid
        if ellipsoid is None:
            raise AreaUnknown("the map's geographic CRS names no ellipsoid")
        a = ellipsoid.semi_major_metre
        flattening = 0.0 if not ellipsoid.inverse_flattening else 1.0 / ellipsoid.inverse_flattening
        eccentricity = math.sqrt(flattening * (2.0 - flattening))
        edges = np.clip(t.f + t.e * np.arange(grid.height + 1), -90.0, 90.0)
        q = _authalic_q(np.radians(edges), eccentricity)
        return np.abs(np.diff(q)) * a * a / 2.0 * math.radians(abs(t.a))
    factor = crs.linear_units_factor[1]
    return np.full(grid.height, abs(t.a * t.e - t.b * t.d) * factor * factor)
