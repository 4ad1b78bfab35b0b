"""Malformed and hostile files, as a user (or an attacker) hands them over: each gets one
sentence naming the file, exit 2, no traceback, nothing at the output, every input unchanged —
and none reaches outside itself or takes the machine's memory."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import h5py
import numpy as np
import pytest
import scipy.io
from shapely.geometry import box

from hsikit.bundle import ModelSpec, new_meta, save_bundle
from hsikit.classes import ClassTable
from hsikit.models import architecture_config, create_model
from hsikit.preprocess import Preprocessor
from tests import synthetic
from tests.conftest import REPO, SHARED_DATA, assert_one_sentence_error
from tests.helpers import snapshot


def _refused(run_cli, tmp_path: Path, args: list, *fragments: str) -> None:
    before = snapshot(tmp_path)
    assert_one_sentence_error(run_cli(*args), *fragments)
    assert snapshot(tmp_path) == before


def _info_and_convert(run_cli, tmp_path: Path, scene: Path, *fragments: str) -> None:
    _refused(run_cli, tmp_path, ["info", scene], *fragments)
    _refused(run_cli, tmp_path, ["convert", scene, "-o", tmp_path / "out.tif"], *fragments)


# -- files that would reach outside themselves -----------------------------------------------


def _vrt(band_xml: str) -> str:
    return f'<VRTDataset rasterXSize="4" rasterYSize="4">{band_xml}</VRTDataset>'


def _simple(source: str, relative: bool = False) -> str:
    return (
        '<VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename '
        f'relativeToVRT="{int(relative)}">{source}</SourceFilename><SourceBand>1</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
    )


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (_vrt(_simple("/etc/hostname")), "its source /etc/hostname is not a TIFF file"),
        (_vrt(_simple("/vsicurl/http://127.0.0.1:9/a.tif")), "a source is not a local file"),
        (_vrt(_simple("inner.vrt", relative=True)), "inner.vrt is not a TIFF file"),
        (
            _vrt(
                '<VRTRasterBand dataType="Byte" band="1" subClass="VRTDerivedRasterBand">'
                "<PixelFunctionLanguage>Python</PixelFunctionLanguage></VRTRasterBand>"
            ),
            "band 1 is a VRTDerivedRasterBand",
        ),
        (
            '<!DOCTYPE x [<!ENTITY e "e">]>' + _vrt(_simple("/etc/hostname")),
            "format not recognised",  # not even taken for a VRT
        ),
    ],
)
def test_a_vrt_that_reaches_outside_local_tiffs_is_not_opened(tmp_path, run_cli, body, said):
    """A VRT copies any file it names (/etc/hostname, a URL, another VRT, code run by a pixel
    function) into the output: only plain mosaics of local TIFF tiles are opened."""
    (tmp_path / "inner.vrt").write_text(_vrt(_simple("/etc/hostname")))
    vrt = tmp_path / "scene.tif.vrt"
    vrt.write_text(body)
    _info_and_convert(run_cli, tmp_path, vrt, "scene.tif.vrt", said)


def test_a_vrt_with_xml_entities_is_refused_even_when_forced(tmp_path):
    """An entity declaration is how an XML file grows without bound when parsed (or reads
    other files): even opened as a VRT on purpose, it is refused before parsing."""
    from hsikit import open_scene
    from hsikit.errors import FormatError

    vrt = tmp_path / "entities.vrt"
    vrt.write_text('<!DOCTYPE x [<!ENTITY e "e">]>' + _vrt(_simple("/etc/hostname")))
    with pytest.raises(FormatError, match="declares XML entities"):
        open_scene(vrt, format="vrt")


@pytest.mark.parametrize(
    "location", ["/vsicurl/http://127.0.0.1:9/scene.tif", "https://example.com/scene.tif"]
)
def test_urls_and_gdal_virtual_paths_are_not_opened(tmp_path, run_cli, location):
    _refused(run_cli, tmp_path, ["info", location], "local files and folders only")


def test_hdf5_external_links_are_refused(tmp_path, run_cli):
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as h5:
        h5["cube"] = np.ones((3, 8, 8), "float32")
    mat = tmp_path / "scene.mat"
    _v73_file(mat, {})
    with h5py.File(mat, "a") as h5:
        h5["cube"] = h5py.ExternalLink(str(secret), "cube")
    _info_and_convert(
        run_cli, tmp_path, mat, "scene.mat", "refers to data outside itself", "links to"
    )


def test_enmap_members_outside_the_product_are_refused(tmp_path, run_cli):
    product, _ = synthetic.enmap_product(tmp_path)
    image = next(product.glob("*SPECTRAL_IMAGE.TIF"))
    outside = tmp_path / "elsewhere.tif"
    image.rename(outside)
    image.symlink_to(outside)
    _info_and_convert(run_cli, tmp_path, product, "links to a file outside the product folder")


# -- memory bombs ----------------------------------------------------------------------------


def _hsikit_limited(args: list, limit_gb: float) -> subprocess.CompletedProcess:
    """``hsikit ARGS`` in a process that may not use more than ``limit_gb`` of memory."""
    limit = int(limit_gb * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "hsikit", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=cap,
        timeout=300,
    )


def test_a_billion_columns_cost_no_memory(tmp_path):
    header = tmp_path / "wide.hdr"
    header.write_text(
        "ENVI\nsamples = 1000000000\nlines = 2\nbands = 1\ndata type = 1\ninterleave = bsq\n"
    )
    with open(tmp_path / "wide.img", "wb") as fh:
        fh.truncate(2 * 10**9)  # sparse: no disk used
    result = _hsikit_limited(["info", header, "--json"], 3.0)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cols"] == 10**9


def _v73_file(path: Path, arrays: dict[str, h5py.Dataset]) -> Path:
    """An HDF5 file with MATLAB's 512-byte v7.3 user block."""
    with h5py.File(path, "w", userblock_size=512) as h5:
        for name, make in arrays.items():
            make(h5, name)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 (hsikit tests)")
    return path


