"""hsikit: hyperspectral and geospatial rasters to maps a GIS analyst can open and trust."""

from hsikit.readers import open_scene
from hsikit.scene import BandInfo, Grid, Scene

__version__ = "0.1.0"
__all__ = ["BandInfo", "Grid", "Scene", "__version__", "open_scene"]
