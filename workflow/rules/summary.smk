# The run in numbers: molecules and failures per stage, run times per stage (from every
# per-shard and per-run job's benchmark: record) and the effective config, for snakemake --report.
# summary and runtimes take a path per shard and stage (~50 k at 3.7 M molecules, beyond the
# kernel's 2 MiB command line): bash's builtin printf hands them to `rhoflow` as an @file.
rule summary:
    input:
        shard_tables=shard_tables,
        shard_ledger=shards_ledger,
        tables=conformer_tables,
        ledgers=conformer_ledgers,
        stores=all_density_stores,
        density_ledgers=all_density_ledgers,
        representations=representation_groups,
        representation_ledgers=representation_ledgers,
    output:
        tsv=report(
            f"{RESULTS}/summary/stages.tsv",
            caption="../report/summary.rst",
            category="Summary",
        ),
        md=f"{RESULTS}/summary/stages.md",
        html=report(
            f"{RESULTS}/summary/stages.html",
            caption="../report/summary.rst",
            category="Summary",
        ),
        failures=report(
            f"{RESULTS}/summary/failures.png",
            caption="../report/failures.rst",
            category="Summary",
        ),
    log:
        f"{LOGS}/summary.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow summary @<(printf '%s\\n'"
        " --tables {input.shard_tables:q} {input.tables:q}"
        " --ledgers {input.shard_ledger:q} {input.ledgers:q} {input.density_ledgers:q}"
        " {input.representation_ledgers:q}"
        " --stores {input.stores:q} --representations {input.representations:q}"
        " --tsv {output.tsv:q} --md {output.md:q} --html {output.html:q}"
        " --failures-plot {output.failures:q}) > {log:q} 2>&1"


rule runtimes:
    input:
        runtimes_inputs,
    output:
        tsv=report(
            f"{RESULTS}/summary/runtimes.tsv",
            caption="../report/runtimes.rst",
            category="Summary",
        ),
        md=f"{RESULTS}/summary/runtimes.md",
        html=report(
            f"{RESULTS}/summary/runtimes.html",
            caption="../report/runtimes.rst",
            category="Summary",
        ),
    log:
        f"{LOGS}/runtimes.log",
    params:
        root=BENCHMARKS,
        benchmarks=job_benchmarks,
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow runtimes @<(printf '%s\\n' --root {params.root:q}"
        " --tsv {output.tsv:q} --md {output.md:q} --html {output.html:q} {params.benchmarks:q})"
        " > {log:q} 2>&1"


# The whole config with its defaults filled in, as the rules saw it (params: any change of the
# config reruns this record, and only it).
rule effective_config:
    output:
        yaml=report(
            f"{RESULTS}/summary/config.yaml",
            caption="../report/config.rst",
            category="Config",
        ),
        html=report(
            f"{RESULTS}/summary/config.html",
            caption="../report/config.rst",
            category="Config",
        ),
    log:
        f"{LOGS}/effective_config.log",
    params:
        config=json.dumps(config, separators=(",", ":")),  # the config file's key order
    threads: 1
    resources:
        runtime=5,
        mem_mb=500,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow config --settings {params.config:q} --yaml {output.yaml:q}"
        " --html {output.html:q} > {log:q} 2>&1"
