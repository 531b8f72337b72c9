"""What `snakemake --report` shows beyond the stages' own outputs: the run times per stage
(from benchmark records), the failures chart, HTML views of the tables, the effective config
and the central density slices; and that the rules producing them are wired into the workflow
(every benchmarked job's record reaches the run-time table)."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import yaml
from conftest import FAST_CONFORMERS, REPO, run_snakemake

from rhoflow.cli import main
from rhoflow.config import load_schema, validate
from rhoflow.slices import central_slice
from rhoflow.store import open_store
from rhoflow.summary import plot_failures, read_benchmark, runtime_table, write_summary

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def record(path, *rows: tuple[str, str, str]) -> str:
    """A Snakemake benchmark record with rows (wall s, max_rss MB, cpu_time s)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s}\t0:00:00\t{rss}\t1.0\t1.0\t1.0\t0.0\t0.0\t50.0\t{cpu}\n" for s, rss, cpu in rows]
    path.write_text(HEADER + "".join(lines))
    return str(path)


@pytest.fixture()
def benchmarks(tmp_path) -> tuple[list[str], str]:
    """Records of a shards job, two conformer jobs (one too short for a memory sample, NA),
    a density job run twice (repeat) and one listed density job without a record."""
    root = tmp_path / "logs/benchmarks"
    files = [
        record(root / "shards.tsv", ("1.5", "100.0", "1.2")),
        record(root / "conformers/t-00000.tsv", ("10.0", "300.0", "18.0")),
        record(root / "conformers/t-00001.tsv", ("0.25", "NA", "NA")),
        record(root / "density_psi4/t-00000.tsv", ("30.0", "900.5", "50.0"),
               ("34.0", "950.0", "60.0")),
        str(root / "density_psi4/t-00001.tsv"),
    ]  # fmt: skip
    return files, str(root)


def test_runtime_table_sums_each_stage_and_all_jobs(benchmarks):
    files, root = benchmarks
    assert read_benchmark(files[3]) == {"wall_s": 32.0, "cpu_s": 55.0, "max_rss_mb": 950.0}
    table = {t.stage: t for t in runtime_table(files, root)}
    assert list(table) == ["shards", "conformers", "density_psi4", "total"]
    conformers = table["conformers"]
    assert (conformers.jobs, conformers.total_wall_s, conformers.max_wall_s) == (2, 10.25, 10.0)
    assert conformers.mean_wall_s == pytest.approx(5.125)
    assert (conformers.max_rss_mb, conformers.total_cpu_s) == (300.0, 18.0)  # NA left out
    density = table["density_psi4"]
    assert (density.jobs, density.jobs_without_record, density.total_wall_s) == (1, 1, 32.0)
    total = table["total"]
    assert (total.jobs, total.jobs_without_record) == (4, 1)
    assert total.total_wall_s == pytest.approx(1.5 + 10.25 + 32.0)
    assert (total.max_wall_s, total.max_rss_mb) == (32.0, 950.0)
    with pytest.raises(ValueError, match="not a benchmark record under"):
        runtime_table(["elsewhere/x.tsv"], root)


def test_runtimes_cli_writes_tsv_markdown_and_html(benchmarks, tmp_path, capsys):
    files, root = benchmarks
    out = {x: tmp_path / f"runtimes.{x}" for x in ("tsv", "md", "html")}
    argv = ["runtimes", "--root", root, *(f"--{x}={p}" for x, p in out.items()), *files]
    assert main(argv) == 0
    assert "| conformers | 2 | 10.2 | 5.1 | 10.0 | 18.0 | 300 | 0 |" in capsys.readouterr().out
    with open(out["tsv"], newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["stage"] for r in rows] == ["shards", "conformers", "density_psi4", "total"]
    assert rows[2]["max_rss_mb"] == "950.0" and rows[2]["jobs_without_record"] == "1"
    page = out["html"].read_text()
    assert "<th>max RSS (MB)</th>" in page and '<td class="num">950</td>' in page


def test_failures_chart_and_html_summary(tmp_path):
    from matplotlib.image import imread

    rows = [
        ("shards", "molecules", "out", 3), ("shards", "molecules", "failed", 2),
        ("shards", "failure", "filtered_charge", 1), ("shards", "failure", "invalid_smiles", 1),
        ("conformers", "molecules", "out", 2), ("conformers", "molecules", "failed", 1),
        ("conformers", "failure", "embed_failed", 1),
    ]  # fmt: skip
    plot_failures(rows, tmp_path / "failures.png")
    plot_failures([r for r in rows if r[1] != "failure"], tmp_path / "none.png")
    assert imread(tmp_path / "failures.png").shape[2] == 4  # RGBA
    assert imread(tmp_path / "none.png").shape[0] < imread(tmp_path / "failures.png").shape[0]
    write_summary(rows, tmp_path / "s.tsv", tmp_path / "s.md", tmp_path / "s.html")
    page = (tmp_path / "s.html").read_text()
    assert '<td>shards</td><td class="num">3</td><td class="num">2</td>' in page
    assert "filtered_charge: 1, invalid_smiles: 1" in page