def _empty(shape, dtype, cls):
    def make(h5, name):
        dataset = h5.create_dataset(
            name, shape=shape, dtype=dtype, chunks=True, compression="gzip"
        )  # no chunk written: a tiny file
        dataset.attrs["MATLAB_class"] = np.bytes_(cls)

    return make


def test_info_counts_a_huge_ground_truth_in_bounded_memory(tmp_path):
    """20,000 × 20,000 doubles (3.2 GB uncompressed) in a file of a few kB."""
    mat = _v73_file(
        tmp_path / "bomb.mat",
        {
            "cube": _empty((2, 20000, 20000), "f4", "single"),
            "gt": _empty((20000, 20000), "f8", "double"),
        },
    )
    assert mat.stat().st_size < 100_000
    result = _hsikit_limited(["info", mat, "--json"], 2.5)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ground_truth"] == {"classes": 0, "labelled_pixels": 0}


def test_a_small_v5_file_declaring_a_huge_array_is_refused(tmp_path, run_cli, monkeypatch):
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"cube": np.zeros((60, 60, 10), "float32")}, do_compression=True)
    monkeypatch.setattr("hsikit.readers.matlab.available_memory", lambda: 100_000)
    _refused(
        run_cli,
        tmp_path,
        ["convert", path, "-o", tmp_path / "out.tif"],
        "scene.mat",
        "is 0.0 GB uncompressed, more than half the memory free here",
        "re-save it as MATLAB v7.3",
    )


def test_an_enmap_zip_bomb_is_refused_unread(tmp_path, run_cli):
    product, _ = synthetic.enmap_product(tmp_path, zip_it=True)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(product) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("METADATA.XML"):
                data = data + b" " * (100 * 2**20)  # 100 MB of padding, 100 kB compressed
            dst.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED)
    product.unlink()
    _info_and_convert(run_cli, tmp_path, bomb, "bomb.zip", "far larger than any EnMAP")


