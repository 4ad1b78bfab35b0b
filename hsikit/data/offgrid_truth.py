"""Labels at another resolution than the scene: a label raster of another size, or ground truth
that a MATLAB file holds beside its cube on a finer grid (a label map 4× finer than the cube).
hsikit does not resample class labels itself (which class a mixed block takes is the user's
call), so ``hsikit train`` refuses them, and ``hsikit info`` says so in the same words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hsikit.scene import Scene

Shape = tuple[int, ...]  # rows, cols


def _factor(shape: Shape, grid: Shape) -> int:
    """k when ``shape`` is ``grid`` k× finer on both axes, -k when k× coarser, else 0."""
    for finer, coarser, sign in ((shape, grid, 1), (grid, shape, -1)):
        ratios = {f // c if f % c == 0 else 0 for f, c in zip(finer, coarser)}
        if len(ratios) == 1 and (k := ratios.pop()) > 1:
            return sign * k
    return 0


def grid_relation(shape: Shape, grid: Shape) -> str:
    """'4× finer than', '2× coarser than' or 'not on the grid of': labels of ``shape`` against
    a scene grid of ``grid`` (rows, cols)."""
    k = _factor(shape, grid)
    if k:
        return f"{abs(k)}× {'finer' if k > 0 else 'coarser'} than"
    return "not on the grid of"


def resample_hint(shape: Shape, grid: Shape) -> str:
    """What to do with labels of ``shape`` on a scene of ``grid``: resample them, and how."""
    k = _factor(shape, grid)
    how = (
        f" (e.g. the majority class of each {k} × {k} block)"
        if k > 0
        else f" (e.g. each label repeated over {-k} × {-k} pixels)"
        if k < 0
        else ""
    )
    return (
        f"resample it onto the scene's {grid[0]} × {grid[1]} grid{how} and give that as "
        "--labels, or give vector labels"
    )


@dataclass(frozen=True)
class OffGridTruth:
    """A 2-D integer array of a MATLAB scene's file whose shape is not the cube's."""

    name: str
    shape: Shape
    grid: Shape  # the cube's rows and columns

    def description(self) -> str:
        return (
            f"ground truth candidate '{self.name}' {grid_relation(self.shape, self.grid)} the "
            f"cube ({self.shape[0]} × {self.shape[1]} vs {self.grid[0]} × {self.grid[1]})"
        )

    def what_train_does(self) -> str:
        return f"'hsikit train' refuses it: {resample_hint(self.shape, self.grid)}"


def offgrid_truth(scene: Scene) -> list[OffGridTruth]:
    """The ground truth candidates of a MATLAB scene that are not on its cube's grid: none when
    the file holds ground truth on the grid (the reader took it), or is no MATLAB file."""
    if not scene.format.startswith("MATLAB") or scene.has_ground_truth:
        return []
    from hsikit.readers.matlab import list_variables

    grid = (scene.height, scene.width)
    return [
        OffGridTruth(v.name, (v.shape[0], v.shape[1]), grid)
        for v in list_variables(Path(scene.path))
        if v.integer and len(v.shape) == 2 and min(v.shape) > 1 and v.shape != grid
    ]
