"""Nothing a user has is ever lost: outputs never replace inputs, folders hsikit did not write,
or special files; crashed runs leave nothing behind; a killed writer leaves the old file or the
complete new one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests import synthetic
from tests.conftest import REPO, assert_one_sentence_error
from tests.helpers import snapshot


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A scene, its labels and a quickly trained bundle, shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("trained")
    scene, labels, bundle = synthetic.trained_bundle(folder, "random_forest")
    return scene, labels, bundle


def _refused(run_cli, folder: Path, *args, fragments=()) -> None:
    """The command is refused with one sentence and every byte under ``folder`` is as before."""
    before = snapshot(folder)
    assert_one_sentence_error(run_cli(*args), *fragments)
    assert snapshot(folder) == before


def _user_folder(path: Path) -> Path:
    path.mkdir()
    (path / "thesis.docx").write_bytes(b"years of work")
    return path


@pytest.mark.parametrize(
    "command", ["convert", "classify", "rasterize", "quicklook", "data labels", "train"]
)
def test_an_existing_folder_is_never_replaced(tmp_path, run_cli, trained, command):
    scene, labels, bundle = trained
    suffix = {"quicklook": ".png", "train": ".safetensors"}.get(command, ".tif")
    target = _user_folder(tmp_path / f"work{suffix}")
    args = {
        "convert": ["convert", scene, "-o", target],
        "classify": ["classify", scene, "-m", bundle, "-o", target],
        "rasterize": ["rasterize", scene, labels, "-o", target],
        "quicklook": ["quicklook", scene, "-o", target],
        "data labels": ["data", "labels", "indian_pines", "-o", target],
        "train": ["train", scene, "--labels", labels, "--model", "random_forest", "-o", target],
    }[command]
    _refused(
        run_cli,
        tmp_path,
        *args,
        fragments=["work", "is an existing folder that hsikit did not write"],
    )


def test_a_report_folder_hsikit_did_not_write_is_refused_before_training(
    tmp_path, run_cli, trained
):
    scene, labels, _ = trained
    report = _user_folder(tmp_path / "report")
    _refused(
        run_cli,
        tmp_path,
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "random_forest",
        "-o",
        tmp_path / "m.safetensors",
        "--report",
        report,
        fragments=["report", "holds files hsikit did not write"],
    )


def test_hsikit_replaces_its_own_outputs(tmp_path, run_cli, trained):
    scene, _, _ = trained
    for _ in range(2):  # a Zarr store (a folder) and a report folder it wrote may be replaced
        assert run_cli("convert", scene, "-o", tmp_path / "cube.zarr").code == 0
    assert run_cli("info", tmp_path / "cube.zarr").code == 0


@pytest.mark.parametrize(
    "case",
    [
        "map-over-scene",
        "convert-over-scene",
        "map-over-bundle",
        "png-over-scene-sidecar",
        "bundle-over-init",
        "via-symlink",
        "via-hard-link",
        "envi-data-file",
        "labels",
        "sidecar-qml",
    ],
)
def test_an_output_never_replaces_an_input(tmp_path, run_cli, trained, case):
    scene_src, labels_src, bundle_src = trained
    scene = tmp_path / "scene.tif"
    scene.write_bytes(scene_src.read_bytes())
    labels = tmp_path / "labels.tif"
    labels.write_bytes(labels_src.read_bytes())
    bundle = tmp_path / "b.safetensors"
    bundle.write_bytes(bundle_src.read_bytes())
    if case == "map-over-scene":
        args = ["classify", scene, "-m", bundle, "-o", scene]
    elif case == "convert-over-scene":
        args = ["convert", scene, "-o", scene]
    elif case == "map-over-bundle":
        args = ["classify", scene, "-m", bundle, "-o", bundle]
    elif case == "png-over-scene-sidecar":
        (tmp_path / "scene.tif.aux.xml").write_text("<PAMDataset/>")
        args = [
            "classify",
            scene,
            "-m",
            bundle,
            "-o",
            tmp_path / "map.tif",
            "--png",
            tmp_path / "scene.tif.aux.xml",
        ]
    elif case == "bundle-over-init":
        args = ["train", scene, "--labels", labels, "--init", bundle, "-o", bundle]
    elif case == "via-symlink":
        (tmp_path / "latest.tif").symlink_to(scene)
        args = ["convert", scene, "-o", tmp_path / "latest.tif"]
    elif case == "via-hard-link":
        os.link(scene, tmp_path / "copy.tif")
        args = ["convert", scene, "-o", tmp_path / "copy.tif"]
    elif case == "envi-data-file":
        header, _ = synthetic.write_envi(tmp_path, synthetic.cube(3, 10, 10), name="cube")
        args = ["convert", tmp_path / "cube.img", "-o", header]
    elif case == "labels":
        args = ["rasterize", scene, labels, "-o", labels]
    else:  # the map's QGIS style would land on a scene file named like it
        qml_scene = tmp_path / "map.qml"
        qml_scene.write_bytes(b"<qgis/>")
        args = ["classify", scene, "-m", bundle, "-o", tmp_path / "map.tif"]
        before = snapshot(tmp_path)
        assert run_cli(*args).code == 0  # map.qml is not an input: an older style is replaced
        assert snapshot(tmp_path) != before
        return
    fragment = {
        "png-over-scene-sidecar": "cannot write a PNG",
        "map-over-bundle": "cannot write a class map as '.safetensors'",
    }.get(case, "writing here would replace")
    _refused(run_cli, tmp_path, *args, fragments=[fragment])


def test_special_files_are_never_replaced(tmp_path, run_cli, trained):
    scene, _, _ = trained
    os.mkfifo(tmp_path / "pipe.tif")
    _refused(
        run_cli,
        tmp_path,
        "convert",
        scene,
        "-o",
        tmp_path / "pipe.tif",
        fragments=["pipe.tif", "device, pipe or socket"],
    )
    if Path("/dev/null").exists():
        result = run_cli("quicklook", scene, "-o", "/dev/null")
        assert_one_sentence_error(result, "cannot write a PNG as 'null'")
        assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["classify", "SCENE", "-m", "BUNDLE", "-o", "map.jpg"],
            "cannot write a class map as '.jpg'",
        ),
        (
            ["classify", "SCENE", "-m", "BUNDLE", "-o", "map.tif", "--png", "map.jpg"],
            "cannot write a PNG as '.jpg'",
        ),
        (["quicklook", "SCENE", "-o", "look.tif"], "cannot write a PNG as '.tif'"),
        (["rasterize", "SCENE", "LABELS", "-o", "labels.png"], "cannot write a class map"),
        (
            ["train", "SCENE", "--labels", "LABELS", "--model", "random_forest", "-o", "m.pt"],
            "cannot write a bundle as '.pt'",
        ),
        (
            ["classify", "SCENE", "-m", "BUNDLE", "-o", "map.tif", "--png", "missing/map.png"],
            "the output folder missing does not exist",
        ),
    ],
    ids=["map-jpg", "png-suffix", "quicklook-tif", "labels-png", "bundle-pt", "png-folder"],
)
def test_outputs_are_checked_before_any_work(
    tmp_path, run_cli, trained, args, fragment, monkeypatch
):
    scene, labels, bundle = trained
    monkeypatch.chdir(tmp_path)
    args = [{"SCENE": scene, "BUNDLE": bundle, "LABELS": labels}.get(a, a) for a in args]
    _refused(run_cli, tmp_path, *args, fragments=[fragment])


def test_crashed_runs_leave_no_staging_behind(tmp_path, run_cli, trained):
    scene, _, _ = trained
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import socket

    stale = tmp_path / ".out.tif.abc123.partial"
    stale.mkdir()
    (stale / "owner").write_text(f"{dead}@{socket.gethostname()}\n")
    (stale / "out.tif").write_bytes(b"half a file")
    running = tmp_path / ".out.tif.def456.partial"  # another process still writing here
    running.mkdir()
    (running / "owner").write_text(f"{os.getpid()}@{socket.gethostname()}\n")
    assert run_cli("convert", scene, "-o", tmp_path / "out.tif").code == 0
    assert not stale.exists() and running.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tif.def456.partial", "out.tif"]


def _convert(scene: Path, output: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hsikit", "convert", str(scene), "-o", str(output)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_killed_writer_leaves_the_old_file_or_the_whole_new_one(tmp_path):
    """kill -9 at random moments of a write over an older output: the final path holds the
    old bytes or exactly the bytes of an uninterrupted run, never anything else."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1767225600"}
    scene = synthetic.write_geotiff(
        tmp_path / "scene.tif", synthetic.cube(30, 512, 512), tiled=True
    )
    reference = tmp_path / "reference.tif"
    started = time.perf_counter()
    assert _convert(scene, reference, env).wait() == 0
    duration = time.perf_counter() - started
    old = synthetic.write_geotiff(tmp_path / "old.tif", synthetic.cube(2, 8, 8))
    output = tmp_path / "out.tif"
    outcomes = set()
    for delay in np.random.default_rng(7).uniform(0.1, duration, 4):
        output.write_bytes(old.read_bytes())
        process = _convert(scene, output, env)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        data = output.read_bytes()
        assert data in (old.read_bytes(), reference.read_bytes()), f"killed after {delay:.2f} s"
        outcomes.add("old" if data == old.read_bytes() else "new")
    assert _convert(scene, output, env).wait() == 0  # the next write cleans up what kills left
    assert output.read_bytes() == reference.read_bytes()
    assert not list(tmp_path.glob(".*.partial"))
    with rasterio.open(output) as src:
        assert src.count == 30
    assert "old" in outcomes  # the moments drawn include some before the rename
