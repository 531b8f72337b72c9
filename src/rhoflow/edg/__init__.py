"""EDG end to end (Xiang et al., "Electron Density-enhanced Molecular Geometry Learning").

The chain, one rule each (``workflow/rules/edg.smk``), settings in the ``edg`` config section:

=====================  =====================================================================
rule                   what it writes
=====================  =====================================================================
``imageed``            ``results/edg/imageed/``: ImageED (:mod:`rhoflow.models.imageed`)
                       pre-trained on the ``edg.pretrain`` source's six-view RGB-D density
                       images (render stage); ``model.pt``, run directory, and
                       ``reconstructions.png`` (held-out molecules: input, masked,
                       reconstruction)
``imageed_features``   ``results/edg/imageed_features.zarr``: ImageED's ED feature (mean
                       encoder token) of every molecule with density images
``teacher``            ``results/edg/teacher/``: the ED-aware teacher
                       (:mod:`rhoflow.models.ed_teacher`, ResNet18 from scratch + EDPredictor)
                       trained with L1 to those features from the four structure views
``render_structures``  ``results/render/structures/<shard>.zarr``: structure views of every
                       conformer (no density needed), for the students' datasets
``teacher_features``   ``results/edg/teacher_features/<source>.zarr``: EDP(teacher(S)) of
                       every molecule of a source
``train_edg``          ``results/models/<source>/lambda<λ>/edg-<model>/<target>/seed<k>/``:
                       a student (:mod:`rhoflow.edg.distill`), a run directory like
                       ``train_property``'s
``evaluate_lambda``    ``results/tables/<source>_edg_lambda.{csv,md,png}``: the λ sweep
=====================  =====================================================================

The properties table (``evaluate_property``) gains the rows ``edg-<model>`` (at ``edg.lambda``)
and ``Δ % edg-<model>`` = (1 − MAE w/ EDG ÷ MAE w/o EDG) × 100 per target.

Python: :func:`train_imageed`, :func:`train_teacher`, :func:`write_model_features`,
:func:`contact_sheet`, :class:`DistillationTask`; command line: ``rhoflow edg …`` and
``rhoflow train --teacher … --teacher-features … --lambda …``.
"""

from rhoflow.edg.distill import DistillationTask, EDGDataModule
from rhoflow.edg.features import features_by_id, read_features, write_features
from rhoflow.edg.pretrain import (
    contact_sheet,
    load_model,
    train_imageed,
    train_teacher,
    write_model_features,
)

__all__ = [
    "DistillationTask",
    "EDGDataModule",
    "contact_sheet",
    "features_by_id",
    "load_model",
    "read_features",
    "train_imageed",
    "train_teacher",
    "write_features",
    "write_model_features",
]
