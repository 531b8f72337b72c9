rule conformers:
    input:
        f"{RESULTS}/shards/{{shard}}.parquet",
    output:
        table=f"{RESULTS}/conformers/{{shard}}.parquet",
        ledger=f"{RESULTS}/conformers/{{shard}}.ledger.tsv",
    log:
        f"{LOGS}/conformers/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/conformers/{{shard}}.tsv"
    params:
        settings=as_param(config["conformers"]),
    threads: config["conformers"]["threads"]
    resources:
        runtime=720,
        mem_mb=4000,
    conda:
        "../../envs/conformers.yaml"
    shell:
        "python -m rhoflow conformers --settings {params.settings:q} --threads {threads}"
        " {input:q} {output.table:q} {output.ledger:q} > {log:q} 2>&1"
