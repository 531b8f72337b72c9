"""EDG end to end (Xiang et al., "Electron Density-enhanced Molecular Geometry Learning").

The chain, one rule each (``workflow/rules/edg.smk``; ``render_structures`` in ``render.smk``
and ``evaluate_lambda`` in ``evaluate.smk``), settings in the ``edg`` config section:

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
                       a student (``rhoflow edg student``, :func:`train_student`), a run
                       directory like ``train_property``'s
``evaluate_lambda``    ``results/tables/<source>_edg_lambda.{csv,md,png}``: the λ sweep
=====================  =====================================================================

The properties table (``evaluate_property``) gains the rows ``edg-<model>`` (at ``edg.lambda``)
and ``Δ % edg-<model>`` = (1 − MAE w/ EDG ÷ MAE w/o EDG) × 100 per target.

The package composes the trainer (:mod:`rhoflow.train`), which knows nothing of it:
:mod:`~rhoflow.edg.tasks` (ImageEDTask, TeacherTask, DistillationTask),
:mod:`~rhoflow.edg.data` (ImageDataModule, EDGDataModule), :mod:`~rhoflow.edg.modelfile`
(model.pt), :mod:`~rhoflow.edg.features` (features groups and their extraction),
:mod:`~rhoflow.edg.sheet` (the contact sheet) and :mod:`~rhoflow.edg.drivers`
(:func:`train_imageed`, :func:`train_teacher`, :func:`train_student`, each ending in
:func:`rhoflow.train.fit.fit_and_test`). Command line: ``rhoflow edg imageed | teacher |
features | student``.
"""

from rhoflow.edg.data import EDGDataModule, ImageDataModule
from rhoflow.edg.drivers import train_imageed, train_student, train_teacher
from rhoflow.edg.features import write_model_features
from rhoflow.edg.modelfile import load_model, load_predictor, save_model
from rhoflow.edg.sheet import contact_sheet
from rhoflow.edg.tasks import DistillationTask, ImageEDTask, TeacherTask

__all__ = [
    "DistillationTask",
    "EDGDataModule",
    "ImageDataModule",
    "ImageEDTask",
    "TeacherTask",
    "contact_sheet",
    "load_model",
    "load_predictor",
    "save_model",
    "train_imageed",
    "train_student",
    "train_teacher",
    "write_model_features",
]
