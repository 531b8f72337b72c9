"""NDeM and its baselines: energy + force training on non-equilibrium frames (MD17, rMD17,
rhoflow's own GFN2-xTB MD) on the shared trainer.

:mod:`~rhoflow.ndem.data` serves one trajectory's frames by a split file,
:mod:`~rhoflow.ndem.noise` holds the coordinate noise and the NDeM, classical denoising and
DeNS-style losses (equations there), :mod:`~rhoflow.ndem.tasks` the energy + force task that
adds one of them, :mod:`~rhoflow.ndem.drivers` the training rule's driver. The backbone is
TorchMD-NET's Equivariant Transformer (:mod:`rhoflow.models.force_field`).
"""

from rhoflow.ndem.data import FrameDataModule, Frames, collate_frames
from rhoflow.ndem.drivers import loss_settings, train_forces
from rhoflow.ndem.noise import Noise, denoise_loss, ndem_loss, perturb
from rhoflow.ndem.tasks import VARIANTS, ForceTask

__all__ = [
    "VARIANTS",
    "ForceTask",
    "FrameDataModule",
    "Frames",
    "Noise",
    "collate_frames",
    "loss_settings",
    "denoise_loss",
    "ndem_loss",
    "perturb",
    "train_forces",
]
