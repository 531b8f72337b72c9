# md (rhoflow.md): molecules off equilibrium — trajectory files imported into trajectory stores,
# GFN2-xTB molecular dynamics of md.xtb.source's molecules (one store per conformer shard), one
# split file of each trajectory's frames (md.split), and for EDG the frames as a molecule table,
# their structure images and the teacher's features of them.
rule md_import:
    input:
        lambda w: MD_IMPORTS[w.trajectory]["path"],
    output:
        directory(f"{MD}/{{trajectory}}.zarr"),
    log:
        f"{LOGS}/md/import/{{trajectory}}.log",
    params:
        entry=lambda w: as_param(MD_IMPORTS[w.trajectory]),
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow md import --entry {params.entry:q} --out {output:q} > {log:q} 2>&1"


rule md_xtb:
    input:
        f"{RESULTS}/conformers/{{shard}}.parquet",
    output:
        store=directory(f"{MD}/xtb/{{shard}}.zarr"),
        ledger=f"{MD}/xtb/{{shard}}.ledger.tsv",
    log:
        f"{LOGS}/md/xtb/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/md_xtb/{{shard}}.tsv"
    params:
        settings=as_param(config["md"]["xtb"]),
    threads: 1
    resources:
        runtime=1440,
        mem_mb=4000,
    conda:
        "../../envs/conformers.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m rhoflow md xtb --settings {params.settings:q}"
        " --table {input:q} --out {output.store:q} --ledger {output.ledger:q} > {log:q} 2>&1"


rule md_split:
    input:
        md_stores,
    output:
        f"{MD}/splits/{{trajectory}}.parquet",
    log:
        f"{LOGS}/md/split/{{trajectory}}.log",
    params:
        settings=as_param(config["md"]["split"]),
    threads: 1
    resources:
        runtime=30,
        mem_mb=8000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow md split --settings {params.settings:q} --trajectory {wildcards.trajectory:q}"
        " --out {output:q} {input:q} > {log:q} 2>&1"


rule md_frames:
    input:
        md_stores,
    output:
        f"{MD}/frames/{{trajectory}}.parquet",
    log:
        f"{LOGS}/md/frames/{{trajectory}}.log",
    threads: 1
    resources:
        runtime=30,
        mem_mb=8000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow md frames --trajectory {wildcards.trajectory:q} --out {output:q}"
        " {input:q} > {log:q} 2>&1"


# The four structure views of every frame (render.smk's render_structures, on frames).
rule md_render_structures:
    input:
        rules.md_frames.output,
    output:
        store=directory(f"{MD}/structures/{{trajectory}}.zarr"),
        ledger=f"{MD}/structures/{{trajectory}}.ledger.tsv",
    log:
        f"{LOGS}/md/structures/{{trajectory}}.log",
    params:
        settings=as_param(without(config["render"], "engine")),
    threads: 1
    resources:
        runtime=1440,
        mem_mb=4000,
    conda:
        "../../envs/render.yaml"
    shell:
        "python -m rhoflow render structures --settings {params.settings:q} {input:q}"
        " {output.store:q} --ledger {output.ledger:q} > {log:q} 2>&1"


rule md_teacher_features:
    input:
        model=rules.teacher.output[0],
        images=rules.md_render_structures.output.store,
    output:
        directory(f"{MD}/teacher_features/{{trajectory}}.zarr"),
    log:
        f"{LOGS}/md/teacher_features/{{trajectory}}.log",
    threads: 2
    resources:
        runtime=240,
        mem_mb=8000,
        **MODEL_GPU,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m rhoflow edg features --threads {threads} --model {input.model:q}"
        " --out {output:q} {input.images:q} > {log:q} 2>&1"
