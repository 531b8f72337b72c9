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


def _profile_resource(name):
    """The constant a profile's (or ``--default-resources``) entry ``name`` sets, else None."""
    defaults = workflow.resource_settings.default_resources
    for arg in getattr(defaults, "args", None) or ():
        key, _, value = arg.partition("=")
        if key == name:
            return value.strip().strip("'\"") or None
    return None


def model_gpu():
    """GPUs of every rule that trains or runs a model (the rules with envs/train.yaml, of
    every method): `gpu` (+ `gpu_model`) from the profile's default-resources `model_gpu` /
    `model_gpu_model` (profiles/slurm). One setting for all such rules; other rules get no GPU,
    and none is asked for when the profile does not set it (local runs)."""
    count, model = _profile_resource("model_gpu"), _profile_resource("model_gpu_model")
    if count is None:
        return {}
    if not count.isdigit():
        raise ValueError(f"default-resources model_gpu must be a GPU count, not {count!r}")
    if int(count) == 0:
        return {}
    return {"gpu": int(count), **({"gpu_model": model} if model else {})}


MODEL_GPU = model_gpu()

RESULTS = "results"
LOGS = "logs"
BENCHMARKS = f"{LOGS}/benchmarks"  # <rule>/<job>.tsv: Snakemake's benchmark: records
SHARD_PATTERN = r"[A-Za-z][A-Za-z0-9_]*-\d{5}"


