# Evaluation: one table per train source (CSV + Markdown: every model and target, train-mean
# baseline, mean ± std over seeds, in the papers' units) and parity plots for the report.
rule evaluate_property:
    input:
        runs=property_runs,
        labels=train_labels,
        split=f"{RESULTS}/splits/{{source}}.parquet",
    output:
        csv=report(
            f"{RESULTS}/tables/{{source}}_properties.csv",
            caption="../report/properties.rst",
            category="Results",
        ),
        md=f"{RESULTS}/tables/{{source}}_properties.md",
        plots=report(
            directory(f"{RESULTS}/tables/{{source}}_parity"),
            patterns=["{model}/{target}.png"],
            caption="../report/parity.rst",
            category="Results",
        ),
    log:
        f"{LOGS}/tables/{{source}}_properties.log",
    params:
        runs=lambda w, input: [str(Path(p).parent) for p in input.runs],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow evaluate --labels {input.labels:q} --split {input.split:q}"
        " --csv {output.csv:q} --md {output.md:q} --plots {output.plots:q} {params.runs:q}"
        " > {log:q} 2>&1"


# The EDG students' test MAE against λ (edg.lambda_sweep) beside the plain models.
rule evaluate_lambda:
    input:
        runs=lambda_sweep_runs,
        labels=train_labels,
        split=f"{RESULTS}/splits/{{source}}.parquet",
    output:
        csv=report(
            f"{RESULTS}/tables/{{source}}_edg_lambda.csv",
            caption="../report/lambda.rst",
            category="EDG",
        ),
        md=f"{RESULTS}/tables/{{source}}_edg_lambda.md",
        plot=report(
            f"{RESULTS}/tables/{{source}}_edg_lambda.png",
            caption="../report/lambda.rst",
            category="EDG",
        ),
    log:
        f"{LOGS}/tables/{{source}}_edg_lambda.log",
    params:
        runs=lambda w, input: [str(Path(p).parent) for p in input.runs],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow evaluate-lambda --labels {input.labels:q} --split {input.split:q}"
        " --csv {output.csv:q} --md {output.md:q} --plot {output.plot:q} {params.runs:q}"
        " > {log:q} 2>&1"
