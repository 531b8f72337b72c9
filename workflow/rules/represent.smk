# Representations of the density store, per shard: voxel grids, point clouds, images.
# Each writes a ledger of the molecules it could not represent; the shard completes.
rule voxels:
    input:
        lambda w: f"{RESULTS}/density/{config['voxels']['engine']}/{w.shard}.zarr",
    output:
        store=directory(f"{RESULTS}/voxels/{{shard}}.zarr"),
        ledger=f"{RESULTS}/voxels/{{shard}}.ledger.tsv",
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
        "python -m rhoflow voxels --settings {params.settings:q} {input:q} {output.store:q}"
        " --ledger {output.ledger:q} > {log:q} 2>&1"


rule pointclouds:
    input:
        lambda w: f"{RESULTS}/density/{config['pointclouds']['engine']}/{w.shard}.zarr",
    output:
        store=directory(f"{RESULTS}/pointclouds/{{shard}}.zarr"),
        ledger=f"{RESULTS}/pointclouds/{{shard}}.ledger.tsv",
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
        "python -m rhoflow pointclouds --settings {params.settings:q} {input:q} {output.store:q}"
        " --ledger {output.ledger:q} > {log:q} 2>&1"


rule render:
    input:
        lambda w: f"{RESULTS}/density/{config['render']['engine']}/{w.shard}.zarr",
    output:
        store=directory(f"{RESULTS}/render/{{shard}}.zarr"),
        ledger=f"{RESULTS}/render/{{shard}}.ledger.tsv",
    log:
        f"{LOGS}/render/{{shard}}.log",
    params:
        settings=json.dumps(config["render"]["settings"], sort_keys=True),
    threads: 1
    resources:
        runtime=240,
        mem_mb=4000,
    conda:
        "../../envs/render.yaml"
    shell:
        "python -m rhoflow render build --settings {params.settings:q} {input:q} {output.store:q}"
        " --ledger {output.ledger:q} > {log:q} 2>&1"


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
