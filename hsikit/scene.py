"""Scene: the one representation of a raster cube, lazily backed, with its grid and spectral
metadata.

A reader supplies a *window reader* — a function that returns raw values for a band list and a
row/column slice — plus the grid and band metadata. The scene wraps it as an ``xarray.DataArray``
with dims ``("band", "y", "x")`` whose values are only read when indexed, so opening a 50 GB file
costs nothing and ``scene.read(window)`` touches only that window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from numpy.typing import ArrayLike
from rasterio.crs import CRS
from rasterio.windows import Window
from xarray.backends import BackendArray
from xarray.core import indexing
from xarray.indexes import RangeIndex

from hsikit.errors import FormatError, HsikitError, error_reason

#: Per-band coordinates of a gridded scene: the units and long name of each band's variable.
UNITS_COORD, LONG_NAME_COORD = "units", "long_name"
#: Scene attribute: what the bands are a sample of, ``{"time": ISO 8601, "member": 3}``.
SAMPLE_ATTR = "gridded_sample"

#: ``read(bands, rows, cols) -> ndarray[len(bands), n_rows, n_cols]`` in the file's dtype.
WindowReader = Callable[[np.ndarray, slice, slice], np.ndarray]


#: The grid of a scene without georeferencing: one unit per pixel, north-up (row 0 at the top),
#: as GIS clients and the PNG quicklooks show it. GDAL's default (0, 1, 0, 0, 0, 1) is south-up.
PIXEL_GRID = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
#: Ground truth is counted in row bands of about this many values, so memory stays bounded.
BLOCK_VALUES = 2**24


def is_pixel_grid(transform: Affine, crs: CRS | None) -> bool:
    return crs is None and (transform.almost_equals(PIXEL_GRID) or transform.is_identity)


class LazyCube(BackendArray):
    """Exposes a window reader to xarray; xarray slices it lazily and calls us with plain slices.

    Whatever a reader raises while reading (a corrupt chunk, a truncated file) becomes the
    file's one sentence: a lazy read must fail as clearly as an open."""

    def __init__(
        self, shape: tuple[int, int, int], dtype: np.dtype, reader: WindowReader, path: str
    ) -> None:
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._reader = reader
        self._path = path

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self._read
        )

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        band_key, row_key, col_key = key
        bands = np.arange(self.shape[0])[band_key]
        squeeze = [axis for axis, k in enumerate(key) if isinstance(k, (int, np.integer))]
        rows = _as_slice(row_key, self.shape[1])
        cols = _as_slice(col_key, self.shape[2])
        try:
            out = self._reader(np.atleast_1d(bands), rows, cols)
        except HsikitError:
            raise
        except MemoryError as exc:
            raise FormatError(
                self._path,
                f"reading rows {rows.start}–{rows.stop} needs more memory than this machine has",
                "use smaller windows",
            ) from exc
        except Exception as exc:  # any library's error on damaged data
            raise FormatError(
                self._path,
                f"reading rows {rows.start}–{rows.stop} failed ({error_reason(exc)})",
                "the file is truncated or corrupt; re-download or re-export it",
            ) from exc
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out


def _as_slice(key: Any, size: int) -> slice:
    if isinstance(key, (int, np.integer)):
        return slice(int(key), int(key) + 1, 1)
    start, stop, step = key.indices(size)
    if step < 0:  # xarray passes reversed slices through; read forward, callers flip
        raise IndexError("reversed slices are not supported on lazy scenes")
    return slice(start, stop, step)


@dataclass
class BandInfo:
    """Per-band spectral metadata; every array has one entry per band."""

    wavelength: np.ndarray
    fwhm: np.ndarray
    bad_band: np.ndarray
    name: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    source: str = "none"

    @classmethod
    def build(
        cls,
        count: int,
        *,
        wavelength: ArrayLike | None = None,
        fwhm: ArrayLike | None = None,
        bad_band: ArrayLike | None = None,
        name: Sequence[str] | None = None,
        scale: ArrayLike | None = None,
        offset: ArrayLike | None = None,
        source: str = "none",
    ) -> BandInfo:
        """Fill what a format does not provide: NaN wavelengths, no bad bands, names ``band_1``…"""

        def floats(values: Any, default: float) -> np.ndarray:
            if values is None:
                return np.full(count, default, dtype="float64")
            arr = np.broadcast_to(np.asarray(values, dtype="float64"), (count,))
            return arr.copy()

        names = [f"band_{i + 1}" for i in range(count)] if name is None else [str(n) for n in name]
        info = cls(
            wavelength=floats(wavelength, np.nan),
            fwhm=floats(fwhm, np.nan),
            bad_band=np.zeros(count, bool) if bad_band is None else np.asarray(bad_band, bool),
            name=np.asarray(names, dtype=object),
            scale=floats(scale, 1.0),
            offset=floats(offset, 0.0),
            source=source,
        )
        for label, arr in vars(info).items():
            if isinstance(arr, np.ndarray) and arr.shape != (count,):
                raise ValueError(f"{label} has {arr.shape[0]} entries for {count} bands")
        return info


