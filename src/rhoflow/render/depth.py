"""Ray-marched depth maps of a density isosurface, from PyMOL's view matrix.

PyMOL's view (``cmd.get_view()``, 18 floats, lengths in Å):

- ``[0:9]``: 3×3 rotation matrix, column-major, model space → camera space;
- ``[9:12]``: origin of rotation in camera space (the camera sits at the camera-space origin
  and looks down −z);
- ``[12:15]``: origin of rotation in model space;
- ``[15]``, ``[16]``: front and rear clipping planes (distances from the camera along −z);
- ``[17]``: field of view in degrees, positive when orthoscopic, negative for perspective.

A model-space point ``p`` (Å) sits at ``R @ (p - origin) + camera`` in camera space. For
perspective, the visible half-height at distance ``d`` is ``d * tan(fov / 2)``; orthoscopic
views show a half-height of ``|camera_z| * tan(fov / 2)`` everywhere. Pixel ``(row, col)`` is
sampled at its centre, row 0 at the top.

Depth convention (:func:`depth_to_uint8`): per view, the nearest isosurface point maps to 255
and the farthest one to 1, linearly in distance from the camera; background pixels (rays that
never reach the isovalue) are 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import map_coordinates

from rhoflow.result import Grid
from rhoflow.units import ANGSTROM_PER_BOHR


def camera_rays(
    view: Sequence[float], width: int, height: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Camera-space ray origins and directions (Å) for every pixel.

    Returns ``(origins [H*W, 3], directions [H*W, 3], orthoscopic)``; directions are scaled so
    their z component is −1, so ``origin + s * direction`` lies at view depth ``s`` (Å).
    """
    view = np.asarray(view, dtype=np.float64)
    fov = abs(float(view[17])) if view[17] != 0 else 20.0
    ortho = bool(view[17] > 0)
    tan_half = np.tan(np.radians(fov) / 2.0)
    aspect = width / height
    cols = (np.arange(width) + 0.5) / width * 2.0 - 1.0  # −1 left … +1 right
    rows = 1.0 - (np.arange(height) + 0.5) / height * 2.0  # +1 top … −1 bottom
    xs, ys = np.meshgrid(cols * tan_half * aspect, rows * tan_half)  # [H, W]
    n = width * height
    if ortho:
        half = abs(float(view[11])) * tan_half
        origins = np.stack(
            [xs.ravel() * half / tan_half, ys.ravel() * half / tan_half, np.zeros(n)], axis=1
        )
        directions = np.tile([0.0, 0.0, -1.0], (n, 1))
    else:
        origins = np.zeros((n, 3))
        directions = np.stack([xs.ravel(), ys.ravel(), -np.ones(n)], axis=1)
    return origins, directions, ortho


def _sample(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Trilinear values at fractional grid indices ``idx [..., 3]`` (0 outside the grid)."""
    flat = idx.reshape(-1, 3).T
    out = map_coordinates(values, flat, order=1, mode="constant", cval=0.0, prefilter=False)
    return out.reshape(idx.shape[:-1])


def march_depth(
    view: Sequence[float],
    grid: Grid,
    level: float,
    width: int,
    height: int,
    step_bohr: float = 0.2,
    chunk_steps: int = 12,
    refine: int = 6,
) -> np.ndarray:
    """Distance (Å) from the camera to the first crossing of ``level`` along each pixel's ray.

    ``grid`` is in bohr (values e.g. in e/bohr³). Each ray is sampled every ``step_bohr`` with
    trilinear interpolation, from where it enters the bounding box of the grid cells above
    ``level`` (clipped to the front/rear planes) to where it leaves it; the first bracketing
    interval is then bisected ``refine`` times (precision ``step_bohr / 2**refine``). Returns
    float64 ``[height, width]``, NaN where the ray never reaches ``level``.
    """
    view = np.asarray(view, dtype=np.float64)
    rot = view[:9].reshape(3, 3).T  # column-major → model→camera matrix
    cam = view[9:12]
    origin_model = view[12:15]
    origins, dirs, _ = camera_rays(view, width, height)
    bohr = ANGSTROM_PER_BOHR
    spacing = np.asarray(grid.spacing_bohr, dtype=np.float64)
    g_origin = np.asarray(grid.origin_bohr, dtype=np.float64)
    # rays in fractional grid-index space: idx = o_idx + s * d_idx (s = view depth, Å)
    o_idx = (((origins - cam) @ rot + origin_model) / bohr - g_origin) / spacing
    d_idx = (dirs @ rot) / bohr / spacing
    values = np.asarray(grid.values, dtype=np.float32)
    dist = np.full(width * height, np.nan)
    inside = np.argwhere(values >= level)
    if inside.size == 0:
        return dist.reshape(height, width)
    lo = inside.min(axis=0) - 1.0  # index box of every cell touching the region
    hi = inside.max(axis=0) + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - o_idx) / d_idx
        t2 = (hi - o_idx) / d_idx
    parallel = d_idx == 0
    inside_slab = (o_idx >= lo) & (o_idx <= hi)
    t_near = np.where(parallel, np.where(inside_slab, -np.inf, np.inf), np.minimum(t1, t2))
    t_far = np.where(parallel, np.where(inside_slab, np.inf, -np.inf), np.maximum(t1, t2))
    s_in = np.maximum(t_near.max(axis=1), max(float(view[15]), 0.0))
    s_out = np.minimum(t_far.min(axis=1), float(view[16]))
    active = np.nonzero(s_out > s_in)[0]
    step = step_bohr * bohr  # Å of view depth (rays are at most ~1.02 Å per Å of depth)
    offsets = np.arange(chunk_steps) * step
    bracket_lo = np.full(width * height, np.nan)
    k = 0
    while active.size:
        s = s_in[active, None] + (k * step + offsets)[None, :]  # [m, chunk]
        idx = o_idx[active, None, :] + s[..., None] * d_idx[active, None, :]
        val = _sample(values, idx.astype(np.float32))
        above = (val >= level) & (s <= s_out[active, None] + step)
        hit = above.any(axis=1)
        rows = np.nonzero(hit)[0]
        if rows.size:
            first = above[rows].argmax(axis=1)
            pix = active[rows]
            dist[pix] = s[rows, first]
            bracket_lo[pix] = np.where(first + k > 0, s[rows, first] - step, s[rows, first])
        done = hit | (s[:, -1] >= s_out[active])
        active = active[~done]
        k += chunk_steps
    # bisection between the last sample below and the first above
    hit_pix = np.nonzero(np.isfinite(dist))[0]
    a, b = bracket_lo[hit_pix], dist[hit_pix]
    for _ in range(refine if hit_pix.size else 0):
        mid = (a + b) / 2
        idx = o_idx[hit_pix] + mid[:, None] * d_idx[hit_pix]
        up = _sample(values, idx) >= level
        b = np.where(up, mid, b)
        a = np.where(up, a, mid)
    dist[hit_pix] = b * np.linalg.norm(dirs[hit_pix], axis=1)
    return dist.reshape(height, width)


def depth_to_uint8(dist: np.ndarray) -> np.ndarray:
    """Map distances (Å, NaN = background) to uint8: nearest 255, farthest 1, background 0."""
    out = np.zeros(dist.shape, dtype=np.uint8)
    hit = np.isfinite(dist)
    if not hit.any():
        return out
    near, far = float(dist[hit].min()), float(dist[hit].max())
    span = far - near
    if span <= 0:
        out[hit] = 255
        return out
    scaled = 255.0 - (dist[hit] - near) / span * 254.0
    out[hit] = np.clip(np.rint(scaled), 1, 255).astype(np.uint8)
    return out
