"""Image shards: every molecule of one density store rendered to a Zarr v3 group.

Layout of ``<out>.zarr`` (written atomically through :func:`rhoflow.io.atomic_path`):

- ``density_images``: uint8 ``[N, n_density_views, 4, size, size]``, channels R, G, B, depth
  (depth convention in :mod:`rhoflow.render.depth`: nearest 255, farthest 1, background 0;
  or the PNG alpha channel with ``depth_mode: alpha``);
- ``structure_images``: uint8 ``[N, n_structure_views, 3, size, size]``, RGB;
- ``ids``: ``[N]`` molecule ids (row order);
- attrs: ``format`` (``rhoflow-images``), ``ids`` (the same list), ``settings`` (the
  resolved :data:`rhoflow.render.pymol_scene.DEFAULTS`), ``source`` (the density store path),
  ``channels``, ``depth_convention``, ``timing_s`` (per-molecule render seconds) and
  ``complete: true``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from rhoflow.io import atomic_path
from rhoflow.ledger import LedgerRow, fill_rows
from rhoflow.render.pymol_scene import (
    pymol_session,
    render_density_views,
    render_structure_views,
    resolve_settings,
)
from rhoflow.store.reader import open_store

FORMAT = "rhoflow-images"
DEPTH_CONVENTION = {
    "zbuffer": "distance from the camera to the first density isosurface crossing, per view "
    "linearly mapped nearest=255 .. farthest=1; background 0",
    "alpha": "PNG alpha channel of a ray-traced render with a transparent background (EDG)",
}


def build_shard(
    store_path: str | Path, out_path: str | Path, settings: Mapping[str, Any] | None = None
) -> list[LedgerRow]:
    """Render every molecule of the density store ``store_path`` into the image group
    ``out_path`` (replaced atomically). A molecule PyMOL cannot render is left out and
    returned as a ledger row."""
    s = resolve_settings(settings)
    store = open_store(store_path)
    size = int(s["size"])
    n = len(store.ids)
    n_dens, n_struct = len(s["density_views"]), len(s["structure_views"])
    timing: list[dict[str, float]] = []
    failures: list[LedgerRow] = []
    out = Path(out_path)
    with atomic_path(out) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        dens = group.create_array(
            "density_images",
            shape=(n, n_dens, 4, size, size),
            chunks=(1, n_dens, 4, size, size),
            dtype="uint8",
            fill_value=0,
        )
        struct = group.create_array(
            "structure_images",
            shape=(n, n_struct, 3, size, size),
            chunks=(1, n_struct, 3, size, size),
            dtype="uint8",
            fill_value=0,
        )
        with pymol_session() as cmd:

            def compute(pos: int) -> tuple[np.ndarray, np.ndarray]:
                numbers, coords = store.atoms(pos)
                esp = store.grid(pos, "esp") if store.has(pos, "esp") else None
                t0 = time.perf_counter()
                d = render_density_views(cmd, numbers, coords, store.grid(pos, "density"), esp, s)
                t1 = time.perf_counter()
                st = render_structure_views(cmd, numbers, coords, s)
                timing.append({"density_s": t1 - t0, "structure_s": time.perf_counter() - t1})
                return d, st

            done = fill_rows(group, [dens, struct], store.ids, "render", compute, failures)
        group.attrs.update(
            {
                "format": FORMAT,
                "ids": done,
                "settings": s,
                "source": str(Path(store_path)),
                "channels": {
                    "density_images": ["R", "G", "B", "depth"],
                    "structure_images": ["R", "G", "B"],
                },
                "depth_convention": DEPTH_CONVENTION[s["depth_mode"]],
                "timing_s": timing,
                "complete": True,
            }
        )
    return failures


def _safe(mol_id: str) -> str:
    """A file-name-safe form of a molecule id (``demo:water`` → ``demo_water``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", mol_id).strip("._") or "molecule"


def export_pngs(images_store: str | Path, mol_id: str, outdir: str | Path) -> list[Path]:
    """Write one molecule's images as PNGs into ``outdir``; returns the paths.

    Per density view ``k``: ``<id>_density_<k>_rgb.png`` (RGB) and ``<id>_density_<k>_depth.png``
    (8-bit grey, the depth channel as stored); per structure view ``k``:
    ``<id>_structure_<k>.png``. ``<id>`` has every run of characters outside
    ``[A-Za-z0-9._-]`` replaced by ``_``.
    """
    from PIL import Image

    group = zarr.open_group(str(images_store), mode="r", zarr_format=3)
    if group.attrs.get("format") != FORMAT or group.attrs.get("complete") is not True:
        raise ValueError(f"{images_store}: not a finished {FORMAT} group")
    ids = list(group.attrs["ids"])
    try:
        pos = ids.index(mol_id)
    except ValueError:
        raise KeyError(f"{mol_id!r} is not in {images_store}") from None
    dens = np.asarray(group["density_images"][pos])
    struct = np.asarray(group["structure_images"][pos])
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    stem = _safe(mol_id)
    written: list[Path] = []

    def save(array: np.ndarray, name: str) -> None:
        path = outdir / name
        with atomic_path(path) as tmp:
            Image.fromarray(array).save(tmp, format="PNG")
        written.append(path)

    for k, view in enumerate(dens):
        save(np.ascontiguousarray(view[:3].transpose(1, 2, 0)), f"{stem}_density_{k}_rgb.png")
        save(np.ascontiguousarray(view[3]), f"{stem}_density_{k}_depth.png")
    for k, view in enumerate(struct):
        save(np.ascontiguousarray(view.transpose(1, 2, 0)), f"{stem}_structure_{k}.png")
    return written


def export_gallery(images_store: str | Path, outdir: str | Path, n_molecules: int = 2) -> Path:
    """PNGs of the first ``n_molecules`` of ``images_store`` in a new folder ``outdir``
    (written atomically), for the Snakemake report."""
    group = zarr.open_group(str(images_store), mode="r", zarr_format=3)
    with atomic_path(outdir) as tmp:
        tmp.mkdir()
        for mol_id in list(group.attrs["ids"])[:n_molecules]:
            export_pngs(images_store, mol_id, tmp)
    return Path(outdir)