@dataclass(frozen=True)
class Grid:
    """Where pixels are: what every output copies from its input so georeferencing stays exact."""

    width: int
    height: int
    transform: Affine
    crs: CRS | None = None


@dataclass
class Scene:
    """A lazily read cube ``(band, y, x)`` with CRS, transform, nodata and band metadata."""

    data: xr.DataArray
    path: str
    format: str
    notes: list[str] = field(default_factory=list)
    #: Ground truth that came with the cube (``.mat`` files, catalog datasets), else None:
    #: an array, or a ``(rows, cols) -> array`` reader that is only called when it is used.
    truth: np.ndarray | Callable[[slice, slice], np.ndarray] | None = None
    #: Optional native validity mask reader (GDAL mask band); ``(rows, cols) -> bool[h, w]``.
    mask_reader: Callable[[slice, slice], np.ndarray] | None = None
    #: What the reader had to skip or guess; the CLI prints each (never silently partial).
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_reader(
        cls,
        reader: WindowReader,
        *,
        shape: tuple[int, int, int],
        dtype: Any,
        bands: BandInfo,
        path: str,
        format: str,
        crs: CRS | None = None,
        transform: Affine | None = None,
        nodata: float | None = None,
        notes: list[str] | None = None,
        ground_truth: np.ndarray | Callable[[slice, slice], np.ndarray] | None = None,
        mask_reader: Callable[[slice, slice], np.ndarray] | None = None,
        warnings: list[str] | None = None,
    ) -> Scene:
        """Wrap a window reader; no pixel is read here. Without georeferencing the grid is
        :data:`PIXEL_GRID`."""
        if min(shape) <= 0:
            raise FormatError(
                path,
                f"the raster is empty (bands × rows × cols = {shape})",
                "check that the file was written completely",
            )
        if bands.wavelength.size != shape[0]:
            raise FormatError(
                path,
                f"the band metadata describe {bands.wavelength.size} bands "
                f"but the image has {shape[0]}",
                "the file is inconsistent; re-export it",
            )
        lazy = indexing.LazilyIndexedArray(LazyCube(shape, np.dtype(dtype), reader, path))
        data = xr.DataArray(xr.Variable(("band", "y", "x"), lazy), dims=("band", "y", "x"))
        data = data.assign_coords(
            band=np.arange(1, shape[0] + 1),
            wavelength=("band", bands.wavelength),
            fwhm=("band", bands.fwhm),
            bad_band=("band", bands.bad_band),
            name=("band", bands.name),
            scale=("band", bands.scale),
            offset=("band", bands.offset),
        )
        data.attrs["spectral_metadata_source"] = bands.source
        if transform is None or is_pixel_grid(transform, crs):
            transform = PIXEL_GRID
        if transform.b == 0 and transform.d == 0:  # rectilinear: lazy pixel-centre coordinates
            data = data.assign_coords(
                xr.Coordinates.from_xindex(_centres("x", shape[2], transform.c, transform.a))
            )
            data = data.assign_coords(
                xr.Coordinates.from_xindex(_centres("y", shape[1], transform.f, transform.e))
            )
        data = data.rio.write_transform(transform)
        if crs is not None:
            data = data.rio.write_crs(crs)
        if nodata is not None:
            data = data.rio.write_nodata(nodata, encoded=False)
        return cls(
            data=data,
            path=path,
            format=format,
            notes=list(notes or []),
            truth=ground_truth,
            mask_reader=mask_reader,
            warnings=list(warnings or []),
        )

    # -- ground truth -----------------------------------------------------------------------
    @property
    def ground_truth(self) -> np.ndarray | None:
        """The whole ground-truth plane (read on first use), or None."""
        if callable(self.truth):
            self.truth = self._read_truth(slice(None), slice(None))
        return self.truth

    @ground_truth.setter
    def ground_truth(self, values: np.ndarray | None) -> None:
        self.truth = values

    @property
    def has_ground_truth(self) -> bool:
        return self.truth is not None

    def _read_truth(self, rows: slice, cols: slice) -> np.ndarray:
        reader = self.truth
        if not callable(reader):
            return np.asarray(reader)[rows, cols]
        try:
            return np.asarray(reader(rows, cols))
        except HsikitError:
            raise
        except Exception as exc:
            raise FormatError(
                self.path,
                f"reading the ground truth failed ({error_reason(exc)})",
                "the file is truncated or corrupt; re-download or re-export it",
            ) from exc

    def truth_counts(self) -> dict[int, int]:
        """Labelled pixels per class value, read in row bands (memory bounded by the band)."""
        if self.truth is None:
            return {}
        height, width = self._truth_shape()
        step = max(1, BLOCK_VALUES // max(width, 1))
        counts: dict[int, int] = {}
        for row in range(0, height, step):
            block = self._read_truth(slice(row, min(height, row + step)), slice(None))
            values, found = np.unique(block[block > 0], return_counts=True)
            for value, count in zip(values.tolist(), found.tolist()):
                counts[int(value)] = counts.get(int(value), 0) + int(count)
        return counts

    def _truth_shape(self) -> tuple[int, int]:
        if callable(self.truth):
            return self.height, self.width
        rows, cols = np.shape(np.asarray(self.truth))
        return rows, cols

    # -- grid -------------------------------------------------------------------------------
    @property
    def crs(self) -> CRS | None:
        return self.data.rio.crs

    @property
    def transform(self) -> Affine:
        return self.data.rio.transform(recalc=False)

    @property
    def count(self) -> int:
        return int(self.data.sizes["band"])

    @property
    def height(self) -> int:
        return int(self.data.sizes["y"])

    @property
    def width(self) -> int:
        return int(self.data.sizes["x"])

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nodata(self) -> float | None:
        value = self.data.rio.nodata
        return None if value is None else float(value)

    @property
    def grid(self) -> Grid:
        return Grid(self.width, self.height, self.transform, self.crs)

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None

    # -- spectral metadata ------------------------------------------------------------------
    def band_values(self, coord: str) -> np.ndarray:
        """One band coordinate (``wavelength``, ``fwhm``, ``bad_band``, ``name``, ``scale``,
        ``offset``)."""
        return self.data.coords[coord].values

    def band_texts(self, coord: str) -> list[str] | None:
        """Per-band units or long names (:data:`UNITS_COORD` …) of a scene whose reader knows
        them (gridded variables); None otherwise."""
        if coord not in self.data.coords:
            return None
        return [str(v) for v in self.band_values(coord)]

    def with_variables(
        self,
        units: Sequence[str] | None = None,
        long_names: Sequence[str] | None = None,
        sample: dict[str, Any] | None = None,
    ) -> Scene:
        """The same pixels with what gridded bands measure (units, long names) and are a
        sample of (time, member): what a reader found, so that every output keeps it."""
        data = self.data
        for coord, texts in ((UNITS_COORD, units), (LONG_NAME_COORD, long_names)):
            if texts is not None:
                data = data.assign_coords({coord: ("band", np.asarray(list(texts), object))})
        if sample:
            data = data.assign_attrs({SAMPLE_ATTR: dict(sample)})
        return replace(self, data=data)

    @property
    def sample(self) -> dict[str, Any]:
        """The time and member a gridded scene's bands are of (empty for other scenes)."""
        return dict(self.data.attrs.get(SAMPLE_ATTR, {}))

    @property
    def wavelengths(self) -> np.ndarray:
        return self.band_values("wavelength")

    @property
    def bad_bands(self) -> np.ndarray:
        return self.band_values("bad_band")

    def band_info(self) -> BandInfo:
        fields = ("wavelength", "fwhm", "bad_band", "name", "scale", "offset")
        return BandInfo(
            **{c: self.band_values(c).copy() for c in fields},
            source=str(self.data.attrs.get("spectral_metadata_source", "none")),
        )

    def with_band_info(self, info: BandInfo) -> Scene:
        """The same pixels with other band metadata (e.g. from a catalog card)."""
        data = self.data.assign_coords(
            wavelength=("band", info.wavelength),
            fwhm=("band", info.fwhm),
            bad_band=("band", info.bad_band),
            name=("band", info.name),
            scale=("band", info.scale),
            offset=("band", info.offset),
        )
        data.attrs["spectral_metadata_source"] = info.source
        return replace(self, data=data)

    def nearest_bands(self, wavelengths_nm: Sequence[float]) -> list[int]:
        """Zero-based indices of the good bands closest to each wavelength (for quicklooks)."""
        wl = np.where(self.bad_bands, np.nan, self.wavelengths)
        if np.all(np.isnan(wl)):
            raise ValueError("the scene has no band wavelengths")
        return [int(np.nanargmin(np.abs(wl - target))) for target in wavelengths_nm]

    # -- pixels -----------------------------------------------------------------------------
    def full_window(self) -> Window:
        return Window(0, 0, self.width, self.height)

    def read_raw(
        self, window: Window | None = None, bands: ArrayLike | None = None, step: int = 1
    ) -> np.ndarray:
        """Values as stored (no scaling), for the window and zero-based bands given."""
        rows, cols = _window_slices(window or self.full_window(), step)
        band_index = slice(None) if bands is None else np.asarray(bands, int).tolist()
        return np.asarray(self.data[band_index, rows, cols].values)

    def read(
        self, window: Window | None = None, bands: ArrayLike | None = None, step: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Physical values ``float32 [bands, h, w]`` and the valid-pixel mask ``bool [h, w]``.

        Among the requested good (not bad-flagged) bands, a pixel is invalid where every one
        equals nodata (GDAL's dataset-mask rule) or any one is not finite; the format's own mask
        (GDAL mask band) applies too. Invalid pixels are
        set to NaN so that no later step can mistake them for data.
        """
        window = window or self.full_window()
        band_ids = np.arange(self.count) if bands is None else np.asarray(bands, int).ravel()
        raw = self.read_raw(window, None if bands is None else band_ids, step)
        good = ~self.bad_bands[band_ids]
        valid = self._valid(raw[good] if good.any() else raw, window, step)
        scale = self.band_values("scale")[band_ids].astype("float32")[:, None, None]
        offset = self.band_values("offset")[band_ids].astype("float32")[:, None, None]
        values = raw.astype("float32") * scale + offset
        values[:, ~valid] = np.nan
        return values, valid

    def nodata_in_bands(self, values: np.ndarray, bands: ArrayLike) -> np.ndarray:
        """``bool [k, h, w]``: where the good bands among ``bands`` hold the nodata value in
        ``values`` (as :meth:`read` gives them) at valid pixels. Such a pixel is still valid
        (GDAL's rule: invalid only where every band is nodata), but those bands are not data."""
        band_ids = np.asarray(bands, int).ravel()
        nodata, good = self.nodata, ~self.bad_bands[band_ids]
        gaps = np.zeros(values.shape, bool)
        if nodata is None or np.isnan(nodata) or not good.any():
            return gaps
        scale = self.band_values("scale")[band_ids].astype("float32")
        offset = self.band_values("offset")[band_ids].astype("float32")
        physical = np.float32(nodata) * scale + offset  # what read() made of a nodata value
        gaps[good] = values[good] == physical[good][:, None, None]
        return gaps

    def _valid(self, raw_good: np.ndarray, window: Window, step: int) -> np.ndarray:
        if np.issubdtype(raw_good.dtype, np.floating):
            valid = np.isfinite(raw_good).all(axis=0)
        else:
            valid = np.ones(raw_good.shape[1:], bool)
        nodata = self.nodata
        if nodata is not None:
            same = np.isnan(raw_good) if np.isnan(nodata) else raw_good == nodata
            valid &= ~same.all(axis=0)
        if self.mask_reader is not None:
            rows, cols = _window_slices(window, step)
            valid &= self.mask_reader(rows, cols)
        return valid

    def windows(self, size: int = 512) -> Iterator[Window]:
        """Row-major square windows covering the scene (edge windows are clipped)."""
        for row in range(0, self.height, size):
            for col in range(0, self.width, size):
                yield Window(col, row, min(size, self.width - col), min(size, self.height - row))


def _centres(dim: str, size: int, origin: float, step: float) -> RangeIndex:
    """Pixel-centre coordinates as a range (no per-pixel array, whatever the size), built
    from the pixel count: a float step (0.0003°) would make ``arange`` gain a coordinate."""
    start = origin + 0.5 * step
    return RangeIndex.linspace(start, start + size * step, size, endpoint=False, dim=dim)


def _window_slices(window: Window, step: int = 1) -> tuple[slice, slice]:
    (r0, r1), (c0, c1) = window.toranges()
    return slice(int(r0), int(r1), step), slice(int(c0), int(c1), step)
