"""The trainer every method composes: Lightning trainer, run directories, DataModules, tasks.

A run trains one model on one target of one split and writes its **run directory**:

==========================  ==============================================================
path                        content
==========================  ==============================================================
config.json                 resolved settings: ``train`` section, model name and kwargs,
                            target column and unit, data paths and split sizes, the fitted
                            normalisation, torch/lightning versions
checkpoints/last.ckpt       the latest epoch (weights, optimiser, schedule, loops, RNG
                            states); a rerun resumes from it
checkpoints/best.ckpt       the epoch with the lowest val_mae (the one tested)
logs/version_<n>/           Lightning's CSV log of each attempt (a resumed run adds one)
metrics.csv                 one row per epoch (epoch from 0, step, train_loss, val_mae, lr,
                            epoch_time_s, molecules_per_s) and the test row (test_mae),
                            merged over attempts; MAEs in the target's unit (config.json
                            ``target.unit``)
test_predictions.parquet    id, truth, prediction, unit of every test molecule, from
                            best.ckpt; schema metadata ``rhoflow.predictions``: target, unit,
                            checkpoint, best_epoch, val_mae, test_mae
==========================  ==============================================================

The package knows no method. :func:`rhoflow.train.fit.fit_and_test` is the one trainer:
a built task (:class:`EpochTask`: shared optimiser, schedule and per-epoch logging), a
DataModule, the completed trainer settings and the run's config in; a run directory out.
Property regression (:mod:`rhoflow.train.property`) and every method package (EDG today) call
it with their own tasks and DataModules (README "Adding a method").

Python: :func:`train_geometry` (molecule tables + labels + split), :func:`train_property` with
any :class:`SplitDataModule` and task factory, or :func:`fit_and_test` with any task; command
line: ``rhoflow train``.
"""

from rhoflow.train.data import GeometryDataModule, SplitDataModule, SplitLoaders, collate_geometry
from rhoflow.train.fit import build_trainer, fit_and_test, merge_metrics
from rhoflow.train.normalize import TargetScaler, fit_atomrefs, is_extensive
from rhoflow.train.property import (
    PropertyTask,
    TaskFactory,
    geometry_data,
    train_geometry,
    train_property,
)
from rhoflow.train.task import EpochTask

__all__ = [
    "EpochTask",
    "GeometryDataModule",
    "PropertyTask",
    "SplitDataModule",
    "SplitLoaders",
    "TargetScaler",
    "TaskFactory",
    "build_trainer",
    "collate_geometry",
    "fit_and_test",
    "fit_atomrefs",
    "geometry_data",
    "is_extensive",
    "merge_metrics",
    "train_geometry",
    "train_property",
]
