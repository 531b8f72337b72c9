"""ImageED's contact sheet: held-out molecules' input, masked input and reconstruction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rhoflow.edg.modelfile import load_model
from rhoflow.edg.tasks import VAL_SEED
from rhoflow.io import atomic_path


def contact_sheet(
    model_file: str | Path,
    groups: Sequence[str | Path],
    split: str | Path,
    out_png: str | Path,
    n_molecules: int = 4,
) -> list[str]:
    """A PNG of ImageED at work on held-out (``test``) molecules: per molecule three rows,
    the input, the masked input (masked patches black) and the reconstruction (predicted
    patches pasted into the visible input), each the six views' RGB then their depth (grey),
    112 px per tile. Masks from :data:`VAL_SEED`. Returns the molecules shown."""
    from PIL import Image, ImageDraw

    from rhoflow.models.imageed import denormalize
    from rhoflow.render import open_images
    from rhoflow.splits import read_splits

    network, _ = load_model(model_file)
    images = open_images([Path(g) for g in groups])
    split_of = read_splits(split)["split"]
    ids = [i for i in split_of.index[split_of == "test"] if i in images][:n_molecules]
    x = torch.from_numpy(np.stack([images.read(i, "density_images") for i in ids]))
    masked, recon = network.reconstruct(x, torch.Generator().manual_seed(VAL_SEED))
    rows = {"input": x, "masked": denormalize(masked), "reconstruction": denormalize(recon)}
    tile, label = 112, 120
    n_views = x.shape[1]
    sheet = Image.new("RGB", (label + 2 * n_views * tile, 3 * len(ids) * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for m, mol_id in enumerate(ids):
        for r, (name, batch) in enumerate(rows.items()):
            y = (3 * m + r) * tile
            draw.text((4, y + 4), f"{mol_id}\n{name}" if r == 0 else name, fill="black")
            for v in range(n_views):
                view = batch[m, v].numpy()  # view: [4, S, S] uint8
                rgb = Image.fromarray(np.ascontiguousarray(view[:3].transpose(1, 2, 0)))
                depth = Image.fromarray(np.ascontiguousarray(view[3])).convert("RGB")
                sheet.paste(rgb.resize((tile, tile)), (label + v * tile, y))
                sheet.paste(depth.resize((tile, tile)), (label + (n_views + v) * tile, y))
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG")
    return ids
