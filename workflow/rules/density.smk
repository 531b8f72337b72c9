# One rule per configured engine (density_psi4, density_pyscf, density_xtb): each shard's
# conformers into a Zarr shard store and a ledger; then one id index per engine (store_index,
# `rhoflow store index`), the dataset's statistics and checks (store_stats, `rhoflow store
# stats`) and the report's central density slices (density_slices).
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
        benchmark:
            f"{BENCHMARKS}/density_{engine}/{{shard}}.tsv"
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
    threads: DASK_THREADS
    resources:
        runtime=30,
        mem_mb=4000,
        dask=DASK_SETTINGS,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow store index --dask {resources.dask:q} --out {output:q} {input:q}"
        " > {log:q} 2>&1"


# Statistics and re-verified checks of every molecule of one engine (a dask pass, as store_index).
rule store_stats:
    input:
        f"{RESULTS}/density/{{engine}}/index.parquet",
    output:
        report(
            f"{RESULTS}/density/{{engine}}/stats.json",
            caption="../report/stats.rst",
            category="Densities",
            labels={"engine": "{engine}", "figure": "statistics and checks"},
        ),
    log:
        f"{LOGS}/density/{{engine}}/stats.log",
    threads: DASK_THREADS
    resources:
        runtime=60,
        mem_mb=4000,
        dask=DASK_SETTINGS,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow store stats --dask {resources.dask:q} --out {output:q} {input:q}"
        " > {log:q} 2>&1"


# Central xy slices of the first molecules of each engine's first shard, for the report.
rule density_slices:
    input:
        lambda w: f"{RESULTS}/density/{w.engine}/{shard_names()[0]}.zarr",
    output:
        report(
            f"{RESULTS}/density/{{engine}}/slices.png",
            caption="../report/slices.rst",
            category="Densities",
            labels={"engine": "{engine}", "figure": "central xy slices"},
        ),
    log:
        f"{LOGS}/density/{{engine}}/slices.log",
    params:
        n_molecules=3,
        floor_e_per_bohr3=1e-5,
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow store slices --molecules {params.n_molecules}"
        " --floor {params.floor_e_per_bohr3} {input:q} {output:q} > {log:q} 2>&1"
