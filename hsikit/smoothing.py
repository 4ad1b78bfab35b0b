"""Edge-preserving smoothing of class probabilities with a guided filter.

A pixel classifier leaves isolated wrong pixels inside fields ("salt and pepper"). Averaging
the class probabilities over a small window removes them but blurs field edges; the guided
filter (He, Sun & Tang, TPAMI 2013) averages only where a guide image — here the scene's
first principal component — is locally flat, so edges visible in the scene stay sharp.
Kang, Li & Benediktsson (TGRS 2014) introduced it as post-processing of HSI classifiers.

Nodata and pixels beyond the scene take no part: every local mean is taken over valid pixels
only, so a map is the same whatever the window size it was streamed in.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import uniform_filter

from hsikit.errors import InputError

#: ε for a guide on the Preprocessor.guide() scale (standard deviation ≲ 1): guide steps
#: larger than ~0.1 count as edges. Chosen on seed 0 of the Indian Pines benchmark.
DEFAULT_EPS = 0.01


class Smoothing(BaseModel):
    """Guided-filter settings, recorded in the bundle that applies them."""

    model_config = ConfigDict(extra="forbid")
    radius: int = Field(ge=1)
    eps: float = Field(DEFAULT_EPS, gt=0)

    @property
    def margin(self) -> int:
        """Pixels of probabilities needed beyond an output window: the filter's coefficients
        are themselves averaged over a window, so its reach is twice the radius."""
        return 2 * self.radius


def chosen_smoothing(radius: int | None, eps: float | None, current: Smoothing | None = None
                     ) -> Smoothing | None:
    """What ``--smooth RADIUS`` / ``--smooth-eps EPS`` ask for on top of ``current`` (a
    bundle's): radius 0 turns smoothing off, None keeps the current radius and ε."""
    if eps is not None and not eps > 0:
        raise InputError(None, f"the smoothing's ε must be above 0, not {eps}",
                         "give --smooth-eps a small positive number such as 0.01")
    radius = radius if radius is not None else (current.radius if current else 0)
    if not radius:
        if eps is not None:
            raise InputError(None, "--smooth-eps sets the smoothing's ε, and no smoothing is on",
                             "add --smooth RADIUS (e.g. 1)")
        return None
    eps = eps if eps is not None else (current.eps if current else DEFAULT_EPS)
    return Smoothing(radius=radius, eps=eps)


def _masked_mean(values: np.ndarray, weight: np.ndarray, count: np.ndarray, radius: int
                 ) -> np.ndarray:
    """Mean of ``values`` ([..., h, w]) over the valid pixels of each (2r + 1)² window."""
    size = (1,) * (values.ndim - 2) + (2 * radius + 1,) * 2
    summed = uniform_filter(values * weight, size=size, mode="constant")
    return np.divide(summed, count, out=np.zeros_like(summed), where=count > 0)


def guided_filter(guide: np.ndarray, probabilities: np.ndarray, valid: np.ndarray,
                  smoothing: Smoothing) -> np.ndarray:
    """``[K, h, w]`` probabilities filtered with the ``[h, w]`` guide over ``valid`` pixels.

    Linear in the probabilities, so each pixel's classes still sum to one; small negative
    values are clipped and the rest renormalised. Invalid pixels come back as zeros.
    """
    r, eps = smoothing.radius, smoothing.eps
    weight = valid.astype(np.float64)
    count = uniform_filter(weight, size=2 * r + 1, mode="constant")
    p = probabilities.astype(np.float64)
    mean_i = _masked_mean(guide, weight, count, r)
    mean_p = _masked_mean(p, weight, count, r)
    cov_ip = _masked_mean(guide * p, weight, count, r) - mean_i * mean_p
    var_i = _masked_mean(guide * guide, weight, count, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    # each pixel averages the (a, b) of the windows centred on valid pixels around it
    q = _masked_mean(a, weight, count, r) * guide + _masked_mean(b, weight, count, r)
    q = np.clip(q, 0.0, None) * weight
    total = q.sum(axis=0, keepdims=True)
    return np.divide(q, total, out=np.zeros_like(q), where=total > 0).astype(np.float32)
