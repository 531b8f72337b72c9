"""The VQ-GAN's drivers: train on a density store's box grids (the shared trainer), evaluate
saved epochs' reconstructions of the test molecules, draw their central slices, and embed
every molecule for fine-tuning. Settings arrive completed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from rhoflow.features import write_features
from rhoflow.io import atomic_path
from rhoflow.models.vqgan3d import VQGAN3D, SliceDiscriminator
from rhoflow.train.fit import fit_and_test
from rhoflow.vqgan.data import BoxGridDataModule, BoxGrids
from rhoflow.vqgan.metrics import electron_count, ms_ssim3d, psnr, slicewise, ssim3d
from rhoflow.vqgan.tasks import VQGANTask

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
"""The run's summary (:func:`train_vqgan`), written last: the train rule's output."""

POOL = 4
"""The non-learned baseline embedding: log(1 + ρ) average-pooled to POOL³ cells."""


def train_vqgan(
    run_dir: str | Path,
    stores: Sequence[str | Path],
    split: str | Path,
    model_kwargs: dict[str, Any],
    discriminator_kwargs: dict[str, Any],
    losses: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Train the VQ-GAN on the box grids of ``stores`` by ``split`` (val_l1 selects the best
    checkpoint, which is tested); resumes from the run's last.ckpt. Writes ``summary.json``.

    Args:
        run_dir: the run directory (created).
        stores: the density engine's shard stores (``grid: box``, fixed ``box_edge_bohr``).
        split: the source's split file.
        model_kwargs: :class:`~rhoflow.models.vqgan3d.VQGAN3D` arguments.
        discriminator_kwargs: :class:`~rhoflow.models.vqgan3d.SliceDiscriminator` arguments.
        losses: the loss weights and schedule (:class:`~rhoflow.vqgan.tasks.VQGANTask`).
        settings: the completed trainer settings.

    Returns:
        The summary: best epoch, val_l1, test metrics, grid, data range, parameters.
    """
    L.seed_everything(settings["seed"], workers=True)
    data = BoxGridDataModule(stores, split, settings["batch_size"], settings["num_workers"],
                             settings["seed"])  # fmt: skip
    data.setup("fit")
    data.fix_data_range()
    model = VQGAN3D(**model_kwargs)
    discriminator = SliceDiscriminator(**discriminator_kwargs)
    params = sum(p.numel() for p in model.parameters())
    config = {
        "train": settings,
        "model": {"kwargs": model_kwargs, "params": params},
        "discriminator": {"kwargs": discriminator_kwargs},
        "losses": losses,
        "data": data.describe(),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
    }
    task = VQGANTask(model, discriminator, settings, losses, data.data_range,
                     data.voxel_volume_bohr3)  # fmt: skip
    summary = fit_and_test(run_dir, task, data, settings, config)
    summary.update(params=params, points=data.points, spacing_bohr=data.spacing_bohr,
                   data_range=data.data_range)  # fmt: skip
    with atomic_path(Path(run_dir) / SUMMARY) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("vqgan: %s", summary)
    return summary


def load_vqgan(run_dir: str | Path, checkpoint: str | Path | None = None) -> VQGAN3D:
    """The VQ-GAN of a run directory from ``checkpoint`` (default its best.ckpt), in eval mode
    (weights only)."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    model = VQGAN3D(**config["model"]["kwargs"])
    path = Path(checkpoint) if checkpoint is not None else run_dir / "checkpoints" / "best.ckpt"
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    return model.eval()


def _test_grids(run_dir: Path) -> tuple[BoxGrids, dict[str, Any]]:
    config = json.loads((run_dir / "config.json").read_text())
    data = BoxGridDataModule(config["data"]["stores"], config["data"]["split"])
    data.setup("test")
    return data.datasets["test"], config["data"]


@torch.no_grad()
def reconstruction_metrics(
    model: VQGAN3D, grids: BoxGrids, data: dict[str, Any], batch_size: int = 4
) -> dict[str, float]:
    """Reconstruction metrics of ``model`` over every molecule of ``grids`` (means over
    molecules): 3D SSIM, MS-SSIM and PSNR (dB) with the fixed ``data_range``, MAE in
    log(1 + ρ) and in e/bohr³, the molecules' electrons and the grid counts (Σρ·ΔV) of input
    and reconstruction and their absolute (e) and relative (%) difference, codebook usage
    (fraction of codes) and perplexity, and the paper's slice-wise PSNR and SSIM (per-slice
    ranges)."""
    r, volume = data["data_range"], data["spacing_bohr"] ** 3
    rows: list[dict[str, Tensor]] = []
    counts = torch.zeros(model.quantizer.n_codes)
    for lo in range(0, len(grids), batch_size):
        rows_of_batch = range(lo, min(lo + batch_size, len(grids)))
        x = torch.from_numpy(np.stack([grids[i]["x"] for i in rows_of_batch]))
        y, _, stats = model(x)  # x, y: [B, 1, n, n, n]
        counts += torch.bincount(stats["indices"].flatten(), minlength=len(counts)).float()
        n_in, n_out = electron_count(x, volume), electron_count(y, volume)
        parity = slicewise(y, x)
        rows.append({
            "ssim": ssim3d(y, x, r), "ms_ssim": ms_ssim3d(y, x, r), "psnr_db": psnr(y, x, r),
            "mae_log": (y - x).abs().double().flatten(1).mean(1),
            "mae_e_bohr3": (torch.expm1(y.double()) - torch.expm1(x.double())).abs()
            .flatten(1).mean(1),
            "electrons_molecule": torch.tensor([grids.electrons(i) for i in rows_of_batch],
                                               dtype=torch.float64),
            "electrons_input": n_in, "electrons_reconstruction": n_out,
            "electron_error_e": (n_out - n_in).abs(),
            "electron_error_pct": 100 * (n_out - n_in).abs() / n_in,
            "slice_psnr_db": parity["psnr"], "slice_ssim": parity["ssim"],
        })  # fmt: skip
    out = {k: float(torch.cat([row[k] for row in rows]).mean()) for k in rows[0]}
    p = counts / counts.sum()
    out["codebook_usage"] = float((counts > 0).float().mean())
    out["perplexity"] = float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))
    return out


def checkpoint_epochs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the run's kept epoch checkpoints and its best one, by epoch."""
    folder = Path(run_dir) / "checkpoints"
    found = {int(p.stem[5:]): p for p in folder.glob("epoch[0-9][0-9][0-9].ckpt")}
    best = folder / "best.ckpt"
    found.setdefault(int(torch.load(best, map_location="cpu", weights_only=True)["epoch"]), best)
    return sorted(found.items())


