# One typed labels table per engine: the engine's labels and checks from its shard stores,
# joined by id with the source labels of the conformer tables.
rule labels:
    input:
        stores=density_stores,
        tables=conformer_tables,
    output:
        f"{RESULTS}/density/{{engine}}/labels.parquet",
    log:
        f"{LOGS}/density/{{engine}}/labels.log",
    threads: DASK_THREADS
    resources:
        runtime=60,
        mem_mb=8000,
        dask=DASK_SETTINGS,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow labels --dask {resources.dask:q} --out {output:q}"
        " --stores {input.stores:q} --tables {input.tables:q} > {log:q} 2>&1"


# The sources' own labels alone (no density needed), per source: what geometry models learn
# when train.labels is `source`.
rule labels_source:
    input:
        tables=source_conformer_tables,
    output:
        f"{RESULTS}/labels/{{source}}.parquet",
    log:
        f"{LOGS}/labels/{{source}}.log",
    threads: DASK_THREADS
    resources:
        runtime=60,
        mem_mb=8000,
        dask=DASK_SETTINGS,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow labels --dask {resources.dask:q} --out {output:q}"
        " --tables {input.tables:q} > {log:q} 2>&1"
