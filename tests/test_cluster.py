"""Dataset-wide passes on dask.distributed: the store index, the labels and the store statistics
give the same results on a LocalCluster as on dask's threads; the SLURM cluster's job script
holds the configured resources, and its worker jobs, submitted through a fake `sbatch` that
runs them here, compute a pass and are cancelled with `scancel` at the end."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from conftest import TINY_IDS
from test_store import make_shards

from rhoflow.cli import main
from rhoflow.cluster import dask_client, make_cluster, slurm_cluster
from rhoflow.config import section_settings
from rhoflow.labels import labels_frame
from rhoflow.molecule import Molecule, write_molecules
from rhoflow.store import dataset_stats, open_store, write_index

SLURM = {
    "scheduler": "slurm",
    "workers": 1,
    "slurm": {
        "cores": 3,
        "memory": "6GB",
        "walltime": "00:20:00",
        "queue": "short",
        "account": "chem",
        "job_extra_directives": ["--qos=low"],
    },
}

FAKE_SBATCH = """#!/bin/sh
# fake sbatch: record the call and the script, run the job here in its own session
n=$(( $(cat "$FAKE_SLURM_DIR/counter" 2>/dev/null || echo 100) + 1 ))
echo $n > "$FAKE_SLURM_DIR/counter"
echo "sbatch $*" >> "$FAKE_SLURM_DIR/calls"
cp "$1" "$FAKE_SLURM_DIR/$n.sh"
setsid sh "$FAKE_SLURM_DIR/$n.sh" > "$FAKE_SLURM_DIR/$n.log" 2>&1 < /dev/null &
echo $! > "$FAKE_SLURM_DIR/$n.pid"
echo "Submitted batch job $n"
"""
FAKE_SCANCEL = """#!/bin/sh
# fake scancel: record the call, end each job's process group
echo "scancel $*" >> "$FAKE_SLURM_DIR/calls"
for id in "$@"; do kill -TERM -- "-$(cat "$FAKE_SLURM_DIR/$id.pid")" 2>/dev/null; done
exit 0
"""


def local(workers: int) -> dict:
    return section_settings("dask", {"workers": workers, "threads_per_worker": 1})


def conformer_tables(tmp_path) -> list:
    """Molecule tables holding the tiny store's molecules, with source labels."""
    molecules = [
        Molecule(mol_id, "", 0, 1, np.ones(3), "", labels={"u0_hartree": -1.0 - k})
        for k, mol_id in enumerate(TINY_IDS)
    ]
    paths = [tmp_path / "tiny-a.parquet", tmp_path / "tiny-b.parquet"]
    write_molecules(paths[0], molecules[:2])
    write_molecules(paths[1], molecules[2:])
    return paths


def passes(shards, stores, tables, out) -> tuple:
    """The three passes' results: index bytes, labels frame, statistics."""
    return (
        write_index(shards, out).read_bytes(),
        labels_frame(stores, tables),
        dataset_stats([*shards, *stores]),
    )


def test_passes_give_the_same_results_on_a_local_cluster(tmp_path, tiny_store):
    make_shards(tmp_path / "data")
    shards = sorted((tmp_path / "data").glob("*.zarr"))
    tables = conformer_tables(tmp_path)
    threads = passes(shards, [tiny_store], tables, tmp_path / "a.parquet")
    with dask_client(local(2), processes=False) as client:
        cluster = passes(shards, [tiny_store], tables, tmp_path / "b.parquet")
        ran = set(client.cluster.scheduler.task_prefixes)
    assert {"shard_ids", "store_labels", "table_labels", "shard_stats"} <= ran
    assert threads[0] == cluster[0]
    assert threads[1].equals(cluster[1])
    assert threads[2] == cluster[2]


def test_store_stats_recompute_the_stored_checks(tmp_path, tiny_store):
    out = tmp_path / "stats.json"
    argv = ["store", "stats", "--dask", '{"workers": 1}', "--out", str(out), str(tiny_store)]
    assert main(argv) == 0
    stats = json.loads(out.read_text())
    assert stats["molecules"] == 3 and stats["shards"] == 1 and stats["with_esp"] == 3
    # t:empty has water's checks with an all-zero density: its values are not those checked
    assert stats["mismatched"] == ["t:empty"] and stats["electron_count_errors"] == []
    captured = stats["checks"]["captured_fraction"]
    assert 0.5 < captured["min"] <= captured["mean"] <= captured["max"] < 1.0
    assert abs(stats["checks"]["n_electrons_dm_error"]["max"]) < 1e-4
    store = open_store(tiny_store)
    assert stats["density_points"] == int(np.prod(store.shape, axis=1).sum())


def test_slurm_job_script_has_the_configured_resources():
    cluster = slurm_cluster(section_settings("dask", SLURM)["slurm"])
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ["#SBATCH -p short", "#SBATCH -A chem", "#SBATCH --cpus-per-task=3",
                 "#SBATCH --mem=6G", "#SBATCH -t 00:20:00", "#SBATCH --qos=low"]:  # fmt: skip
        assert line in script.splitlines(), script
    assert "--nthreads 3" in script


def test_a_pass_runs_on_slurm_worker_jobs(tmp_path, monkeypatch):
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in [("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)]:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    make_shards(tmp_path / "data", n_shards=2, per_shard=2)
    shards = sorted((tmp_path / "data").glob("*.zarr"))
    expected = write_index(shards, tmp_path / "threads.parquet").read_bytes()

    with dask_client(section_settings("dask", SLURM)) as client:
        client.wait_for_workers(1, timeout=60)
        assert write_index(shards, tmp_path / "slurm.parquet").read_bytes() == expected
    calls = (state / "calls").read_text().splitlines()
    assert calls[0].startswith("sbatch ") and calls[-1] == "scancel 101", calls
    assert "#SBATCH -p short" in (state / "101.sh").read_text()
    leader = int((state / "101.pid").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _group(leader):
        time.sleep(0.2)
    assert not _group(leader), "the worker job outlived scancel"


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    members.append(int(name))
            except ProcessLookupError:
                continue
    return members


def test_an_unknown_scheduler_is_refused():
    with pytest.raises(ValueError, match="unknown dask scheduler"):
        make_cluster({"scheduler": "nope"})
