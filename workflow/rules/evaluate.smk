# Evaluation: one table per source (CSV + Markdown: every model and target, train-mean
# baseline, mean ± std over seeds, in the papers' units) and parity plots for the report.
rule evaluate_property:
    input:
        runs=property_runs,
        labels=train_labels,
        split=f"{RESULTS}/splits/{{dataset}}.parquet",
    output:
        csv=report(
            f"{RESULTS}/tables/{{dataset}}_properties.csv",
            caption="../report/properties.rst",
            category="Results",
        ),
        md=f"{RESULTS}/tables/{{dataset}}_properties.md",
        plots=report(
            directory(f"{RESULTS}/tables/{{dataset}}_parity"),
            patterns=["{model}/{target}.png"],
            caption="../report/parity.rst",
            category="Results",
        ),
    log:
        f"{LOGS}/tables/{{dataset}}_properties.log",
    params:
        runs=lambda w, input: [str(Path(p).parent) for p in input.runs],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow evaluate --labels {input.labels:q} --split {input.split:q}"
        " --csv {output.csv:q} --md {output.md:q} --plots {output.plots:q} {params.runs:q}"
        " > {log:q} 2>&1"
