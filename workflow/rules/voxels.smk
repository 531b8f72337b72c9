# Voxel grids of one engine's density store, per shard (+ a ledger of the molecules that failed).
rule voxels:
    input:
        f"{RESULTS}/density/{config['voxels']['engine']}/{{shard}}.zarr",
    output:
        store=directory(f"{RESULTS}/voxels/{{shard}}.zarr"),
        ledger=f"{RESULTS}/voxels/{{shard}}.ledger.tsv",
    log:
        f"{LOGS}/voxels/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/voxels/{{shard}}.tsv"
    params:
        settings=as_param(without(config["voxels"], "engine")),
    threads: 1
    resources:
        runtime=120,
        mem_mb=8000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow voxels --settings {params.settings:q} {input:q} {output.store:q}"
        " --ledger {output.ledger:q} > {log:q} 2>&1"
