# One split file per source (id -> train/val/test), from its shard molecule tables, so that
# conformer and density settings never change a split.
rule splits:
    input:
        source_shard_tables,
    output:
        f"{RESULTS}/splits/{{source}}.parquet",
    log:
        f"{LOGS}/splits/{{source}}.log",
    params:
        settings=as_param(config["splits"]),
        format=source_format,
    threads: 1
    resources:
        runtime=120,
        mem_mb=8000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow splits --settings {params.settings:q} --source {wildcards.source:q}"
        " --format {params.format:q} --out {output:q} {input:q} > {log:q} 2>&1"
