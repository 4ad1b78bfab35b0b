"""Bad input, as a user meets it: exit 2, one sentence naming the file, no traceback, no output."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import scipy.io
from shapely.geometry import box

from tests import synthetic
from tests.conftest import assert_one_sentence_error


def _scene(tmp_path):
    return synthetic.write_geotiff(tmp_path / "scene.tif", synthetic.cube(3, 40, 50))


def _truncated_tiff(tmp_path):
    path = synthetic.write_geotiff(tmp_path / "cut.tif", synthetic.cube(4, 64, 64), tiled=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _envi_short_data(tmp_path):
    header, data_file = synthetic.write_envi(tmp_path, synthetic.cube(3, 10, 10))
    data_file.write_bytes(data_file.read_bytes()[:-7])
    return header


def _envi_missing_keys(tmp_path):
    header, _ = synthetic.write_envi(tmp_path, synthetic.cube(3, 10, 10))
    header.write_text(
        "\n".join(
            line
            for line in header.read_text().splitlines()
            if not line.startswith(("interleave", "data type"))
        )
    )
    return header


def _envi_zero_size(tmp_path):
    header = tmp_path / "empty.hdr"
    header.write_text("ENVI\nsamples = 10\nlines = 0\nbands = 3\ndata type = 2\ninterleave = bsq\n")
    (tmp_path / "empty.img").write_bytes(b"")
    return header


def _mat_without_cube(tmp_path):
    path = tmp_path / "nothing.mat"
    scipy.io.savemat(path, {"vector": np.arange(5.0), "text": "hello"})
    return path


def _junk(tmp_path):
    path = tmp_path / "scene.xyz"
    path.write_bytes(b"this is not a raster at all\n" * 10)
    return path


def _malformed_enmap(tmp_path):
    product, _ = synthetic.enmap_product(tmp_path, xml_override=b"<level_X><specific><band")
    return product


@pytest.mark.parametrize(
    "make, fragments",
    [
        (lambda p: p / "missing.tif", ["missing.tif", "no such file or folder"]),
        (_junk, ["scene.xyz", "format not recognised"]),
        (_truncated_tiff, ["cut.tif", "GDAL cannot read this raster"]),
        (_envi_short_data, ["scene.img", "holds 593 bytes but the header describes 600"]),
        (_envi_missing_keys, ["scene.hdr", "lacks required keys: data type, interleave"]),
        (_envi_zero_size, ["empty.hdr", "the raster is empty"]),
        (
            _mat_without_cube,
            ["nothing.mat", "no cube-like (3-D) or label-like (2-D) numeric array"],
        ),
        (_malformed_enmap, ["METADATA.XML is not well-formed XML"]),
    ],
    ids=[
        "missing",
        "unknown-format",
        "truncated-tiff",
        "envi-size",
        "envi-keys",
        "zero-size",
        "mat-no-cube",
        "enmap-xml",
    ],
)
def test_bad_scene_input(tmp_path, run_cli, make, fragments):
    scene = make(tmp_path)
    output = tmp_path / "out" / "converted.tif"
    output.parent.mkdir()
    assert_one_sentence_error(run_cli("info", scene), *fragments)
    assert_one_sentence_error(run_cli("convert", scene, "-o", output), *fragments)
    assert list(output.parent.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path, run_cli):
    with pytest.raises(Exception, match="no such file"):
        run_cli("--debug", "info", tmp_path / "missing.tif")


def _labels(tmp_path, geometry, crs="EPSG:32633", field="crop"):
    frame = gpd.GeoDataFrame({field: ["wheat"]}, geometry=[geometry], crs=crs)
    path = tmp_path / "labels.gpkg"
    frame.to_file(path)
    return path


def test_vector_labels_that_miss_the_scene(tmp_path, run_cli):
    scene = _scene(tmp_path)
    labels = _labels(tmp_path, box(10.0, 10.0, 10.1, 10.1), crs="EPSG:4326")
    output = tmp_path / "labels.tif"
    result = run_cli("rasterize", scene, labels, "--class-field", "crop", "-o", output)
    assert_one_sentence_error(result, "labels.gpkg", "no label feature overlaps the scene")
    assert not output.exists()


def test_class_field_missing(tmp_path, run_cli):
    scene = _scene(tmp_path)
    labels = _labels(tmp_path, box(500_000, 3_999_000, 500_300, 4_000_000), field="landcover")
    result = run_cli(
        "rasterize", scene, labels, "--class-field", "crop", "-o", tmp_path / "labels.tif"
    )
    assert_one_sentence_error(result, "the class field 'crop' is not in the file", "landcover")
    assert not (tmp_path / "labels.tif").exists()


def test_unwritable_output_folder(tmp_path, run_cli):
    result = run_cli("convert", _scene(tmp_path), "-o", tmp_path / "no" / "such" / "out.tif")
    assert_one_sentence_error(result, "out.tif", "does not exist", "create it first")


def test_unknown_output_format(tmp_path, run_cli):
    result = run_cli("convert", _scene(tmp_path), "-o", tmp_path / "out.jpg")
    assert_one_sentence_error(result, "out.jpg", "cannot tell the output format")
    assert not (tmp_path / "out.jpg").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["--dataset", "indian_pines", "--model", "cnn3d"],
            "cnn3d has no self-supervised objective",
        ),
        (["SCENE", "--split", "spatial"], "a split needs labels"),
        (["--dataset", "indian_pines", "--model", "less_vit_tiny", "--samples", "0"], "samples"),
    ],
)
def test_pretraining_options_are_checked(tmp_path, run_cli, args, fragment):
    args = [str(_scene(tmp_path)) if a == "SCENE" else a for a in args]
    result = run_cli("pretrain", *args, "-o", tmp_path / "pre.safetensors")
    assert_one_sentence_error(result, fragment)
    assert not (tmp_path / "pre.safetensors").exists()


def test_wavelength_models_need_wavelengths(tmp_path, run_cli):
    scene = _scene(tmp_path)  # no wavelength metadata
    labels = synthetic.write_geotiff(
        tmp_path / "labels.tif",
        (np.arange(50)[None, None, :] * 2 // 50 + 1).repeat(40, 1).astype("uint8"),
        nodata=None,
    )
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "less_vit_tiny",
        "-o",
        tmp_path / "m.safetensors",
    )
    assert_one_sentence_error(result, "scene.tif", "embeds band wavelengths")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--keep", "sometimes"], "keep: Input should be 'best' or 'last'"),
        (["--val-fraction", "1.5"], "val_fraction"),
        (["--label-smoothing", "-0.1"], "label_smoothing"),
        (["--max-minutes", "0"], "max_minutes"),
        (["--context-dropout", "1.5"], "context_dropout"),
        (["--brightness", "1"], "brightness"),
        (["--mixup", "-0.4"], "mixup"),
        (["--ema", "1"], "ema"),
        (["--init-seed", "-1"], "init_seed"),
        (["--members", "0"], "members"),
        (["--weight-decay", "-0.01"], "weight_decay"),
    ],
)
def test_training_recipe_options_are_checked(tmp_path, run_cli, args, fragment):
    result = run_cli("train", "--dataset", "indian_pines", *args, "-o", tmp_path / "m.safetensors")
    assert_one_sentence_error(result, "invalid training options", fragment)
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["train", "--bogus"], "No such option: --bogus"),
        (["classify"], "Missing argument 'scene'"),
        (["train", "--epochs", "abc"], "Invalid value for '--epochs'"),
    ],
)
def test_usage_errors_show_the_usage_not_a_traceback(run_cli, args, complaint):
    """A mistyped command line gets the command's usage line and the complaint, exit 2."""
    result = run_cli(*args)
    assert result.code == 2, (result.code, result.stderr)
    assert "Traceback" not in result.stderr and "╭" not in result.stderr
    assert result.stderr.startswith(f"Usage: hsikit {args[0]}") and complaint in result.stderr
