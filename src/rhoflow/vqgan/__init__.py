"""3DGrid-VQGAN (issue 18, in progress): a vector-quantised 3D autoencoder of density grids
(:mod:`rhoflow.models.vqgan3d`) and reconstruction metrics that compare across molecules
(:mod:`~rhoflow.vqgan.metrics`). Training, evaluation and fine-tuning rules follow."""

from rhoflow.vqgan.metrics import electron_count, psnr, slicewise, ssim3d

__all__ = ["electron_count", "psnr", "slicewise", "ssim3d"]