# -- bundles ---------------------------------------------------------------------------------


@pytest.fixture
def cnn_bundle(tmp_path) -> Path:
    bands, classes = 6, 3
    config = architecture_config("cnn3d", patch_size=9)
    model = create_model("cnn3d", bands, classes, **config)
    prep = Preprocessor(
        np.linspace(400, 900, bands),
        [f"b{i}" for i in range(bands)],
        np.zeros(bands),
        np.ones(bands),
    )
    meta = new_meta(
        model=ModelSpec(name="cnn3d", family="torch", config=config),
        in_bands=bands,
        num_classes=classes,
        patch_size=9,
        band_wavelengths=list(prep.band_wavelengths),
        band_names=prep.band_names,
        classes=ClassTable.from_names(["a", "b", "c"]).to_records(),
    )
    return save_bundle(tmp_path / "cnn.safetensors", meta, model, prep)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (
            lambda d: {
                **d,
                "model": {**d["model"], "config": {**d["model"]["config"], "width": 10**7}},
            },
            "the weights do not fit the 'cnn3d' architecture",
        ),
        (lambda d: {**d, "in_bands": 10**9}, "the model takes 1000000000 inputs"),
        (lambda d: {**d, "num_classes": 10**9}, "num_classes is 1000000000 but 3 classes"),
        (
            lambda d: {**d, "classes": [{"value": 1, "name": "a", "colour": "red"}] * 3},
            "String should match pattern",
        ),
        (lambda d: {**d, "classes": d["classes"][:1] * 3}, "class values must be unique"),
        (lambda d: {**d, "model": {**d["model"], "name": "gpt5"}}, "unknown model 'gpt5'"),
        (lambda d: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (lambda d: {**d, "band_names": d["band_names"][:2]}, "band_names and band_wavelengths"),
    ],
    ids=[
        "architecture-size",
        "in-bands",
        "num-classes",
        "colour",
        "duplicate-class",
        "unknown-model",
        "deep-json",
        "band-lists",
    ],
)
def test_bundle_descriptions_are_checked_before_anything_is_built(
    tmp_path, run_cli, cnn_bundle, edit, fragment
):
    scene, _, _ = synthetic.class_scene(tmp_path, bands=6, rows=12, cols=12)
    bad = synthetic.edited_bundle(cnn_bundle, tmp_path / "bad.safetensors", edit)
    _refused(
        run_cli,
        tmp_path,
        ["classify", scene, "-m", bad, "-o", tmp_path / "map.tif"],
        "bad.safetensors",
        fragment,
    )
    _refused(run_cli, tmp_path, ["info", bad], "bad.safetensors", fragment)


def _classical_bundle(tmp_path: Path, edit) -> tuple[Path, Path]:
    from hsikit.bundle import load_bundle

    scene, _, bundle = synthetic.trained_bundle(tmp_path, "svm_rbf", bands=6, rows=20, cols=24)
    loaded = load_bundle(bundle)
    arrays = edit(dict(loaded.model.arrays))
    loaded.model.arrays = arrays
    bad = tmp_path / "bad.safetensors"
    save_bundle(bad, loaded.meta, loaded.model, loaded.preprocessor)
    return scene, bad


def test_classical_arrays_that_do_not_fit_together_are_refused_at_load(tmp_path, run_cli):
    scene, bad = _classical_bundle(
        tmp_path, lambda a: {**a, "support_vectors": a["support_vectors"][:, :3]}
    )
    _refused(
        run_cli,
        tmp_path,
        ["classify", scene, "-m", bad, "-o", tmp_path / "map.tif"],
        "bad.safetensors",
        "the svm_rbf arrays do not fit together",
        "support_vectors must be (vectors, 6)",
    )


