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
    log:
        f"{LOGS}/summary.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow summary --tables {input.shard_tables:q} {input.tables:q}"
        " --ledgers {input.shard_ledger:q} {input.ledgers:q} {input.density_ledgers:q}"
        " {input.representation_ledgers:q}"
        " --stores {input.stores:q} --representations {input.representations:q}"
        " --tsv {output.tsv:q} --md {output.md:q} > {log:q} 2>&1"
