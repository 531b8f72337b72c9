"""Central density slices for the report: what a density store holds, at a glance.

For each of the first molecules of a shard store, the xy plane of its density grid nearest to
the molecule's centre (the mean of its nuclear positions), drawn on a logarithmic colour scale
in e/bohr³ with the atoms projected onto the plane. The values are the store's own float32
grid values (read through :func:`rhoflow.store.open_store`), not resampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rhoflow.elements import symbol
from rhoflow.io import atomic_path
from rhoflow.store import UNITS, ShardStore, open_store


@dataclass(frozen=True)
class CentralSlice:
    """One molecule's density in the xy plane through its centre."""

    id: str
    values: np.ndarray  # [nx, ny] e/bohr³
    x_bohr: np.ndarray  # [nx] grid x coordinates
    y_bohr: np.ndarray  # [ny] grid y coordinates
    z_bohr: float  # height of the plane
    atomic_numbers: np.ndarray  # [n_atoms]
    coords_bohr: np.ndarray  # [n_atoms, 3]


def central_slice(store: ShardStore, key: str | int) -> CentralSlice:
    """The xy plane of molecule ``key``'s density grid nearest to the mean of its nuclear
    positions (bohr)."""
    grid = store.grid(key, "density")
    numbers, coords = store.atoms(key)
    x, y, z = grid.axes_bohr()
    k = int(np.clip(np.rint((coords[:, 2].mean() - z[0]) / grid.spacing_bohr[2]), 0, len(z) - 1))
    mol_id = key if isinstance(key, str) else store.ids[key]
    return CentralSlice(
        mol_id, np.asarray(grid.values[:, :, k]), x, y, float(z[k]), numbers, coords
    )


def plot_slices(
    store_path: str | Path,
    png: str | Path,
    n_molecules: int = 3,
    floor_e_per_bohr3: float = 1e-5,
    ids: Sequence[str] = (),
) -> list[str]:
    """Draw the central slices of ``ids`` (default: the store's first ``n_molecules``) side by
    side on one log colour scale from ``floor_e_per_bohr3`` (lower values, zeros included, take
    its colour) to the largest value shown, with a colourbar in e/bohr³; write the PNG
    atomically and return the ids drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    store = open_store(store_path)
    keys = list(ids) or store.ids[:n_molecules]
    slices = [central_slice(store, key) for key in keys]
    provenance = store.metadata(keys[0])["provenance"] if keys else {}
    top = max((float(s.values.max()) for s in slices), default=1.0)
    norm = LogNorm(vmin=floor_e_per_bohr3, vmax=max(top, 10 * floor_e_per_bohr3))

    figure = Figure(figsize=(3.2 * max(len(slices), 1) + 1.0, 3.6), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, max(len(slices), 1), squeeze=False)[0]
    image = None
    for ax, s in zip(axes, slices, strict=False):
        dx, dy = s.x_bohr[1] - s.x_bohr[0], s.y_bohr[1] - s.y_bohr[0]
        extent = (
            s.x_bohr[0] - dx / 2,
            s.x_bohr[-1] + dx / 2,
            s.y_bohr[0] - dy / 2,
            s.y_bohr[-1] + dy / 2,
        )
        # values [x, y] -> image rows y, columns x
        image = ax.imshow(
            np.maximum(s.values, floor_e_per_bohr3).T,
            origin="lower",
            extent=extent,
            norm=norm,
            cmap="viridis",
        )
        near = np.abs(s.coords_bohr[:, 2] - s.z_bohr) <= 1.0  # atoms within 1 bohr of the plane
        ax.scatter(
            s.coords_bohr[:, 0],
            s.coords_bohr[:, 1],
            s=12,
            facecolors="none",
            edgecolors=np.where(near, "white", "0.6"),
            linewidths=0.8,
        )
        for z, (xa, ya, _) in zip(s.atomic_numbers, s.coords_bohr, strict=True):
            ax.annotate(
                symbol(int(z)),
                (xa, ya),
                xytext=(3, 3),
                textcoords="offset points",
                color="white",
                fontsize=6,
            )
        ax.set_title(f"{s.id}\nz = {s.z_bohr:.2f} bohr", fontsize=8)
        ax.set_xlabel("x (bohr)", fontsize=8)
        ax.set_ylabel("y (bohr)", fontsize=8)
        ax.tick_params(labelsize=7)
    if image is not None:
        bar = figure.colorbar(image, ax=list(axes), shrink=0.9)
        bar.set_label(f"electron density ({UNITS['density'].replace('^3', '³')})", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    else:
        axes[0].text(0.5, 0.5, "no molecule in this store", ha="center", va="center")
        axes[0].set_axis_off()
    what = " ".join(str(provenance.get(k, "")) for k in ("engine", "method", "basis")).strip()
    figure.suptitle(f"{Path(store_path).name}: central xy slices ({what})", fontsize=9)
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png")
    return [s.id for s in slices]
