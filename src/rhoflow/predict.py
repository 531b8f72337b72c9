"""Predictions of a trained geometry model for new molecules (``rhoflow predict``).

A geometry model needs atomic numbers and coordinates only, no density: given a run
directory (:mod:`rhoflow.train`) and a file of molecules, :func:`predict_file` writes one CSV
row per input record, in input order:

==========  ==================================================================================
column      meaning
==========  ==================================================================================
id          the record's native id (SMILES name or line number, SD title or record index,
            ``<stem>-<frame>`` of an XYZ file; :mod:`rhoflow.sources.generic`)
smiles      the SMILES as written (``smiles`` input); RDKit's canonical SMILES of the parsed
            molecule (``sdf``, ``xyz``; empty when its bond orders are unknown)
prediction  the model's prediction in ``unit``, de-normalised as the trainer's test
            predictions are (:meth:`rhoflow.train.PropertyTask.forward`); empty when failed
unit        the label's unit (the run's config.json ``target.unit``)
target      the labels column the model learnt
model       the model's name (:data:`rhoflow.models.MODELS`)
status      ``ok`` or ``failed``
reason      a ledger reason (:data:`rhoflow.ledger.REASONS`: ``invalid_smiles``,
            ``invalid_structure``, ``embed_failed``, ``timeout``, ``engine_error`` …) when failed
message     what went wrong, when failed
==========  ==================================================================================

Records with 3D coordinates (SD files with a 3D block, XYZ) are used at the coordinates given
(Å; hydrogens an SD file leaves implicit are added next to their atoms); records without
(SMILES, 2D SD blocks) get a conformer from :func:`rhoflow.conformers.generate_shard` with the
``conformers`` settings (schema defaults filled: ETKDG + MINDO/3, as the workflow makes the
geometries it trains on), each molecule in its own process with the settings' time limit.
A molecule that cannot be parsed, embedded or predicted is a ``failed`` row, never an error;
only an unusable checkpoint or input file raises :class:`PredictError`.

Predictions run on the CPU in float32 (Lightning's ``32-true``, the precision of CPU
training); a run trained and tested on a GPU in bf16-mixed may differ slightly from its
``test_predictions.parquet``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.ledger import LedgerRow
from rhoflow.molecule import Molecule
from rhoflow.parallel import Failure

COLUMNS: tuple[str, ...] = (
    "id", "smiles", "prediction", "unit", "target", "model", "status", "reason", "message",
)  # fmt: skip
"""Columns of a predictions CSV (module docstring)."""

EXTENSIONS: dict[str, str] = {
    ".smi": "smiles",
    ".smiles": "smiles",
    ".txt": "smiles",
    ".sdf": "sdf",
    ".xyz": "xyz",
}
"""Input format by file extension (a trailing ``.gz`` is ignored)."""

INPUT_FORMATS: tuple[str, ...] = ("smiles", "sdf", "xyz")


class PredictError(ValueError):
    """An unusable checkpoint or input file (the command fails; bad molecules never do)."""


@dataclass
class TrainedModel:
    """A trained property model, ready to predict in its label's unit.

    Attributes:
        task: the :class:`rhoflow.train.PropertyTask` (model + fitted :class:`TargetScaler`)
            with the checkpoint's weights, in eval mode on the CPU.
        name: model name (:data:`rhoflow.models.MODELS`; ``edg-<name>`` for an EDG student).
        target: labels column the model learnt.
        unit: the label's unit.
        checkpoint: the checkpoint file the weights come from.
        batch_size: molecules per forward pass (the run's ``train.batch_size``).
    """

    task: Any  # rhoflow.train.PropertyTask
    name: str
    target: str
    unit: str
    checkpoint: Path
    batch_size: int

    @classmethod
    def load(cls, checkpoint: str | Path) -> TrainedModel:
        """The model of a run directory (``checkpoints/best.ckpt``) or of a ``.ckpt`` file in
        one (``<run>/checkpoints/<name>.ckpt``), rebuilt from the run's config.json (model
        name and arguments, target, unit, train settings) with the checkpoint's weights and
        target normalisation, loaded with ``torch.load(weights_only=True)``.

        Raises :class:`PredictError` when the checkpoint or its config.json is missing,
        unreadable or does not match.
        """
        import torch

        from rhoflow.models import MODELS, build_model
        from rhoflow.train import PropertyTask, TargetScaler

        config_path, ckpt = find_run(checkpoint)
        try:
            config = json.loads(config_path.read_text())
            name, kwargs = config["model"]["name"], config["model"]["kwargs"]
            target, unit = config["target"]["column"], config["target"]["unit"]
            settings, batch_size = config["train"], int(config["train"]["batch_size"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PredictError(f"{config_path}: not a run's config.json ({exc})") from exc
        if name not in MODELS:
            raise PredictError(
                f"{config_path}: model {name!r} is not registered in rhoflow.models "
                f"(known: {', '.join(MODELS)}); rebuild it in Python"
            )
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a usage error
            raise PredictError(f"{ckpt}: not a readable checkpoint ({exc})") from exc
        try:
            task = PropertyTask(build_model(name, **kwargs), TargetScaler(), target, unit, settings)
            # an EDG student's checkpoint also holds its mapper and the frozen EDPredictor,
            # which inference does not use
            task.load_state_dict(
                {k: v for k, v in state.items() if k.startswith(("model.", "scaler."))}
            )
        except (RuntimeError, TypeError, ValueError) as exc:
            raise PredictError(f"{ckpt}: weights do not fit {config_path} ({exc})") from exc
        task.eval()
        if "edg" in config:  # an EDG student: the same network, named as in the tables
            name = f"edg-{name}"
        return cls(task, name, target, unit, ckpt, batch_size)

    def predict(self, molecules: Sequence[Molecule]) -> list[float | Failure]:
        """Predictions (label unit) of molecules with coordinates (Å), in order.

        Molecules are batched as the trainer batches them (:func:`collate_geometry`, float32
        coordinates); a batch that fails is retried molecule by molecule, and a molecule whose
        forward pass raises or gives a non-finite value is an ``engine_error`` failure.
        """
        out: list[float | Failure] = []
        for lo in range(0, len(molecules), self.batch_size):
            chunk = molecules[lo : lo + self.batch_size]
            try:
                out.extend(self._forward(chunk))
            except Exception:  # noqa: BLE001 - find the molecule(s) the model cannot take
                for mol in chunk:
                    try:
                        out.extend(self._forward([mol]))
                    except Exception as exc:  # noqa: BLE001 - one molecule never fails the file
                        out.append(Failure("engine_error", f"{type(exc).__name__}: {exc}"))
        return [
            v if isinstance(v, Failure) or math.isfinite(v)
            else Failure("engine_error", f"non-finite prediction {v}")
            for v in out
        ]  # fmt: skip

    def _forward(self, molecules: Sequence[Molecule]) -> list[float]:
        """One forward pass of :meth:`PropertyTask.forward` over ``molecules`` (label unit)."""
        import torch

        from rhoflow.train import collate_geometry

        items = [
            {
                "z": np.asarray(m.atomic_numbers, dtype=np.int64),
                "pos": np.asarray(m.coords_angstrom, dtype=np.float32).reshape(-1, 3),
                "y": math.nan,
                "index": i,
                "id": m.id,
            }
            for i, m in enumerate(molecules)
        ]
        batch = collate_geometry(items)
        with torch.inference_mode():
            return self.task(batch["z"], batch["pos"], batch["batch"]).tolist()


def find_run(checkpoint: str | Path) -> tuple[Path, Path]:
    """(config.json, checkpoint file) of a run directory or of a ``.ckpt`` file in its
    ``checkpoints/`` folder; raises :class:`PredictError` when either is missing."""
    path = Path(checkpoint)
    if path.is_dir():
        run_dir, ckpt = path, path / "checkpoints" / "best.ckpt"
    elif path.is_file():
        in_checkpoints = path.parent.name == "checkpoints"
        run_dir, ckpt = (path.parent.parent if in_checkpoints else path.parent), path
    else:
        raise PredictError(f"{path}: no such run directory or checkpoint")
    if not ckpt.is_file():
        raise PredictError(f"{run_dir}: no checkpoints/best.ckpt (has the run finished?)")
    config = run_dir / "config.json"
    if not config.is_file():
        raise PredictError(f"{ckpt}: no config.json in its run directory {run_dir}")
    return config, ckpt


def input_format(path: str | Path, fmt: str | None = None) -> str:
    """The input format: ``fmt`` when given, else from the extension (:data:`EXTENSIONS`)."""
    if fmt is not None:
        if fmt not in INPUT_FORMATS:
            raise PredictError(f"unknown input format {fmt!r}; known: {', '.join(INPUT_FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    if not suffixes or suffixes[-1] not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        raise PredictError(f"{path}: cannot tell the format from the extension ({known}); --format")
    return EXTENSIONS[suffixes[-1]]


@dataclass
class Record:
    """One input record: its native id, SMILES (see the ``smiles`` column), the molecule or
    why there is none, and its prediction."""

    native_id: str
    smiles: str
    molecule: Molecule | None = None
    failure: Failure | None = None
    prediction: float | None = None  # label unit


def read_records(path: str | Path, fmt: str) -> list[Record]:
    """Every record of a molecule file, parsed, in file order; raises :class:`PredictError`
    when the file cannot be read at all."""
    from rhoflow.shards import parse_entry
    from rhoflow.sources import FORMATS

    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: no such input file")
    try:
        entries = list(FORMATS[fmt].read_raw(path, {}))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PredictError(f"{path}: not a readable {fmt} file ({exc})") from exc
    records = []
    for entry in entries:
        written = entry.payload if fmt == "smiles" else ""
        parsed = parse_entry({"name": "input", "format": fmt}, entry)
        if isinstance(parsed, LedgerRow):
            failure = Failure(parsed.reason, parsed.message)
            records.append(Record(entry.native_id, written, failure=failure))
        else:
            records.append(Record(entry.native_id, written or parsed.smiles, molecule=parsed))
    return records


def make_conformers(
    records: Sequence[Record], settings: Mapping[str, Any], workers: int = 1
) -> None:
    """Give every parsed record without coordinates a conformer (Å) with the ``conformers``
    ``settings`` (completed, :func:`rhoflow.config.section_settings`), in place; a molecule the
    stage cannot make one for gets its ledger row's reason and message as its failure."""
    import dataclasses

    from rhoflow.conformers import generate_shard

    todo = [r for r in records if r.molecule is not None and r.molecule.coords_angstrom is None]
    if not todo:
        return
    # positional ids: native ids may repeat within a file, ledger rows are matched by id
    molecules = [dataclasses.replace(r.molecule, id=f"p{i}") for i, r in enumerate(todo)]
    done, failed = generate_shard(molecules, dict(settings), workers=workers)
    made = {m.id: m for m in done}
    ledger: dict[str, LedgerRow] = {row.id: row for row in failed}
    for i, record in enumerate(todo):
        key = f"p{i}"
        if key in made:
            record.molecule = dataclasses.replace(made[key], id=record.molecule.id)
        else:
            row = ledger[key]
            record.molecule, record.failure = None, Failure(row.reason, row.message)