def as_param(obj):
    """``obj`` (settings) as canonical JSON: a rule's params, so changing it reruns the rule."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# The dataset-wide passes (store_index, store_stats, labels, labels_source) run on the dask cluster of
# config `dask`, given to them as a resource (where a job runs), not as params: the scheduler
# never changes a result, so changing it reruns nothing. A local cluster's workers are the
# rule's threads; a SLURM cluster's are jobs of their own.
DASK_SETTINGS = as_param(config["dask"])
DASK_THREADS = (
    config["dask"]["workers"] * config["dask"]["threads_per_worker"]
    if config["dask"]["scheduler"] == "local"
    else 1
)


def without(section, key):
    """A config mapping less one key that is an input, not a setting (a source's path, the
    engine a representation reads)."""
    return {k: v for k, v in section.items() if k != key}


def source_inputs():
    """One local path or storage object per source, in config order."""
    return [storage.http(s["path"]) if is_url(s["path"]) else s["path"] for s in config["sources"]]


_MANIFESTS = {}


def manifest():
    """The shards of every source, from the manifest written by the shards checkpoint; read
    once per version of the file (every aggregating job asks: 3,700 rows at PCQM4Mv2 size)."""
    from rhoflow.shards import read_manifest

    path = Path(checkpoints.shards.get().output.outdir) / "manifest.tsv"
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _MANIFESTS:
        _MANIFESTS[key] = read_manifest(path)
    return _MANIFESTS[key]


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
    summary = [f"{RESULTS}/summary/stages.{x}" for x in ("tsv", "md", "html")]
    summary.append(f"{RESULTS}/summary/failures.png")
    slices = [f"{RESULTS}/density/{e}/slices.png" for e in config["density"]["engines"]]
    stats = [f"{RESULTS}/density/{e}/stats.json" for e in config["density"]["engines"]]
    return [*summary, *indexes, *labels, *slices, *stats, *splits, *representation_outputs(),
            *property_tables(), *edrep_tables(), *vqgan_tables(), *ndem_tables(),
            *run_records()]  # fmt: skip


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
    """The trainer section, updated by the model's train.model_trainer, with the run's seed."""
    train = config["train"]
    overrides = train["model_trainer"].get(wildcards.model, {})
    return as_param({**train["trainer"], **overrides, "seed": int(wildcards.seed)})


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


# --- edrep: learning from density representations --------------------------------------------

EDREP_CURVE_RUN = f"{RESULTS}/edrep/{{source}}/curves/{{mode}}/frac{{fraction}}/seed{{seed}}"
EDREP_REPRESENTATION_RUN = (
    f"{RESULTS}/edrep/{{source}}/representations/{{representation}}/seed{{seed}}"
)
EDREP_SECTIONS = {"voxels": "voxels", "pointclouds": "pointclouds", "images": "render"}
"""The representation stage (results folder) of each edrep representation."""


def edrep_labels(wildcards=None):
    """The labels table of the density engine the representations were made from."""
    return f"{RESULTS}/density/{config['voxels']['engine']}/labels.parquet"


def edrep_groups(wildcards):
    """One representation's groups of the source's shards (voxels for the curves)."""
    section = EDREP_SECTIONS[getattr(wildcards, "representation", "voxels")]
    return [f"{RESULTS}/{section}/{shard}.zarr" for shard in shards_of(wildcards.source)]


def edrep_settings(part):
    """The trainer settings of an edrep part's runs, with the run's seed (a rule's params)."""

    def settings(wildcards):
        return as_param({**config["edrep"][part]["trainer"], "seed": int(wildcards.seed)})

    return settings


def edrep_curve_runs(wildcards):
    curves = config["edrep"]["curves"]
    return expand(
        f"{EDREP_CURVE_RUN}/test_predictions.parquet",
        source=wildcards.source,
        mode=curves["modes"],
        fraction=[f"{f:g}" for f in curves["fractions"]],
        seed=curves["seeds"],
    )


def edrep_representation_runs(wildcards):
    return expand(
        f"{EDREP_REPRESENTATION_RUN}/test_predictions.parquet",
        source=wildcards.source,
        representation=list(EDREP_SECTIONS),
        seed=config["edrep"]["representations"]["seeds"],
    )


def edrep_tables(wildcards=None):
    """The edrep tables of edrep.source: the voxel curves and the representation table."""
    edrep = config["edrep"]
    source = edrep["source"]
    if source is None:
        return []
    tables = []
    if edrep["curves"]["target"] is not None:
        tables.append(f"{RESULTS}/tables/{source}_voxel_curves.md")
    if edrep["representations"]["targets"]:
        tables.append(f"{RESULTS}/tables/{source}_ed_representations.md")
    return tables


# --- vqgan: the 3DGrid-VQGAN ------------------------------------------------------------------

VQGAN = f"{RESULTS}/vqgan/{config['vqgan']['source']}"
VQGAN_FINETUNE_RUN = f"{VQGAN}/finetune/{{embedding}}/seed{{seed}}"
VQGAN_EMBEDDINGS = ("latent", "density")
"""The fine-tuned embeddings: the VQ-GAN's pooled latent and the pooled raw density."""


def vqgan_stores(wildcards=None):
    """The vqgan.engine's shard stores of the vqgan.source's shards."""
    engine = config["vqgan"]["engine"]
    return [f"{RESULTS}/density/{engine}/{s}.zarr" for s in shards_of(config["vqgan"]["source"])]


def vqgan_split(wildcards=None):
    return f"{RESULTS}/splits/{config['vqgan']['source']}.parquet"


def vqgan_labels(wildcards=None):
    """The labels table of vqgan.engine (its labels and the sources' labels)."""
    return f"{RESULTS}/density/{config['vqgan']['engine']}/labels.parquet"


def vqgan_finetune_runs(wildcards=None):
    return expand(
        f"{VQGAN_FINETUNE_RUN}/test_predictions.parquet",
        embedding=VQGAN_EMBEDDINGS,
        seed=config["vqgan"]["finetune"]["seeds"],
    )


def vqgan_tables(wildcards=None):
    """The reconstruction table (and slices), and the fine-tuning table when it has targets."""
    vqgan = config["vqgan"]
    if vqgan["source"] is None:
        return []
    tables = [f"{RESULTS}/tables/vqgan_reconstruction.md", f"{VQGAN}/slices.png"]
    if vqgan["finetune"]["targets"]:
        tables.append(f"{RESULTS}/tables/vqgan_finetune.md")
    return tables


# --- md and ndem: trajectories off equilibrium, energy + force training --------------------------

MD = f"{RESULTS}/md"
NDEM = f"{RESULTS}/ndem"
NDEM_RUN = f"{NDEM}/{{trajectory}}/{{variant}}/seed{{seed}}"
MD_IMPORTS = {t["name"]: t for t in config["md"]["trajectories"]}


def md_xtb_stores(wildcards=None):
    """The GFN2-xTB MD stores of md.xtb.source's shards (one per shard)."""
    source = config["md"]["xtb"]["source"]
    return [] if source is None else [f"{MD}/xtb/{s}.zarr" for s in shards_of(source)]


def md_stores(wildcards):
    """The stores that may hold trajectory {trajectory}: its imported store, else the xtb MD's."""
    if wildcards.trajectory in MD_IMPORTS:
        return [f"{MD}/{wildcards.trajectory}.zarr"]
    return md_xtb_stores()


def md_split(wildcards):
    return f"{MD}/splits/{wildcards.trajectory}.parquet"


def ndem_runs(wildcards=None):
    ndem = config["ndem"]
    return expand(f"{NDEM_RUN}/summary.json", trajectory=ndem["trajectories"],
                  variant=ndem["variants"], seed=ndem["seeds"])  # fmt: skip


def ndem_ablation_runs(sweep):
    """The runs of the λ (``lambda``) or σ_max (``sigma``) sweep; the value at the noise
    default is the plain NDeM run when the variants have it."""
    ndem = config["ndem"]
    trajectory = ndem["ablation"]["trajectory"]
    key, values = {"lambda": ("weight", ndem["ablation"]["lambdas"]),
                   "sigma": ("sigma_max", ndem["ablation"]["sigma_max"])}[sweep]  # fmt: skip
    runs = []
    for value in values:
        for seed in ndem["seeds"]:
            if value == ndem["noise"][key] and "ndem" in ndem["variants"]:
                run = f"{NDEM}/{trajectory}/ndem/seed{seed}"
            else:
                run = f"{NDEM}/{trajectory}/ablation/{sweep}{value:g}/seed{seed}"
            runs.append(f"{run}/summary.json")
    return runs


NDEM_SETTINGS = {k: as_param(config["ndem"][k]) for k in ("model", "loss")}


def ndem_variant_section(name, variants):
    """ndem.<name> for the runs of ``variants`` (the variants that read it), else {}: a change
    to the noise reruns NDeM and denoising, one to dens the DeNS-style runs, neither the plain."""

    def param(wildcards):
        return as_param(config["ndem"][name] if wildcards.variant in variants else {})

    return param


def ndem_trainer(wildcards):
    return as_param({**config["ndem"]["trainer"], "seed": int(wildcards.seed)})


def ndem_noise(wildcards):
    """ndem.noise with the ablation's value (λ or σ_max) of the run."""
    noise = dict(config["ndem"]["noise"])
    key = {"lambda": "weight", "sigma": "sigma_max"}[wildcards.sweep]
    return as_param({**noise, key: float(wildcards.value)})


def ndem_teacher(wildcards):
    """The EDG teacher and its features of the trajectory's frames, for the edg variant."""
    if wildcards.variant != "edg":
        return {}
    return {"teacher": f"{RESULTS}/edg/teacher/model.pt",
            "features": f"{MD}/teacher_features/{wildcards.trajectory}.zarr"}  # fmt: skip


def teacher_args(input):
    """``--teacher … --features …`` of an edg run (quoted), else nothing."""
    if "teacher" not in input.keys():
        return ""
    return f"--teacher {shlex.quote(input.teacher)} --features {shlex.quote(input.features)}"


def ndem_tables(wildcards=None):
    ndem = config["ndem"]
    if not ndem["trajectories"]:
        return []
    tables = [f"{RESULTS}/tables/md_forces.md"]
    if ndem["ablation"]["trajectory"] is not None:
        tables.append(f"{RESULTS}/tables/ndem_ablation.md")
    return tables


# --- the run's records (snakemake --report) ---------------------------------------------------


def run_records(wildcards=None):
    """The effective config and the run times per stage (which follow every other target)."""
    return [
        *(f"{RESULTS}/summary/config.{x}" for x in ("yaml", "html")),
        *(f"{RESULTS}/summary/runtimes.{x}" for x in ("tsv", "md", "html")),
    ]


def runtimes_inputs(wildcards=None):
    """Every final target but the run's records: the run times are tabled after all jobs.
    Asks for the shards first, so that the rule waits for the checkpoint (its params list
    the jobs of every shard) even when no final target depends on a shard."""
    shard_names()
    records = run_records()
    return [target for target in all_targets() if target not in records]


def job_benchmarks(wildcards=None):
    """The benchmark record ``{BENCHMARKS}/<rule>/<job>.tsv`` of every per-shard and per-run
    job of the final targets (the rules with ``benchmark:``). Params, not inputs: a record
    that is missing (a job run before records were kept) never reruns its job."""
    shards = shard_names()
    stages = ["conformers", *(f"density_{e}" for e in config["density"]["engines"])]
    stages += [s for s in ("voxels", "pointclouds", "render") if config[s]["engine"] is not None]
    records = [f"{BENCHMARKS}/shards.tsv"]
    records += [f"{BENCHMARKS}/{stage}/{shard}.tsv" for stage in stages for shard in shards]
    records += [f"{BENCHMARKS}/md_xtb/{Path(s).stem}.tsv" for s in md_xtb_stores()]
    records += [f"{BENCHMARKS}/train_ndem/{Path(r).parent.relative_to(NDEM)}.tsv"
                for r in ndem_runs()]  # fmt: skip
    if not property_tables():
        return records
    edg, sources = config["edg"], config["train"]["sources"]
    runs = [run for source in sources for run in runs_of(source)]
    if edg["pretrain"] is not None:
        records += [f"{BENCHMARKS}/{r}.tsv" for r in ("imageed", "imageed_features", "teacher")]
        records += [f"{BENCHMARKS}/teacher_features/{source}.tsv" for source in sources]
        records += [f"{BENCHMARKS}/render_structures/{shard}.tsv"
                    for source in sources for shard in shards_of(source)]  # fmt: skip
        for lam in sorted({edg["lambda"], *edg["lambda_sweep"]}):
            runs += [run for source in sources for run in runs_of(source, lam)]
    for run in runs:  # results/models/<source>/[lambda<λ>/edg-]<model>/<target>/seed<k>/…
        job = Path(run).parent.relative_to(f"{RESULTS}/models")
        stage = "train_edg" if job.parts[1].startswith("lambda") else "train_property"
        records.append(f"{BENCHMARKS}/{stage}/{job}.tsv")
    return records
