# Point clouds of one engine's density store, per shard (+ a ledger of the molecules that failed).
rule pointclouds:
    input:
        f"{RESULTS}/density/{config['pointclouds']['engine']}/{{shard}}.zarr",
    output:
        store=directory(f"{RESULTS}/pointclouds/{{shard}}.zarr"),
        ledger=f"{RESULTS}/pointclouds/{{shard}}.ledger.tsv",
    log:
        f"{LOGS}/pointclouds/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/pointclouds/{{shard}}.tsv"
    params:
        settings=as_param(without(config["pointclouds"], "engine")),
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow pointclouds --settings {params.settings:q} {input:q} {output.store:q}"
        " --ledger {output.ledger:q} > {log:q} 2>&1"