# -- scenes whose metadata are wrong ---------------------------------------------------------


def _envi(tmp_path, **extra):
    return synthetic.write_envi(tmp_path, synthetic.cube(3, 10, 10), extra=extra)[0]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (
            {"data ignore value": "none"},
            "the header's 'data ignore value' is not a number ('none')",
        ),
        (
            {"wavelength": "{450, green, 650}"},
            "the header's 'wavelength' is not a number ('green')",
        ),
        ({"data gain values": "{1, 1, x}"}, "'data gain values' is not a number"),
        ({"wavelength": "{450, 550}"}, "the header's 'wavelength' lists 2 values for 3 bands"),
        ({"fwhm": "{10, 10, 10, 10}"}, "'fwhm' lists 4 values for 3 bands"),
        ({"bbl": "{1}"}, "'bbl' lists 1 values for 3 bands"),
        ({"data offset values": "{0, 0}"}, "'data offset values' lists 2 values"),
        (
            {"map info": "{UTM, 1, 1, 500000, 4000000, 30, 30, 33, North, WGS-84, rotation=abc}"},
            "'map info rotation' is not a number",
        ),
        (
            {"map info": "{UTM, 1, 1, 500000, 4000000, 30, 30, zone, North, WGS-84}"},
            "'map info zone' is not a number",
        ),
        ({"map info": "{UTM, 1, 1, 500000, 4000000, 30, 30, 99, North, WGS-84}"}, "UTM zone 99"),
        (
            {"map info": "{UTM, 1, 1, 500000, 4000000, 0, 30, 33, North, WGS-84}"},
            "non-finite or zero value",
        ),
        ({"header offset": "-5"}, "the header offset is negative"),
    ],
    ids=[
        "nodata",
        "wavelength-text",
        "gain-text",
        "wavelength-count",
        "fwhm-count",
        "bbl-count",
        "offset-count",
        "rotation",
        "zone-text",
        "zone-range",
        "zero-pixel",
        "negative-offset",
    ],
)
def test_envi_header_values_are_checked(tmp_path, run_cli, extra, fragment):
    _info_and_convert(run_cli, tmp_path, _envi(tmp_path, **extra), "scene.hdr", fragment)


def _zarr_cube(tmp_path, edit):
    import zarr

    from hsikit import open_scene
    from hsikit.writers.cube import write_cube

    store = write_cube(
        open_scene(synthetic.write_geotiff(tmp_path / "s.tif", synthetic.cube(3, 10, 12))),
        tmp_path / "cube.zarr",
    )
    (tmp_path / "s.tif").unlink()
    group = zarr.open_group(str(store), mode="r+")
    group.attrs["hsikit"] = edit(dict(group.attrs["hsikit"]))
    return store


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: {k: v for k, v in m.items() if k != "transform"}, "'transform' must be six"),
        (lambda m: {**m, "crs": "not a crs"}, "'crs' is not a valid WKT"),
        (
            lambda m: {**m, "wavelength": [1.0]},
            "'wavelength' must list one value for each of the 3",
        ),
        (lambda m: {**m, "nodata": "zero"}, "'nodata' is not a number"),
        (lambda m: {**m, "scale": ["a", "b", "c"]}, "'scale' holds a value that is not a number"),
    ],
    ids=["no-transform", "bad-crs", "list-length", "nodata", "scale"],
)
def test_zarr_attributes_are_checked(tmp_path, run_cli, edit, fragment):
    _info_and_convert(run_cli, tmp_path, _zarr_cube(tmp_path, edit), "cube.zarr", fragment)


