"""Batch mapping, ``hsikit map``: many scenes on dask.distributed, resumable, with area
statistics, STAC metadata and VRT mosaics — through the CLI, as a user runs it."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from tests import synthetic
from tests.conftest import assert_one_sentence_error

pytest.importorskip("distributed", reason="batch mapping needs the batch extra")

WINDOW = 16
EPOCH = "1700000000"
#: the options both runs of the first test give after their scenes and bundle
RUN_OPTIONS = ("-o", "run", "--workers", "1", "--window", WINDOW, "--confidence")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A cnn3d bundle and the scene it was trained on (8 bands, UTM 30 m)."""
    folder = tmp_path_factory.mktemp("bundle")
    scene, _, bundle = synthetic.trained_bundle(folder, "cnn3d", rows=32, cols=40, epochs=2)
    return bundle, scene


def scenes_in(folder: Path, count: int, *, rows: int = 40, cols: int = 48) -> list[Path]:
    """``count`` different scenes with the bundle's bands, one folder each."""
    paths = []
    for i in range(count):
        sub = folder / f"area{i}"
        sub.mkdir(parents=True)
        scene, _, _ = synthetic.class_scene(sub, bands=8, rows=rows, cols=cols, seed=10 + i)
        paths.append(scene.rename(folder / f"area{i}.tif"))
        shutil.rmtree(sub)
    return paths


def stac_item_for(scene: Path, path: Path, href: str | None = None) -> Path:
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": scene.stem,
        "geometry": None,
        "properties": {"datetime": "2026-06-01T10:00:00Z"},
        "links": [],
        "assets": {
            "thumbnail": {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]},
            "reflectance": {
                "href": href or os.path.relpath(scene, path.parent),
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
            },
        },
    }
    path.write_text(json.dumps(item))
    return path


