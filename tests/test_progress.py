"""Long steps say where they are: the bars are drawn from (done, total) reports, checked here
(a drawn bar is rich's business)."""

from __future__ import annotations

from hsikit import open_scene
from hsikit.writers.cube import write_cube
from tests import synthetic


def test_writing_a_cube_reports_each_window(tmp_path):
    source = synthetic.write_geotiff(tmp_path / "s.tif", synthetic.cube(3, 40, 50))
    told: list[tuple[int, int]] = []
    for suffix in (".tif", ".hdr", ".zarr"):
        told.clear()
        write_cube(
            open_scene(source),
            tmp_path / f"out{suffix}",
            on_window=lambda d, t: told.append((d, t)),
        )
        total = told[-1][1]
        assert told == [(done, total) for done in range(1, total + 1)], suffix


def test_reading_training_pixels_and_cutting_patches_report_each_window(tmp_path):
    from hsikit.data.samples import extract, read_spectra
    from hsikit.data.sources import load_sources
    from hsikit.preprocess import Preprocessor
    from hsikit.training.config import TrainConfig

    scene, labels, _ = synthetic.class_scene(tmp_path, bands=4, rows=300, cols=40)
    config = TrainConfig(scenes=[str(scene)], labels=[str(labels)], model="svm_rbf")
    sources, _, _ = load_sources(config.resolved())
    told: list[tuple[int, int]] = []
    spectra, _, _ = read_spectra(sources, lambda d, t: told.append((d, t)))
    assert told == [(1, 2), (2, 2)]  # 300 rows: two 256-row windows
    told.clear()
    preprocessor = Preprocessor.fit(spectra, sources[0].scene.wavelengths, ["a", "b", "c", "d"])
    extract(sources, preprocessor, 3, lambda d, t: told.append((d, t)))
    assert told == [(1, 2), (2, 2)]
