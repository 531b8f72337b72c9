"""Central slices of each voxel input mode's channels (issue 17: do the modes differ as they
should?): for a few molecules of a voxel group, the central xy plane of every channel a mode
feeds the model (atoms: the 8 atom-type occupancies summed, with each element's share in the
title; density; gradient |∇ρ|; shape), on its own colour scale.

    .venv/bin/python benchmarks/voxel_modes.py results/voxels/pcqm-00000.zarr modes.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rhoflow.edrep.data import MODES
from rhoflow.voxels import open_voxels

SHOWN = ("atoms", "density", "gradient", "shape")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("group", type=Path, help="a voxel group (.zarr)")
    parser.add_argument("out", type=Path, help="PNG")
    parser.add_argument("--molecules", type=int, default=2)
    args = parser.parse_args()
    group = open_voxels(args.group)
    channels = list(group.attrs["channels"])
    units = group.attrs["units"]
    ids = group.ids[: args.molecules]
    figure = Figure(figsize=(3.2 * len(SHOWN), 3.0 * len(ids)), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    for row, mol_id in enumerate(ids):
        cube = group.read(mol_id, "voxels").astype(np.float64)  # cube: [C, D, D, D]
        mid = cube.shape[-1] // 2
        for col, mode in enumerate(SHOWN):
            picked = [channels.index(c) for c in MODES[mode]]
            plane = cube[picked, :, :, mid].sum(axis=0)  # plane: [D, D] (x, y)
            ax = figure.add_subplot(len(ids), len(SHOWN), row * len(SHOWN) + col + 1)
            image = ax.imshow(plane.T, origin="lower", cmap="magma")
            figure.colorbar(image, ax=ax, shrink=0.8)
            totals = cube[picked].sum(axis=(1, 2, 3))
            detail = ", ".join(f"{c} {t:.1f}" for c, t in zip(MODES[mode], totals, strict=True)
                               if t > 0.05)  # fmt: skip
            unit = units.get(MODES[mode][0], "") if isinstance(units, dict) else ""
            ax.set_title(f"{mol_id}\n{mode} [{unit}]\nsums: {detail}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.savefig(args.out, format="png")
    print(f"{len(ids)} molecules x {len(SHOWN)} modes -> {args.out}")


if __name__ == "__main__":
    main()
