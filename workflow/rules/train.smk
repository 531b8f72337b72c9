# Training: one run per (source, model, target, seed), each resuming from its last.ckpt when
# the job is retried. The run directory holds checkpoints, metrics.csv and config.json beside
# the declared output, the best checkpoint's test predictions.
rule train_property:
    input:
        tables=source_conformer_tables,
        labels=train_labels,
        split=f"{RESULTS}/splits/{{source}}.parquet",
    output:
        f"{RESULTS}/models/{{source}}/{{model}}/{{target}}/seed{{seed}}/test_predictions.parquet",
    log:
        f"{LOGS}/models/{{source}}/{{model}}/{{target}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_property/{{source}}/{{model}}/{{target}}/seed{{seed}}.tsv"
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
        "python -m rhoflow train --threads {threads} --model {wildcards.model:q}"
        " --model-kwargs {params.model_kwargs:q}"
        " --settings {params.settings:q} --target {wildcards.target:q} --labels {input.labels:q}"
        " --split {input.split:q} --out {params.run_dir:q} {input.tables:q} > {log:q} 2>&1"
