"""Image shards: every molecule of one density store rendered into one per-molecule group
(:func:`build_shard`), or only the structure views of a molecule table, which need no density
(:func:`build_structure_shard`: the same format without ``density_images``).

Layout of ``<out>.zarr`` (:class:`rhoflow.zarrgroup.MoleculeGroupWriter`: written atomically,
``ids``, one molecule per inner chunk, ``complete`` marker written last):

- ``density_images``: uint8 ``[molecule, density_view, rgbd, y, x]``, channels R, G, B, depth
  (depth convention in :mod:`rhoflow.render.depth`: nearest 255, farthest 1, background 0;
  or the PNG alpha channel with ``depth_mode: alpha``);
- ``structure_images``: uint8 ``[molecule, structure_view, rgb, y, x]``, RGB;
- ``ids``: ``[molecule]`` molecule ids (row order);
- attrs: ``format`` (``rhoflow-images``), ``settings`` (the config's ``render`` section it was
  rendered with, complete, less ``engine``), ``source`` (the density store path),
  ``channels``, ``depth_convention``, ``timing_s`` (per-molecule render seconds).

:func:`open_images` reads them back: ``open_images(path)[id]["density_images"]``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.io import atomic_path
from rhoflow.ledger import LedgerRow, each_molecule
from rhoflow.render.pymol_scene import (
    pymol_session,
    render_density_views,
    render_structure_views,
)
from rhoflow.store.reader import open_store
from rhoflow.units import ANGSTROM_PER_BOHR
from rhoflow.zarrgroup import (
    MoleculeGroup,
    MoleculeGroups,
    MoleculeGroupWriter,
    open_representation,
)

FORMAT = "rhoflow-images"
DEPTH_CONVENTION = {
    "zbuffer": "distance from the camera to the first density isosurface crossing, per view "
    "linearly mapped nearest=255 .. farthest=1; background 0",
    "alpha": "PNG alpha channel of a ray-traced render with a transparent background (EDG)",
}


def build_shard(
    store_path: str | Path, out_path: str | Path, settings: Mapping[str, Any]
) -> list[LedgerRow]:
    """Render every molecule of the density store ``store_path`` into the image group
    ``out_path`` (replaced atomically) with ``settings`` (the config's ``render`` section,
    complete, less ``engine``). A molecule PyMOL cannot render is left out and returned as a
    ledger row."""
    s = dict(settings)
    store = open_store(store_path)
    size = int(s["size"])
    n_dens, n_struct = len(s["density_views"]), len(s["structure_views"])
    timing: list[dict[str, float]] = []
    failures: list[LedgerRow] = []
    attributes = {
        "settings": s,
        "source": str(Path(store_path)),
        "channels": {
            "density_images": ["R", "G", "B", "depth"],
            "structure_images": ["R", "G", "B"],
        },
        "depth_convention": DEPTH_CONVENTION[s["depth_mode"]],
    }
    with MoleculeGroupWriter(out_path, FORMAT, attributes) as out, pymol_session() as cmd:
        out.array(
            "density_images",
            (n_dens, 4, size, size),
            "uint8",
            ("molecule", "density_view", "rgbd", "y", "x"),
            "1",
            description="RGB + depth, 0-255",
        )
        out.array(
            "structure_images",
            (n_struct, 3, size, size),
            "uint8",
            ("molecule", "structure_view", "rgb", "y", "x"),
            "1",
            description="RGB, 0-255",
        )

        def compute(pos: int) -> tuple[np.ndarray, np.ndarray]:
            numbers, coords = store.atoms(pos)
            esp = store.grid(pos, "esp") if store.has(pos, "esp") else None
            t0 = time.perf_counter()
            d = render_density_views(cmd, numbers, coords, store.grid(pos, "density"), esp, s)
            t1 = time.perf_counter()
            st = render_structure_views(cmd, numbers, coords, s)
            timing.append({"density_s": t1 - t0, "structure_s": time.perf_counter() - t1})
            return d, st

        for _, mol_id, (dens, struct) in each_molecule(store.ids, "render", compute, failures):
            out.add(mol_id, density_images=dens, structure_images=struct)
        assert out.group is not None
        out.group.attrs["timing_s"] = timing
    return failures


def build_structure_shard(
    table_path: str | Path, out_path: str | Path, settings: Mapping[str, Any]
) -> list[LedgerRow]:
    """Render the structure views of every molecule of a molecule table (the conformer
    stage's shards: coordinates in Å, no density needed) into an image group ``out_path`` with
    ``structure_images`` only (replaced atomically). A molecule without coordinates or that
    PyMOL cannot render is left out and returned as a ledger row (stage ``render_structures``)."""
    import pyarrow.parquet as pq

    s = dict(settings)
    size = int(s["size"])
    table = pq.read_table(table_path, columns=["id", "atomic_numbers", "coords_angstrom"])
    ids = table["id"].to_pylist()
    numbers, coords = table["atomic_numbers"].to_pylist(), table["coords_angstrom"].to_pylist()
    timing: list[float] = []
    failures: list[LedgerRow] = []
    attributes = {
        "settings": s,
        "source": str(Path(table_path)),
        "channels": {"structure_images": ["R", "G", "B"]},
    }

    def compute(pos: int) -> np.ndarray:
        if coords[pos] is None:
            raise ValueError("the molecule has no coordinates")
        xyz = np.asarray(coords[pos], dtype=np.float64).reshape(-1, 3) / ANGSTROM_PER_BOHR
        t0 = time.perf_counter()
        images = render_structure_views(cmd, np.asarray(numbers[pos]), xyz, s)
        timing.append(time.perf_counter() - t0)
        return images

    with MoleculeGroupWriter(out_path, FORMAT, attributes) as out, pymol_session() as cmd:
        out.array(
            "structure_images",
            (len(s["structure_views"]), 3, size, size),
            "uint8",
            ("molecule", "structure_view", "rgb", "y", "x"),
            "1",
            description="RGB, 0-255",
        )
        for _, mol_id, images in each_molecule(ids, "render_structures", compute, failures):
            out.add(mol_id, structure_images=images)
        assert out.group is not None
        out.group.attrs["timing_s"] = [{"structure_s": t} for t in timing]
    return failures


def open_images(path: str | Path | list[str | Path]) -> MoleculeGroup | MoleculeGroups:
    """Image groups written by :func:`build_shard` (one path or a list of shards):
    ``open_images(path)[id]`` has ``density_images`` uint8 ``[6, 4, S, S]`` and
    ``structure_images`` uint8 ``[4, 3, S, S]``."""
    return open_representation(path, FORMAT)


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

    images = open_images(images_store)[mol_id]
    dens, struct = images.get("density_images", ()), images["structure_images"]
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
    ids = open_images(images_store).ids
    with atomic_path(outdir) as tmp:
        tmp.mkdir()
        for mol_id in ids[:n_molecules]:
            export_pngs(images_store, mol_id, tmp)
    return Path(outdir)
