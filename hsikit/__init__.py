"""hsikit: hyperspectral and geospatial rasters to maps a GIS analyst can open and trust."""

import os

# Memory bounded by design: GDAL's block cache defaults to 5 % of RAM and would grow with the
# scene being streamed. It is read once, when GDAL starts, so it is set before anything opens a
# raster; a GDAL_CACHEMAX set by the user wins.
os.environ.setdefault("GDAL_CACHEMAX", "256")

from hsikit.readers import open_scene
from hsikit.scene import BandInfo, Grid, Scene

__version__ = "0.1.0"
__all__ = ["BandInfo", "Grid", "Scene", "__version__", "open_scene"]
