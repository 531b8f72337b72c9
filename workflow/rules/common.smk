# Helpers shared by the stage files: shell set-up, stage settings as params, the shard lists
# read from the shards checkpoint's manifest, and the final targets. The wildcard `source` is a
# config source's name everywhere.
import json
import shlex

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from rhoflow.config import is_url
from rhoflow.environment import check_environment

# Rules call `python -m rhoflow`; the library is found on PYTHONPATH in any environment (the
# project venv, or a per-rule conda env from envs/). Without conda envs, `python` is the one
# that runs Snakemake (so `.venv/bin/snakemake` needs no activated venv), checked now for the
# packages the planned rules import.
PYTHON_BIN = ""
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    check_environment(config)
    PYTHON_BIN = "export PATH=" + shlex.quote(str(Path(sys.executable).parent)) + ":$PATH; "
shell.prefix(
    "set -euo pipefail; export PYTHONPATH="
    + shlex.quote(str(Path(workflow.basedir) / "src"))
    + '${{PYTHONPATH:+:$PYTHONPATH}}; '
    + PYTHON_BIN
)

RESULTS = "results"
LOGS = "logs"
SHARD_PATTERN = r"[A-Za-z][A-Za-z0-9_]*-\d{5}"


def as_param(obj):
    """``obj`` (settings) as canonical JSON: a rule's params, so changing it reruns the rule."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def without(section, key):
    """A config mapping less one key that is an input, not a setting (a source's path, the
    engine a representation reads)."""
    return {k: v for k, v in section.items() if k != key}


def source_inputs():
    """One local path or storage object per source, in config order."""
    return [storage.http(s["path"]) if is_url(s["path"]) else s["path"] for s in config["sources"]]


def manifest():
    """The shards of every source, from the manifest written by the shards checkpoint."""
    from rhoflow.shards import read_manifest

    return read_manifest(Path(checkpoints.shards.get().output.outdir) / "manifest.tsv")


def shard_names(wildcards=None):
    return [s.shard for s in manifest()]


def shards_of(source):
    """The shard names of one source."""
    return [s.shard for s in manifest() if s.source == source]


def shards_ledger(wildcards=None):
    """The ledger of the shards checkpoint (known only once it has run)."""
    return str(Path(checkpoints.shards.get().output.outdir) / "ledger.tsv")


def shard_tables(wildcards=None):
    return expand(f"{RESULTS}/shards/{{shard}}.parquet", shard=shard_names())


def source_shard_tables(wildcards):
    """The shard molecule tables of one source."""
    return [f"{RESULTS}/shards/{shard}.parquet" for shard in shards_of(wildcards.source)]


def source_format(wildcards):
    """The format of one source."""
    return next(s["format"] for s in config["sources"] if s["name"] == wildcards.source)


def conformer_tables(wildcards=None):
    return expand(f"{RESULTS}/conformers/{{shard}}.parquet", shard=shard_names())


def conformer_ledgers(wildcards=None):
    return expand(f"{RESULTS}/conformers/{{shard}}.ledger.tsv", shard=shard_names())


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
    """The conformer tables (coordinates) of one source."""
    return [f"{RESULTS}/conformers/{shard}.parquet" for shard in shards_of(wildcards.source)]


def train_labels(wildcards):
    """The typed labels table training reads (config ``train.labels``)."""
    engine = config["train"]["labels"]
    if engine == "source":
        return f"{RESULTS}/labels/{wildcards.source}.parquet"
    return f"{RESULTS}/density/{engine}/labels.parquet"


def trainer_settings(wildcards):
    """The trainer section with the run's seed."""
    return as_param({**config["train"]["trainer"], "seed": int(wildcards.seed)})


def model_settings(wildcards):
    """One model's constructor arguments."""
    return as_param(config["train"]["models"][wildcards.model])


def runs_of(source, lam=None):
    """Test predictions of every configured (model, target, seed) of one source: the plain
    runs, or the EDG students at λ = ``lam``."""
    train = config["train"]
    model = "{model}" if lam is None else f"lambda{lam_name(lam)}/edg-{{model}}"
    return expand(
        f"{RESULTS}/models/{source}/{model}/{{target}}/seed{{seed}}/test_predictions.parquet",
        model=sorted(train["models"]),
        target=train["targets"],
        seed=train["seeds"],
    )


def property_runs(wildcards):
    """The runs of one source's properties table: plain, and EDG students at edg.lambda."""
    runs = runs_of(wildcards.source)
    if config["edg"]["pretrain"] is not None:
        runs += runs_of(wildcards.source, config["edg"]["lambda"])
    return runs


def lambda_sweep_runs(wildcards):
    """The runs of one source's λ-sweep table: plain, and EDG students at every λ."""
    lambdas = sorted({config["edg"]["lambda"], *config["edg"]["lambda_sweep"]})
    return runs_of(wildcards.source) + [
        run for lam in lambdas for run in runs_of(wildcards.source, lam)
    ]


def lam_name(lam):
    """λ as it appears in paths (``lambda0.001``): Python's shortest general format."""
    return format(float(lam), "g")


# --- EDG --------------------------------------------------------------------------------------


def pretrain_image_groups(wildcards=None):
    """The render stage's image groups of the edg.pretrain source."""
    return [f"{RESULTS}/render/{shard}.zarr" for shard in shards_of(config["edg"]["pretrain"])]


def pretrain_split(wildcards=None):
    return f"{RESULTS}/splits/{config['edg']['pretrain']}.parquet"


def source_structure_groups(wildcards):
    """The structure-view groups of one source's conformer shards."""
    return [
        f"{RESULTS}/render/structures/{shard}.zarr" for shard in shards_of(wildcards.source)
    ]


def property_tables(wildcards=None):
    """One result table per train source (train.sources) when training is configured, and a
    λ-sweep table when EDG sweeps λ."""
    train = config["train"]
    if not (train["models"] and train["targets"]):
        return []
    tables = [f"{RESULTS}/tables/{source}_properties.md" for source in train["sources"]]
    if config["edg"]["pretrain"] is not None and config["edg"]["lambda_sweep"]:
        tables += [f"{RESULTS}/tables/{source}_edg_lambda.md" for source in train["sources"]]
    return tables
