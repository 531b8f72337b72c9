# One rule per configured engine (density_psi4, density_pyscf, density_xtb): each shard's
# conformers into a Zarr shard store and a ledger; then one id index per engine (store_index,
# `rhoflow store index`).
# (The shell command runs after the loop ends: it takes the engine from params, bound now.)
DENSITY_RESOURCES = {
    "psi4": {"runtime": 1440, "mem_mb": 8000},
    "pyscf": {"runtime": 1440, "mem_mb": 8000},
    "xtb": {"runtime": 240, "mem_mb": 4000},
}

for engine in config["density"]["engines"]:

    rule:
        name:
            f"density_{engine}"
        input:
            f"{RESULTS}/conformers/{{shard}}.parquet",
        output:
            store=directory(f"{RESULTS}/density/{engine}/{{shard}}.zarr"),
            ledger=f"{RESULTS}/density/{engine}/{{shard}}.ledger.tsv",
        log:
            f"{LOGS}/density/{engine}/{{shard}}.log",
        params:
            engine=engine,
            settings=as_param(config["density"][engine]),
            workers=config["density"]["workers"],
        threads: config["density"]["threads"]
        resources:
            **DENSITY_RESOURCES[engine],
        conda:
            f"../../envs/{engine}.yaml"
        shell:
            "python -m rhoflow density --engine {params.engine}"
            " --settings {params.settings:q} --threads {threads} --workers {params.workers}"
            " {input:q} {output.store:q} {output.ledger:q} > {log:q} 2>&1"


rule store_index:
    input:
        density_stores,
    output:
        f"{RESULTS}/density/{{engine}}/index.parquet",
    log:
        f"{LOGS}/density/{{engine}}/index.log",
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow store index --out {output:q} {input:q} > {log:q} 2>&1"
