"""Degradations of hyperspectral cubes — what the restoration heads learn to undo, and what
``hsikit degrade`` writes so anyone can make test inputs.

Every degradation works on data scaled to the scene's *data range* (its robust minimum and
maximum over valid pixels, 0.1 and 99.9 percentiles, found once and recorded): a Gaussian σ of
30 means 30/255 of that range, as the literature states it for 8-bit-normalised cubes. They are
applied in a fixed physical order whatever order they are given in — blur, downsampling, then
the noises (Gaussian, non-i.i.d., Poisson, impulse), stripes, dead lines, lost bands — and
each draws its randomness from the seed, the degradation, the band and the 64-px tile, so the
result is the same whatever window size or band subset a reader asks for. Nodata pixels stay
nodata.

The defaults follow the complex-noise protocol of QRNN3D / HSDT: stripes and dead lines in a
third of the bands over 5–15 % of the columns, stripe offsets uniform in ±0.25 of the range,
impulse noise in a third of the bands at 10–70 %, non-i.i.d. σ per band in 10–70.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

TILE = 64  # randomness is drawn per 64 × 64 tile: the same values whatever the window
RANGE_PERCENTILES = (0.1, 99.9)


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str


class Gaussian(_Step):
    """Additive white Gaussian noise, σ in units of 1/255 of the data range; a (low, high)
    pair draws one σ per cube uniformly (blind noise)."""

    kind: Literal["gaussian"] = "gaussian"
    sigma: float | tuple[float, float] = Field(30.0)

    @model_validator(mode="after")
    def _positive(self) -> Gaussian:
        low, high = _pair(self.sigma)
        if not 0 <= low <= high:
            raise ValueError("sigma must be ≥ 0 (a range low-high with low ≤ high)")
        return self


class NonIID(_Step):
    """Gaussian noise with its own σ per band, drawn uniformly in ``sigma`` (of 255)."""

    kind: Literal["noniid"] = "noniid"
    sigma: tuple[float, float] = (10.0, 70.0)


class Poisson(_Step):
    """Shot noise: counts drawn with ``peak`` photons at the top of the data range."""

    kind: Literal["poisson"] = "poisson"
    peak: float = Field(100.0, gt=0)


class Impulse(_Step):
    """Salt-and-pepper noise in a share of the bands, hitting a share of their pixels."""

    kind: Literal["impulse"] = "impulse"
    bands: float = Field(1 / 3, gt=0, le=1)
    amount: tuple[float, float] = (0.1, 0.7)


class Stripes(_Step):
    """Column stripes (a constant offset down each hit column) in a share of the bands."""

    kind: Literal["stripes"] = "stripes"
    bands: float = Field(1 / 3, gt=0, le=1)
    columns: tuple[float, float] = (0.05, 0.15)
    strength: float = Field(0.25, gt=0)


class DeadLines(_Step):
    """Dead columns (zero) in a share of the bands."""

    kind: Literal["deadlines"] = "deadlines"
    bands: float = Field(1 / 3, gt=0, le=1)
    columns: tuple[float, float] = (0.05, 0.15)


class BandLoss(_Step):
    """A share of the bands lost entirely (zero)."""

    kind: Literal["bandloss"] = "bandloss"
    share: float = Field(0.1, gt=0, lt=1)


class Blur(_Step):
    """Gaussian blur of each band, σ in pixels (a sensor's point-spread function)."""

    kind: Literal["blur"] = "blur"
    sigma: float = Field(1.0, gt=0, le=8)


class Downsample(_Step):
    """Coarser pixels by an integer ``scale``: block means ("area"), or a Gaussian PSF then
    bicubic sampling ("bicubic"). Changes the grid: pixel size × scale, same origin."""

    kind: Literal["down"] = "down"
    scale: Literal[2, 4] = 4
    method: Literal["area", "bicubic"] = "area"


Step = Annotated[
    Gaussian | NonIID | Poisson | Impulse | Stripes | DeadLines | BandLoss | Blur | Downsample,
    Field(discriminator="kind"),
]
ORDER = (
    "blur",
    "down",
    "gaussian",
    "noniid",
    "poisson",
    "impulse",
    "stripes",
    "deadlines",
    "bandloss",
)


class Degradation(BaseModel):
    """A mixture of steps with its seed and data range: everything that makes it repeatable,
    recorded in every output and report."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: list[Step] = Field(min_length=1)
    seed: int = 0
    data_range: tuple[float, float] | None = None  # physical (low, high); None: not fixed yet

    @model_validator(mode="after")
    def _ordered(self) -> Degradation:
        kinds = [s.kind for s in self.steps]
        if len(set(kinds)) != len(kinds):
            raise ValueError("each degradation may be given once")
        object.__setattr__(self, "steps", sorted(self.steps, key=lambda s: ORDER.index(s.kind)))
        if self.data_range is not None and not self.data_range[1] > self.data_range[0]:
            raise ValueError("the data range must be (low, high) with high > low")
        return self

    @property
    def scale(self) -> int:
        """How much coarser the output grid is (1: the same grid)."""
        return next((s.scale for s in self.steps if isinstance(s, Downsample)), 1)

    @property
    def halo(self) -> int:
        """Pixels of context a window needs around it (the blur's reach, the bicubic PSF's)."""
        blur = next((s.sigma for s in self.steps if isinstance(s, Blur)), 0.0)
        psf = 0.0
        down = next((s for s in self.steps if isinstance(s, Downsample)), None)
        if down is not None and down.method == "bicubic":
            psf = _psf_sigma(down.scale)
        return int(np.ceil(4 * max(blur, psf))) + (4 * self.scale if self.scale > 1 else 0)

    def describe(self) -> str:
        return ", ".join(_describe(s) for s in self.steps) + f" (seed {self.seed})"


def _pair(value: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    low, high = value
    return float(low), float(high)


def _psf_sigma(scale: int) -> float:
    """The Gaussian PSF of bicubic downsampling by ``scale`` (σ ≈ 0.5·scale, as for SR)."""
    return 0.5 * scale


def _describe(step: _Step) -> str:
    values = ", ".join(f"{k}={v}" for k, v in step.model_dump().items() if k != "kind")
    return f"{step.kind}({values})"


# -- randomness -------------------------------------------------------------------------------


def _rng(seed: int, kind: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, ORDER.index(kind), *keys])


def _band_draw(seed: int, kind: str, band: int) -> np.random.Generator:
    """Per-band choices (is it hit, its σ, its columns) — the same in every window."""
    return _rng(seed, kind, band, 2**31 - 1)


def _tile_field(seed: int, kind: str, band: int, rows: slice, cols: slice, draw: Any) -> np.ndarray:
    """``draw(rng, shape)`` over the tiles covering ``rows × cols``, cut to the window: each
    tile's values depend only on (seed, kind, band, tile)."""
    out = np.empty((rows.stop - rows.start, cols.stop - cols.start), np.float64)
    for tr in range(rows.start // TILE, (rows.stop - 1) // TILE + 1):
        for tc in range(cols.start // TILE, (cols.stop - 1) // TILE + 1):
            tile = draw(_rng(seed, kind, band, tr, tc), (TILE, TILE))
            r0, r1 = max(rows.start, tr * TILE), min(rows.stop, (tr + 1) * TILE)
            c0, c1 = max(cols.start, tc * TILE), min(cols.stop, (tc + 1) * TILE)
            out[r0 - rows.start : r1 - rows.start, c0 - cols.start : c1 - cols.start] = tile[
                r0 - tr * TILE : r1 - tr * TILE, c0 - tc * TILE : c1 - tc * TILE
            ]
    return out


def _hit(seed: int, kind: str, band: int, share: float) -> bool:
    return bool(_band_draw(seed, kind, band).random() < share)


def _hit_columns(
    seed: int, kind: str, band: int, width: int, share: tuple[float, float]
) -> np.ndarray:
    rng = _band_draw(seed, kind, band)
    rng.random()  # the draw that decided whether the band is hit
    count = int(round(rng.uniform(*share) * width))
    return np.sort(rng.choice(width, size=min(count, width), replace=False))


# -- applying ---------------------------------------------------------------------------------


def apply(
    values: np.ndarray,
    valid: np.ndarray,
    spec: Degradation,
    bands: np.ndarray,
    origin: tuple[int, int],
    band_count: int,
    width: int,
    halo: int = 0,
) -> tuple[Any, Any]:
    """Degrade a block of data already scaled to the data range.

    ``values`` is ``[len(bands), h, w]`` on the input grid, ``halo`` pixels of context on each
    side included; ``origin`` is the (row, col) of the first output pixel on the output grid,
    whose ``width`` columns and ``band_count`` bands fix stripes and lost bands. Returns the
    output block (halo cut, on the output grid) and its valid mask.
    """
    values = np.where(valid, values, 0.0).astype(np.float64)
    for step in spec.steps:
        if isinstance(step, Blur):
            values = _masked_blur(values, valid, step.sigma)
    if halo:
        values, valid = values[:, halo:-halo, halo:-halo], valid[halo:-halo, halo:-halo]
    down = next((s for s in spec.steps if isinstance(s, Downsample)), None)
    if down is not None:
        values, valid = _downsample(values, valid, down)
    rows = slice(origin[0], origin[0] + values.shape[1])
    cols = slice(origin[1], origin[1] + values.shape[2])
    out = np.empty_like(values)
    for i, band in enumerate(int(b) for b in bands):
        out[i] = _degrade_band(values[i], spec, band, rows, cols, band_count, width)
    return out, valid


def _masked_blur(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over valid pixels only (nodata neither contributes nor darkens edges)."""
    from scipy.ndimage import gaussian_filter

    weight = gaussian_filter(valid.astype(np.float64), sigma, mode="reflect")
    out = np.empty_like(values)
    for i, band in enumerate(values):
        out[i] = gaussian_filter(band * valid, sigma, mode="reflect") / np.maximum(weight, 1e-12)
    return out


def _downsample(values: np.ndarray, valid: np.ndarray, step: Downsample) -> tuple[Any, Any]:
    """Blocks of ``scale × scale`` input pixels to one output pixel; an output pixel is valid
    where its whole block is."""
    s = step.scale
    c, h, w = values.shape
    h, w = h // s * s, w // s * s
    values, valid = values[:, :h, :w], valid[:h, :w]
    blocks_valid = valid.reshape(h // s, s, w // s, s).all(axis=(1, 3))
    if step.method == "area":
        return values.reshape(c, h // s, s, w // s, s).mean(axis=(2, 4)), blocks_valid
    from scipy.ndimage import gaussian_filter, map_coordinates

    centres_r = (np.arange(h // s) * s + (s - 1) / 2)[:, None].repeat(w // s, 1)
    centres_c = (np.arange(w // s) * s + (s - 1) / 2)[None, :].repeat(h // s, 0)
    out = np.empty((c, h // s, w // s))
    for i, band in enumerate(values):
        blurred = gaussian_filter(band, _psf_sigma(s), mode="reflect")
        out[i] = map_coordinates(blurred, [centres_r, centres_c], order=3, mode="reflect")
    return out, blocks_valid


def _degrade_band(
    x: np.ndarray,
    spec: Degradation,
    band: int,
    rows: slice,
    cols: slice,
    band_count: int,
    width: int,
) -> np.ndarray:
    seed = spec.seed
    for step in spec.steps:
        kind = step.kind
        if isinstance(step, Gaussian):
            low, high = _pair(step.sigma)
            sigma = low if low == high else _rng(seed, kind).uniform(low, high)
            x = x + sigma / 255.0 * _tile_field(
                seed, kind, band, rows, cols, lambda r, s: r.standard_normal(s)
            )
        elif isinstance(step, NonIID):
            sigma = _band_draw(seed, kind, band).uniform(*step.sigma)
            x = x + sigma / 255.0 * _tile_field(
                seed, kind, band, rows, cols, lambda r, s: r.standard_normal(s)
            )
        elif isinstance(step, Poisson):
            from scipy.stats import poisson

            u = _tile_field(seed, kind, band, rows, cols, lambda r, s: r.random(s))
            x = poisson.ppf(u, np.clip(x, 0.0, None) * step.peak) / step.peak
        elif isinstance(step, Impulse):
            if _hit(seed, kind, band, step.bands):
                rng = _band_draw(seed, kind, band)
                rng.random()
                amount = rng.uniform(*step.amount)
                u = _tile_field(seed, kind, band, rows, cols, lambda r, s: r.random(s))
                x = np.where(u < amount / 2, 0.0, np.where(u < amount, 1.0, x))
        elif isinstance(step, Stripes):
            if _hit(seed, kind, band, step.bands):
                hit = _hit_columns(seed, kind, band, width, step.columns)
                offsets = _band_draw(seed, kind, band + band_count).uniform(
                    -step.strength, step.strength, size=hit.size
                )
                inside = (hit >= cols.start) & (hit < cols.stop)
                x = x.copy()
                x[:, hit[inside] - cols.start] += offsets[inside]
        elif isinstance(step, DeadLines):
            if _hit(seed, kind, band, step.bands):
                hit = _hit_columns(seed, kind, band, width, step.columns)
                inside = hit[(hit >= cols.start) & (hit < cols.stop)]
                x = x.copy()
                x[:, inside - cols.start] = 0.0
        elif isinstance(step, BandLoss):
            lost = _rng(seed, kind).permutation(band_count)[
                : max(1, round(step.share * band_count))
            ]
            if band in set(lost.tolist()):
                x = np.zeros_like(x)
    return x


# -- scenes -----------------------------------------------------------------------------------


def data_range(scene: Any) -> tuple[float, float]:
    """The scene's robust value range over valid pixels of its good bands (0.1 and 99.9
    percentiles, from sampled windows on large scenes): what σ = 30/255 is relative to."""
    from hsikit.info import sample_windows
    from hsikit.preprocess import good_bands

    bands = good_bands(scene)
    found = []
    for window in sample_windows(scene):
        values, valid = scene.read(window, bands=bands)
        found.append(values[:, valid].ravel())
    values = np.concatenate(found) if found else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size == 0:
        from hsikit.errors import InputError

        raise InputError(
            scene.path,
            "no valid pixel to measure the data range from",
            "check the scene's nodata value and its bands",
        )
    low, high = np.percentile(values, RANGE_PERCENTILES)
    if not high > low:
        high = low + 1.0
    return float(low), float(high)


def degraded_scene(scene: Any, spec: Degradation) -> tuple[Any, Degradation]:
    """``scene`` degraded by ``spec``, lazily (read window by window like any scene), and the
    spec with its data range fixed. The output keeps the band metadata (values are physical
    float32: scale 1, offset 0) and the grid — coarser by the downsampling scale."""
    from affine import Affine

    from hsikit.scene import BandInfo, Scene

    low, high = spec.data_range or data_range(scene)
    spec = spec.model_copy(update={"data_range": (low, high)})
    s = spec.scale
    height, width = scene.height // s, scene.width // s
    if min(height, width) < 1:
        from hsikit.errors import InputError

        raise InputError(
            scene.path,
            f"the scene ({scene.height} × {scene.width}) is smaller than one pixel at scale {s}",
            "choose a smaller scale",
        )
    halo = spec.halo
    nodata = scene.nodata if scene.nodata is not None and np.isfinite(scene.nodata) else np.nan

    def read(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        r0, r1 = rows.start, rows.stop
        c0, c1 = cols.start, cols.stop
        block, valid = _input_block(
            scene, bands, (r0 * s - halo, r1 * s + halo), (c0 * s - halo, c1 * s + halo)
        )
        scaled = (block - low) / (high - low)
        out, out_valid = apply(scaled, valid, spec, bands, (r0, c0), scene.count, width, halo)
        physical = (out * (high - low) + low).astype(np.float32)
        physical[:, ~out_valid] = nodata
        return physical[:, :: rows.step or 1, :: cols.step or 1]

    info = scene.band_info()
    bands = BandInfo.build(
        scene.count,
        wavelength=info.wavelength,
        fwhm=info.fwhm,
        bad_band=info.bad_band,
        name=list(info.name),
        source=info.source,
    )
    degraded = Scene.from_reader(
        read,
        shape=(scene.count, height, width),
        dtype="float32",
        bands=bands,
        path=scene.path,
        format=f"{scene.format}, degraded",
        crs=scene.crs,
        transform=scene.transform @ Affine.scale(s),
        nodata=float(nodata),
        notes=[*scene.notes, f"degraded: {spec.describe()}"],
    )
    return degraded, spec


def _input_block(
    scene: Any, bands: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Physical values and validity over ``rows × cols`` of the input grid; outside the scene
    the edge is reflected (and counts as valid where its mirror is)."""
    from rasterio.windows import Window

    r0, r1 = max(rows[0], 0), min(rows[1], scene.height)
    c0, c1 = max(cols[0], 0), min(cols[1], scene.width)
    values, valid = scene.read(Window(c0, r0, c1 - c0, r1 - r0), bands=bands)
    pad = ((r0 - rows[0], rows[1] - r1), (c0 - cols[0], cols[1] - c1))
    widest = max(p for pair in pad for p in pair)
    if widest:
        mode: Any = "reflect" if min(values.shape[1:]) > widest else "edge"
        values = np.pad(values, ((0, 0), *pad), mode=mode)
        valid = np.pad(valid, pad, mode=mode)
    return values.astype(np.float64), valid


# -- the command line -------------------------------------------------------------------------


def _numbers(text: str, option: str) -> tuple[float, float]:
    """``"30"`` → (30, 30); ``"10-70"`` → (10, 70)."""
    from hsikit.errors import InputError

    try:
        parts = [float(p) for p in text.split("-")] if text else []
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise InputError(
            None,
            f"{option} '{text}' is not a number or a range low-high",
            f"write e.g. {option} 30 or {option} 10-70",
        )
    return parts[0], parts[-1]


def spec_from_options(
    *,
    noise: str | None = None,
    stripes: float | None = None,
    dead_lines: float | None = None,
    impulse: str | None = None,
    blur: float | None = None,
    band_loss: float | None = None,
    downsample: str | None = None,
    seed: int = 0,
    data_range: str | None = None,
) -> Degradation:
    """The degradation the ``hsikit degrade`` options describe; a malformed one is refused
    with the option named."""
    from pydantic import ValidationError

    from hsikit.errors import InputError, validation_sentence

    steps: list[dict[str, Any]] = []
    if noise is not None:
        kind, _, amount = noise.partition(":")
        if kind not in ("gaussian", "noniid", "poisson"):
            raise InputError(
                None,
                f"--noise '{noise}' names no noise hsikit knows",
                "use gaussian:SIGMA, gaussian:LOW-HIGH, noniid:LOW-HIGH or poisson:PEAK",
            )
        low, high = _numbers(amount, "--noise") if amount else (30.0, 30.0)
        if kind == "poisson":
            steps.append({"kind": kind, "peak": low})
        else:
            sigma: Any = low if low == high and kind == "gaussian" else (low, high)
            steps.append({"kind": kind, "sigma": sigma})
    if stripes is not None:
        steps.append({"kind": "stripes", "bands": stripes})
    if dead_lines is not None:
        steps.append({"kind": "deadlines", "bands": dead_lines})
    if impulse is not None:
        steps.append({"kind": "impulse", "amount": _numbers(impulse, "--impulse")})
    if blur is not None:
        steps.append({"kind": "blur", "sigma": blur})
    if band_loss is not None:
        steps.append({"kind": "bandloss", "share": band_loss})
    if downsample is not None:
        scale, _, method = downsample.partition(":")
        steps.append(
            {
                "kind": "down",
                "scale": int(scale) if scale.isdigit() else scale,
                "method": method or "area",
            }
        )
    if not steps:
        raise InputError(None, "no degradation given", "add e.g. --noise gaussian:30")
    fixed = _numbers(data_range, "--range") if data_range is not None else None
    try:
        return Degradation.model_validate({"steps": steps, "seed": seed, "data_range": fixed})
    except ValidationError as exc:
        raise InputError(
            None, f"invalid degradation: {validation_sentence(exc)}", "see 'hsikit degrade --help'"
        ) from exc
