# Representations of the density store, per shard: voxel grids and point clouds.
rule voxels:
    input:
        lambda w: f"{RESULTS}/density/{config['voxels']['engine']}/{w.shard}.zarr",
    output:
        directory(f"{RESULTS}/voxels/{{shard}}.zarr"),
    log:
        f"{LOGS}/voxels/{{shard}}.log",
    params:
        settings=representation_settings("voxels"),
    threads: 1
    resources:
        runtime=120,
        mem_mb=8000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow voxels --settings {params.settings:q} {input:q} {output:q}"
        " > {log:q} 2>&1"


rule pointclouds:
    input:
        lambda w: f"{RESULTS}/density/{config['pointclouds']['engine']}/{w.shard}.zarr",
    output:
        directory(f"{RESULTS}/pointclouds/{{shard}}.zarr"),
    log:
        f"{LOGS}/pointclouds/{{shard}}.log",
    params:
        settings=representation_settings("pointclouds"),
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow pointclouds --settings {params.settings:q} {input:q} {output:q}"
        " > {log:q} 2>&1"
