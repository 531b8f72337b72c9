# rhoflow: molecules in, electron-density datasets and trained models out.
# This file only loads and validates the config, includes one rule file per stage and names
# the final targets. All logic lives in the rhoflow library (src/rhoflow), called by each rule.
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from rhoflow.config import load_schema, validate  # noqa: E402


configfile: "config.yaml"


validate(config, load_schema())


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    shard=SHARD_PATTERN,
    source=r"[A-Za-z][A-Za-z0-9_]*",
    engine=r"[a-z][a-z0-9]*",
    model=r"[a-z0-9+]+",
    target=r"[a-z][a-z0-9_]*",
    seed=r"\d+",
    lam=r"[0-9][0-9.e+-]*",
    mode=r"atoms|density|gradient|density\+gradient|shape",
    fraction=r"[0-9][0-9.e-]*",
    representation=r"voxels|pointclouds|images",
    embedding=r"latent|density",
    trajectory=r"[A-Za-z0-9][A-Za-z0-9_.:+-]*",
    variant=r"baseline|ndem|denoise|dens|edg",
    sweep=r"lambda|sigma",
    value=r"[0-9][0-9.e+-]*",


include: "workflow/rules/shards.smk"
include: "workflow/rules/conformers.smk"
include: "workflow/rules/density.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/voxels.smk"
include: "workflow/rules/pointclouds.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/edg.smk"
include: "workflow/rules/edrep.smk"
include: "workflow/rules/vqgan.smk"
include: "workflow/rules/md.smk"
include: "workflow/rules/ndem.smk"
include: "workflow/rules/summary.smk"


rule all:
    input:
        all_targets,
    default_target: True