def test_map_writes_classify_s_maps_with_areas_stac_mosaic_and_reports_a_bad_scene(
    tmp_path, trained, run_cli, monkeypatch
):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    monkeypatch.chdir(tmp_path)
    bundle, _ = trained
    good = scenes_in(Path("scenes"), 3)
    item = stac_item_for(good[2], Path("item.json"))
    bad = synthetic.write_geotiff(
        Path("five_bands.tif"),
        synthetic.cube(5, 20, 20),
        band_wavelengths=synthetic.wavelengths(5) + 7.0,
    )
    listing = Path("more.txt")
    listing.write_text(f"# the next flight line\n{bad.name}\n")

    result = run_cli(
        "map",
        "scenes/area[01].tif",
        item,
        listing,
        "-m",
        bundle,
        *RUN_OPTIONS,
    )

    assert result.code == 1, result.stderr  # one scene failed: the status says so
    assert "failed: five_bands:" in result.stderr and "Traceback" not in result.stderr
    assert "mapped 3 of 4 scenes" in result.stdout
    run = Path("run")
    # each map is the file 'hsikit classify' writes, byte for byte
    for scene in good:
        expected = Path(f"classify_{scene.stem}.tif")
        assert (
            run_cli(
                "classify", scene, "-m", bundle, "-o", expected, "--window", WINDOW, "--confidence"
            ).code
            == 0
        )
        got = run / "maps" / f"{scene.stem}.tif"
        with rasterio.open(expected) as a, rasterio.open(got) as b:
            assert (a.read() == b.read()).all()
            assert (b.crs, b.transform, b.nodata) == (a.crs, a.transform, 0)
            assert b.colormap(1)[1] == a.colormap(1)[1]
            assert b.tags()["HSIKIT_BUNDLE_SHA256"] == a.tags()["HSIKIT_BUNDLE_SHA256"]
        assert (run / "maps" / f"{scene.stem}_confidence.tif").is_file()
        assert (run / "maps" / f"{scene.stem}.qml").is_file()
    assert (run / "maps" / "area0.tif").read_bytes() == Path("classify_area0.tif").read_bytes()

    # area per class: pixel counts × 30 m × 30 m, per scene and in total
    report = json.loads((run / "report.json").read_text())
    by_id = {s["id"]: s for s in report["scenes"]}
    assert by_id["five_bands"]["status"] == "failed"
    assert "five_bands.tif" in by_id["five_bands"]["error"]
    with rasterio.open(run / "maps" / "area1.tif") as src:
        values, counts = np.unique(src.read(1), return_counts=True)
    pixels = dict(zip(values.tolist(), counts.tolist()))
    for c in by_id["area1"]["classes"]:
        assert c["pixels"] == pixels.get(c["value"], 0)
        assert c["hectares"] == pytest.approx(c["pixels"] * 900 / 10_000)
        assert 0 < c["mean_confidence"] <= 1 if c["pixels"] else c["mean_confidence"] is None
    rows = list(csv.DictReader((run / "report.csv").open()))
    totals = {int(r["class_value"]): r for r in rows if r["scene"] == "ALL"}
    for c in report["total"]["classes"]:
        assert int(totals[c["value"]]["pixels"]) == sum(
            by_id[s]["classes"][c["value"] - 1]["pixels"] for s in ("area0", "area1", "area2")
        )
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 7  # total chart; map + chart per scene
    assert "failed: " in page and "http" not in page  # self-contained: nothing fetched

    # a VRT mosaic of the scenes (one CRS) with the class colours
    with rasterio.open(run / "mosaic_EPSG32633.vrt") as mosaic:
        assert mosaic.crs == CRS.from_epsg(32633)
        with rasterio.open(run / "maps" / "area2.tif") as one:
            # the scenes share one footprint here: the last one listed is on top
            assert (mosaic.read(1) == one.read(1)).all()
            assert mosaic.colormap(1)[2] == one.colormap(1)[2]

    # STAC: an Item per map (classification, raster, projection), a Collection of the run
    collection = json.loads((run / "stac" / "collection.json").read_text())
    assert collection["type"] == "Collection"
    assert sorted(link["href"] for link in collection["links"] if link["rel"] == "item") == [
        f"./area{i}/area{i}.json" for i in range(3)
    ]
    stac = json.loads((run / "stac" / "area2" / "area2.json").read_text())
    assert stac["type"] == "Feature" and stac["properties"]["proj:code"] == "EPSG:32633"
    assert any("classification" in e for e in stac["stac_extensions"])
    west, south, east, north = stac["bbox"]
    assert 14.9 < west < east < 15.1 and 36.0 < south < north < 36.2
    asset = stac["assets"]["classification"]
    assert (run / "stac" / "area2" / asset["href"]).resolve() == (run / "maps/area2.tif").resolve()
    classes = {c["value"]: c for c in asset["classification:classes"]}
    assert classes[0]["nodata"] is True
    assert classes[1]["color_hint"] == "{:02X}{:02X}{:02X}".format(*stac_colour(run, 1))
    assert asset["raster:bands"][0] == {
        "nodata": 0,
        "data_type": "uint8",
        "spatial_resolution": 30.0,
    }
    links = {link["rel"]: link["href"] for link in stac["links"]}
    assert (run / "stac" / "area2" / links["derived_from"]).resolve() == item.resolve()
    assert (run / "stac" / "area2" / links["ml-model"]).resolve() == bundle.resolve()

    # a rerun finds everything done and writes the same maps
    again = run_cli("map", "scenes/area[01].tif", item, "-m", bundle, *RUN_OPTIONS)
    assert again.code == 0 and "(0 tiles run)" in again.stdout, again.stderr
    assert (run / "maps" / "area0.tif").read_bytes() == Path("classify_area0.tif").read_bytes()


