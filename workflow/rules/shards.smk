checkpoint shards:
    input:
        source_inputs(),
    output:
        outdir=directory(f"{RESULTS}/shards"),
    log:
        f"{LOGS}/shards.log",
    params:
        sources=source_settings(),
        settings=settings("shards"),
    threads: config["shards"]["threads"]
    resources:
        runtime=240,
        mem_mb=4000,
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m rhoflow shards --sources {params.sources:q} --settings {params.settings:q}"
        " --threads {threads} --outdir {output.outdir:q} {input:q} > {log:q} 2>&1"