def test_a_corrupt_zarr_chunk_found_mid_read_is_one_sentence(tmp_path, run_cli):
    store = _zarr_cube(tmp_path, lambda m: m)
    chunk = next(p for p in (store / "cube").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage" * 3)
    _refused(
        run_cli,
        tmp_path,
        ["convert", store, "-o", tmp_path / "out.tif"],
        "cube.zarr",
        "reading rows 0–10 failed",
        "truncated or corrupt",
    )


def _mat_v5_truncated(tmp_path):
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"cube": np.random.default_rng(0).random((20, 20, 5))})
    path.write_bytes(path.read_bytes()[:1500])
    return path


def _mat_v5_header_only(tmp_path):
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"cube": np.ones((20, 20, 5))})
    path.write_bytes(path.read_bytes()[:128])
    return path


def _mat_v73_truncated(tmp_path):
    path = _v73_file(
        tmp_path / "scene.mat",
        {
            "cube": lambda h5, n: h5.create_dataset(
                n, data=np.random.default_rng(0).random((5, 20, 20))
            )
        },
    )
    path.write_bytes(path.read_bytes()[:3000])
    return path


def _enmap_band_count(tmp_path):
    product, _ = synthetic.enmap_product(tmp_path)
    xml = next(product.glob("*METADATA.XML"))
    text = xml.read_text()
    cut = text.index('<bandID number="8"')
    xml.write_text(text[:cut] + text[text.index("</bandID>", cut) + len("</bandID>") :])
    return product


def _enmap_channel_list(tmp_path):
    product, _ = synthetic.enmap_product(tmp_path)
    xml = next(product.glob("*METADATA.XML"))
    xml.write_text(
        xml.read_text().replace("<expectedChannelsList>1,", "<expectedChannelsList>one,")
    )
    return product


def _truncated_grib(tmp_path):
    source = SHARED_DATA / "era5" / "era5-levels-members.grib"
    if not source.is_file():
        pytest.skip(f"real GRIB sample not present at {source}")
    pytest.importorskip("cfgrib")
    path = tmp_path / "cut.grib"
    path.write_bytes(source.read_bytes()[:1_200_000])
    return path


@pytest.mark.parametrize(
    "make, fragments",
    [
        (_mat_v5_truncated, ["scene.mat"]),
        (_mat_v5_header_only, ["scene.mat"]),
        (_mat_v73_truncated, ["scene.mat"]),
        (_enmap_band_count, ["METADATA.XML describes 7 bands but the spectral image has 8"]),
        (_enmap_channel_list, ["non-numeric vnirProductQuality/expectedChannelsList"]),
        (_truncated_grib, ["cut.grib", "the file is truncated"]),
    ],
    ids=[
        "mat-v5-truncated",
        "mat-v5-header-only",
        "mat-v73-truncated",
        "enmap-band-count",
        "enmap-channels",
        "grib-truncated",
    ],
)
def test_damaged_files_are_one_sentence(tmp_path, run_cli, make, fragments):
    _info_and_convert(run_cli, tmp_path, make(tmp_path), *fragments)


def test_a_good_grib_prints_nothing_from_cfgrib(tmp_path, run_cli, shared_data):
    pytest.importorskip("cfgrib")
    result = run_cli("info", shared_data / "era5" / "era5-levels-members.grib")
    assert result.code == 0 and result.stderr.strip() == "", result.stderr


def test_a_scene_without_valid_pixels_is_not_mapped(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=6, rows=20, cols=24)
    bundle = tmp_path / "m.safetensors"
    assert (
        run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "random_forest",
            "--split",
            "random",
            "-o",
            bundle,
        ).code
        == 0
    )
    empty = synthetic.write_geotiff(
        tmp_path / "empty.tif",
        np.full((6, 20, 24), -9999, "float32"),
        nodata=-9999,
        band_wavelengths=synthetic.wavelengths(6),
    )
    _refused(
        run_cli,
        tmp_path,
        ["classify", empty, "-m", bundle, "-o", tmp_path / "map.tif"],
        "empty.tif",
        "no pixel of the scene is valid",
    )


