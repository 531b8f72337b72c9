"""Models predicting one scalar per molecule from atomic numbers and coordinates (Å).

All share one interface: ``forward(z [N], pos [N, 3], batch [N]) -> [B]`` and
``forward_with_embedding(z, pos, batch) -> ([B], [B, hidden_channels])``, with the attribute
``hidden_channels`` the embedding size. SchNet, DimeNet++ and ViSNet are PyG's, run on
:func:`rhoflow.models.radius.radius_graph`; EGNN is rhoflow's.
"""

from __future__ import annotations

from torch import nn

from rhoflow.models.dimenet import DimeNetPlusPlus
from rhoflow.models.egnn import EGNN
from rhoflow.models.schnet import SchNet
from rhoflow.models.visnet import ViSNet

MODELS: dict[str, type[nn.Module]] = {
    "schnet": SchNet,
    "dimenet++": DimeNetPlusPlus,
    "visnet": ViSNet,
    "egnn": EGNN,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """The model registered as ``name`` (a key of :data:`MODELS`), built with ``kwargs``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
