"""edrep: learning from electron-density representations — the voxel 3D-CNN's input modes and
low-data curves ("Beyond Atoms") and point clouds vs voxels vs images on E1–E6 (EDG Table 4).

The chain, one rule each (``workflow/rules/edrep.smk``), settings in the ``edrep`` section:

=====================================  =========================================================
rule                                   what it writes
=====================================  =========================================================
``edrep_curve``                        ``results/edrep/<source>/curves/<mode>/frac<f>/seed<k>/``:
                                       the voxel 3D ResNet (:mod:`rhoflow.models.voxel_cnn`) on
                                       one input mode's channels and a nested fraction of the
                                       train split, L1 on the standardised target
``edrep_representation``               ``results/edrep/<source>/representations/<rep>/seed<k>/``:
                                       PointNet (:mod:`rhoflow.models.pointnet`), the voxel
                                       ResNet (every channel) or ResNet18 over the six RGB-D
                                       views (:mod:`rhoflow.models.multiview_cnn`) on E1–E6
                                       together, MSE on the standardised targets
``evaluate_curves``                    ``results/tables/<source>_voxel_curves.{csv,md,png}``
``evaluate_representations``           ``results/tables/<source>_ed_representations.{csv,md}``
=====================================  =========================================================

A run directory is the trainer's (config.json, checkpoints, metrics.csv) with a long-format
``test_predictions.parquet`` (:mod:`~rhoflow.edrep.tasks`). The package composes the trainer:
:mod:`~rhoflow.edrep.data` (:class:`RepresentationDataModule` over the representation readers),
:mod:`~rhoflow.edrep.tasks` (:class:`RepresentationTask`), :mod:`~rhoflow.edrep.augment` (cube
symmetries of voxels, rotations of point clouds) and :mod:`~rhoflow.edrep.drivers`
(:func:`train_representation`). Command line: ``rhoflow edrep train``; tables
``rhoflow evaluate-curves`` and ``rhoflow evaluate-representations``.
"""

from rhoflow.edrep.data import MODES, RepresentationDataModule
from rhoflow.edrep.drivers import train_representation
from rhoflow.edrep.tasks import RepresentationTask

__all__ = ["MODES", "RepresentationDataModule", "RepresentationTask", "train_representation"]