def evaluate_vqgan(run_dir: str | Path) -> pd.DataFrame:
    """The reconstruction table of a run (3DGrid-VQGAN Table 2's layout): one row per kept
    epoch (and the best-validation one, ``best``), :func:`reconstruction_metrics` on the run's
    test molecules. ``attrs``: ``n_test``, ``data_range``, ``points``, ``spacing_bohr``,
    ``best_epoch``."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / SUMMARY).read_text())
    grids, data = _test_grids(run_dir)
    if len(grids) == 0:
        raise ValueError(f"{run_dir}: no test molecule has a density")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    rows = []
    for epoch, path in checkpoint_epochs(run_dir):
        log.info("evaluating epoch %d (%s) on %d test molecules", epoch, path.name, len(grids))
        val = metrics.loc[metrics["epoch"] == epoch, "val_l1"].dropna()
        rows.append({"epoch": epoch, "best": epoch == summary["best_epoch"],
                     "val_l1": float(val.iloc[-1]) if len(val) else np.nan,
                     **reconstruction_metrics(load_vqgan(run_dir, path), grids, data)})  # fmt: skip
    out = pd.DataFrame(rows)
    out.attrs.update(
        n_test=len(grids), data_range=data["data_range"], points=data["points"],
        spacing_bohr=data["spacing_bohr"], best_epoch=summary["best_epoch"],
    )  # fmt: skip
    return out


NOT_COMPUTED = (
    "FID, KID and LPIPS (the paper's other columns) are not computed: each needs a network "
    "pretrained on natural images (Inception, VGG/AlexNet), and none can be downloaded here."
)


def write_reconstruction_table(
    df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, html_path: str | Path
) -> None:
    """Write :func:`evaluate_vqgan`'s table as CSV (every column), Markdown and an HTML page
    (for the report), atomically."""
    import html

    from rhoflow.io import html_table, write_html

    a = df.attrs
    with atomic_path(csv_path) as tmp:
        df.assign(data_range=a["data_range"]).to_csv(tmp, index=False, lineterminator="\n")
    caption = (
        f"VQ-GAN reconstructions of {a['n_test']} held-out (test) molecules per kept epoch "
        f"(epochs from 0; ★ the best-validation epoch, the one to report). Grids "
        f"{a['points']}³ at {a['spacing_bohr']:.3f} bohr, in log(1 + ρ), ρ in e/bohr³. 3D "
        f"SSIM (7³ Gaussian window), MS-SSIM (3 scales, 5³ window; 3³ under 20 points) and "
        f"PSNR use one fixed data range R = {a['data_range']:.3f} (the largest train "
        "log(1 + ρ)) for every molecule; slice columns: the paper's protocol (2D, each z-slice "
        "with its own range, averaged), which inflates scores and does not compare across "
        "molecules. Electrons: the molecule's, and Σρ·ΔV on the grid of the input and of the "
        "reconstruction (the same quadrature: the difference is the reconstruction's)."
    )
    header = ["epoch", "SSIM 3D", "MS-SSIM 3D", "PSNR 3D (dB)", "MAE log(1+ρ)",
              "MAE (e/bohr³)", "electrons", "Σρ·ΔV input", "Δ Σρ·ΔV (e)", "Δ Σρ·ΔV (%)",
              "codes used", "perplexity", "slice PSNR (dB)", "slice SSIM"]  # fmt: skip
    rows = [
        [f"{int(r['epoch'])}{' ★' if r['best'] else ''}", f"{r['ssim']:.4f}",
         f"{r['ms_ssim']:.4f}", f"{r['psnr_db']:.2f}", f"{r['mae_log']:.4f}",
         f"{r['mae_e_bohr3']:.2e}", f"{r['electrons_molecule']:.2f}",
         f"{r['electrons_input']:.2f}",
         f"{r['electron_error_e']:.3f}", f"{r['electron_error_pct']:.2f}",
         f"{100 * r['codebook_usage']:.1f} %", f"{r['perplexity']:.1f}",
         f"{r['slice_psnr_db']:.2f}", f"{r['slice_ssim']:.4f}"]
        for _, r in df.iterrows()
    ]  # fmt: skip
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", NOT_COMPUTED]
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    body = f"<p>{html.escape(caption)}</p>\n{html_table(header, rows)}\n"
    write_html(html_path, "VQ-GAN reconstructions", body + f"<p>{html.escape(NOT_COMPUTED)}</p>")


@torch.no_grad()
def slices_png(run_dir: str | Path, out_png: str | Path, n_molecules: int = 3) -> list[str]:
    """Central z-slices of the first ``n_molecules`` test molecules: input, reconstruction
    (best checkpoint) and their difference, in log(1 + ρ). Returns the molecules' ids."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    grids, data = _test_grids(run_dir)
    model = load_vqgan(run_dir)
    n = min(n_molecules, len(grids))
    figure = Figure(figsize=(7.5, 2.4 * n), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    ids = []
    for row in range(n):
        item = grids[row]
        x = torch.from_numpy(item["x"])[None]  # x: [1, 1, n, n, n]
        y = model(x)[0]
        k = x.shape[-1] // 2
        panels = [x[0, 0, :, :, k], y[0, 0, :, :, k], (y - x)[0, 0, :, :, k]]
        names = ["input", "reconstruction", "reconstruction − input"]
        extent = [0, (data["points"] - 1) * data["spacing_bohr"]] * 2
        top = float(panels[0].max()) or 1.0  # input and reconstruction on the input's scale
        for col, (panel, name) in enumerate(zip(panels, names, strict=True)):
            ax = figure.add_subplot(n, 3, 3 * row + col + 1)
            if col < 2:
                image = ax.imshow(panel.T.numpy(), origin="lower", cmap="viridis", vmin=0,
                                  vmax=top, extent=extent)  # fmt: skip
            else:
                d = float(panel.abs().max()) or 1.0
                image = ax.imshow(panel.T.numpy(), origin="lower", cmap="RdBu_r", vmin=-d,
                                  vmax=d, extent=extent)  # fmt: skip
            figure.colorbar(image, ax=ax, shrink=0.8)
            ax.set_title(f"{item['id']}: {name}" if col == 0 else name, fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("x (bohr)", fontsize=6)
        ids.append(str(item["id"]))
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png")
    return ids


@torch.no_grad()
def embed(run_dir: str | Path, latent_out: str | Path, density_out: str | Path,
          batch_size: int = 4) -> int:  # fmt: skip
    """Two features groups of every molecule of the run's split with a density: the frozen
    encoder's pre-quantisation latent mean-pooled over space ([embed_dim], best checkpoint)
    and the non-learned baseline, log(1 + ρ) average-pooled to :data:`POOL`³ cells
    ([POOL³]). Returns the number of molecules."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    data = BoxGridDataModule(config["data"]["stores"], config["data"]["split"])
    data.setup("fit")
    model = load_vqgan(run_dir)
    ids, latent, pooled = [], [], []
    for grids in data.datasets.values():
        for lo in range(0, len(grids), batch_size):
            items = [grids[i] for i in range(lo, min(lo + batch_size, len(grids)))]
            x = torch.from_numpy(np.stack([it["x"] for it in items]))  # x: [B, 1, n, n, n]
            latent.append(model.encode(x).mean(dim=(2, 3, 4)).numpy())  # [B, embed_dim]
            pooled.append(torch.nn.functional.adaptive_avg_pool3d(x, POOL).flatten(1).numpy())
            ids += [str(it["id"]) for it in items]
    source = {"run": str(run_dir), "checkpoint": "checkpoints/best.ckpt"}
    write_features(latent_out, ids, np.concatenate(latent),
                   {**source, "kind": "vqgan_latent", "pooling": "mean over space"})  # fmt: skip
    write_features(density_out, ids, np.concatenate(pooled),
                   {**source, "kind": "pooled_density", "pooling": f"average to {POOL}^3 of "
                    "log(1 + rho)"})  # fmt: skip
    return len(ids)
