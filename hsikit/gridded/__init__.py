"""Gridded geophysical fields (ERA5 and similar): reading them as samples, coarsening,
baselines, downscaling with a super-resolution head and writing CF NetCDF / Zarr."""