def predict_file(
    checkpoint: str | Path,
    input_path: str | Path,
    out: str | Path,
    conformers: Mapping[str, Any],
    fmt: str | None = None,
    workers: int = 1,
) -> list[dict[str, str]]:
    """Predict every molecule of ``input_path`` with the run at ``checkpoint`` and write the
    predictions CSV ``out`` atomically (module docstring); return its rows.

    Args:
        checkpoint: a run directory (its ``checkpoints/best.ckpt``) or a ``.ckpt`` file in one.
        input_path: SMILES list, SD file or XYZ file (:mod:`rhoflow.sources.generic`).
        out: the CSV to write.
        conformers: the completed ``conformers`` config section, for records without
            coordinates (:func:`rhoflow.config.section_settings`).
        fmt: ``smiles``, ``sdf`` or ``xyz``; None: from the extension (:data:`EXTENSIONS`).
        workers: molecules given conformers at once.

    Raises :class:`PredictError` for an unusable checkpoint or input file only.
    """
    fmt = input_format(input_path, fmt)
    model = TrainedModel.load(checkpoint)
    records = read_records(input_path, fmt)
    make_conformers(records, conformers, workers)
    ready = [r for r in records if r.molecule is not None]
    for record, value in zip(ready, model.predict([r.molecule for r in ready]), strict=True):
        if isinstance(value, Failure):
            record.molecule, record.failure = None, value
        else:
            record.prediction = value
    rows = [_row(r, model) for r in records]
    write_predictions_csv(out, rows)
    return rows


