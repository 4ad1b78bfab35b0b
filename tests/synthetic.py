"""Small synthetic georeferenced rasters and products, generated in tmp_path by the tests."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

UTM = CRS.from_epsg(32633)
UTM_TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_000_020.0)


def cube(
    bands: int = 6, rows: int = 40, cols: int = 50, dtype: str = "int16", seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 3000, size=(bands, rows, cols)).astype(dtype)


def wavelengths(bands: int) -> np.ndarray:
    return np.linspace(420.0, 2400.0, bands)


def write_geotiff(
    path: Path,
    data: np.ndarray,
    *,
    crs: CRS | None = UTM,
    transform: Affine = UTM_TRANSFORM,
    nodata: float | None = -9999,
    band_wavelengths: np.ndarray | None = None,
    tiled: bool = False,
) -> Path:
    profile = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype.name,
        "transform": transform,
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    if tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if band_wavelengths is not None:
            for i, wl in enumerate(band_wavelengths, start=1):
                dst.update_tags(
                    i, wavelength=f"{wl / 1000:.6f}", wavelength_units="Micrometers", fwhm="0.010"
                )
    return path


def write_envi(
    folder: Path,
    data: np.ndarray,
    *,
    interleave: str = "bsq",
    suffix: str = ".img",
    big_endian: bool = False,
    map_info: str | None = None,
    extra: dict[str, str] | None = None,
    name: str = "scene",
) -> tuple[Path, Path]:
    """Hand-written header + raw data, so the tests do not depend on the writer under test."""
    bands, rows, cols = data.shape
    order = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}[interleave]
    dtype = data.dtype.newbyteorder(">" if big_endian else "<")
    raw = np.ascontiguousarray(data.transpose(order)).astype(dtype)
    data_path = folder / f"{name}{suffix}"
    raw.tofile(data_path)
    codes = {"uint8": 1, "int16": 2, "int32": 3, "float32": 4, "float64": 5, "uint16": 12}
    lines = [
        "ENVI",
        f"samples = {cols}",
        f"lines = {rows}",
        f"bands = {bands}",
        "header offset = 0",
        "file type = ENVI Standard",
        f"data type = {codes[data.dtype.name]}",
        f"interleave = {interleave}",
        f"byte order = {1 if big_endian else 0}",
    ]
    if map_info:
        lines.append(f"map info = {{{map_info}}}")
    for key, value in (extra or {}).items():
        lines.append(f"{key} = {value}")
    header = folder / f"{name}.hdr"
    header.write_text("\n".join(lines) + "\n")
    return header, data_path


def enmap_product(
    folder: Path,
    *,
    bands: int = 8,
    rows: int = 30,
    cols: int = 20,
    zip_it: bool = False,
    xml_override: bytes | None = None,
) -> tuple[Path, dict]:
    """A product with EnMAP's naming and METADATA.XML layout (level_X/specific/…)."""
    name = "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z"
    product = folder / name
    product.mkdir()
    rng = np.random.default_rng(3)
    data = rng.integers(0, 10000, size=(bands, rows, cols)).astype("int16")
    data[:, 0, :3] = -32768  # fill value on a few pixels
    wl = np.linspace(418.0, 2445.0, bands)
    fwhm = np.linspace(6.5, 10.0, bands)
    gains = np.full(bands, 1e-4)
    offsets = np.zeros(bands)
    vnir = list(range(1, bands // 2 + 1))
    swir = list(range(bands // 2 + 1, bands - 1))  # last two bands in neither list: bad
    write_geotiff(
        product / f"{name}-SPECTRAL_IMAGE.TIF",
        data,
        nodata=None,
        transform=Affine(30, 0, 360000, 0, -30, 5810000),
    )
    write_geotiff(
        product / f"{name}-QL_PIXELMASK.TIF",
        np.zeros((1, rows, cols), "uint8"),
        nodata=None,
        transform=Affine(30, 0, 360000, 0, -30, 5810000),
    )
    root = ET.Element("level_X")
    base = ET.SubElement(root, "base")
    ET.SubElement(base, "name").text = name
    specific = ET.SubElement(root, "specific")
    ET.SubElement(specific, "code").text = "L2A"
    ET.SubElement(specific, "numberOfVNIRBands").text = str(len(vnir))
    ET.SubElement(specific, "numberOfSWIRBands").text = str(len(swir))
    ET.SubElement(specific, "widthOfOrthoScene").text = str(cols)
    ET.SubElement(specific, "heightOfOrthoScene").text = str(rows)
    for detector, channels in (("vnirProductQuality", vnir), ("swirProductQuality", swir)):
        node = ET.SubElement(specific, detector)
        ET.SubElement(node, "numChannelsExpected").text = str(len(channels))
        ET.SubElement(node, "expectedChannelsList").text = ",".join(map(str, channels))
    chars = ET.SubElement(specific, "bandCharacterisation")
    for i in range(bands):
        band = ET.SubElement(chars, "bandID", number=str(i + 1))
        for tag, value in (
            ("wavelengthCenterOfBand", wl[i]),
            ("FWHMOfBand", fwhm[i]),
            ("GainOfBand", gains[i]),
            ("OffsetOfBand", offsets[i]),
        ):
            ET.SubElement(band, tag).text = f"{value:.6g}"
    xml = xml_override or ET.tostring(root, xml_declaration=True, encoding="UTF-8")
    (product / f"{name}-METADATA.XML").write_bytes(xml)
    truth = {
        "data": data,
        "wavelength": wl,
        "fwhm": fwhm,
        "gain": gains,
        "bad": np.array([i + 1 not in vnir + swir for i in range(bands)]),
    }
    if not zip_it:
        return product, truth
    archive = folder / f"{name}.ZIP"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in product.iterdir():
            zf.write(file, f"{name}/{file.name}")
    return archive, truth


def class_scene(
    folder: Path,
    *,
    bands: int = 24,
    rows: int = 48,
    cols: int = 60,
    classes: int = 4,
    seed: int = 0,
    nodata_block: bool = True,
    noise: float = 60.0,
) -> tuple[Path, Path, np.ndarray]:
    """A scene whose classes have distinct mean spectra, as vertical stripes of fields, with a
    nodata block; returns (scene.tif, labels.tif, labels array). A larger ``noise`` (standard
    deviation per band) makes pixels ambiguous, as in real scenes."""
    rng = np.random.default_rng(seed)
    truth = (np.arange(cols)[None, :] * classes // cols + 1).repeat(rows, 0).astype("uint8")
    means = rng.uniform(500, 3000, size=(classes, bands))
    data = means[truth - 1].transpose(2, 0, 1) + rng.normal(0, noise, size=(bands, rows, cols))
    data = data.astype("float32")
    if nodata_block:
        data[:, :6, :8] = -9999
        truth[:6, :8] = 0
    scene = write_geotiff(
        folder / "scene.tif", data, nodata=-9999, band_wavelengths=wavelengths(bands)
    )
    labels = write_geotiff(folder / "labels.tif", truth[None], nodata=None)
    return scene, labels, truth


def edited_bundle(bundle: Path, out: Path, edit: Callable[[dict], dict | str]) -> Path:
    """A copy of ``bundle`` whose hsikit description is ``edit(description)``: a dict, or text
    written as it is. What a tampered file or one from another hsikit version looks like."""
    raw = bundle.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    described = edit(json.loads(header["__metadata__"]["hsikit"]))
    header["__metadata__"] = {
        "hsikit": described if isinstance(described, str) else json.dumps(described)
    }
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)  # safetensors keeps the arrays 8-byte aligned
    out.write_bytes(len(body).to_bytes(8, "little") + body + raw[8 + size :])
    return out


def trained_bundle(
    folder: Path,
    model: str,
    *,
    bands: int = 8,
    rows: int = 24,
    cols: int = 30,
    classes: int = 4,
    **options: object,
) -> tuple[Path, Path, Path]:
    """A :func:`class_scene`, its labels and a bundle of ``model`` trained on them by the library
    (random 30 % split; ``options`` as training options): (scene, labels, bundle)."""
    from hsikit.training.config import TrainConfig
    from hsikit.training.fit import train

    scene, labels, _ = class_scene(folder, bands=bands, rows=rows, cols=cols, classes=classes)
    bundle = folder / f"{model}.safetensors"
    config = TrainConfig(
        scenes=[str(scene)],
        labels=[str(labels)],
        model=model,
        split="random",
        train_ratio=0.3,
        **options,
    )
    train(config, bundle, folder / f"{model}_report", progress=False)
    return scene, labels, bundle
