"""A scene whose bands are not the model's: resampled (another sensor's band centres) or taken
by position (a mosaic without wavelengths), only when asked, and recorded; bands at nodata
inside valid pixels are counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from hsikit import open_scene
from hsikit.spectral_resampling import resampled_scene
from tests import synthetic
from tests.conftest import assert_one_sentence_error

FAST = ["--model", "random_forest", "--split", "random", "--train-ratio", "0.3"]
ROWS, COLS, CLASSES = 24, 30, 4


def spectra(centres: np.ndarray) -> np.ndarray:
    """``[classes, bands]`` smooth class spectra: what any sensor sees of the same fields."""
    phase = np.arange(CLASSES)[:, None] * 1.3
    return 1500 + 700 * np.sin(centres[None, :] / 260.0 + phase)


def sensor_scene(path, centres: np.ndarray, *, with_wavelengths: bool = True, seed: int = 0):
    """Fields as vertical stripes, seen by a sensor with these band centres (10 nm FWHM)."""
    truth = (np.arange(COLS)[None, :] * CLASSES // COLS + 1).repeat(ROWS, 0)
    noise = np.random.default_rng(seed).normal(0, 20, size=(centres.size, ROWS, COLS))
    data = (spectra(centres)[truth - 1].transpose(2, 0, 1) + noise).astype("float32")
    synthetic.write_geotiff(
        path, data, nodata=None, band_wavelengths=centres if with_wavelengths else None
    )
    return truth


@pytest.fixture
def bundle(tmp_path, run_cli):
    """A bundle trained on a 60-band sensor (420–2400 nm) and its training scene."""
    scene, labels = tmp_path / "sensor_a.tif", tmp_path / "labels.tif"
    truth = sensor_scene(scene, np.linspace(420, 2400, 60))
    synthetic.write_geotiff(labels, truth[None].astype("uint8"), nodata=None)
    path = tmp_path / "a.safetensors"
    result = run_cli("train", scene, "--labels", labels, *FAST, "-o", path)
    assert result.code == 0, result.stderr
    return path, scene, truth


def test_another_sensor_is_refused_then_resampled(tmp_path, run_cli, bundle):
    path, _, truth = bundle
    other = tmp_path / "sensor_b.tif"
    sensor_scene(other, np.linspace(405, 2430, 83), seed=1)
    refused = run_cli("classify", other, "-m", path, "-o", tmp_path / "map.tif")
    assert_one_sentence_error(refused, "sensor_b.tif", "lacks", "--resample-bands")
    assert not (tmp_path / "map.tif").exists()

    result = run_cli("classify", other, "-m", path, "-o", tmp_path / "map.tif", "--resample-bands")
    assert result.code == 0, result.stderr
    assert "bands resampled: 83 scene bands to the model's 60" in result.stderr
    with rasterio.open(other) as src, rasterio.open(tmp_path / "map.tif") as out:
        assert out.transform == src.transform and out.crs == src.crs
        assert "Gaussian" in out.tags()["HSIKIT_BANDS"]
        assert (out.read(1) == truth).mean() > 0.95
    reference = synthetic.write_geotiff(
        tmp_path / "b_labels.tif", truth[None].astype("uint8"), nodata=None
    )
    scored = run_cli(
        "evaluate",
        path,
        other,
        "--labels",
        reference,
        "--resample-bands",
        "--report",
        tmp_path / "r",
    )
    assert scored.code == 0, scored.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["oa"] > 0.95 and "Gaussian" in metrics["bands"][str(other)]


def test_a_model_band_beyond_the_scene_is_refused(tmp_path, run_cli, bundle):
    path, _, _ = bundle
    short = tmp_path / "vnir.tif"
    sensor_scene(short, np.linspace(420, 1000, 40))
    result = run_cli("classify", short, "-m", path, "-o", tmp_path / "m.tif", "--resample-bands")
    assert_one_sentence_error(
        result,
        "vnir.tif",
        "41 of the model's 60 bands lie where the scene has no good band (its bands span "
        "420.0–1000.0 nm)",
        "and 33 more",
    )


def test_a_mosaic_without_wavelengths_maps_by_position_when_asked(tmp_path, run_cli, bundle):
    path, scene, _ = bundle
    assert run_cli("classify", scene, "-m", path, "-o", tmp_path / "own.tif").code == 0
    mosaic = tmp_path / "mosaic.tif"
    synthetic.write_geotiff(mosaic, open_scene(scene).read_raw(), nodata=None)  # no band tags
    refused = run_cli("classify", mosaic, "-m", path, "-o", tmp_path / "m.tif")
    assert_one_sentence_error(refused, "mosaic.tif", "lacks 60", "--bands-by-position")
    result = run_cli(
        "classify", mosaic, "-m", path, "-o", tmp_path / "m.tif", "--bands-by-position"
    )
    assert result.code == 0, result.stderr
    assert "bands by position: scene band 1 = 420.0 nm" in result.stderr
    with rasterio.open(tmp_path / "own.tif") as own, rasterio.open(tmp_path / "m.tif") as mapped:
        np.testing.assert_array_equal(own.read(1), mapped.read(1))
        assert "by position" in mapped.tags()["HSIKIT_BANDS"]

    fewer = tmp_path / "fewer.tif"
    synthetic.write_geotiff(fewer, open_scene(scene).read_raw()[:50], nodata=None)
    result = run_cli("classify", fewer, "-m", path, "-o", tmp_path / "f.tif", "--bands-by-position")
    assert_one_sentence_error(result, "fewer.tif", "the scene has 50 bands and the model 60")


def test_resampling_reproduces_a_smooth_spectrum(tmp_path):
    """Both ways (Gaussian with FWHM, interpolation without) recover the spectrum a sensor with
    the target centres would see, to well within the spectrum's own variation."""
    source = tmp_path / "source.tif"
    sensor_scene(source, np.linspace(400, 2450, 120))
    target = np.linspace(430, 2400, 50)
    expected = spectra(target)
    scene = open_scene(source)
    for opened in (scene, scene.with_band_info(_without_fwhm(scene))):
        resampled = resampled_scene(opened, target, [f"b{i}" for i in range(50)])
        values, valid = resampled.read()
        assert valid.all() and values.shape == (50, ROWS, COLS)
        means = np.stack([values[:, 0, c * COLS // CLASSES + 2] for c in range(CLASSES)])
        assert np.abs(means - expected).max() < 80  # noise σ 20, spectra span 1400


def _without_fwhm(scene):
    info = scene.band_info()
    info.fwhm = np.full_like(info.fwhm, np.nan)
    return info


def test_pixels_with_some_bands_at_nodata_are_counted(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path)  # 24 bands, nodata -9999
    bundle = tmp_path / "m.safetensors"
    assert run_cli("train", scene, "--labels", labels, *FAST, "-o", bundle).code == 0
    opened = open_scene(scene)
    data = opened.read_raw()
    data[:10, 20:23, 30:35] = -9999  # 15 pixels lose 10 of their 24 bands
    data[:3, 30, 40] = -9999
    gappy = synthetic.write_geotiff(
        tmp_path / "gappy.tif", data, nodata=-9999, band_wavelengths=opened.wavelengths
    )
    result = run_cli("classify", gappy, "-m", bundle, "-o", tmp_path / "map.tif")
    assert result.code == 0, result.stderr
    assert "16 classified pixels have bands at the nodata value (up to 10 of 24)" in " ".join(
        result.stderr.split()
    )
    clean = run_cli("classify", scene, "-m", bundle, "-o", tmp_path / "clean.tif")
    assert clean.code == 0 and "nodata value" not in clean.stderr
    with rasterio.open(tmp_path / "map.tif") as got, rasterio.open(tmp_path / "clean.tif") as want:
        # the missing bands are the training mean, not -9999: the other 14 still decide
        assert (got.read(1)[20:23, 30:35] == want.read(1)[20:23, 30:35]).mean() >= 0.8


def test_training_leaves_bands_at_nodata_out_of_the_standardisation(tmp_path, run_cli):
    from hsikit.bundle import load_bundle

    scene, labels, _ = synthetic.class_scene(tmp_path)
    opened = open_scene(scene)
    data = opened.read_raw()
    data[0, :, ::2] = -9999  # half the pixels lose band 1
    gappy = synthetic.write_geotiff(
        tmp_path / "gappy.tif", data, nodata=-9999, band_wavelengths=opened.wavelengths
    )
    bundle = tmp_path / "g.safetensors"
    assert run_cli("train", gappy, "--labels", labels, *FAST, "-o", bundle).code == 0
    mean, std = load_bundle(bundle).preprocessor.mean, load_bundle(bundle).preprocessor.std
    values = data[0][data[0] != -9999]
    assert values.min() <= mean[0] <= values.max() and std[0] < values.std() * 1.5


def test_batch_mapping_resamples_as_classify_does(tmp_path, run_cli, bundle):
    path, _, _ = bundle
    other = tmp_path / "sensor_b.tif"
    sensor_scene(other, np.linspace(405, 2430, 83), seed=1)
    run = ("-m", path, "--workers", "1", "--window", "16")
    refused = run_cli("map", other, *run, "-o", tmp_path / "plain")
    assert refused.code == 1 and "--resample-bands" in refused.stderr
    result = run_cli("map", other, *run, "-o", tmp_path / "run", "--resample-bands")
    assert result.code == 0, result.stderr
    single = tmp_path / "single.tif"
    assert run_cli("classify", other, "-m", path, "-o", single, "--resample-bands").code == 0
    with rasterio.open(single) as a, rasterio.open(tmp_path / "run/maps/sensor_b.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert b.tags()["HSIKIT_BANDS"] == a.tags()["HSIKIT_BANDS"]


def _mosaic(vrt, tiles, width, height, bands):
    """What ``gdalbuildvrt mosaic.vrt tile_*.tif`` writes for tiles side by side in a row: the
    pixels by reference, no band metadata."""
    with rasterio.open(tiles[0]) as first:
        t = first.transform
        dtype = first.dtypes[0]
    geo = f"{t.c}, {t.a}, 0, {t.f}, 0, {t.e}"
    band_xml = []
    for band in range(1, bands + 1):
        sources, col = [], 0
        for tile in tiles:
            with rasterio.open(tile) as src:
                w, h = src.width, src.height
            sources.append(
                f'<SimpleSource><SourceFilename relativeToVRT="1">{tile.name}</SourceFilename>'
                f"<SourceBand>{band}</SourceBand>"
                f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                f'<DstRect xOff="{col}" yOff="0" xSize="{w}" ySize="{h}"/></SimpleSource>'
            )
            col += w
        band_xml.append(
            f'<VRTRasterBand dataType="{dtype.capitalize()}" band="{band}">{"".join(sources)}'
            "</VRTRasterBand>"
        )
    vrt.write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{synthetic.UTM.to_wkt()}</SRS><GeoTransform>{geo}</GeoTransform>"
        f"{''.join(band_xml)}</VRTDataset>"
    )
    return vrt


def test_a_gdalbuildvrt_mosaic_takes_its_tiles_band_metadata_and_maps(tmp_path, run_cli, bundle):
    """The mosaic carries no wavelengths; its tiles agree on them, so it maps as the tiles do
    (a per-pixel model: the same classes pixel for pixel) and its tiles are inputs."""
    path, scene, _ = bundle
    data = open_scene(scene).read_raw()
    centres = np.linspace(420, 2400, 60)
    left, right = tmp_path / "tile_0.tif", tmp_path / "tile_1.tif"
    shifted = synthetic.UTM_TRANSFORM @ rasterio.Affine.translation(15, 0)
    synthetic.write_geotiff(left, data[:, :, :15], nodata=None, band_wavelengths=centres)
    synthetic.write_geotiff(
        right, data[:, :, 15:], nodata=None, band_wavelengths=centres, transform=shifted
    )
    mosaic = _mosaic(tmp_path / "mosaic.vrt", [left, right], COLS, ROWS, 60)
    described = run_cli("info", mosaic)
    assert described.code == 0 and "band metadata from its 2 tiles" in described.stdout
    result = run_cli("classify", mosaic, "-m", path, "-o", tmp_path / "map.tif")
    assert result.code == 0, result.stderr
    assert run_cli("classify", scene, "-m", path, "-o", tmp_path / "whole.tif").code == 0
    with rasterio.open(tmp_path / "map.tif") as out, rasterio.open(tmp_path / "whole.tif") as whole:
        assert out.transform == whole.transform and out.crs == whole.crs
        np.testing.assert_array_equal(out.read(1), whole.read(1))
    refused = run_cli("convert", mosaic, "-o", right)
    assert refused.code == 2 and "tile_1.tif" in refused.stderr
