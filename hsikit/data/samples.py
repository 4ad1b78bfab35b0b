"""Training samples from scenes + labels + splits, read window by window.

Pass 1 reads the labelled pixels' spectra: training ones fit the preprocessor (so no statistic
ever sees validation or test pixels) and all of them feed the data checksum. Pass 2 reads halo
windows, preprocesses them and cuts patches for the labelled pixels only. Nodata pixels are never
samples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hsikit.data.splits import ROLE_NAMES, TRAIN, Split
from hsikit.patches import STREAM_WINDOW, halo_windows, patches_at, read_block
from hsikit.preprocess import Preprocessor
from hsikit.progress import Tell
from hsikit.scene import Scene


@dataclass
class Source:
    """One scene with labels on its grid (class values of the shared table) and its split."""

    scene: Scene
    labels: np.ndarray
    split: Split
    bands: np.ndarray  # scene band indices, in preprocessor order
    name: str


@dataclass
class Samples:
    x: dict[str, np.ndarray] = field(default_factory=dict)  # role → [N, k, P, P]
    y: dict[str, np.ndarray] = field(default_factory=dict)  # role → class values
    where: dict[str, np.ndarray] = field(default_factory=dict)  # role → [N, 3] source, row, col


def _labelled(source: Source) -> np.ndarray:
    return (source.split.roles > 0) & (source.labels > 0)


def read_spectra(
    sources: list[Source], tell: Tell | None = None
) -> tuple[np.ndarray, str, dict[str, tuple[int, int]]]:
    """Physical spectra of the training pixels, a sha256 over every labelled pixel, and per
    source (labelled pixels the split uses, those of them that are nodata in the scene);
    ``tell(done, total)`` follows the windows."""
    digest = hashlib.sha256()
    train: list[np.ndarray] = []
    on_nodata: dict[str, tuple[int, int]] = {}
    counter = _window_counter(sum(len(list(s.scene.windows(STREAM_WINDOW))) for s in sources), tell)
    for index, source in enumerate(sources):
        labelled = _labelled(source)
        for window in source.scene.windows(STREAM_WINDOW):
            counter()
            (r0, r1), (c0, c1) = window.toranges()
            wanted = labelled[r0:r1, c0:c1]
            if not wanted.any():
                continue
            values, valid = source.scene.read(window, bands=source.bands)
            used, lost = on_nodata.get(source.name, (0, 0))
            on_nodata[source.name] = (used + int(wanted.sum()), lost + int((wanted & ~valid).sum()))
            wanted &= valid
            rows, cols = np.nonzero(wanted)
            roles = source.split.roles[r0:r1, c0:c1][wanted]
            digest.update(np.asarray([index, r0, c0], np.int64).tobytes())
            digest.update(
                np.stack([rows, cols, source.labels[r0:r1, c0:c1][wanted], roles])
                .astype(np.int64)
                .tobytes()
            )
            digest.update(values[:, rows, cols].astype("<f4").tobytes())
            values[source.scene.nodata_in_bands(values, source.bands)] = np.nan  # not data
            train.append(values[:, rows, cols][:, roles == TRAIN].T)
    spectra = np.concatenate(train) if train else np.empty((0, 0), "float32")
    return spectra, digest.hexdigest(), on_nodata


def _window_counter(total: int, tell: Tell | None) -> Callable[[], None]:
    """A function to call once per window: tells ``tell`` how many of ``total`` are done."""
    done = 0

    def count() -> None:
        nonlocal done
        done += 1
        if tell is not None:
            tell(done, total)

    return count


def extract(
    sources: list[Source], preprocessor: Preprocessor, patch_size: int, tell: Tell | None = None
) -> Samples:
    """The labelled pixels' patches, labels and places, by split role; ``tell(done, total)``
    follows the windows."""
    halo = patch_size // 2
    parts: dict[str, list] = {name: [] for name in ROLE_NAMES.values()}
    counter = _window_counter(sum(len(list(s.scene.windows(STREAM_WINDOW))) for s in sources), tell)
    for index, source in enumerate(sources):
        labelled = _labelled(source)
        for hw in halo_windows(source.scene.height, source.scene.width, STREAM_WINDOW, halo):
            counter()
            core = hw.core
            sl = (
                slice(core.row_off, core.row_off + core.height),
                slice(core.col_off, core.col_off + core.width),
            )
            if not labelled[sl].any():
                continue
            block, valid, _ = read_block(source.scene, hw, source.bands, preprocessor.transform)
            roles = np.where(labelled[sl] & valid, source.split.roles[sl], 0)
            for role, name in ROLE_NAMES.items():
                rows, cols = np.nonzero(roles == role)
                if rows.size:
                    parts[name].append(
                        (
                            patches_at(block, rows, cols, patch_size),
                            source.labels[sl][rows, cols],
                            np.stack(
                                [
                                    np.full(rows.size, index),
                                    rows + core.row_off,
                                    cols + core.col_off,
                                ],
                                1,
                            ),
                        )
                    )
    samples = Samples()
    for name, chunks in parts.items():
        if chunks:
            samples.x[name] = np.concatenate([c[0] for c in chunks])
            samples.y[name] = np.concatenate([c[1] for c in chunks]).astype(np.int64)
            samples.where[name] = np.concatenate([c[2] for c in chunks])
        else:
            samples.x[name] = np.empty(
                (0, preprocessor.out_channels, patch_size, patch_size), "float32"
            )
            samples.y[name] = np.empty(0, np.int64)
            samples.where[name] = np.empty((0, 3), np.int64)
    return samples
