# vqgan (rhoflow.vqgan): the 3DGrid-VQGAN on vqgan.source's densities from vqgan.engine's fixed
# box grids — one run (two optimisers, kept epoch checkpoints), its reconstruction table per
# kept epoch with central slices, the frozen encoder's pooled latent and a pooled raw density of
# every molecule, an MLP per (embedding, seed) on vqgan.finetune.targets, and their table.
rule train_vqgan:
    input:
        stores=vqgan_stores,
        split=vqgan_split,
    output:
        f"{VQGAN}/run/summary.json",
    log:
        f"{LOGS}/vqgan/train.log",
    benchmark:
        f"{BENCHMARKS}/train_vqgan.tsv"
    params:
        settings=as_param(config["vqgan"]["trainer"]),
        model_kwargs=as_param(config["vqgan"]["model"]),
        discriminator_kwargs=as_param(config["vqgan"]["discriminator"]),
        losses=as_param(config["vqgan"]["losses"]),
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=1440,
        mem_mb=16000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow vqgan train --threads {threads} --settings {params.settings:q}"
        " --model-kwargs {params.model_kwargs:q}"
        " --discriminator-kwargs {params.discriminator_kwargs:q} --losses {params.losses:q}"
        " --split {input.split:q} --out {params.run_dir:q} {input.stores:q} > {log:q} 2>&1"


# Reconstructions of the test molecules per kept epoch (3DGrid-VQGAN Table 2's layout).
rule evaluate_vqgan:
    input:
        rules.train_vqgan.output,
    output:
        csv=f"{RESULTS}/tables/vqgan_reconstruction.csv",
        md=f"{RESULTS}/tables/vqgan_reconstruction.md",
        html=report(
            f"{RESULTS}/tables/vqgan_reconstruction.html",
            caption="../report/vqgan_reconstruction.rst",
            category="VQ-GAN",
        ),
        slices=report(
            f"{VQGAN}/slices.png",
            caption="../report/vqgan_slices.rst",
            category="VQ-GAN",
        ),
    log:
        f"{LOGS}/vqgan/evaluate.log",
    params:
        run_dir=lambda w, input: str(Path(input[0]).parent),
    threads: 2
    resources:
        runtime=120,
        mem_mb=8000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow vqgan evaluate --threads {threads} --run {params.run_dir:q}"
        " --csv {output.csv:q} --md {output.md:q} --html {output.html:q}"
        " --slices {output.slices:q} > {log:q} 2>&1"


rule vqgan_embed:
    input:
        rules.train_vqgan.output,
    output:
        latent=directory(f"{VQGAN}/features/latent.zarr"),
        density=directory(f"{VQGAN}/features/density.zarr"),
    log:
        f"{LOGS}/vqgan/embed.log",
    params:
        run_dir=lambda w, input: str(Path(input[0]).parent),
    threads: 2
    resources:
        runtime=120,
        mem_mb=8000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow vqgan embed --threads {threads} --run {params.run_dir:q}"
        " --latent {output.latent:q} --density {output.density:q} > {log:q} 2>&1"


rule finetune_vqgan:
    input:
        features=f"{VQGAN}/features/{{embedding}}.zarr",
        labels=vqgan_labels,
        split=vqgan_split,
    output:
        f"{VQGAN_FINETUNE_RUN}/test_predictions.parquet",
    log:
        f"{LOGS}/vqgan/finetune/{{embedding}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/finetune_vqgan/{{embedding}}/seed{{seed}}.tsv"
    params:
        settings=lambda w: as_param(
            {**config["vqgan"]["finetune"]["trainer"], "seed": int(w.seed)}
        ),
        head=as_param(config["vqgan"]["finetune"]["head"]),
        targets=config["vqgan"]["finetune"]["targets"],
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 1
    resources:
        runtime=240,
        mem_mb=8000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow vqgan finetune --threads {threads} --features {input.features:q}"
        " --targets {params.targets:q} --head {params.head:q} --settings {params.settings:q}"
        " --labels {input.labels:q} --split {input.split:q} --out {params.run_dir:q}"
        " > {log:q} 2>&1"


rule evaluate_vqgan_finetune:
    input:
        runs=vqgan_finetune_runs,
    output:
        csv=report(
            f"{RESULTS}/tables/vqgan_finetune.csv",
            caption="../report/vqgan_finetune.rst",
            category="VQ-GAN",
        ),
        md=f"{RESULTS}/tables/vqgan_finetune.md",
    log:
        f"{LOGS}/tables/vqgan_finetune.log",
    params:
        runs=lambda w, input: [str(Path(p).parent) for p in input.runs],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow evaluate-finetune --csv {output.csv:q} --md {output.md:q}"
        " {params.runs:q} > {log:q} 2>&1"