def _row(record: Record, model: TrainedModel) -> dict[str, str]:
    """The CSV row of a record (predicted when it still has its molecule)."""
    ok = record.failure is None
    return {
        "id": record.native_id,
        "smiles": record.smiles,
        "prediction": repr(record.prediction) if ok else "",
        "unit": model.unit,
        "target": model.target,
        "model": model.name,
        "status": "ok" if ok else "failed",
        "reason": "" if ok else record.failure.reason,
        "message": "" if ok else " ".join(record.failure.message.split()),
    }


def write_predictions_csv(path: str | Path, rows: Iterable[Mapping[str, str]]) -> None:
    """Write predictions (:data:`COLUMNS`) atomically."""
    from rhoflow.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def summary_line(rows: Sequence[Mapping[str, str]], out: str | Path) -> str:
    """One line: molecules, predicted (target, unit), failed by reason, output path."""
    failed = Counter(r["reason"] for r in rows if r["status"] != "ok")
    ok = len(rows) - sum(failed.values())
    what = f" ({rows[0]['target']}, {rows[0]['unit']})" if rows else ""
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
    failures = f"{sum(failed.values())} failed" + (f" ({reasons})" if reasons else "")
    return f"{len(rows)} molecules: {ok} predicted{what}, {failures} -> {out}"
