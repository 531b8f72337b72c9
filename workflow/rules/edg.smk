# EDG (rhoflow.edg): ImageED on the `edg.pretrain` source's density images, its features, the
# ED-aware teacher on their structure views, the teacher's features of every trained source
# (structure views of its conformers: no density needed) and the distilled students.
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
    params:
        settings=lambda w: edg_settings("imageed"),
        run_dir=lambda w, output: str(Path(output.model).parent),
    threads: 2
    resources:
        runtime=2880,
        mem_mb=16000,
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
    threads: 2
    resources:
        runtime=600,
        mem_mb=8000,
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
    params:
        settings=lambda w: edg_settings("teacher"),
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=2880,
        mem_mb=16000,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edg teacher --threads {threads} --settings {params.settings:q}"
        " --split {input.split:q} --features {input.features:q} --out {params.run_dir:q}"
        " {input.images:q} > {log:q} 2>&1"


rule render_structures:
    input:
        f"{RESULTS}/conformers/{{shard}}.parquet",
    output:
        store=directory(f"{RESULTS}/render/structures/{{shard}}.zarr"),
        ledger=f"{RESULTS}/render/structures/{{shard}}.ledger.tsv",
    log:
        f"{LOGS}/render/structures/{{shard}}.log",
    params:
        settings=json.dumps(config["render"]["settings"], sort_keys=True),
    threads: 1
    resources:
        runtime=240,
        mem_mb=4000,
    conda:
        "../../envs/render.yaml"
    shell:
        "python -m rhoflow render structures --settings {params.settings:q} {input:q}"
        " {output.store:q} --ledger {output.ledger:q} > {log:q} 2>&1"


rule teacher_features:
    input:
        model=rules.teacher.output[0],
        images=source_structure_groups,
    output:
        directory(f"{RESULTS}/edg/teacher_features/{{dataset}}.zarr"),
    log:
        f"{LOGS}/edg/teacher_features/{{dataset}}.log",
    threads: 2
    resources:
        runtime=600,
        mem_mb=8000,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edg features --threads {threads} --model {input.model:q}"
        " --out {output:q} {input.images:q} > {log:q} 2>&1"


# One student per train run and λ (edg.lambda and edg.lambda_sweep), resumable like
# train_property; its run directory holds the same files.
STUDENT_RUN = f"{RESULTS}/models/{{dataset}}/lambda{{lam}}/edg-{{model}}/{{target}}/seed{{seed}}"


rule train_edg:
    input:
        tables=source_conformer_tables,
        labels=train_labels,
        split=f"{RESULTS}/splits/{{dataset}}.parquet",
        teacher=rules.teacher.output[0],
        features=rules.teacher_features.output[0],
    output:
        f"{STUDENT_RUN}/test_predictions.parquet",
    log:
        f"{LOGS}/models/{{dataset}}/lambda{{lam}}/edg-{{model}}/{{target}}/seed{{seed}}.log",
    params:
        settings=trainer_settings,
        model_kwargs=model_settings,
        run_dir=lambda w, output: str(Path(output[0]).parent),
    threads: 2
    resources:
        runtime=1440,
        mem_mb=16000,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow train --threads {threads} --model {wildcards.model:q}"
        " --model-kwargs {params.model_kwargs:q}"
        " --settings {params.settings:q} --target {wildcards.target:q} --labels {input.labels:q}"
        " --split {input.split:q} --out {params.run_dir:q} --teacher {input.teacher:q}"
        " --teacher-features {input.features:q} --lambda {wildcards.lam}"
        " {input.tables:q} > {log:q} 2>&1"


rule evaluate_lambda:
    input:
        runs=lambda_sweep_runs,
        labels=train_labels,
        split=f"{RESULTS}/splits/{{dataset}}.parquet",
    output:
        csv=report(
            f"{RESULTS}/tables/{{dataset}}_edg_lambda.csv",
            caption="../report/lambda.rst",
            category="EDG",
        ),
        md=f"{RESULTS}/tables/{{dataset}}_edg_lambda.md",
        plot=report(
            f"{RESULTS}/tables/{{dataset}}_edg_lambda.png",
            caption="../report/lambda.rst",
            category="EDG",
        ),
    log:
        f"{LOGS}/tables/{{dataset}}_edg_lambda.log",
    params:
        runs=lambda w, input: [str(Path(p).parent) for p in input.runs],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow evaluate-lambda --labels {input.labels:q} --split {input.split:q}"
        " --csv {output.csv:q} --md {output.md:q} --plot {output.plot:q} {params.runs:q}"
        " > {log:q} 2>&1"
