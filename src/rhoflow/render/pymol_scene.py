"""Headless PyMOL scenes: density/ESP images (EDG §3.3) and ball-and-stick images (EDG §3.5).

Every PyMOL object gets a fixed name (``mol``, ``rho``, ``esp``, ``iso``, ``esp_ramp``) and is
loaded through the Python API from files this module writes into a private temporary
directory, so no molecule id or user path ever reaches a PyMOL command string. Coordinates
arrive in bohr and are written as Å (PDB) or bohr (cube files, which PyMOL converts to Å).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.cube import write_cube
from rhoflow.elements import MAX_Z_ENGINES, SYMBOLS
from rhoflow.render.depth import depth_to_uint8, march_depth
from rhoflow.result import Grid
from rhoflow.units import ANGSTROM_PER_BOHR


def write_pdb(path: Path, atomic_numbers: np.ndarray, coords_bohr: np.ndarray) -> None:
    """Write the atoms as PDB HETATM records (Å); PyMOL infers bonds from distances."""
    lines = []
    xyz = np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3) * ANGSTROM_PER_BOHR
    for i, (z, (x, y, zz)) in enumerate(zip(atomic_numbers, xyz, strict=True), start=1):
        z = int(z)
        if not 0 < z <= MAX_Z_ENGINES:
            raise ValueError(f"atomic number {z} not supported by the renderer")
        sym = SYMBOLS[z]
        name = f"{sym}{i}"[:4]
        lines.append(
            f"HETATM{i:5d} {name:<4s} MOL A   1    {x:8.3f}{y:8.3f}{zz:8.3f}"
            f"  1.00  0.00          {sym.upper():>2s}"
        )
    path.write_text("\n".join(lines) + "\nEND\n")


def pymol_cube_grid(grid: Grid) -> Grid:
    """The grid with a header that PyMOL's cube reader (VMD molfile ``cubeplugin``) places
    correctly.

    That reader treats cube points as cell centres spanning ``n`` cells: it puts point ``i`` at
    ``origin - a/2 + i * a * n / (n - 1)`` (bohr), i.e. it stretches the map about its centre
    by ``n / (n - 1)`` (3–5 % for 20–40 points per axis; measured against analytic spheres).
    Writing spacing ``a' = a (n - 1) / n`` and origin ``o + a'/2`` cancels that, so the drawn
    isosurface sits where the density (and :mod:`rhoflow.render.depth`) has it.
    """
    n = np.asarray(grid.shape, dtype=np.float64)
    spacing = np.asarray(grid.spacing_bohr, dtype=np.float64) * (n - 1) / n
    return Grid(np.asarray(grid.origin_bohr, dtype=np.float64) + spacing / 2, spacing, grid.values)


def isosurface_reach(
    atomic_numbers: np.ndarray, coords_bohr: np.ndarray, density: Grid, level: float
) -> float:
    """How far (Å) the region ``density >= level`` reaches beyond the nearest nucleus.

    PyMOL's extent of an isosurface object is its whole map, so density views are framed
    with ``zoom mol, reach + zoom_buffer`` instead.
    """
    inside = np.argwhere(np.asarray(density.values) >= level)
    if inside.size == 0:
        return 0.0
    pts = density.origin_bohr + inside * density.spacing_bohr  # bohr
    coords = np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3)
    nearest = np.full(len(pts), np.inf)
    for atom in coords:
        nearest = np.minimum(nearest, np.linalg.norm(pts - atom, axis=1))
    return float(nearest.max() + np.max(density.spacing_bohr)) * ANGSTROM_PER_BOHR


@contextmanager
def pymol_session() -> Iterator[Any]:
    """A private headless PyMOL instance; yields its ``cmd`` and stops it afterwards."""
    import pymol2

    instance = pymol2.PyMOL()
    instance.start()
    try:
        yield instance.cmd
    finally:
        instance.stop()


def _reset(cmd: Any, s: Mapping[str, Any]) -> None:
    cmd.reinitialize()
    cmd.feedback("disable", "all", "everything")
    size = int(s["size"])
    cmd.viewport(size, size)
    cmd.bg_color(s["background"])
    cmd.set("ray_opaque_background", 1)
    cmd.set("field_of_view", float(s["field_of_view"]))
    cmd.set("ortho", 1 if s["orthoscopic"] else 0)
    cmd.set("antialias", int(s["antialias"]))


def _snap(cmd: Any, path: Path, size: int) -> np.ndarray:
    """Ray-trace the current view to ``path`` and return it as uint8 [H, W, 4]."""
    from PIL import Image

    cmd.png(str(path), width=size, height=size, ray=1, quiet=1)
    with Image.open(path) as img:
        return np.asarray(img.convert("RGBA"), dtype=np.uint8)


def _views(
    cmd: Any, base: Sequence[float], views: Sequence[Sequence[Any]]
) -> Iterator[tuple[float, ...]]:
    """Set each view in turn: the base view, then ``turn axis, angle``; yield the view."""
    for axis, angle in views:
        cmd.set_view(base)
        if float(angle) != 0.0:
            cmd.turn(str(axis), float(angle))
        yield tuple(cmd.get_view())


def setup_density_scene(
    cmd: Any,
    tmp: Path,
    atomic_numbers: np.ndarray,
    coords_bohr: np.ndarray,
    density: Grid,
    esp: Grid | None,
    settings: Mapping[str, Any],
) -> None:
    """Load molecule, density and ESP (through files in ``tmp``) into ``cmd`` and set up the
    oriented density scene: objects ``mol``, ``rho``, ``esp``, ``iso``, ``esp_ramp``."""
    s = settings
    _reset(cmd, s)
    write_pdb(tmp / "mol.pdb", atomic_numbers, coords_bohr)
    write_cube(tmp / "rho.cube", atomic_numbers, coords_bohr, pymol_cube_grid(density), "rho")
    cmd.load(str(tmp / "mol.pdb"), "mol", quiet=1)
    cmd.load(str(tmp / "rho.cube"), "rho", quiet=1)
    cmd.isosurface("iso", "rho", float(s["iso_level"]), quiet=1)
    if esp is not None:
        write_cube(tmp / "esp.cube", atomic_numbers, coords_bohr, pymol_cube_grid(esp), "esp")
        cmd.load(str(tmp / "esp.cube"), "esp", quiet=1)
        cmd.ramp_new(
            "esp_ramp", "esp", [float(v) for v in s["ramp_levels"]], list(s["ramp_colors"])
        )
        cmd.set("surface_color", "esp_ramp", "iso")
        cmd.disable("esp_ramp")  # no legend
    else:
        cmd.set("surface_color", "grey70", "iso")
    cmd.set("transparency", float(s["transparency"]), "iso")
    cmd.hide("everything", "mol")
    if s["density_molecule"]:
        cmd.show(str(s["density_molecule"]), "mol")
    cmd.disable("rho")
    if esp is not None:
        cmd.disable("esp")
    cmd.orient("mol")
    reach = isosurface_reach(atomic_numbers, coords_bohr, density, float(s["iso_level"]))
    cmd.zoom("mol", reach + float(s["zoom_buffer"]), complete=1)


def render_density_views(
    cmd: Any,
    atomic_numbers: np.ndarray,
    coords_bohr: np.ndarray,
    density: Grid,
    esp: Grid | None,
    settings: Mapping[str, Any],
) -> np.ndarray:
    """Density isosurface coloured by the ESP, one image per density view (``settings``: the
    config's ``render`` section, complete, less ``engine``).

    Returns uint8 ``[n_views, 4, size, size]``: RGB then depth (see
    :mod:`rhoflow.render.depth` for the z-buffer convention; ``depth_mode: alpha`` gives the
    PNG alpha channel of a render with a transparent background instead). Without an ESP the
    surface is grey. A density that never reaches ``iso_level`` (no surface) raises ValueError.
    """
    s = settings
    if not np.nanmax(density.values, initial=-np.inf) >= float(s["iso_level"]):
        level = s["iso_level"]
        raise ValueError(f"the density never reaches the isosurface level {level} e/bohr^3")
    size = int(s["size"])
    views = s["density_views"]
    out = np.zeros((len(views), 4, size, size), dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="rhoflow-render-") as tmp_name:
        tmp = Path(tmp_name)
        setup_density_scene(cmd, tmp, atomic_numbers, coords_bohr, density, esp, s)
        base = cmd.get_view()
        for v, view in enumerate(_views(cmd, base, views)):
            rgba = _snap(cmd, tmp / "view.png", size)
            out[v, :3] = rgba[..., :3].transpose(2, 0, 1)
            if s["depth_mode"] == "zbuffer":
                dist = march_depth(
                    view, density, float(s["iso_level"]), size, size, float(s["depth_step_bohr"])
                )
                out[v, 3] = depth_to_uint8(dist)
            else:
                cmd.set("ray_opaque_background", 0)
                out[v, 3] = _snap(cmd, tmp / "alpha.png", size)[..., 3]
                cmd.set("ray_opaque_background", 1)
        cmd.reinitialize()
    return out


def render_structure_views(
    cmd: Any,
    atomic_numbers: np.ndarray,
    coords_bohr: np.ndarray,
    settings: Mapping[str, Any],
) -> np.ndarray:
    """Ball-and-stick images, one per structure view: uint8 ``[n_views, 3, size, size]``."""
    s = settings
    size = int(s["size"])
    views = s["structure_views"]
    out = np.zeros((len(views), 3, size, size), dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="rhoflow-render-") as tmp_name:
        tmp = Path(tmp_name)
        _reset(cmd, s)
        write_pdb(tmp / "mol.pdb", atomic_numbers, coords_bohr)
        cmd.load(str(tmp / "mol.pdb"), "mol", quiet=1)
        cmd.hide("everything", "mol")
        cmd.show("sticks", "mol")
        cmd.set("stick_ball", 1 if s["stick_ball"] else 0)
        cmd.set("stick_ball_ratio", float(s["stick_ball_ratio"]))
        cmd.set("stick_radius", float(s["stick_radius"]))
        cmd.set("sphere_scale", float(s["sphere_scale"]))
        if s["hide_hydrogens"]:
            cmd.hide("everything", "mol and elem H")
        cmd.orient("mol")
        base = cmd.get_view()
        for v, _view in enumerate(_views(cmd, base, views)):
            out[v] = _snap(cmd, tmp / "view.png", size)[..., :3].transpose(2, 0, 1)
        cmd.reinitialize()
    return out
