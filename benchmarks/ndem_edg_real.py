"""EDG on real MD frames (issue 19) with an EDG teacher trained on real densities.

The teacher: the EDG chain of ``benchmarks/edg_pcqm_qm9.yaml`` (``results/edg/teacher/model.pt``;
the 2026-12-07 run used 8 ImageED and 8 teacher epochs). The trajectories: the stores and splits
``benchmarks/ndem_md17.yaml`` makes (MD17 ethanol, rhoflow's GFN2-xTB aspirin). Steps, each a
library call the ``md_frames`` / ``md_render_structures`` / ``md_teacher_features`` /
``train_ndem`` rules also make::

    python benchmarks/ndem_edg_real.py --workdir W --teacher T prep ethanol      # frames + images
    python benchmarks/ndem_edg_real.py --workdir W --teacher T features ethanol  # teacher features
    python benchmarks/ndem_edg_real.py --workdir W --teacher T train ethanol 0   # seed 0

``W`` holds ``md17_ethanol.zarr`` / ``aspirin_xtb.zarr`` and ``<molecule>_split.parquet``;
training settings are those of ``ndem_md17.yaml`` (ET 32 × 3, batch 16, lr 1e-3 cosine,
ethanol 40 / aspirin 25 epochs); runs go to ``W/runs/<molecule>/edg_real/seed<N>``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

TRAJECTORIES = {"ethanol": ("md17_ethanol.zarr", "md17_ethanol", 40),
                "aspirin": ("aspirin_xtb.zarr", "aspirin:0", 25)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--teacher", type=Path, required=True)
    p.add_argument("--threads", type=int, default=int(os.environ.get("EDG_THREADS", "1")))
    p.add_argument("step", choices=["prep", "features", "train"])
    p.add_argument("molecule", choices=sorted(TRAJECTORIES))
    p.add_argument("seed", type=int, nargs="?", default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = args.workdir
    name, traj, epochs = TRAJECTORIES[args.molecule]
    store = root / name
    frames = root / f"frames_{args.molecule}.parquet"
    structures = root / f"structures_{args.molecule}.zarr"
    features = root / f"teacher_features_real_{args.molecule}.zarr"
    start = time.perf_counter()
    if args.step == "prep":
        from rhoflow.config import section_settings
        from rhoflow.md import frames_table
        from rhoflow.render.store import build_structure_shard

        frames_table([store], traj, frames)
        settings = section_settings("render", {})
        settings.pop("engine")
        print(build_structure_shard(frames, structures, settings))
    elif args.step == "features":
        from rhoflow.edg.features import write_model_features

        print(write_model_features(args.teacher, [structures], features))
    else:
        from rhoflow.config import section_settings
        from rhoflow.edg.modelfile import load_predictor
        from rhoflow.ndem import loss_settings, train_forces

        ndem = section_settings("ndem", {"noise": {"sigma_min": 0.005}})
        settings = dict(
            seed=args.seed, batch_size=16, num_workers=0, lr=1e-3, weight_decay=0.0,
            scheduler="cosine", lr_factor=0.8, lr_patience=10, lr_min=1e-5, max_epochs=epochs,
            max_time=None, gradient_clip_val=None, keep_every_n_epochs=None, progress_bar=False,
            early_stopping_patience=None, accelerator="cpu", devices=1, num_nodes=1,
            precision="32-true", atomref=None,
        )
        model = dict(hidden_channels=32, num_layers=3, num_rbf=32, num_heads=4, cutoff=5.0)
        teacher = {"predictor": load_predictor(args.teacher), "features": features,
                   "model": str(args.teacher)}
        out = train_forces(root / "runs" / args.molecule / "edg_real" / f"seed{args.seed}", store,
                           traj, root / f"{args.molecule}_split.parquet", model,
                           loss_settings("edg", ndem), settings, teacher)
        print(f"edg {args.molecule} seed {args.seed}: energy MAE {out['test_energy_mae']:.3f} "
              f"kcal/mol, force MAE {out['test_force_mae']:.3f} kcal/mol/Å, "
              f"{out['frames_per_s']:.0f} frames/s, best epoch {out['best_epoch']}")
    print(f"{args.step} {args.molecule}: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
