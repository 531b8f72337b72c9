"""Target normalisation fitted on the train split, and its inverse.

A model learns ``(y - Σ_atoms atomref[z] - mean) / std``; its outputs are mapped back to the
label's unit by the inverse before any metric or prediction file sees them. ``atomref`` (one
value per element, in the label's unit) is fitted only for extensive targets, such as total
energies, by least squares ``y ≈ counts @ atomref`` over the train molecules' element counts,
as schnetpack's atomrefs remove per-element offsets; it is zero otherwise. ``mean`` and ``std``
are those of the train targets (after the atomrefs). Elements absent from the train split keep
a zero reference.

The scaler is a module whose values are float64 buffers: they are saved in every checkpoint,
so a checkpoint alone maps a model's outputs to the label's unit, and de-normalised energies of
hundreds of Hartree keep their µHartree digits.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

N_ELEMENTS = 119
"""Atomic numbers 0 … 118."""

EXTENSIVE = re.compile(r"(^|_)(u0|u298|h298|g298|energy)(_|$)")
"""Target names that get atomrefs by default (rhoflow.train): QM9's U0, U, H, G and any
``…energy…`` column."""


def is_extensive(target: str) -> bool:
    """Whether a target column is an extensive energy that gets atomrefs by default."""
    return bool(EXTENSIVE.search(target))


INTENSIVE = re.compile(r"(^|_)(homo|lumo|gap|mu|dipole)(_|$)")
"""Target names of intensive properties: frontier orbital energies, gaps, dipole norms."""


def default_readout(target: str) -> str:
    """The atom pooling of a model that learns ``target`` when a run does not name one:
    ``mean`` for intensive properties (:data:`INTENSIVE`: HOMO, LUMO, gap, dipole norm; the
    value does not grow with the molecule), ``sum`` otherwise (energies and other extensive
    properties)."""
    return "mean" if INTENSIVE.search(target) else "sum"


def fit_atomrefs(counts: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-element references [E] minimising ``|counts @ ref - y|²``.

    Args:
        counts: [M, E] atoms of each element per molecule.
        y: [M] targets.
    """
    ref, *_ = np.linalg.lstsq(counts, y, rcond=None)
    return ref


class TargetScaler(nn.Module):
    """``normalize`` / ``denormalize`` a per-molecule target (module docstring).

    Args:
        mean, std: of the train targets after atomrefs (label unit).
        atomref: [119] per-element references (label unit), indexed by atomic number; None
            for zeros.
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0, atomref: np.ndarray | None = None):
        super().__init__()
        atomref = np.zeros(N_ELEMENTS) if atomref is None else np.asarray(atomref)
        self.register_buffer("mean", torch.tensor(float(mean), dtype=torch.float64))
        self.register_buffer("std", torch.tensor(float(std), dtype=torch.float64))
        self.register_buffer("atomref", torch.as_tensor(atomref, dtype=torch.float64).clone())

    @classmethod
    def fit(
        cls, y: np.ndarray, counts: np.ndarray | None = None, elements: np.ndarray | None = None
    ) -> TargetScaler:
        """Fit on train targets ``y`` [M]; with atomrefs when element ``counts`` [M, E] of
        ``elements`` [E] (atomic numbers) are given."""
        y = np.asarray(y, dtype=np.float64)
        atomref = np.zeros(N_ELEMENTS)
        if counts is not None:
            atomref[elements] = fit_atomrefs(counts, y)
            y = y - counts @ atomref[elements]
        std = float(y.std())
        return cls(float(y.mean()), std if std > 0 else 1.0, atomref)

    def offset(self, z: Tensor, batch: Tensor, n_molecules: int) -> Tensor:
        """Σ atomref over each molecule's atoms, [B] float64."""
        out = torch.zeros(n_molecules, dtype=torch.float64, device=z.device)
        return out.index_add_(0, batch, self.atomref[z])

    def normalize(self, y: Tensor, z: Tensor, batch: Tensor) -> Tensor:
        """Targets y [B] (label unit) → what the model learns, float64 [B]."""
        return (y.double() - self.offset(z, batch, len(y)) - self.mean) / self.std

    def denormalize(self, out: Tensor, z: Tensor, batch: Tensor) -> Tensor:
        """Model outputs [B] → the label's unit, float64 [B]."""
        return out.double() * self.std + self.mean + self.offset(z, batch, len(out))

    def summary(self) -> dict:
        """Plain values for the run's config.json: mean, std and the nonzero atomrefs."""
        refs = {str(z): float(v) for z, v in enumerate(self.atomref.tolist()) if v != 0.0}
        return {"mean": float(self.mean), "std": float(self.std), "atomref": refs}
