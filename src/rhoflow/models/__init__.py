"""The networks: plain ``torch.nn.Module``s, one per file, built here and trained elsewhere.

:data:`MODELS` registers the **geometry models**, which predict one scalar per molecule from
atomic numbers and coordinates (Å) and share one interface: ``forward(z [N], pos [N, 3],
batch [N]) -> [B]`` and ``forward_with_embedding(z, pos, batch) -> ([B], [B,
hidden_channels])``, with the attribute ``hidden_channels`` the embedding size. SchNet,
DimeNet++ and ViSNet are PyG's, run on :func:`rhoflow.models.radius.radius_graph`; EGNN is
rhoflow's. ``rhoflow train`` and ``train.models`` name them.

A method's own networks live here too, one file each, and are built by the method that
trains them: EDG's image models (:mod:`~rhoflow.models.imageed`,
:mod:`~rhoflow.models.ed_teacher`) in :func:`rhoflow.edg.modelfile.model_classes`; edrep's
:mod:`~rhoflow.models.voxel_cnn`, :mod:`~rhoflow.models.pointnet` and
:mod:`~rhoflow.models.multiview_cnn` in :func:`rhoflow.edrep.drivers.build_network`; the
3DGrid-VQGAN's :mod:`~rhoflow.models.vqgan3d`.
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


def model_class(name: str) -> type[nn.Module]:
    """The model class registered as ``name`` (a key of :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, **kwargs) -> nn.Module:
    """The model registered as ``name`` (a key of :data:`MODELS`), built with ``kwargs``."""
    return model_class(name)(**kwargs)