def test_training_refusals_name_the_files(tmp_path, run_cli):
    scene, labels, truth = synthetic.class_scene(tmp_path, bands=6, rows=20, cols=24)
    one_class = synthetic.write_geotiff(
        tmp_path / "one.tif", np.ones((1, 20, 24), "uint8"), nodata=None
    )
    _refused(
        run_cli,
        tmp_path,
        [
            "train",
            scene,
            "--labels",
            one_class,
            "--model",
            "random_forest",
            "-o",
            tmp_path / "m.safetensors",
        ],
        "one.tif",
        "fewer than two classes have valid training pixels",
    )
    nan = synthetic.write_geotiff(
        tmp_path / "nan.tif", np.full((6, 20, 24), np.nan, "float32"), nodata=None
    )
    _refused(
        run_cli,
        tmp_path,
        [
            "train",
            nan,
            "--labels",
            labels,
            "--model",
            "random_forest",
            "-o",
            tmp_path / "m.safetensors",
        ],
        "nan.tif",
        "no labelled training pixel has valid values",
    )


def test_fractional_vector_classes_are_refused(tmp_path, run_cli):
    scene = synthetic.write_geotiff(tmp_path / "scene.tif", synthetic.cube(3, 40, 50))
    frame = gpd.GeoDataFrame(
        {"code": [1.5, 2.7]},
        crs="EPSG:32633",
        geometry=[
            box(500_000, 3_999_000, 500_300, 4_000_000),
            box(500_400, 3_999_000, 500_900, 4_000_000),
        ],
    )
    frame.to_file(tmp_path / "labels.gpkg")
    _refused(
        run_cli,
        tmp_path,
        [
            "rasterize",
            scene,
            tmp_path / "labels.gpkg",
            "--class-field",
            "code",
            "-o",
            tmp_path / "labels.tif",
        ],
        "labels.gpkg",
        "holds numbers that are not whole (e.g. 1.5)",
    )


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["classify", "SCENE", "-m", "BUNDLE", "-o", "map.tif", "--window", "0"], "--window"),
        (
            ["classify", "SCENE", "-m", "BUNDLE", "-o", "map.tif", "--batch-size", "0"],
            "--batch-size",
        ),
        (["quicklook", "SCENE", "-o", "q.png", "--max-size", "0"], "--max-size"),
    ],
    ids=["window", "batch-size", "max-size"],
)
def test_zero_sizes_are_usage_errors(tmp_path, run_cli, args, complaint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scene = synthetic.write_geotiff(tmp_path / "scene.tif", synthetic.cube(3, 10, 10))
    args = [{"SCENE": scene, "BUNDLE": tmp_path / "none.safetensors"}.get(a, a) for a in args]
    before = snapshot(tmp_path)
    result = run_cli(*args)
    assert result.code == 2 and f"Invalid value for '{complaint}'" in result.stderr
    assert "Traceback" not in result.stderr and snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "bands, fragment",
    [
        ("a,b,c", "--bands 'a,b,c' is not a list of band numbers"),
        ("1,2", "--bands names 2 bands"),
        ("0,1,2", "band(s) 0 do not exist (the scene has 3)"),
    ],
)
def test_quicklook_band_lists_are_checked(tmp_path, run_cli, bands, fragment):
    scene = synthetic.write_geotiff(tmp_path / "scene.tif", synthetic.cube(3, 10, 10))
    _refused(
        run_cli,
        tmp_path,
        ["quicklook", scene, "-o", tmp_path / "q.png", "--bands", bands],
        fragment,
    )


def test_a_patch_too_small_for_the_model_is_refused_before_training(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=6, rows=20, cols=24)
    _refused(
        run_cli,
        tmp_path,
        [
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "cnn3d",
            "--patch-size",
            "3",
            "--pca",
            "0",
            "-o",
            tmp_path / "m.safetensors",
        ],
        "cnn3d cannot run on 3 × 3 patches of 6 bands",
    )
