# edrep (rhoflow.edrep): the voxel 3D ResNet per input mode, training fraction and seed (the
# low-data curves), and PointNet / voxel ResNet / ResNet18 on the six images per seed (the
# representation comparison), on edrep.source's split and the representations' engine labels;
# their tables are evaluate_curves and evaluate_representations (evaluate.smk).
rule edrep_curve:
    input:
        groups=edrep_groups,
        labels=edrep_labels,
        split=f"{RESULTS}/splits/{{source}}.parquet",
    output:
        f"{EDREP_CURVE_RUN}/test_predictions.parquet",
    log:
        f"{LOGS}/edrep/{{source}}/curves/{{mode}}/frac{{fraction}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/edrep_curve/{{source}}/{{mode}}/frac{{fraction}}/seed{{seed}}.tsv"
    params:
        settings=edrep_settings("curves"),
        model_kwargs=as_param(config["edrep"]["curves"]["model"]),
        target=config["edrep"]["curves"]["target"],
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=1440,
        mem_mb=16000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edrep train --threads {threads} --representation voxels"
        " --mode {wildcards.mode:q} --fraction {wildcards.fraction} --loss l1"
        " --targets {params.target:q} --model-kwargs {params.model_kwargs:q}"
        " --settings {params.settings:q} --labels {input.labels:q} --split {input.split:q}"
        " --out {params.run_dir:q} {input.groups:q} > {log:q} 2>&1"


rule edrep_representation:
    input:
        groups=edrep_groups,
        labels=edrep_labels,
        split=f"{RESULTS}/splits/{{source}}.parquet",
    output:
        f"{EDREP_REPRESENTATION_RUN}/test_predictions.parquet",
    log:
        f"{LOGS}/edrep/{{source}}/representations/{{representation}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/edrep_representation/{{source}}/{{representation}}/seed{{seed}}.tsv"
    params:
        settings=edrep_settings("representations"),
        model_kwargs=lambda w: as_param(config["edrep"]["representations"][w.representation]),
        targets=config["edrep"]["representations"]["targets"],
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=1440,
        mem_mb=16000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edrep train --threads {threads}"
        " --representation {wildcards.representation:q} --loss mse --targets {params.targets:q}"
        " --model-kwargs {params.model_kwargs:q} --settings {params.settings:q}"
        " --labels {input.labels:q} --split {input.split:q} --out {params.run_dir:q}"
        " {input.groups:q} > {log:q} 2>&1"
