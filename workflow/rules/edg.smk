# EDG (rhoflow.edg): ImageED on the `edg.pretrain` source's density images, its features, the
# ED-aware teacher on their structure views, the teacher's features of every train source
# (render_structures' views of its conformers: no density needed) and the distilled students;
# their λ-sweep table is evaluate_lambda (evaluate.smk).
rule imageed:
    input:
        images=pretrain_image_groups,
        split=pretrain_split,
    output:
        model=f"{RESULTS}/edg/imageed/model.pt",
        sheet=report(
            f"{RESULTS}/edg/imageed/reconstructions.png",
            caption="../report/reconstructions.rst",
            category="EDG",
        ),
    log:
        f"{LOGS}/edg/imageed.log",
    benchmark:
        f"{BENCHMARKS}/imageed.tsv"
    params:
        settings=as_param(config["edg"]["imageed"]),
        run_dir=lambda w, output: str(Path(output.model).parent),
    threads: 2
    resources:
        runtime=2880,
        mem_mb=16000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edg imageed --threads {threads} --settings {params.settings:q}"
        " --split {input.split:q} --out {params.run_dir:q} --sheet {output.sheet:q}"
        " {input.images:q} > {log:q} 2>&1"


rule imageed_features:
    input:
        model=rules.imageed.output.model,
        images=pretrain_image_groups,
    output:
        directory(f"{RESULTS}/edg/imageed_features.zarr"),
    log:
        f"{LOGS}/edg/imageed_features.log",
    benchmark:
        f"{BENCHMARKS}/imageed_features.tsv"
    threads: 2
    resources:
        runtime=600,
        mem_mb=8000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edg features --threads {threads} --model {input.model:q}"
        " --out {output:q} {input.images:q} > {log:q} 2>&1"


rule teacher:
    input:
        images=pretrain_image_groups,
        split=pretrain_split,
        features=rules.imageed_features.output[0],
    output:
        f"{RESULTS}/edg/teacher/model.pt",
    log:
        f"{LOGS}/edg/teacher.log",
    benchmark:
        f"{BENCHMARKS}/teacher.tsv"
    params:
        settings=as_param(config["edg"]["teacher"]),
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=2880,
        mem_mb=16000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edg teacher --threads {threads} --settings {params.settings:q}"
        " --split {input.split:q} --features {input.features:q} --out {params.run_dir:q}"
        " {input.images:q} > {log:q} 2>&1"


rule teacher_features:
    input:
        model=rules.teacher.output[0],
        images=source_structure_groups,
    output:
        directory(f"{RESULTS}/edg/teacher_features/{{source}}.zarr"),
    log:
        f"{LOGS}/edg/teacher_features/{{source}}.log",
    benchmark:
        f"{BENCHMARKS}/teacher_features/{{source}}.tsv"
    threads: 2
    resources:
        runtime=600,
        mem_mb=8000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edg features --threads {threads} --model {input.model:q}"
        " --out {output:q} {input.images:q} > {log:q} 2>&1"


# One student per train run and λ (edg.lambda and edg.lambda_sweep), resumable like
# train_property; its run directory holds the same files.
STUDENT_RUN = f"{RESULTS}/models/{{source}}/lambda{{lam}}/edg-{{model}}/{{target}}/seed{{seed}}"


rule train_edg:
    input:
        tables=source_conformer_tables,
        labels=train_labels,
        split=f"{RESULTS}/splits/{{source}}.parquet",
        teacher=rules.teacher.output[0],
        features=rules.teacher_features.output[0],
    output:
        f"{STUDENT_RUN}/test_predictions.parquet",
    log:
        f"{LOGS}/models/{{source}}/lambda{{lam}}/edg-{{model}}/{{target}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_edg/{{source}}/lambda{{lam}}/edg-{{model}}/{{target}}/seed{{seed}}.tsv"
    params:
        settings=trainer_settings,
        model_kwargs=model_settings,
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=1440,
        mem_mb=16000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edg student --threads {threads} --model {wildcards.model:q}"
        " --model-kwargs {params.model_kwargs:q}"
        " --settings {params.settings:q} --target {wildcards.target:q} --labels {input.labels:q}"
        " --split {input.split:q} --out {params.run_dir:q} --teacher {input.teacher:q}"
        " --teacher-features {input.features:q} --lambda {wildcards.lam}"
        " {input.tables:q} > {log:q} 2>&1"
