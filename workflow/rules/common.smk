# Helpers shared by the stage files: shell set-up, stage settings as params, the shard list
# read from the shards checkpoint, and the final targets.
import json
import shlex

from rhoflow.config import is_url

# Rules call `python -m rhoflow`; the library is found on PYTHONPATH in any environment
# (the project venv, or a per-rule conda env from envs/).
shell.prefix(
    "set -euo pipefail; export PYTHONPATH="
    + shlex.quote(str(Path(workflow.basedir) / "src"))
    + '${{PYTHONPATH:+:$PYTHONPATH}}; '
)

RESULTS = "results"
LOGS = "logs"
SHARD_PATTERN = r"[A-Za-z][A-Za-z0-9_]*-\d{5}"


def settings(section):
    """A config section as canonical JSON: the params that make its stage rerun on change."""
    return json.dumps(config[section], sort_keys=True, separators=(",", ":"))


def source_settings():
    """The sources without their paths (paths are inputs), as canonical JSON."""
    entries = [{k: v for k, v in s.items() if k != "path"} for s in config["sources"]]
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


def source_inputs():
    """One local path or storage object per source, in config order."""
    return [storage.http(s["path"]) if is_url(s["path"]) else s["path"] for s in config["sources"]]


def shard_names(wildcards=None):
    """Shard names from the manifest written by the shards checkpoint."""
    from rhoflow.shards import read_manifest

    outdir = checkpoints.shards.get().output.outdir
    return [s.shard for s in read_manifest(Path(outdir) / "manifest.tsv")]


def shards_ledger(wildcards=None):
    """The ledger of the shards checkpoint (known only once it has run)."""
    return str(Path(checkpoints.shards.get().output.outdir) / "ledger.tsv")


def shard_tables(wildcards=None):
    return expand(f"{RESULTS}/shards/{{shard}}.parquet", shard=shard_names())


def source_shard_tables(wildcards):
    """The shard molecule tables of one source (wildcard ``source``)."""
    return [
        f"{RESULTS}/shards/{shard}.parquet"
        for shard in shard_names()
        if shard.rsplit("-", 1)[0] == wildcards.source
    ]


def source_format(wildcards):
    """The format of one source (wildcard ``source``)."""
    return next(s["format"] for s in config["sources"] if s["name"] == wildcards.source)


def conformer_tables(wildcards=None):
    return expand(f"{RESULTS}/conformers/{{shard}}.parquet", shard=shard_names())


def conformer_ledgers(wildcards=None):
    return expand(f"{RESULTS}/conformers/{{shard}}.ledger.tsv", shard=shard_names())


def engine_settings(engine):
    """One engine's completed settings (validated on load) as canonical JSON."""
    return json.dumps(config["density"][engine], sort_keys=True, separators=(",", ":"))


def density_stores(wildcards):
    """The shard stores of one engine (wildcard ``engine``)."""
    return expand(
        f"{RESULTS}/density/{wildcards.engine}/{{shard}}.zarr", shard=shard_names()
    )


def all_density_stores(wildcards=None):
    return [
        f"{RESULTS}/density/{engine}/{shard}.zarr"
        for engine in config["density"]["engines"]
        for shard in shard_names()
    ]


def all_density_ledgers(wildcards=None):
    return [
        f"{RESULTS}/density/{engine}/{shard}.ledger.tsv"
        for engine in config["density"]["engines"]
        for shard in shard_names()
    ]


def representation_settings(section):
    """A representation's settings without the engine it reads, as canonical JSON."""
    chosen = {k: v for k, v in config[section].items() if k != "engine"}
    return json.dumps(chosen, sort_keys=True, separators=(",", ":"))


def representation_groups(wildcards=None, suffix=".zarr"):
    """Every configured representation's per-shard outputs (groups, or ledgers by suffix)."""
    return [
        f"{RESULTS}/{section}/{shard}{suffix}"
        for section in ("voxels", "pointclouds", "render")
        if config[section]["engine"] is not None
        for shard in shard_names()
    ]


def representation_ledgers(wildcards=None):
    return representation_groups(suffix=".ledger.tsv")


def representation_outputs(wildcards=None):
    outputs = representation_groups()
    if config["render"]["engine"] is not None:
        outputs.append(f"{RESULTS}/render/gallery")
    return outputs


