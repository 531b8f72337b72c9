# PyMOL RGB-D density images and structure images, per shard (+ ledger), and a report gallery;
# structure images alone of the conformers (no density needed: any source gets EDG teacher
# features from them).
rule render:
    input:
        f"{RESULTS}/density/{config['render']['engine']}/{{shard}}.zarr",
    output:
        store=directory(f"{RESULTS}/render/{{shard}}.zarr"),
        ledger=f"{RESULTS}/render/{{shard}}.ledger.tsv",
    log:
        f"{LOGS}/render/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/render/{{shard}}.tsv"
    params:
        settings=as_param(without(config["render"], "engine")),
    threads: 1
    resources:
        runtime=240,
        mem_mb=4000,
    conda:
        "../../envs/render.yaml"
    shell:
        "python -m rhoflow render build --settings {params.settings:q} {input:q} {output.store:q}"
        " --ledger {output.ledger:q} > {log:q} 2>&1"


rule render_structures:
    input:
        f"{RESULTS}/conformers/{{shard}}.parquet",
    output:
        store=directory(f"{RESULTS}/render/structures/{{shard}}.zarr"),
        ledger=f"{RESULTS}/render/structures/{{shard}}.ledger.tsv",
    log:
        f"{LOGS}/render/structures/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/render_structures/{{shard}}.tsv"
    params:
        settings=as_param(without(config["render"], "engine")),
    threads: 1
    resources:
        runtime=240,
        mem_mb=4000,
    conda:
        "../../envs/render.yaml"
    shell:
        "python -m rhoflow render structures --settings {params.settings:q} {input:q}"
        " {output.store:q} --ledger {output.ledger:q} > {log:q} 2>&1"


rule render_gallery:
    input:
        lambda w: f"{RESULTS}/render/{shard_names()[0]}.zarr",
    output:
        report(
            directory(f"{RESULTS}/render/gallery"),
            patterns=["{name}.png"],
            caption="../report/gallery.rst",
            category="Images",
        ),
    log:
        f"{LOGS}/render/gallery.log",
    params:
        n_molecules=2,
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../../envs/render.yaml"
    shell:
        "python -m rhoflow render gallery --molecules {params.n_molecules} {input:q} {output:q}"
        " > {log:q} 2>&1"
