"""Training and evaluation: Lightning trainer, DataModules and tasks (issue 9).

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
metrics.csv                 one row per epoch (epoch, step, train_loss, val_mae, lr) and the
                            test row (test_mae), merged over attempts; MAEs in the target's
                            unit (config.json ``target.unit``)
test_predictions.parquet    id, truth, prediction, unit of every test molecule, from
                            best.ckpt; schema metadata ``rhoflow.predictions``: target, unit,
                            checkpoint, best_epoch, val_mae, test_mae
==========================  ==============================================================

Python: :func:`train_geometry` (molecule tables + labels + split) or :func:`run` with any
:class:`SplitDataModule`; command line: ``rhoflow train``.
"""

from rhoflow.train.data import GeometryDataModule, SplitDataModule, collate_geometry
from rhoflow.train.normalize import TargetScaler, fit_atomrefs, is_extensive
from rhoflow.train.run import build_trainer, run, train_geometry
from rhoflow.train.task import PropertyTask

__all__ = [
    "GeometryDataModule",
    "PropertyTask",
    "SplitDataModule",
    "TargetScaler",
    "build_trainer",
    "collate_geometry",
    "fit_atomrefs",
    "is_extensive",
    "run",
    "train_geometry",
]
