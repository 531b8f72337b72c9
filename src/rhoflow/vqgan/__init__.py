"""3DGrid-VQGAN ("A foundation model for simulation-grade molecular electron densities"): a
vector-quantised 3D autoencoder of density box grids (:mod:`rhoflow.models.vqgan3d`) trained on
the shared trainer (:mod:`~rhoflow.vqgan.tasks`, :mod:`~rhoflow.vqgan.data`), its
reconstructions measured with metrics that compare across molecules
(:mod:`~rhoflow.vqgan.metrics`), and embeddings of every molecule for property heads
(:mod:`~rhoflow.vqgan.drivers`; the heads train as edrep ``features`` runs).
"""

from rhoflow.vqgan.data import BoxGridDataModule, BoxGrids
from rhoflow.vqgan.drivers import (
    embed,
    evaluate_vqgan,
    load_vqgan,
    reconstruction_metrics,
    slices_png,
    train_vqgan,
    write_reconstruction_table,
)
from rhoflow.vqgan.metrics import electron_count, ms_ssim3d, psnr, slicewise, ssim3d
from rhoflow.vqgan.tasks import VQGANTask

__all__ = [
    "BoxGridDataModule",
    "BoxGrids",
    "VQGANTask",
    "electron_count",
    "embed",
    "evaluate_vqgan",
    "load_vqgan",
    "ms_ssim3d",
    "psnr",
    "reconstruction_metrics",
    "slices_png",
    "ssim3d",
    "slicewise",
    "train_vqgan",
    "write_reconstruction_table",
]
