checkpoint shards:
    input:
        source_inputs(),
    output:
        outdir=directory(f"{RESULTS}/shards"),
    log:
        f"{LOGS}/shards.log",
    benchmark:
        f"{BENCHMARKS}/shards.tsv"
    params:
        sources=as_param([without(s, "path") for s in config["sources"]]),
        settings=as_param(config["shards"]),
    threads: config["shards"]["threads"]
    resources:
        runtime=240,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow shards --sources {params.sources:q} --settings {params.settings:q}"
        " --threads {threads} --outdir {output.outdir:q} {input:q} > {log:q} 2>&1"
