"""Where the dataset-wide passes run: a ``dask.distributed`` cluster from the ``dask`` settings.

The passes over many shard stores (``rhoflow store index``, ``rhoflow labels``, ``rhoflow store
stats``) build dask graphs, one task per shard, and compute them on whatever scheduler is
current; they know nothing of clusters. A command makes a client current for the pass with
:func:`dask_client` and the completed ``dask`` config section:

``scheduler: local``
    a ``distributed.LocalCluster`` on the job's own node: ``workers`` workers of
    ``threads_per_worker`` threads each (the rule asks Snakemake for their product as its
    ``threads``). One worker runs inside the job's process; several are processes, each of
    which takes seconds to start (it imports rhoflow's readers), which pays only for many
    shards on many cores. The default, one worker of two threads, suits a 2-core machine.
``scheduler: slurm``
    a ``dask_jobqueue.SLURMCluster``: ``workers`` SLURM jobs submitted with ``sbatch``, each one
    job of ``slurm.cores`` cores and ``slurm.memory`` for ``slurm.walltime`` on partition
    ``slurm.queue``, charged to ``slurm.account``, running ``slurm.processes`` worker processes
    with the Python that runs the command (so on a shared file system the workers import the
    same rhoflow). The job that runs the command must be able to call ``sbatch`` and reach the
    workers over the network; ``slurm.job_extra_directives`` adds ``#SBATCH`` lines
    (``--qos=...``, ``--constraint=...``).

The scheduler never changes a result: a pass gives the same output on any of them, also
without a client (dask's threads), which is why the ``dask`` section reaches the rules outside
their ``params`` and changing it reruns nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def make_cluster(settings: Mapping[str, Any], processes: bool = True) -> Any:
    """The cluster the completed ``dask`` settings describe, scaled to ``workers``.

    Args:
        settings: the completed ``dask`` section (``scheduler``, ``workers``,
            ``threads_per_worker``, ``slurm``).
        processes: several local workers as processes (True) or all as threads of this
            process (a test's cheap cluster); one local worker is always in this process, SLURM
            workers are always processes of their jobs.

    Returns:
        A ``distributed.LocalCluster`` or ``dask_jobqueue.SLURMCluster``; the caller closes it.
    """
    if settings["scheduler"] == "local":
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=settings["workers"],
            threads_per_worker=settings["threads_per_worker"],
            processes=processes and settings["workers"] > 1,
            dashboard_address=":0",
        )
    if settings["scheduler"] == "slurm":
        cluster = slurm_cluster(settings["slurm"])
        cluster.scale(jobs=settings["workers"])
        return cluster
    raise ValueError(f"unknown dask scheduler {settings['scheduler']!r} (local, slurm)")


def slurm_cluster(slurm: Mapping[str, Any]) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` of the ``dask.slurm`` settings, with no job submitted
    yet (``cluster.job_script()`` shows the batch script a worker job gets)."""
    from dask_jobqueue import SLURMCluster

    return SLURMCluster(
        cores=slurm["cores"],
        processes=slurm["processes"],
        memory=slurm["memory"],
        walltime=slurm["walltime"],
        queue=slurm["queue"],
        account=slurm["account"],
        job_extra_directives=list(slurm["job_extra_directives"]),
        scheduler_options={"dashboard_address": ":0"},
    )


@contextmanager
def dask_client(settings: Mapping[str, Any], processes: bool = True) -> Iterator[Any]:
    """A ``distributed.Client`` of :func:`make_cluster`, current (dask's default scheduler)
    inside the ``with`` block; client and cluster (its SLURM jobs too) are closed after it."""
    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.WARNING)  # not its INFO lines in rule logs
    cluster = make_cluster(settings, processes=processes)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