def all_targets(wildcards=None):
    indexes = [f"{RESULTS}/density/{e}/index.parquet" for e in config["density"]["engines"]]
    labels = [f"{RESULTS}/density/{e}/labels.parquet" for e in config["density"]["engines"]]
    splits = [f"{RESULTS}/splits/{s['name']}.parquet" for s in config["sources"]]
    summary = [f"{RESULTS}/summary/stages.tsv", f"{RESULTS}/summary/stages.md"]
    return [*summary, *indexes, *labels, *splits, *representation_outputs(), *property_tables()]


# --- training and evaluation ---------------------------------------------------------------


def source_conformer_tables(wildcards):
    """The conformer tables (coordinates) of one source (wildcard ``dataset``)."""
    return [
        f"{RESULTS}/conformers/{shard}.parquet"
        for shard in shard_names()
        if shard.rsplit("-", 1)[0] == wildcards.dataset
    ]


def train_labels(wildcards):
    """The typed labels table training reads (config ``train.labels``)."""
    engine = config["train"]["labels"]
    if engine == "source":
        return f"{RESULTS}/labels/{wildcards.dataset}.parquet"
    return f"{RESULTS}/density/{engine}/labels.parquet"


def trainer_settings(wildcards):
    """The trainer section with the run's seed, as canonical JSON."""
    trainer = {**config["train"]["trainer"], "seed": int(wildcards.seed)}
    return json.dumps(trainer, sort_keys=True, separators=(",", ":"))


def model_settings(wildcards):
    """One model's constructor arguments, as canonical JSON."""
    return json.dumps(config["train"]["models"][wildcards.model], sort_keys=True)


def runs_of(dataset, lam=None):
    """Test predictions of every configured (model, target, seed) of one source: the plain
    runs, or the EDG students at λ = ``lam``."""
    train = config["train"]
    model = "{model}" if lam is None else f"lambda{lam_name(lam)}/edg-{{model}}"
    return expand(
        f"{RESULTS}/models/{dataset}/{model}/{{target}}/seed{{seed}}/test_predictions.parquet",
        model=sorted(train["models"]),
        target=train["targets"],
        seed=train["seeds"],
    )


def property_runs(wildcards):
    """The runs of one source's properties table: plain, and EDG students at edg.lambda."""
    runs = runs_of(wildcards.dataset)
    if config["edg"]["pretrain"] is not None:
        runs += runs_of(wildcards.dataset, config["edg"]["lambda"])
    return runs


def lambda_sweep_runs(wildcards):
    """The runs of one source's λ-sweep table: plain, and EDG students at every λ."""
    lambdas = sorted({config["edg"]["lambda"], *config["edg"]["lambda_sweep"]})
    return runs_of(wildcards.dataset) + [
        run for lam in lambdas for run in runs_of(wildcards.dataset, lam)
    ]


def lam_name(lam):
    """λ as it appears in paths (``lambda0.001``): Python's shortest general format."""
    return format(float(lam), "g")


# --- EDG --------------------------------------------------------------------------------------


def edg_settings(part):
    """One part of the edg section (imageed, teacher) as canonical JSON."""
    return json.dumps(config["edg"][part], sort_keys=True, separators=(",", ":"))


def pretrain_image_groups(wildcards=None):
    """The render stage's image groups of the edg.pretrain source."""
    pretrain = config["edg"]["pretrain"]
    return [
        f"{RESULTS}/render/{shard}.zarr"
        for shard in shard_names()
        if shard.rsplit("-", 1)[0] == pretrain
    ]


def pretrain_split(wildcards=None):
    return f"{RESULTS}/splits/{config['edg']['pretrain']}.parquet"


def source_structure_groups(wildcards):
    """The structure-view groups of one source's conformer shards (wildcard ``dataset``)."""
    return [
        f"{RESULTS}/render/structures/{shard}.zarr"
        for shard in shard_names()
        if shard.rsplit("-", 1)[0] == wildcards.dataset
    ]


def property_tables(wildcards=None):
    """One result table per source when training is configured (and a λ-sweep table when
    EDG sweeps λ)."""
    if not (config["train"]["models"] and config["train"]["targets"]):
        return []
    tables = [f"{RESULTS}/tables/{s['name']}_properties.md" for s in config["sources"]]
    if config["edg"]["pretrain"] is not None and config["edg"]["lambda_sweep"]:
        tables += [f"{RESULTS}/tables/{s['name']}_edg_lambda.md" for s in config["sources"]]
    return tables
