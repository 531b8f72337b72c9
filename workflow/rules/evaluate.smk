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


# The voxel low-data curves ("Beyond Atoms"): MAE per input mode and training fraction.
rule evaluate_curves:
    input:
        runs=edrep_curve_runs,
    output:
        csv=f"{RESULTS}/tables/{{source}}_voxel_curves.csv",
        md=f"{RESULTS}/tables/{{source}}_voxel_curves.md",
        plot=report(
            f"{RESULTS}/tables/{{source}}_voxel_curves.png",
            caption="../report/voxel_curves.rst",
            category="Density representations",
        ),
    log:
        f"{LOGS}/tables/{{source}}_voxel_curves.log",
    params:
        runs=lambda w, input: [str(Path(p).parent) for p in input.runs],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow evaluate-curves --csv {output.csv:q} --md {output.md:q}"
        " --plot {output.plot:q} {params.runs:q} > {log:q} 2>&1"


# Point clouds vs voxels vs images on E1–E6 (EDG Table 4) with their cost (EDG Fig. 1b).
rule evaluate_representations:
    input:
        runs=edrep_representation_runs,
    output:
        csv=report(
            f"{RESULTS}/tables/{{source}}_ed_representations.csv",
            caption="../report/ed_representations.rst",
            category="Density representations",
        ),
        md=f"{RESULTS}/tables/{{source}}_ed_representations.md",
    log:
        f"{LOGS}/tables/{{source}}_ed_representations.log",
    params:
        runs=lambda w, input: [str(Path(p).parent) for p in input.runs],
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow evaluate-representations --csv {output.csv:q} --md {output.md:q}"
        " {params.runs:q} > {log:q} 2>&1"
