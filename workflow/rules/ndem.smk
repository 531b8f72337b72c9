# ndem (rhoflow.ndem): energy + force training on the trajectories of ndem.trajectories —
# TorchMD-NET's Equivariant Transformer plain and with NDeM, classical denoising or a DeNS-style
# auxiliary loss, per seed; NDeM's λ and σ_max ablations; the force tables and the λ plot.
rule train_ndem:
    input:
        unpack(ndem_teacher),
        stores=md_stores,
        split=md_split,
    output:
        f"{NDEM_RUN}/summary.json",
    log:
        f"{LOGS}/ndem/{{trajectory}}/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_ndem/{{trajectory}}/{{variant}}/seed{{seed}}.tsv"
    params:
        **NDEM_SETTINGS,
        noise=ndem_variant_section("noise", ("ndem", "denoise")),
        dens=ndem_variant_section("dens", ("dens",)),
        edg=ndem_variant_section("edg", ("edg",)),
        teacher=lambda w, input: teacher_args(input),
        settings=ndem_trainer,
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=2880,
        mem_mb=8000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow ndem train --variant {wildcards.variant} --threads {threads}"
        " --trajectory {wildcards.trajectory:q} --model-kwargs {params.model:q}"
        " --loss {params.loss:q} --noise {params.noise:q} --dens {params.dens:q}"
        " --edg {params.edg:q} {params.teacher} --settings {params.settings:q}"
        " --split {input.split:q} --out {params.run_dir:q} {input.stores:q} > {log:q} 2>&1"


# NDeM with one noise setting changed: λ (sweep lambda) or σ_max (sweep sigma).
rule train_ndem_ablation:
    input:
        stores=md_stores,
        split=md_split,
    output:
        f"{NDEM}/{{trajectory}}/ablation/{{sweep}}{{value}}/seed{{seed}}/summary.json",
    log:
        f"{LOGS}/ndem/{{trajectory}}/ablation/{{sweep}}{{value}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_ndem/{{trajectory}}/ablation/{{sweep}}{{value}}/seed{{seed}}.tsv"
    params:
        **NDEM_SETTINGS,
        noise=ndem_noise,
        dens=as_param({}),
        settings=ndem_trainer,
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=2880,
        mem_mb=8000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow ndem train --variant ndem --threads {threads}"
        " --trajectory {wildcards.trajectory:q} --model-kwargs {params.model:q}"
        " --loss {params.loss:q} --noise {params.noise:q} --dens {params.dens:q}"
        " --settings {params.settings:q} --split {input.split:q} --out {params.run_dir:q}"
        " {input.stores:q} > {log:q} 2>&1"


rule evaluate_ndem:
    input:
        ndem_runs,
    output:
        csv=f"{RESULTS}/tables/md_forces.csv",
        md=f"{RESULTS}/tables/md_forces.md",
        html=report(
            f"{RESULTS}/tables/md_forces.html",
            caption="../report/md_forces.rst",
            category="Force fields",
        ),
    log:
        f"{LOGS}/ndem/table.log",
    params:
        runs=lambda w, input: [str(Path(p).parent) for p in input],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow ndem table --csv {output.csv:q} --md {output.md:q}"
        " --html {output.html:q} {params.runs:q} > {log:q} 2>&1"


rule evaluate_ndem_ablation:
    input:
        lam=ndem_ablation_runs("lambda"),
        sigma=ndem_ablation_runs("sigma"),
    output:
        csv=f"{RESULTS}/tables/ndem_ablation.csv",
        md=f"{RESULTS}/tables/ndem_ablation.md",
        html=report(
            f"{RESULTS}/tables/ndem_ablation.html",
            caption="../report/ndem_ablation.rst",
            category="Force fields",
        ),
        png=report(
            f"{RESULTS}/tables/ndem_ablation.png",
            caption="../report/ndem_ablation_plot.rst",
            category="Force fields",
        ),
    log:
        f"{LOGS}/ndem/ablation.log",
    params:
        lam=lambda w, input: [str(Path(p).parent) for p in input.lam],
        sigma=lambda w, input: [str(Path(p).parent) for p in input.sigma],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow ndem ablation --csv {output.csv:q} --md {output.md:q}"
        " --html {output.html:q} --png {output.png:q} --lambda-runs {params.lam:q}"
        " --sigma-runs {params.sigma:q} > {log:q} 2>&1"