def stac_colour(run: Path, value: int) -> tuple[int, int, int]:
    with rasterio.open(run / "maps" / "area2.tif") as src:
        return src.colormap(1)[value][:3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real ``dask scheduler`` and ``dask worker`` on 127.0.0.1; yields the address."""
    dask = Path(sys.executable).parent / "dask"
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    logs = (tmp_path / "scheduler.log").open("w")
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny"],
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    try:
        yield address
    finally:
        for process in (worker, scheduler):
            process.kill()
            process.wait()
        logs.close()


def hsikit_map(*args: object) -> subprocess.Popen:
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    return subprocess.Popen(
        [sys.executable, "-m", "hsikit", "map", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_kill_9_of_the_client_or_a_worker_still_gives_byte_identical_maps(
    tmp_path, trained, dask_cluster
):
    bundle, _ = trained
    scenes = scenes_in(tmp_path / "scenes", 3, rows=64, cols=64)
    common = ["-m", bundle, "--scheduler", dask_cluster, "--window", WINDOW, "--confidence"]
    whole = hsikit_map(*scenes, "-o", tmp_path / "whole", *common)
    stdout, stderr = whole.communicate(timeout=300)
    assert whole.returncode == 0, stderr
    assert "mapped 3 of 3 scenes (48 tiles run)" in stdout

    killed = hsikit_map(*scenes, "-o", tmp_path / "resumed", *common)
    tiles = tmp_path / "resumed" / "tiles"
    deadline = time.monotonic() + 120
    while not (tiles.is_dir() and len(list(tiles.rglob("*.npz"))) >= 3):
        assert killed.poll() is None and time.monotonic() < deadline, killed.communicate()
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "resumed" / "report.json").exists()  # it died mid-run

    resumed = hsikit_map(*scenes, "-o", tmp_path / "resumed", *common)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    done = int(stdout.split("(")[1].split(" tiles run")[0])
    assert done < 48  # finished tiles were skipped
    assert_same_maps(tmp_path / "whole", tmp_path / "resumed")

    # a worker killed mid-run: its nanny starts a new one, the lost tiles run again
    import psutil

    dask = Path(sys.executable).parent / "dask"
    nanny = subprocess.Popen(
        [dask, "worker", dask_cluster, "--nthreads", "1", "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not psutil.Process(nanny.pid).children():
            assert time.monotonic() < deadline, "the nanny started no worker"
            time.sleep(0.05)
        running = hsikit_map(*scenes, "-o", tmp_path / "worker_killed", *common)
        tiles = tmp_path / "worker_killed" / "tiles"
        while not (tiles.is_dir() and len(list(tiles.rglob("*.npz"))) >= 3):
            assert running.poll() is None and time.monotonic() < deadline, running.communicate()
            time.sleep(0.005)
        for worker in psutil.Process(nanny.pid).children():
            worker.kill()
        stdout, stderr = running.communicate(timeout=300)
        assert running.returncode == 0, stderr
    finally:
        nanny.kill()
        nanny.wait()
    assert_same_maps(tmp_path / "whole", tmp_path / "worker_killed")


def assert_same_maps(first: Path, second: Path) -> None:
    names = sorted(p.name for p in (first / "maps").iterdir())
    assert names == sorted(p.name for p in (second / "maps").iterdir())
    for name in names:
        assert (first / "maps" / name).read_bytes() == (second / "maps" / name).read_bytes(), name


def test_pixel_areas_of_projected_and_geographic_grids():
    from hsikit.evaluation.area import AreaUnknown, row_pixel_areas
    from hsikit.scene import Grid

    utm = Grid(10, 4, Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_000_020.0), CRS.from_epsg(32633))
    assert (row_pixel_areas(utm) == 900.0).all()
    feet = CRS.from_epsg(2263)  # New York Long Island, US survey feet
    grid = Grid(2, 2, Affine(10.0, 0.0, 0.0, 0.0, -10.0, 0.0), feet)
    assert row_pixel_areas(grid)[0] == pytest.approx(100 * 0.3048006096**2)

    # a whole-globe 1° grid: rows sum to the WGS 84 ellipsoid's area, cells shrink poleward
    globe = Grid(360, 180, Affine(1.0, 0.0, -180.0, 0.0, -1.0, 90.0), CRS.from_epsg(4326))
    areas = row_pixel_areas(globe)
    assert areas.sum() * 360 == pytest.approx(510_065_621.7e6, rel=1e-9)
    assert areas[89] == pytest.approx(12_308_778_361, rel=1e-3)  # 1°×1° at the equator
    assert areas[0] < areas[45] < areas[89] and areas[0] == pytest.approx(areas[179])
    from pyproj import Geod

    cell = Geod(ellps="WGS84").polygon_area_perimeter([0, 1, 1, 0], [0, 0, 1, 1])[0]
    assert areas[89] == pytest.approx(abs(cell), rel=1e-4)
    assert math.isclose(areas[89], areas[90])

    rotated = Grid(2, 2, Affine(1.0, 0.1, 0.0, 0.1, -1.0, 0.0), CRS.from_epsg(4326))
    with pytest.raises(AreaUnknown, match="rotated"):
        row_pixel_areas(rotated)
    with pytest.raises(AreaUnknown, match="no CRS"):
        row_pixel_areas(Grid(2, 2, Affine.identity(), None))


def test_scene_arguments_expand_and_bad_ones_carry_their_sentence(tmp_path):
    from hsikit.data.scene_lists import expand_scenes

    scenes = scenes_in(tmp_path / "s", 2, rows=8, cols=8)
    listing = tmp_path / "list.txt"
    listing.write_text("area1.tif  # again: mapped once\n\n# comment\n../s/area1.tif\n")
    (tmp_path / "s" / "list.txt").write_text(listing.read_text())
    remote = stac_item_for(scenes[0], tmp_path / "remote.json", href="https://x.org/a.tif")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    refs = expand_scenes(
        [
            str(tmp_path / "s" / "*.tif"),
            str(tmp_path / "s" / "list.txt"),
            str(remote),
            str(broken),
            str(tmp_path / "none*.tif"),
        ]
    )
    assert [r.source for r in refs[:2]] == [str(s) for s in scenes]
    assert "the asset is remote (https://x.org/a.tif)" in refs[2].error
    assert "not a readable STAC Item" in refs[3].error
    assert "matches no file" in refs[4].error and len(refs) == 5


def test_map_refuses_a_foreign_folder_and_a_run_of_another_bundle(tmp_path, trained, run_cli):
    bundle, scene = trained
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"jpeg")
    result = run_cli("map", scene, "-m", bundle, "-o", foreign)
    assert_one_sentence_error(result, "hsikit did not write")
    assert sorted(p.name for p in foreign.iterdir()) == ["holiday.jpg"]

    from hsikit.predict.manifest import (
        BundleRecord,
        Manifest,
        MappingOptions,
        write_manifest,
    )
    from hsikit.writers.atomic import prepare_output_folder

    earlier = prepare_output_folder(tmp_path / "earlier")
    write_manifest(
        earlier,
        Manifest(
            created="2026-01-01T00:00:00+00:00",
            bundle=BundleRecord(path="other.safetensors", sha256="0" * 64),
            options=MappingOptions(window=256, confidence=False),
            scenes=[],
        ),
    )
    result = run_cli("map", scene, "-m", bundle, "-o", earlier)
    assert_one_sentence_error(result, "holds a run with another bundle", "new output folder")
    result = run_cli("map", scene, "-m", tmp_path / "missing.safetensors", "-o", tmp_path / "x")
    assert_one_sentence_error(result, "missing.safetensors")
    assert not (tmp_path / "x").exists()


def test_the_scaling_job_maps_each_configuration_and_reports_them_side_by_side(
    tmp_path, trained, run_cli, monkeypatch
):
    bundle, _ = trained
    monkeypatch.chdir(tmp_path)
    job = tmp_path / "scaling.yaml"
    job.write_text(
        "kind: mapping_scaling\nname: Scaling check\nscenes: 2\nside: 40\nwindow: 16\n"
        f"bundle: {bundle}\nruns:\n  - {{workers: 1, torch_threads: 1}}\n  - {{workers: 2}}\n"
        "output: out\nresults: results.json\nreport: report.md\n"
    )
    result = run_cli("run", job)
    assert result.code == 0, result.stderr + result.stdout
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [(r["workers"], r["failures"], r["tiles"], r["pixels"]) for r in runs] == [
        (1, 0, 18, 3200),
        (2, 0, 18, 3200),
    ]
    assert runs[0]["torch_threads"] == 1
    assert all(r["worker_peak_mb"] > 0 and r["tile_compute_ms"] > 0 for r in runs)
    report = (tmp_path / "report.md").read_text()
    assert "| 1 × 1 |" in report and f"| 2 × {runs[1]['torch_threads']} |" in report
    assert "1.00 ×" in report  # the first row is the baseline
