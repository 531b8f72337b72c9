"""The ``rhoflow`` command line: every Snakemake rule calls one of these subcommands.

Stage settings arrive as one JSON object (``--settings``), exactly the config section the rule
passes through ``params:``; a partial section (a call by hand) gets the missing defaults from
the same schema the workflow fills them from (:func:`rhoflow.config.section_settings`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("rhoflow")


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def _molecule_id(text: str) -> str:
    """A molecule id argument, refused with a usage error unless it matches
    :data:`rhoflow.molecule.ID_PATTERN` (no spaces, shell or path characters)."""
    from rhoflow.molecule import check_id

    try:
        return check_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _torch_threads(threads: int) -> None:
    """torch's intra-op threads (a rule's ``threads``); and Lightning's lines in the log once:
    its logger has a handler of its own besides the root's."""
    import lightning  # noqa: F401 - adds that handler on import
    import torch

    torch.set_num_threads(threads)
    logging.getLogger("lightning").handlers.clear()


def cmd_shards(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.shards import build_shards

    settings = section_settings("shards", args.settings)
    manifest = build_shards(
        args.sources,
        args.inputs,
        settings["shard_size"],
        settings["filter"],
        args.outdir,
        workers=args.threads,
    )
    kept = sum(s.n_molecules for s in manifest)
    failed = sum(s.n_failed for s in manifest)
    log.info(
        "%d shards, %d molecules kept, %d in the ledger -> %s",
        len(manifest),
        kept,
        failed,
        args.outdir,
    )
    return 0


def cmd_conformers(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.conformers import generate_shard
    from rhoflow.ledger import write_ledger
    from rhoflow.molecule import read_molecules, write_molecules

    settings = section_settings("conformers", args.settings)
    molecules = read_molecules(args.shard)
    done, failed = generate_shard(molecules, settings, workers=args.threads)
    write_ledger(args.ledger, failed)
    write_molecules(args.output, done)
    log.info("%s: %d conformers, %d failures", args.shard, len(done), len(failed))
    return 0


def cmd_density(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.density.shard import build_density_shard

    build_density_shard(
        args.engine,
        args.shard,
        section_settings(f"density.{args.engine}", args.settings),
        args.store,
        args.ledger,
        workers=args.workers,
        threads=max(1, args.threads // args.workers),
    )
    return 0


def cmd_store_info(args: argparse.Namespace) -> int:
    from rhoflow.store import info

    for path in args.stores:
        summary = info(path)
        if args.json:
            print(json.dumps(summary, indent=2))
            continue
        print(f"{summary['path']}: {summary['molecules']} molecules, {summary['atoms']} atoms")
        print("  engines:  " + ", ".join(f"{k} ({v})" for k, v in summary["engines"].items()))
        for symbol, found in summary["basis"].items():
            print(f"  {symbol + ':':<9s} " + ", ".join(f"{k} ({v})" for k, v in found.items()))
        print(f"  with ESP: {summary['with_esp']}")
        failures = summary["failures"]
        print("  failures: " + (", ".join(f"{k}: {v}" for k, v in failures.items()) or "none"))
        print(f"  size:     {summary['total_bytes']} bytes in {summary['file_count']} files")
    return 0


def _dask_client(args: argparse.Namespace) -> Any:
    """The dask client of ``--dask`` (config 'dask', defaults filled) for a dataset-wide pass."""
    from rhoflow.cluster import dask_client
    from rhoflow.config import section_settings

    return dask_client(section_settings("dask", args.dask))


def cmd_store_index(args: argparse.Namespace) -> int:
    from rhoflow.store import write_index

    with _dask_client(args):
        write_index(args.stores, args.out)
    return 0


def cmd_store_stats(args: argparse.Namespace) -> int:
    from rhoflow.io import atomic_path
    from rhoflow.store import dataset_stats, open_dataset

    shards = [s for source in args.stores for s in open_dataset(source).shards]
    with _dask_client(args):
        stats = dataset_stats(shards)
    text = json.dumps(stats, indent=2) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
    log.info(
        "%d molecules in %d shards: %d mismatched checks, %d electron-count errors",
        stats["molecules"], stats["shards"], len(stats["mismatched"]),
        len(stats["electron_count_errors"]),
    )  # fmt: skip
    return 0


def cmd_store_slices(args: argparse.Namespace) -> int:
    from rhoflow.slices import plot_slices

    ids = plot_slices(args.store, args.out, args.molecules, args.floor, args.ids)
    log.info("%s: central slices of %s -> %s", args.store, ", ".join(ids), args.out)
    return 0


def cmd_cube_export(args: argparse.Namespace) -> int:
    from rhoflow.store import export_cube, open_dataset

    source = open_dataset(args.store) if args.store.suffix == ".parquet" else args.store
    export_cube(source, args.id, args.out, field=args.field)
    return 0


def cmd_cube_import(args: argparse.Namespace) -> int:
    from rhoflow.ledger import write_ledger
    from rhoflow.store import find_cube_pairs, import_cubes

    pairs = []
    for path in args.inputs:
        pairs.extend(find_cube_pairs(path) if path.is_dir() else [(path, None)])
    failed = import_cubes(pairs, args.out, skip_invalid=True)
    if args.ledger:
        write_ledger(args.ledger, failed)
    log.info(
        "%d cubes imported into %s, %d failed", len(pairs) - len(failed), args.out, len(failed)
    )
    return 0


def _representation(build: Any, args: argparse.Namespace) -> int:
    """Run a representation's ``build_shard`` and write its ledger (when asked)."""
    from rhoflow.ledger import write_ledger

    failed = build(args.store, args.output, args.settings)
    if args.ledger:
        write_ledger(args.ledger, failed)
    log.info("%s -> %s; %d molecules in the ledger", args.store, args.output, len(failed))
    return 0


def _without_engine(section: str, given: dict[str, Any]) -> dict[str, Any]:
    """A representation's completed settings less ``engine``: which store it reads is the
    rule's wiring, not a setting of the representation."""
    from rhoflow.config import section_settings

    settings = section_settings(section, given)
    del settings["engine"]
    return settings


def cmd_voxels(args: argparse.Namespace) -> int:
    from rhoflow.voxels import build_shard

    args.settings = _without_engine("voxels", args.settings)
    return _representation(build_shard, args)


def cmd_pointclouds(args: argparse.Namespace) -> int:
    from rhoflow.pointclouds import build_shard

    args.settings = _without_engine("pointclouds", args.settings)
    return _representation(build_shard, args)


def cmd_render_build(args: argparse.Namespace) -> int:
    from rhoflow.render import build_shard

    args.settings = _without_engine("render", args.settings)
    return _representation(build_shard, args)


def cmd_render_structures(args: argparse.Namespace) -> int:
    from rhoflow.render import build_structure_shard

    args.settings = _without_engine("render", args.settings)
    return _representation(build_structure_shard, args)


def cmd_render_export(args: argparse.Namespace) -> int:
    from rhoflow.render import export_pngs

    for path in export_pngs(args.images, args.id, args.outdir):
        print(path)
    return 0


def cmd_render_gallery(args: argparse.Namespace) -> int:
    from rhoflow.render import export_gallery

    export_gallery(args.images, args.outdir, args.molecules)
    return 0


def cmd_splits(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.splits import build_splits

    settings = section_settings("splits", args.settings)
    metadata = build_splits(args.tables, args.out, args.source, args.format, settings)
    log.info("%s: %s split %s -> %s", args.source, metadata["method"], metadata["sizes"], args.out)
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from rhoflow.labels import build_labels

    with _dask_client(args):
        frame = build_labels(args.out, args.stores, args.tables)
    log.info("%d molecules, %d label columns -> %s", len(frame), frame.shape[1] - 2, args.out)
    return 0


def _property_run(args: argparse.Namespace, train: Any, *extra: Any) -> int:
    """A property run on geometry data (the arguments of :func:`_geometry_run_args`):
    ``train(out, tables, labels, split, target, model, model_kwargs, settings, *extra)``."""
    from rhoflow.config import section_settings

    settings = section_settings("train.trainer", args.settings)
    _torch_threads(args.threads)
    summary = train(
        args.out, args.tables, args.labels, args.split, args.target, args.model,
        args.model_kwargs, settings, *extra,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rhoflow.train import train_geometry

    return _property_run(args, train_geometry)


def cmd_edg_student(args: argparse.Namespace) -> int:
    from rhoflow.edg import train_student

    return _property_run(args, train_student, args.teacher, args.teacher_features, args.lam)


def cmd_edg_imageed(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.edg import contact_sheet, train_imageed

    settings = section_settings("edg.imageed", args.settings)
    _torch_threads(args.threads)
    summary = train_imageed(args.out, args.images, args.split, settings)
    shown = contact_sheet(args.out / "model.pt", args.images, args.split, args.sheet)
    log.info("contact sheet of %s -> %s", ", ".join(shown), args.sheet)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_edg_teacher(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.edg import train_teacher

    settings = section_settings("edg.teacher", args.settings)
    _torch_threads(args.threads)
    summary = train_teacher(args.out, args.images, args.split, args.features, settings)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_edg_features(args: argparse.Namespace) -> int:
    from rhoflow.edg import write_model_features

    _torch_threads(args.threads)
    n = write_model_features(args.model, args.images, args.out, args.batch_size)
    log.info("%s: features of %d molecules -> %s", args.model, n, args.out)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import yaml

    from rhoflow.config import ConfigError, section_settings
    from rhoflow.predict import PredictError, predict_file, summary_line

    _torch_threads(args.threads)
    conformers = args.conformers
    try:
        if args.config is not None:
            conformers = (yaml.safe_load(args.config.read_text()) or {}).get("conformers")
        conformers = section_settings("conformers", conformers)
        rows = predict_file(
            args.checkpoint, args.input, args.out, conformers, args.format, args.threads
        )
    except (OSError, yaml.YAMLError, PredictError, ConfigError) as exc:
        print(f"rhoflow predict: {exc}", file=sys.stderr)
        return 2
    print(summary_line(rows, args.out))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rhoflow.evaluate import parity_plots, property_table, write_property_table

    write_property_table(property_table(args.runs, args.labels, args.split), args.csv, args.md)
    plots = parity_plots(args.runs, args.plots)
    log.info("%d runs -> %s, %s, %d parity plots", len(args.runs), args.csv, args.md, len(plots))
    print(Path(args.md).read_text())
    return 0


def cmd_evaluate_lambda(args: argparse.Namespace) -> int:
    from rhoflow.evaluate import lambda_table, write_lambda_table

    write_lambda_table(lambda_table(args.runs, args.labels, args.split), args.csv, args.md,
                       args.plot)  # fmt: skip
    print(Path(args.md).read_text())
    return 0


def cmd_evaluate_curves(args: argparse.Namespace) -> int:
    from rhoflow.evaluate import voxel_curves_table, write_voxel_curves

    write_voxel_curves(voxel_curves_table(args.runs), args.csv, args.md, args.plot)
    print(Path(args.md).read_text())
    return 0


def cmd_evaluate_representations(args: argparse.Namespace) -> int:
    from rhoflow.evaluate import representations_table, write_representations_table

    write_representations_table(representations_table(args.runs), args.csv, args.md)
    print(Path(args.md).read_text())
    return 0


def cmd_edrep_train(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.edrep import train_representation

    part = "curves" if args.mode is not None else "representations"
    settings = section_settings(f"edrep.{part}.trainer", args.settings)
    model = "model" if part == "curves" else args.representation
    kwargs = section_settings(f"edrep.{part}.{model}", args.model_kwargs)
    _torch_threads(args.threads)
    summary = train_representation(
        args.out, args.representation, args.groups, args.labels, args.split, args.targets,
        kwargs, settings, args.loss, args.mode, args.fraction,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


def cmd_vqgan_train(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.vqgan import train_vqgan

    _torch_threads(args.threads)
    summary = train_vqgan(
        args.out, args.stores, args.split, section_settings("vqgan.model", args.model_kwargs),
        section_settings("vqgan.discriminator", args.discriminator_kwargs),
        section_settings("vqgan.losses", args.losses),
        section_settings("vqgan.trainer", args.settings),
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


def cmd_vqgan_evaluate(args: argparse.Namespace) -> int:
    from rhoflow.vqgan import evaluate_vqgan, slices_png, write_reconstruction_table

    _torch_threads(args.threads)
    write_reconstruction_table(evaluate_vqgan(args.run), args.csv, args.md, args.html)
    ids = slices_png(args.run, args.slices)
    print(Path(args.md).read_text())
    print(f"slices of {', '.join(ids)}: {args.slices}")
    return 0


def cmd_vqgan_embed(args: argparse.Namespace) -> int:
    from rhoflow.vqgan import embed

    _torch_threads(args.threads)
    n = embed(args.run, args.latent, args.density)
    print(f"{n} molecules: {args.latent}, {args.density}")
    return 0


def cmd_vqgan_finetune(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.edrep import train_representation

    settings = section_settings("vqgan.finetune.trainer", args.settings)
    head = section_settings("vqgan.finetune.head", args.head)
    _torch_threads(args.threads)
    summary = train_representation(
        args.out, "features", [args.features], args.labels, args.split, args.targets, head,
        settings, "l1",
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


def cmd_evaluate_finetune(args: argparse.Namespace) -> int:
    from rhoflow.evaluate import finetune_table, write_finetune_table

    write_finetune_table(finetune_table(args.runs), args.csv, args.md)
    print(Path(args.md).read_text())
    return 0


def cmd_md_import(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.md import import_trajectory

    md = section_settings("md", {"trajectories": [args.entry]})
    print(json.dumps(import_trajectory(md["trajectories"][0], args.out)))
    return 0


def cmd_md_xtb(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.md import simulate_shard

    settings = section_settings("md.xtb", args.settings)
    run = {k: v for k, v in settings.items() if k not in ("source", "ids")}
    print(json.dumps(simulate_shard(args.table, args.out, args.ledger, run, settings["ids"])))
    return 0


def cmd_md_split(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.md import split_frames

    settings = section_settings("md.split", args.settings)
    print(json.dumps(split_frames(args.stores, args.trajectory, settings, args.out)))
    return 0


def cmd_md_frames(args: argparse.Namespace) -> int:
    from rhoflow.md import frames_table

    print(f"{frames_table(args.stores, args.trajectory, args.out)} frames: {args.out}")
    return 0


def cmd_ndem_train(args: argparse.Namespace) -> int:
    from rhoflow.config import section_settings
    from rhoflow.md import find_store
    from rhoflow.ndem import loss_settings, train_forces

    ndem = section_settings("ndem", {"model": args.model_kwargs, "loss": args.loss,
                                     "noise": args.noise, "dens": args.dens, "edg": args.edg,
                                     "trainer": args.settings})  # fmt: skip
    teacher = None
    if args.variant == "edg":
        from rhoflow.edg.modelfile import load_predictor

        if args.teacher is None or args.features is None:
            raise SystemExit("--variant edg needs --teacher and --features")
        teacher = {"predictor": load_predictor(args.teacher), "features": args.features,
                   "model": args.teacher}  # fmt: skip
    _torch_threads(args.threads)
    summary = train_forces(args.out, find_store(args.stores, args.trajectory), args.trajectory,
                           args.split, ndem["model"], loss_settings(args.variant, ndem),
                           ndem["trainer"], teacher)  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


def cmd_ndem_table(args: argparse.Namespace) -> int:
    from rhoflow.evaluate import md_forces_table, write_md_forces_table

    write_md_forces_table(md_forces_table(args.runs), args.csv, args.md, args.html)
    print(Path(args.md).read_text())
    return 0


def cmd_ndem_ablation(args: argparse.Namespace) -> int:
    from rhoflow.evaluate import ndem_ablation_table, write_ndem_ablation

    table = ndem_ablation_table(args.lambda_runs, args.sigma_runs)
    write_ndem_ablation(table, args.csv, args.md, args.html, args.png)
    print(Path(args.md).read_text())
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from rhoflow.summary import plot_failures, summarize, write_summary

    rows = summarize(args.tables, args.ledgers, args.stores, args.representations)
    write_summary(rows, args.tsv, args.md, args.html)
    if args.failures_plot is not None:
        plot_failures(rows, args.failures_plot)
    print(Path(args.md).read_text())
    return 0


def cmd_runtimes(args: argparse.Namespace) -> int:
    from rhoflow.summary import runtime_table, write_runtimes

    write_runtimes(runtime_table(args.benchmarks, args.root), args.tsv, args.md, args.html)
    print(Path(args.md).read_text())
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    import yaml

    from rhoflow.config import ConfigError, load_schema, validate, write_config

    if (args.config is None) == (args.settings is None):
        print("rhoflow config: give a config file or --settings, not both", file=sys.stderr)
        return 2
    config = args.settings if args.config is None else yaml.safe_load(args.config.read_text())
    config = config or {}
    try:
        validate(config, load_schema(args.schema), workdir=args.workdir)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.yaml is not None:
        write_config(config, args.yaml, args.html or args.yaml.with_suffix(".html"))
    else:
        print(json.dumps(config, indent=2))
    return 0


def _geometry_run_args(p: argparse.ArgumentParser) -> None:
    """The arguments of a property run on geometry data (``train``, ``edg student``)."""
    p.add_argument("--settings", type=_json_arg, default={}, help="config 'train.trainer' as JSON")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the rule's threads)")
    p.add_argument("--model", required=True, help="model name (rhoflow.models.MODELS)")
    p.add_argument("--model-kwargs", type=_json_arg, default={}, help="model arguments as JSON")
    p.add_argument("--target", required=True, help="labels column, e.g. source_gap_hartree")
    p.add_argument("--labels", type=Path, required=True, help="typed labels table (.parquet)")
    p.add_argument("--split", type=Path, required=True, help="split file (.parquet)")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("tables", nargs="+", type=Path, help="molecule tables with coordinates")


def _dask_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dask", type=_json_arg, default={}, help="config 'dask' as JSON")


def build_parser() -> argparse.ArgumentParser:
    # `@file` stands for the arguments in file, one per line: rules over every shard of a
    # 3.7 M-molecule dataset pass ~50 k paths, beyond the kernel's limit on a command line
    parser = argparse.ArgumentParser(
        prog="rhoflow", description=__doc__.splitlines()[0], fromfile_prefix_chars="@"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("shards", help="split sources into molecule-table shards")
    p.add_argument("--sources", type=_json_arg, required=True, help="config 'sources' as JSON")
    p.add_argument("--settings", type=_json_arg, required=True, help="config 'shards' as JSON")
    p.add_argument("--outdir", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("inputs", nargs="+", help="one local file per source, in config order")
    p.set_defaults(func=cmd_shards)

    p = sub.add_parser("conformers", help="conformers for one shard")
    p.add_argument("--settings", type=_json_arg, required=True, help="config 'conformers' as JSON")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("shard", type=Path, help="input molecule table (.parquet)")
    p.add_argument("output", type=Path, help="output molecule table (.parquet)")
    p.add_argument("ledger", type=Path, help="output ledger (.tsv)")
    p.set_defaults(func=cmd_conformers)

    p = sub.add_parser("density", help="densities of one shard with one engine, into a store")
    p.add_argument("--engine", required=True, choices=["psi4", "pyscf", "xtb"])
    p.add_argument(
        "--settings", type=_json_arg, required=True, help="config 'density.<engine>' as JSON"
    )
    p.add_argument("--threads", type=int, default=1, help="threads of the whole job")
    p.add_argument("--workers", type=int, default=1, help="molecules computed at once")
    p.add_argument("shard", type=Path, help="input molecule table with coordinates (.parquet)")
    p.add_argument("store", type=Path, help="output shard store (.zarr)")
    p.add_argument("ledger", type=Path, help="output ledger (.tsv)")
    p.set_defaults(func=cmd_density)

    store = sub.add_parser("store", help="density stores").add_subparsers(
        dest="store_command", required=True
    )
    p = store.add_parser("info", help="molecules, engines, failures per reason, size")
    p.add_argument("stores", nargs="+", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_store_info)
    p = store.add_parser("index", help="write the id -> (shard, position) index of shard stores")
    p.add_argument("--out", type=Path, required=True, help="index file (.parquet)")
    p.add_argument("stores", nargs="*", type=Path)
    _dask_arg(p)
    p.set_defaults(func=cmd_store_index)
    p = store.add_parser(
        "slices", help="PNG of the central xy density slices of a store's first molecules"
    )
    p.add_argument("--molecules", type=int, default=3, help="the store's first N molecules")
    p.add_argument("--ids", nargs="*", default=[], help="these molecules instead")
    p.add_argument(
        "--floor", type=float, default=1e-5, help="lowest density of the log scale, e/bohr^3"
    )
    p.add_argument("store", type=Path, help="density shard store (.zarr)")
    p.add_argument("out", type=Path, help="output image (.png)")
    p.set_defaults(func=cmd_store_slices)
    p = store.add_parser(
        "stats", help="statistics and checks of every molecule (JSON), one dask task per shard"
    )
    p.add_argument("--out", type=Path, help="JSON file (default: print)")
    p.add_argument("stores", nargs="+", type=Path, help="an index (.parquet) or shard stores")
    _dask_arg(p)
    p.set_defaults(func=cmd_store_stats)

    cube = sub.add_parser("cube", help="Gaussian cube interop").add_subparsers(
        dest="cube_command", required=True
    )
    p = cube.add_parser("export", help="one molecule's grid as a Gaussian cube")
    p.add_argument("store", type=Path, help="a shard store (.zarr) or an index (.parquet)")
    p.add_argument("id", type=_molecule_id)
    p.add_argument("out", type=Path)
    p.add_argument("--field", choices=["density", "esp"], default="density")
    p.set_defaults(func=cmd_cube_export)
    p = cube.add_parser("import", help="external cubes (<id>_Dt.cube + <id>_ESP.cube) into a store")
    p.add_argument("--out", type=Path, required=True, help="new shard store (.zarr)")
    p.add_argument("--ledger", type=Path, help="write unreadable cubes here")
    p.add_argument("inputs", nargs="+", type=Path, help="folders of cube pairs or density cubes")
    p.set_defaults(func=cmd_cube_import)

    for name, func, what in (
        ("voxels", cmd_voxels, "voxel grids [N, C, D, D, D]"),
        ("pointclouds", cmd_pointclouds, "point clouds [N, P, 4]"),
    ):
        p = sub.add_parser(name, help=f"{what} of one density shard store")
        p.add_argument("--settings", type=_json_arg, default={}, help=f"config '{name}' as JSON")
        p.add_argument("store", type=Path, help="density shard store (.zarr)")
        p.add_argument("output", type=Path, help="output Zarr group (.zarr)")
        p.add_argument("--ledger", type=Path, help="write molecules that failed here (.tsv)")
        p.set_defaults(func=func)

    render = sub.add_parser(
        "render", help="PyMOL RGB-D density and structure images"
    ).add_subparsers(dest="render_command", required=True)
    p = render.add_parser("build", help="images of every molecule of one density shard store")
    p.add_argument("--settings", type=_json_arg, default={}, help="config 'render' as JSON")
    p.add_argument("store", type=Path, help="density shard store (.zarr)")
    p.add_argument("output", type=Path, help="output image group (.zarr)")
    p.add_argument("--ledger", type=Path, help="write molecules that failed here (.tsv)")
    p.set_defaults(func=cmd_render_build)
    p = render.add_parser(
        "structures", help="structure views of every molecule of a molecule table (no density)"
    )
    p.add_argument("--settings", type=_json_arg, default={}, help="config 'render' as JSON")
    p.add_argument("store", type=Path, help="molecule table with coordinates (.parquet)")
    p.add_argument("output", type=Path, help="output image group (.zarr)")
    p.add_argument("--ledger", type=Path, help="write molecules that failed here (.tsv)")
    p.set_defaults(func=cmd_render_structures)
    p = render.add_parser("export", help="one molecule's images as PNG files")
    p.add_argument("images", type=Path, help="image group (.zarr) written by 'render build'")
    p.add_argument("id", type=_molecule_id)
    p.add_argument("outdir", type=Path)
    p.set_defaults(func=cmd_render_export)
    p = render.add_parser("gallery", help="PNGs of the first molecules, for the report")
    p.add_argument("--molecules", type=int, default=2)
    p.add_argument("images", type=Path)
    p.add_argument("outdir", type=Path)
    p.set_defaults(func=cmd_render_gallery)

    p = sub.add_parser("splits", help="id -> train/val/test of one source's molecules")
    p.add_argument("--settings", type=_json_arg, required=True, help="config 'splits' as JSON")
    p.add_argument("--source", required=True, help="source name (recorded in the file)")
    p.add_argument("--format", required=True, help="source format (full QM9: 110,000/10,000)")
    p.add_argument("--out", type=Path, required=True, help="split file (.parquet)")
    p.add_argument("tables", nargs="*", type=Path, help="the source's shard molecule tables")
    p.set_defaults(func=cmd_splits)

    p = sub.add_parser("labels", help="typed labels table: engine and source labels by id")
    p.add_argument("--out", type=Path, required=True, help="labels table (.parquet)")
    p.add_argument("--stores", nargs="*", default=[], type=Path, help="one engine's shard stores")
    _dask_arg(p)
    p.add_argument("--tables", nargs="+", required=True, type=Path, help="molecule tables")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser(
        "train", help="train one model on one target; resumes from OUT/checkpoints/last.ckpt"
    )
    _geometry_run_args(p)
    p.set_defaults(func=cmd_train)

    edg = sub.add_parser("edg", help="EDG: ImageED, the ED-aware teacher and their features")
    edg_sub = edg.add_subparsers(dest="edg_command", required=True)
    p = edg_sub.add_parser("imageed", help="pre-train ImageED on density images")
    p.add_argument("--settings", type=_json_arg, default={}, help="config 'edg.imageed' as JSON")
    p.add_argument("--split", type=Path, required=True, help="the images' source split file")
    p.add_argument("--out", type=Path, required=True, help="run directory (model.pt in it)")
    p.add_argument("--sheet", type=Path, required=True, help="contact sheet of test molecules")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("images", nargs="+", type=Path, help="image groups (render stage)")
    p.set_defaults(func=cmd_edg_imageed)
    p = edg_sub.add_parser("teacher", help="train the ED-aware teacher on structure images")
    p.add_argument("--settings", type=_json_arg, default={}, help="config 'edg.teacher' as JSON")
    p.add_argument("--split", type=Path, required=True, help="the images' source split file")
    p.add_argument("--features", type=Path, required=True, help="ImageED features group")
    p.add_argument("--out", type=Path, required=True, help="run directory (model.pt in it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("images", nargs="+", type=Path, help="image groups with structure images")
    p.set_defaults(func=cmd_edg_teacher)
    p = edg_sub.add_parser(
        "student", help="a geometry model distilled from the teacher (a run like 'train')"
    )
    _geometry_run_args(p)
    p.add_argument("--teacher", type=Path, required=True, help="the teacher's model.pt")
    p.add_argument(
        "--teacher-features", type=Path, required=True, help="the dataset's teacher features"
    )
    p.add_argument("--lambda", dest="lam", type=float, required=True, help="weight λ of the "
                   "distillation term")  # fmt: skip
    p.set_defaults(func=cmd_edg_student)
    p = edg_sub.add_parser(
        "features", help="features of every molecule: ImageED's or the teacher's (by model.pt)"
    )
    p.add_argument("--model", type=Path, required=True, help="ImageED or teacher model.pt")
    p.add_argument("--out", type=Path, required=True, help="features group (.zarr)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("images", nargs="+", type=Path, help="image groups")
    p.set_defaults(func=cmd_edg_features)

    edrep = sub.add_parser("edrep", help="models over density voxels, point clouds, images")
    edrep_sub = edrep.add_subparsers(dest="edrep_command", required=True)
    p = edrep_sub.add_parser(
        "train", help="one run of a representation's model; resumes from OUT's last.ckpt"
    )
    p.add_argument("--representation", choices=["voxels", "pointclouds", "images"],
                   required=True)  # fmt: skip
    p.add_argument(
        "--mode",
        choices=["atoms", "density", "gradient", "density+gradient", "shape"],
        help="voxels: a curve run's input mode (default: every channel)",
    )
    p.add_argument("--fraction", type=float, default=1.0, help="of the train split (nested)")
    p.add_argument("--targets", nargs="+", required=True, help="labels columns learnt together")
    p.add_argument("--loss", choices=["l1", "mse"], required=True)
    p.add_argument("--model-kwargs", type=_json_arg, default={}, help="model arguments as JSON")
    p.add_argument("--settings", type=_json_arg, default={}, help="trainer settings as JSON")
    p.add_argument("--labels", type=Path, required=True, help="typed labels table (.parquet)")
    p.add_argument("--split", type=Path, required=True, help="the dataset's split file (.parquet)")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("groups", nargs="+", type=Path, help="the representation's shard groups")
    p.set_defaults(func=cmd_edrep_train)

    p = sub.add_parser(
        "predict", help="a trained model's predictions (with units) for new molecules, as CSV"
    )
    p.add_argument("checkpoint", type=Path, help="run directory (best.ckpt) or a .ckpt in one")
    p.add_argument("input", type=Path, help="molecules: .smi/.smiles/.txt, .sdf or .xyz")
    p.add_argument("out", type=Path, help="predictions (.csv)")
    p.add_argument("--format", choices=["smiles", "sdf", "xyz"], help="default: by extension")
    given = p.add_mutually_exclusive_group()
    given.add_argument(
        "--conformers", type=_json_arg, help="config 'conformers' as JSON (default: schema's)"
    )
    given.add_argument("--config", type=Path, help="read 'conformers' from this config.yaml")
    p.add_argument("--threads", type=int, default=1, help="conformer workers and torch threads")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="test MAE table (CSV, Markdown) and parity plots of runs")
    p.add_argument("--labels", type=Path, required=True, help="typed labels table (.parquet)")
    p.add_argument("--split", type=Path, required=True, help="the dataset's split file (.parquet)")
    p.add_argument("--csv", type=Path, required=True, help="output table (.csv)")
    p.add_argument("--md", type=Path, required=True, help="output table (.md)")
    p.add_argument("--plots", type=Path, required=True, help="folder of <model>/<target>.png")
    p.add_argument("runs", nargs="+", type=Path, help="run folders .../<model>/<target>/seed<k>")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("evaluate-lambda", help="EDG students' test MAE against λ (table, plot)")
    p.add_argument("--labels", type=Path, required=True, help="typed labels table (.parquet)")
    p.add_argument("--split", type=Path, required=True, help="the dataset's split file (.parquet)")
    p.add_argument("--csv", type=Path, required=True, help="output table (.csv)")
    p.add_argument("--md", type=Path, required=True, help="output table (.md)")
    p.add_argument("--plot", type=Path, required=True, help="output plot (.png)")
    p.add_argument("runs", nargs="+", type=Path, help="plain and .../lambda<λ>/edg-<model> runs")
    p.set_defaults(func=cmd_evaluate_lambda)

    p = sub.add_parser("evaluate-curves", help="voxel low-data curves: table and log-log plot")
    p.add_argument("--csv", type=Path, required=True, help="output table (.csv)")
    p.add_argument("--md", type=Path, required=True, help="output table (.md)")
    p.add_argument("--plot", type=Path, required=True, help="output plot (.png)")
    p.add_argument("runs", nargs="+", type=Path, help="edrep curve run folders")
    p.set_defaults(func=cmd_evaluate_curves)

    p = sub.add_parser(
        "evaluate-representations", help="test RMSE and cost of point clouds, voxels and images"
    )
    p.add_argument("--csv", type=Path, required=True, help="output table (.csv)")
    p.add_argument("--md", type=Path, required=True, help="output table (.md)")
    p.add_argument("runs", nargs="+", type=Path, help="edrep representation run folders")
    p.set_defaults(func=cmd_evaluate_representations)

    p = sub.add_parser(
        "evaluate-finetune", help="test MAE of MLP heads on VQ-GAN and baseline embeddings"
    )
    p.add_argument("--csv", type=Path, required=True, help="output table (.csv)")
    p.add_argument("--md", type=Path, required=True, help="output table (.md)")
    p.add_argument("runs", nargs="+", type=Path, help="vqgan finetune run folders")
    p.set_defaults(func=cmd_evaluate_finetune)

    vqgan = sub.add_parser("vqgan", help="3DGrid-VQGAN: train, evaluate, embed, fine-tune")
    vqgan_sub = vqgan.add_subparsers(dest="vqgan_command", required=True)
    p = vqgan_sub.add_parser("train", help="train the VQ-GAN; resumes from OUT's last.ckpt")
    p.add_argument("--settings", type=_json_arg, default={}, help="'vqgan.trainer' as JSON")
    p.add_argument("--model-kwargs", type=_json_arg, default={}, help="'vqgan.model' as JSON")
    p.add_argument("--discriminator-kwargs", type=_json_arg, default={},
                   help="'vqgan.discriminator' as JSON")  # fmt: skip
    p.add_argument("--losses", type=_json_arg, default={}, help="'vqgan.losses' as JSON")
    p.add_argument("--split", type=Path, required=True, help="the source's split file")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("stores", nargs="+", type=Path, help="density shard stores (box grids)")
    p.set_defaults(func=cmd_vqgan_train)
    p = vqgan_sub.add_parser("evaluate", help="reconstruction table per kept epoch, slices")
    p.add_argument("--run", type=Path, required=True, help="the VQ-GAN's run directory")
    p.add_argument("--csv", type=Path, required=True, help="output table (.csv)")
    p.add_argument("--md", type=Path, required=True, help="output table (.md)")
    p.add_argument("--html", type=Path, required=True, help="output table (.html)")
    p.add_argument("--slices", type=Path, required=True, help="central slices (.png)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.set_defaults(func=cmd_vqgan_evaluate)
    p = vqgan_sub.add_parser("embed", help="pooled latent and pooled density of every molecule")
    p.add_argument("--run", type=Path, required=True, help="the VQ-GAN's run directory")
    p.add_argument("--latent", type=Path, required=True, help="features group (.zarr)")
    p.add_argument("--density", type=Path, required=True, help="features group (.zarr)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.set_defaults(func=cmd_vqgan_embed)
    p = vqgan_sub.add_parser("finetune", help="an MLP on one embedding (a run like 'train')")
    p.add_argument("--features", type=Path, required=True, help="embedding features group")
    p.add_argument("--targets", nargs="+", required=True, help="labels columns learnt together")
    p.add_argument("--head", type=_json_arg, default={}, help="'vqgan.finetune.head' as JSON")
    p.add_argument("--settings", type=_json_arg, default={},
                   help="'vqgan.finetune.trainer' as JSON")  # fmt: skip
    p.add_argument("--labels", type=Path, required=True, help="typed labels table (.parquet)")
    p.add_argument("--split", type=Path, required=True, help="the dataset's split file (.parquet)")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.set_defaults(func=cmd_vqgan_finetune)

    md = sub.add_parser("md", help="trajectories off equilibrium: import, xtb MD, split")
    md_sub = md.add_subparsers(dest="md_command", required=True)
    p = md_sub.add_parser("import", help="an MD17 extxyz or rMD17 npz file into a store")
    p.add_argument("--entry", type=_json_arg, required=True, help="an md.trajectories entry")
    p.add_argument("--out", type=Path, required=True, help="trajectory store (.zarr)")
    p.set_defaults(func=cmd_md_import)
    p = md_sub.add_parser("xtb", help="GFN2-xTB MD of the molecules of a conformer shard")
    p.add_argument("--settings", type=_json_arg, default={}, help="'md.xtb' as JSON")
    p.add_argument("--table", type=Path, required=True, help="conformer shard table")
    p.add_argument("--out", type=Path, required=True, help="trajectory store (.zarr)")
    p.add_argument("--ledger", type=Path, required=True, help="failures (.tsv)")
    p.set_defaults(func=cmd_md_xtb)
    p = md_sub.add_parser("split", help="split file of one trajectory's frames")
    p.add_argument("--settings", type=_json_arg, default={}, help="'md.split' as JSON")
    p.add_argument("--trajectory", required=True, help="trajectory id")
    p.add_argument("--out", type=Path, required=True, help="split file (.parquet)")
    p.add_argument("stores", nargs="+", type=Path, help="trajectory stores (one holds it)")
    p.set_defaults(func=cmd_md_split)
    p = md_sub.add_parser("frames", help="a trajectory's frames as a molecule table")
    p.add_argument("--trajectory", required=True, help="trajectory id")
    p.add_argument("--out", type=Path, required=True, help="molecule table (.parquet)")
    p.add_argument("stores", nargs="+", type=Path, help="trajectory stores (one holds it)")
    p.set_defaults(func=cmd_md_frames)

    ndem = sub.add_parser("ndem", help="energy + force training with NDeM and baselines")
    ndem_sub = ndem.add_subparsers(dest="ndem_command", required=True)
    p = ndem_sub.add_parser("train", help="one run on one trajectory; resumes from last.ckpt")
    p.add_argument("--trajectory", required=True, help="trajectory id")
    p.add_argument("--variant", required=True,
                   choices=["baseline", "ndem", "denoise", "dens", "edg"])  # fmt: skip
    p.add_argument("--model-kwargs", type=_json_arg, default={}, help="'ndem.model' as JSON")
    p.add_argument("--loss", type=_json_arg, default={}, help="'ndem.loss' as JSON")
    p.add_argument("--noise", type=_json_arg, default={}, help="'ndem.noise' as JSON")
    p.add_argument("--dens", type=_json_arg, default={}, help="'ndem.dens' as JSON")
    p.add_argument("--edg", type=_json_arg, default={}, help="'ndem.edg' as JSON")
    p.add_argument("--teacher", type=Path, help="EDG teacher model file (variant edg)")
    p.add_argument("--features", type=Path, help="teacher features of the frames (edg)")
    p.add_argument("--settings", type=_json_arg, default={}, help="'ndem.trainer' as JSON")
    p.add_argument("--split", type=Path, required=True, help="the trajectory's split file")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("stores", nargs="+", type=Path, help="trajectory stores (one holds it)")
    p.set_defaults(func=cmd_ndem_train)
    p = ndem_sub.add_parser("table", help="energy and force MAE per trajectory and variant")
    p.add_argument("--csv", type=Path, required=True, help="output table (.csv)")
    p.add_argument("--md", type=Path, required=True, help="output table (.md)")
    p.add_argument("--html", type=Path, required=True, help="output table (.html)")
    p.add_argument("runs", nargs="+", type=Path, help="ndem run folders")
    p.set_defaults(func=cmd_ndem_table)
    p = ndem_sub.add_parser("ablation", help="NDeM's λ and σ_max sweeps: table and plot")
    p.add_argument("--csv", type=Path, required=True, help="output table (.csv)")
    p.add_argument("--md", type=Path, required=True, help="output table (.md)")
    p.add_argument("--html", type=Path, required=True, help="output table (.html)")
    p.add_argument("--png", type=Path, required=True, help="force MAE against λ (.png)")
    p.add_argument("--lambda-runs", nargs="*", type=Path, default=[], help="λ sweep runs")
    p.add_argument("--sigma-runs", nargs="*", type=Path, default=[], help="σ_max sweep runs")
    p.set_defaults(func=cmd_ndem_ablation)

    p = sub.add_parser("summary", help="molecules and failures per stage")
    p.add_argument("--tables", nargs="*", default=[], type=Path)
    p.add_argument("--ledgers", nargs="*", default=[], type=Path)
    p.add_argument(
        "--stores",
        nargs="*",
        default=[],
        type=Path,
        help="density shard stores (stage density_<engine folder>)",
    )
    p.add_argument(
        "--representations",
        nargs="*",
        default=[],
        type=Path,
        help="voxel / point-cloud / image groups (stage = their folder)",
    )
    p.add_argument("--tsv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("--html", type=Path, help="also an HTML page of the table (for the report)")
    p.add_argument("--failures-plot", type=Path, help="bar chart of failures per stage, reason")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "runtimes", help="wall/CPU time and max RSS per stage from Snakemake benchmark records"
    )
    p.add_argument("--root", type=Path, required=True, help="records are ROOT/<stage>/...tsv")
    p.add_argument("--tsv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("--html", type=Path, required=True)
    p.add_argument("benchmarks", nargs="*", type=Path, help="records; missing ones are counted")
    p.set_defaults(func=cmd_runtimes)

    p = sub.add_parser("config", help="validate a config file and print it with defaults")
    p.add_argument("config", type=Path, nargs="?", help="config file (.yaml)")
    p.add_argument("--settings", type=_json_arg, help="the config as JSON instead of a file")
    p.add_argument(
        "--schema", type=Path, help="default: the package's rhoflow/schemas/config.schema.yaml"
    )
    p.add_argument("--workdir", type=Path, default=Path("."))
    p.add_argument("--yaml", type=Path, help="write the completed config here instead of printing")
    p.add_argument("--html", type=Path, help="with --yaml: its HTML page (default: beside it)")
    p.set_defaults(func=cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rhoflow`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    return args.func(args)
