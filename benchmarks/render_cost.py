"""Rendering cost per molecule, against the cost of the density calculation itself.

For every molecule of the given density stores (default: ``results/density/psi4/*.zarr``)
renders, at the default ``render`` settings of the config schema (224×224):

* the six density/ESP views (PyMOL ray tracing plus the ray-marched z-buffer; the z-buffer
  share is reported separately),
* the four ball-and-stick views,

in one headless PyMOL session, and prints seconds per molecule and the ratio of rendering
time to the engine's wall time recorded in the molecule's provenance (``wall_s``). Wall times
on a shared machine include waiting for a core.

    .venv/bin/python benchmarks/render_cost.py [stores ...] [--size 224] [--repeat 1]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import time
from pathlib import Path
from typing import Any

import rhoflow.render.pymol_scene as scene
from rhoflow.config import section_settings
from rhoflow.store.reader import open_store

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", help="density stores (default: psi4 results)")
    parser.add_argument("--size", type=int, default=section_settings("render")["size"])
    parser.add_argument("--repeat", type=int, default=1, help="renders per molecule (best of)")
    args = parser.parse_args()
    paths = args.stores or sorted(glob.glob(str(REPO / "results/density/psi4/*.zarr")))
    settings = section_settings("render", {"size": args.size})

    depth_time = [0.0]
    march = scene.march_depth

    def timed_march(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return march(*a, **k)
        finally:
            depth_time[0] += time.perf_counter() - t0

    scene.march_depth = timed_march  # type: ignore[assignment]
    rows: list[dict[str, Any]] = []
    with scene.pymol_session() as cmd:
        for path in paths:
            store = open_store(path)
            for mol_id in store.ids:
                numbers, coords = store.atoms(mol_id)
                rho = store.grid(mol_id, "density")
                esp = store.grid(mol_id, "esp") if store.has(mol_id, "esp") else None
                best = {"density_s": float("inf"), "depth_s": 0.0, "structure_s": float("inf")}
                for _ in range(args.repeat):
                    depth_time[0] = 0.0
                    t0 = time.perf_counter()
                    scene.render_density_views(cmd, numbers, coords, rho, esp, settings)
                    t1 = time.perf_counter()
                    scene.render_structure_views(cmd, numbers, coords, settings)
                    t2 = time.perf_counter()
                    if t1 - t0 < best["density_s"]:
                        best["density_s"], best["depth_s"] = t1 - t0, depth_time[0]
                    best["structure_s"] = min(best["structure_s"], t2 - t1)
                wall = store.metadata(mol_id)["provenance"].get("wall_s")
                rows.append(
                    {
                        "id": mol_id,
                        "atoms": len(numbers),
                        "grid": "x".join(str(n) for n in rho.shape),
                        "engine_s": float(wall) if wall else float("nan"),
                        **best,
                    }
                )
    scene.march_depth = march  # type: ignore[assignment]

    print(f"{len(rows)} molecules from {len(paths)} stores, {args.size}x{args.size} px")
    header = "id                       atoms grid       dens_s depth_s struct_s engine_s ratio"
    print(header)
    for r in rows:
        total = r["density_s"] + r["structure_s"]
        print(
            f"{r['id']:<24} {r['atoms']:>5} {r['grid']:<10} {r['density_s']:6.2f} "
            f"{r['depth_s']:7.2f} {r['structure_s']:8.3f} {r['engine_s']:8.2f} "
            f"{total / r['engine_s']:5.2f}"
        )
    if not rows:
        return
    for key in ("density_s", "depth_s", "structure_s", "engine_s"):
        vals = [r[key] for r in rows]
        print(
            f"{key:<12} mean {statistics.fmean(vals):7.3f}  median {statistics.median(vals):7.3f}"
            f"  max {max(vals):7.3f}"
        )
    ratios = [(r["density_s"] + r["structure_s"]) / r["engine_s"] for r in rows]
    render_total = sum(r["density_s"] + r["structure_s"] for r in rows)
    engine_total = sum(r["engine_s"] for r in rows)
    print(
        f"render/engine ratio: mean {statistics.fmean(ratios):.3f}  median "
        f"{statistics.median(ratios):.3f}  (sum render {render_total:.1f} s"
        f" vs sum engine {engine_total:.1f} s)"
    )


if __name__ == "__main__":
    main()