def test_central_slice_is_the_grid_plane_nearest_the_centre(tiny_store):
    store = open_store(tiny_store)
    s = central_slice(store, "t:h2co")
    grid = store.grid("t:h2co")
    _, coords = store.atoms("t:h2co")
    assert abs(s.z_bohr - coords[:, 2].mean()) <= grid.spacing_bohr[2] / 2
    k = round((s.z_bohr - grid.origin_bohr[2]) / grid.spacing_bohr[2])
    np.testing.assert_array_equal(s.values, grid.values[:, :, k])  # the stored values
    assert s.values.shape == (len(s.x_bohr), len(s.y_bohr)) and s.values.max() > 0.1


def test_slices_cli_draws_the_first_molecules(tiny_store, tmp_path, caplog):
    from matplotlib.image import imread

    caplog.set_level("INFO", logger="rhoflow")
    png = tmp_path / "slices.png"
    assert main(["store", "slices", "--molecules", "3", str(tiny_store), str(png)]) == 0
    assert "t:h2o, t:empty, t:h2co" in caplog.text  # an all-zero density is drawn too
    height, width, _ = imread(png).shape
    assert width > 2 * height


def test_effective_config_is_the_validated_config_as_yaml(tmp_path):
    given = {"sources": [{"name": "w", "format": "smiles",
                          "path": str(REPO / "resources/demo/molecules.smi")}],
             "conformers": {"seed": 7}}  # fmt: skip
    out = tmp_path / "config.yaml"
    assert main(["config", "--settings", json.dumps(given), "--yaml", str(out)]) == 0
    written = yaml.safe_load(out.read_text())
    expected = json.loads(json.dumps(given))
    validate(expected, load_schema())
    assert written == expected
    assert list(written)[:2] == ["sources", "conformers"]  # the given order, then defaults
    assert written["conformers"]["seed"] == 7 and written["conformers"]["n_conformers"] == 50
    page = (tmp_path / "config.html").read_text()
    assert "<pre># The effective rhoflow config" in page and "n_conformers: 50" in page
    assert main(["config", str(out), "--settings", "{}"]) == 2  # one or the other


@pytest.mark.workflow
def test_report_rules_are_planned_and_read_every_benchmark(tmp_path):
    """A dry run of a config with every benchmarked rule (xtb densities, all representations,
    training and the EDG chain): the summary, run-time, config and slice rules are planned,
    and the run-time table lists exactly the benchmark records the planned jobs write."""
    (tmp_path / "mols.smi").write_text("O w\nC m\nN a\nCO e\n")
    config = {
        "sources": [{"name": "t", "format": "smiles", "path": "mols.smi"}],
        "shards": {"shard_size": 2, "threads": 1},
        "conformers": FAST_CONFORMERS,
        "density": {"engines": ["xtb"], "threads": 1},
        "voxels": {"engine": "xtb"}, "pointclouds": {"engine": "xtb"}, "render": {"engine": "xtb"},
        "train": {"labels": "xtb", "targets": ["gap_hartree"], "seeds": [0, 1],
                  "models": {"schnet": {}}},
        "edg": {"pretrain": "t", "lambda_sweep": [0.1]},
    }  # fmt: skip
    # before the checkpoint has run, also with no final target that depends on a shard
    for given in ({"sources": config["sources"]}, config):
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(given))
        run_snakemake(tmp_path, "--cores", "1", "--dry-run")
    run_snakemake(tmp_path, "--cores", "1", "results/shards")  # the checkpoint: shard names
    dry = run_snakemake(tmp_path, "--cores", "1", "--dry-run", "--printshellcmds").stdout
    planned = set(re.findall(r"^rule (\w+):$", dry, re.M))
    assert {"summary", "runtimes", "effective_config", "density_slices"} <= planned
    assert (tmp_path / "logs/benchmarks/shards.tsv").exists()  # the job that ran
    written = {"logs/benchmarks/shards.tsv", *re.findall(r"^\s+benchmark: (\S+)$", dry, re.M)}
    command = dry[dry.index("rhoflow runtimes") :].split("\n")[0]
    listed = set(re.findall(r"'?(logs/benchmarks/\S+?\.tsv)'?(?=[\s)]|$)", command))
    # shards; 5 per-shard stages x 2 shards; structure views of 2 shards; imageed, its
    # features, teacher; teacher features; 2 plain runs; 2 students at each of λ 1 and 0.1
    assert listed == written and len(written) == 1 + 5 * 2 + 2 + 3 + 1 + 2 + 2 * 2
    stages = {path.split("/")[2].removesuffix(".tsv") for path in written}
    assert stages == {"shards", "conformers", "density_xtb", "voxels", "pointclouds", "render",
                      "render_structures", "imageed", "imageed_features", "teacher",
                      "teacher_features", "train_property", "train_edg"}  # fmt: skip
