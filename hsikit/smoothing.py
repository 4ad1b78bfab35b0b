"""Edge-preserving smoothing of class probabilities with a guided filter.

A pixel classifier leaves isolated wrong pixels inside fields ("salt and pepper"). Averaging
the class probabilities over a small window removes them but blurs field edges; the guided
filter (He, Sun & Tang, TPAMI 2013) averages only where a guide image — here the scene's
first principal components — is locally flat, so edges visible in the scene stay sharp.
Kang, Li & Benediktsson (TGRS 2014) introduced it as post-processing of HSI classifiers, with
the first component as a grey guide or the first three as a colour one. A colour guide sees
field edges that the first component alone does not (two fields of equal brightness), so it
is the default (how the defaults were chosen: the benchmark docs).

Nodata and pixels beyond the scene take no part: every local mean is taken over valid pixels
only, so a map is the same whatever the window size it was streamed in.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import uniform_filter

from hsikit.errors import InputError

#: ε for a guide on the Preprocessor.guide() scale (standard deviation ≲ 1): guide steps
#: larger than ~0.1 count as edges.
DEFAULT_EPS = 0.01
#: Principal components in the guide image (Kang et al.'s colour guide).
DEFAULT_GUIDE = 3


class Smoothing(BaseModel):
    """Guided-filter settings, recorded in the bundle that applies them."""

    model_config = ConfigDict(extra="forbid")
    radius: int = Field(ge=1)
    eps: float = Field(DEFAULT_EPS, gt=0)
    guide: int = Field(
        DEFAULT_GUIDE,
        ge=1,
        description="leading principal components in the "
        "guide image; a model without PCA input is guided by its mean band",
    )

    @property
    def margin(self) -> int:
        """Pixels of probabilities needed beyond an output window: the filter's coefficients
        are themselves averaged over a window, so its reach is twice the radius."""
        return 2 * self.radius


def chosen_smoothing(
    radius: int | None,
    eps: float | None,
    guide: int | None = None,
    current: Smoothing | None = None,
) -> Smoothing | None:
    """What ``--smooth RADIUS`` / ``--smooth-eps EPS`` / ``--smooth-guide N`` ask for on top of
    ``current`` (a bundle's): radius 0 turns smoothing off, None keeps the current setting."""
    if eps is not None and not eps > 0:
        raise InputError(
            None,
            f"the smoothing's ε must be above 0, not {eps}",
            "give --smooth-eps a small positive number such as 0.01",
        )
    if guide is not None and guide < 1:
        raise InputError(
            None,
            f"the smoothing's guide needs at least 1 component, not {guide}",
            "give --smooth-guide 1 (grey) or 3 (colour)",
        )
    radius = radius if radius is not None else (current.radius if current else 0)
    if not radius:
        for name, value in (("--smooth-eps", eps), ("--smooth-guide", guide)):
            if value is not None:
                raise InputError(
                    None,
                    f"{name} sets part of the smoothing, and no smoothing is on",
                    "add --smooth RADIUS (e.g. 2)",
                )
        return None
    kept = current or Smoothing(radius=radius)
    return Smoothing(
        radius=radius,
        eps=kept.eps if eps is None else eps,
        guide=kept.guide if guide is None else guide,
    )


def _masked_mean(
    values: np.ndarray, weight: np.ndarray, count: np.ndarray, radius: int
) -> np.ndarray:
    """Mean of ``values`` ([..., h, w]) over the valid pixels of each (2r + 1)² window."""
    size = (1,) * (values.ndim - 2) + (2 * radius + 1,) * 2
    summed = uniform_filter(values * weight, size=size, mode="constant")
    return np.divide(summed, count, out=np.zeros_like(summed), where=count > 0)


def guided_filter(
    guide: np.ndarray, probabilities: np.ndarray, valid: np.ndarray, smoothing: Smoothing
) -> np.ndarray:
    """``[K, h, w]`` probabilities filtered with the ``[C, h, w]`` guide over ``valid`` pixels.

    Each window fits every class's probabilities as a linear function of the guide's C
    channels, ridge-regularised by ε (He et al.'s eq. 19; C = 1 is the grey filter). Linear
    in the probabilities, so each pixel's classes still sum to one; small negative values are
    clipped and the rest renormalised. Invalid pixels come back as zeros.
    """
    r, eps = smoothing.radius, smoothing.eps
    weight = valid.astype(np.float64)
    count = uniform_filter(weight, size=2 * r + 1, mode="constant")
    g = guide.astype(np.float64)
    p = probabilities.astype(np.float64)
    mean_i = _masked_mean(g, weight, count, r)  # [C, h, w]
    mean_p = _masked_mean(p, weight, count, r)  # [K, h, w]
    cov_ip = _masked_mean(g[:, None] * p[None], weight, count, r) - mean_i[:, None] * mean_p
    var_i = _masked_mean(g[:, None] * g[None], weight, count, r) - mean_i[:, None] * mean_i
    var_i += eps * np.eye(len(g))[..., None, None]
    # per pixel: a = (Σ + εI)⁻¹ cov, solved as [h, w, C, C] · [h, w, C, K]
    a = np.linalg.solve(var_i.transpose(2, 3, 0, 1), cov_ip.transpose(2, 3, 0, 1))
    a = a.transpose(2, 3, 0, 1)  # [C, K, h, w]
    b = mean_p - (a * mean_i[:, None]).sum(axis=0)
    # each pixel averages the (a, b) of the windows centred on valid pixels around it
    q = (_masked_mean(a, weight, count, r) * g[:, None]).sum(axis=0)
    q += _masked_mean(b, weight, count, r)
    q = np.clip(q, 0.0, None) * weight
    total = q.sum(axis=0, keepdims=True)
    return np.divide(q, total, out=np.zeros_like(q), where=total > 0).astype(np.float32)
