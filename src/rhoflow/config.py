"""Config and stage settings: one JSON schema, defaults filled, errors that name the key.

``rhoflow/schemas/config.schema.yaml`` (inside the package, read with ``importlib.resources``,
so a wheel install finds it) is the single description of every setting: name, type, default,
unit and meaning. The Snakefile checks a whole config with :func:`validate`; a CLI command fills
and checks its one section with :func:`section_settings` where it enters the library, so a call
by hand gets the defaults a workflow run gets; inner functions take the completed settings and
never check again. Checks a schema cannot express (one key against another) live here too, in
:data:`SECTION_CHECKS`.

Imported by the Snakefile at parse time, so it stays cheap: jsonschema and yaml only.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_RESOURCE = "config.schema.yaml"
"""The schema's file name in the package ``rhoflow.schemas``."""


class ConfigError(ValueError):
    """A config that would fail later; the message names the key."""


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, numbers.Integral) and not isinstance(instance, bool)


def _is_array(checker: Any, instance: Any) -> bool:
    return isinstance(instance, list | tuple)


@functools.cache
def _filling(validator_class: type) -> type:
    """``validator_class`` that also fills each missing property's ``default`` (also in schemas
    reached through ``$ref``/``allOf``; a given object gets the keys of an object default it
    lacks); an integer must be an int (not 2.0), a tuple is an array."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator:
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" not in sub:
                    continue
                if key not in instance:
                    instance[key] = _copy(sub["default"])
                elif isinstance(instance[key], dict) and isinstance(sub["default"], dict):
                    # an object's own defaults (edg.imageed.trainer's lr) hold for keys not given
                    for k, v in sub["default"].items():
                        instance[key].setdefault(k, _copy(v))
        yield from validate_properties(validator, properties, instance, schema)

    types = validator_class.TYPE_CHECKER.redefine_many({"integer": _is_integer, "array": _is_array})
    return jsonschema.validators.extend(
        validator_class, {"properties": set_defaults}, type_checker=types
    )


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _key(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    """The schema a local ``$ref`` (``#/$defs/name``) points to."""
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def _property_names(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    """Keys a schema allows by name: its ``properties``, and those of ``$ref`` and ``allOf``."""
    names = set(schema.get("properties", {}))
    if "$ref" in schema:
        names |= _property_names(_resolve(root, schema["$ref"]), root)
    for sub in schema.get("allOf", []):
        names |= _property_names(sub, root)
    return names


def _messages(
    error: jsonschema.ValidationError, root: dict[str, Any], prefix: list[str]
) -> list[str]:
    path = prefix + list(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = _property_names(error.schema, root)
        # a known key that failed its own check is reported by that check, not as unknown
        unknown = sorted(set(error.instance) - allowed)
        return [
            f"unknown config key '{_key(path + [k])}' (allowed: {', '.join(sorted(allowed))})"
            for k in unknown
        ]
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return [f"missing config key '{_key(path + [missing])}'"]
    return [f"config key '{_key(path)}': {error.message}"]


def _check(instance: Any, schema: dict[str, Any], prefix: list[str], what: str) -> None:
    """Validate ``instance`` in place (filling defaults); raise :class:`ConfigError`."""
    validator = _filling(jsonschema.validators.validator_for(schema))(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    lines = [line for e in errors for line in _messages(e, schema, prefix)]
    if lines:
        raise ConfigError(f"invalid {what}:\n  " + "\n  ".join(dict.fromkeys(lines)))


def load_schema(path: str | Path | None = None) -> dict[str, Any]:
    """Read a YAML JSON-schema file (default: the package's own, :data:`SCHEMA_RESOURCE`)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if path is None:
        text = resources.files("rhoflow.schemas").joinpath(SCHEMA_RESOURCE).read_text()
        return yaml.load(text, Loader=loader)
    with open(path) as fh:
        return yaml.load(fh, Loader=loader)


@functools.cache
def _default_schema() -> dict[str, Any]:
    return load_schema()


def section_schema(path: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The part of ``schema`` (default: the package's) describing the config section at
    ``path`` (``"voxels"``, ``"density.psi4"``, ``"edg.imageed"``), as a schema of its own
    (with the root's ``$schema`` and ``$defs``)."""
    root = _default_schema() if schema is None else schema
    sub = root
    for part in path.split("."):
        try:
            sub = sub["properties"][part]
        except KeyError:
            raise ConfigError(f"no config section {path!r} in the schema") from None
    return {**{k: root[k] for k in ("$schema", "$defs") if k in root}, **sub}


def section_settings(
    path: str, given: Mapping[str, Any] | None = None, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The settings of the config section at ``path`` (``"density.psi4"``, ``"voxels"``,
    ``"render"``): ``given`` (not modified) checked against the schema with every
    default filled in. Raises :class:`ConfigError` naming the key, e.g.
    ``unknown config key 'density.psi4.basiss' (allowed: ...)``."""
    settings = _copy(given or {})
    _check(settings, section_schema(path, schema), path.split("."), f"{path} settings")
    if path in SECTION_CHECKS:
        SECTION_CHECKS[path](settings)
    return settings


def _check_density(density: dict[str, Any]) -> None:
    if density["engines"] and density["workers"] > density["threads"]:
        raise ConfigError("config key 'density.workers': more workers than density.threads")


def _check_render(render: dict[str, Any]) -> None:
    levels, colors = render["ramp_levels"], render["ramp_colors"]
    if len(levels) != len(colors):
        raise ConfigError(
            f"config key 'render.ramp_colors': {len(colors)} colours for {len(levels)} ramp_levels"
        )


def _check_splits(splits: dict[str, Any]) -> None:
    if abs(sum(splits["fractions"]) - 1) > 1e-6:
        raise ConfigError(f"config key 'splits.fractions': {splits['fractions']} do not sum to 1")


SECTION_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "density": _check_density,
    "splits": _check_splits,
    "render": _check_render,
}
"""Checks of one key against another, by section: run by :func:`validate` and
:func:`section_settings` after the schema."""


def validate(
    config: dict[str, Any], schema: dict[str, Any] | None = None, workdir: str | Path = "."
) -> None:
    """Validate ``config`` in place (filling defaults); raise :class:`ConfigError` naming keys.

    Beyond the schema: the :data:`SECTION_CHECKS`, source names are unique, local source paths
    exist (relative to ``workdir``; http(s) URLs are left to Snakemake's storage plugin),
    ``edg.pretrain`` names a source with images, each representation reads an engine of
    ``density.engines``, :func:`_check_train_sources` (which fills ``train.sources``),
    :func:`_check_model_trainer`, :func:`_check_edrep` and :func:`_check_vqgan`.
    """
    _check(config, _default_schema() if schema is None else schema, [], "config")
    for path, check in SECTION_CHECKS.items():
        section: Any = config
        for part in path.split("."):
            section = section[part]
        check(section)
    names = [s["name"] for s in config["sources"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"config key 'sources[{i}].name': duplicate source name {name!r}")
    for i, source in enumerate(config["sources"]):
        path = source["path"]
        if not is_url(path) and not (Path(workdir) / path).exists():
            raise ConfigError(f"config key 'sources[{i}].path': input file not found: {path!r}")
    pretrain = config["edg"]["pretrain"]
    if pretrain is not None and pretrain not in names:
        raise ConfigError(f"config key 'edg.pretrain': {pretrain!r} is not a source name")
    if pretrain is not None and config["render"]["engine"] is None:
        raise ConfigError("config key 'edg.pretrain': EDG needs density images (render.engine)")
    for section in ("voxels", "pointclouds", "render"):
        engine = config[section]["engine"]
        if engine is not None and engine not in config["density"]["engines"]:
            raise ConfigError(
                f"config key '{section}.engine': {engine!r} is not in density.engines"
            )
    _check_train_sources(config)
    _check_model_trainer(config["train"], schema or _default_schema())
    _check_edrep(config)
    _check_vqgan(config)
    _check_md(config, workdir)


def _check_md(config: dict[str, Any], workdir: str | Path) -> None:
    """Trajectory files exist and their names are unique; ``md.xtb.source`` is a source;
    every ``ndem.trajectories`` entry is an imported trajectory or one of ``md.xtb.ids``, the
    ablation's trajectory is one of them, and the backbone's heads divide its width."""
    md, ndem = config["md"], config["ndem"]
    names = [t["name"] for t in md["trajectories"]]
    for i, entry in enumerate(md["trajectories"]):
        if entry["name"] in names[:i]:
            raise ConfigError(
                f"config key 'md.trajectories[{i}].name': duplicate trajectory {entry['name']!r}"
            )
        if not (Path(workdir) / entry["path"]).exists():
            raise ConfigError(
                f"config key 'md.trajectories[{i}].path': input file not found: {entry['path']!r}"
            )
    source = md["xtb"]["source"]
    if source is not None and source not in [s["name"] for s in config["sources"]]:
        raise ConfigError(f"config key 'md.xtb.source': {source!r} is not a source name")
    simulated = md["xtb"]["ids"] if source is not None else []
    for i, name in enumerate(ndem["trajectories"]):
        if name not in names and name not in simulated:
            raise ConfigError(
                f"config key 'ndem.trajectories[{i}]': {name!r} is neither a name of "
                "md.trajectories nor one of md.xtb.ids (with md.xtb.source set)"
            )
    ablation = ndem["ablation"]["trajectory"]
    if ablation is not None and ablation not in ndem["trajectories"]:
        raise ConfigError(
            f"config key 'ndem.ablation.trajectory': {ablation!r} is not in ndem.trajectories"
        )
    if "edg" in ndem["variants"] and ndem["trajectories"] and config["edg"]["pretrain"] is None:
        raise ConfigError(
            "config key 'ndem.variants': the edg variant needs the EDG teacher (edg.pretrain)"
        )
    model = ndem["model"]
    if model["hidden_channels"] % model["num_heads"]:
        raise ConfigError(
            "config key 'ndem.model.num_heads': must divide ndem.model.hidden_channels "
            f"({model['num_heads']} does not divide {model['hidden_channels']})"
        )


def _check_vqgan(config: dict[str, Any]) -> None:
    """``vqgan.source`` is a source; ``vqgan.engine`` computes it on one fixed box
    (``grid: box`` with ``box_edge_bohr``); the fine-tuning targets are label columns of that
    engine's labels table for the source."""
    from rhoflow.label_columns import label_columns

    vqgan = config["vqgan"]
    name, engine = vqgan["source"], vqgan["engine"]
    if name is None:
        return
    formats = {s["name"]: s["format"] for s in config["sources"]}
    if name not in formats:
        raise ConfigError(f"config key 'vqgan.source': {name!r} is not a source name")
    if engine not in config["density"]["engines"]:
        raise ConfigError(f"config key 'vqgan.engine': {engine!r} is not in density.engines")
    grid = config["density"][engine]
    if grid["grid"] != "box" or grid["box_edge_bohr"] is None:
        raise ConfigError(
            f"config key 'density.{engine}.box_edge_bohr': the VQ-GAN needs one fixed box "
            f"(grid: box, box_edge_bohr set; got grid {grid['grid']!r}, box_edge_bohr "
            f"{grid['box_edge_bohr']!r})"
        )
    columns = label_columns(formats[name], engine)
    for target in vqgan["finetune"]["targets"]:
        if target not in columns:
            raise ConfigError(
                f"config key 'vqgan.finetune.targets': {target!r} is not a label of source "
                f"{name!r} with engine {engine!r}"
            )


def _check_model_trainer(train: dict[str, Any], schema: dict[str, Any]) -> None:
    """Each ``train.model_trainer`` entry names a configured model and valid trainer keys
    (its runs take ``train.trainer`` updated by it)."""
    trainer_schema = {**schema["$defs"]["trainer"], "$defs": schema["$defs"]}
    for model, overrides in train["model_trainer"].items():
        if model not in train["models"]:
            raise ConfigError(
                f"config key 'train.model_trainer.{model}': {model!r} is not in train.models"
            )
        merged = {**train["trainer"], **overrides}
        _check(merged, trainer_schema, ["train", "model_trainer", model], "config")


def _check_edrep(config: dict[str, Any]) -> None:
    """``edrep.source`` is a source; its curves need voxels, its comparison voxels, point
    clouds and images of one engine; every target is a label column of that engine's labels
    table for the source (:func:`rhoflow.label_columns.label_columns`)."""
    from rhoflow.label_columns import label_columns

    edrep = config["edrep"]
    name = edrep["source"]
    if name is None:
        return
    formats = {s["name"]: s["format"] for s in config["sources"]}
    if name not in formats:
        raise ConfigError(f"config key 'edrep.source': {name!r} is not a source name")
    parts = {"curves": ("voxels",), "representations": ("voxels", "pointclouds", "render")}
    for part, sections in parts.items():
        targets = edrep["curves"]["target"] if part == "curves" else edrep[part]["targets"]
        targets = [targets] if isinstance(targets, str) else targets or []
        if not targets:
            continue
        engines = {config[s]["engine"] for s in sections}
        if None in engines or len(engines) > 1:
            raise ConfigError(
                f"config key 'edrep.{part}': needs {', '.join(f'{s}.engine' for s in sections)}"
                f" set{' to one engine' if len(sections) > 1 else ''} (got "
                + ", ".join(f"{s}.engine {config[s]['engine']!r}" for s in sections) + ")"
            )
        columns = label_columns(formats[name], engines.pop())
        for target in targets:
            if target not in columns:
                key = "curves.target" if part == "curves" else "representations.targets"
                raise ConfigError(
                    f"config key 'edrep.{key}': {target!r} is not a label of source {name!r} "
                    f"with {sections[0]}.engine {config[sections[0]]['engine']!r}"
                )


class _ConfigDumper(yaml.SafeDumper):
    """YAML as people write configs: mappings as blocks, lists of scalars on one line."""


_ConfigDumper.add_representer(
    list,
    lambda dumper, items: dumper.represent_sequence(
        "tag:yaml.org,2002:seq",
        items,
        flow_style=not any(isinstance(x, list | dict) for x in items),
    ),
)


def write_config(config: Mapping[str, Any], yaml_path: str | Path, html_path: str | Path) -> None:
    """Write a validated ``config`` (defaults filled) as YAML, in the config file's key order,
    and as an HTML page of that YAML for ``snakemake --report``; both atomically.
    ``snakemake --configfile <yaml_path>`` reruns the same workflow."""
    import html

    from rhoflow.io import atomic_path, write_html

    text = (
        "# The effective rhoflow config of this run: the config file(s) and --config values\n"
        "# with every default of the schema filled in (rhoflow config).\n"
        + yaml.dump(dict(config), Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True)
    )
    with atomic_path(yaml_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    write_html(html_path, "rhoflow config (defaults filled)", f"<pre>{html.escape(text)}</pre>")


def _check_train_sources(config: dict[str, Any]) -> None:
    """Fill ``train.sources`` (default: every source that has all ``train.targets``) and check
    that each target is a label column of some source and each train source has every target
    (:func:`rhoflow.label_columns.label_columns`), so that no training job asks for a column
    its labels table lacks."""
    from rhoflow.label_columns import label_columns

    train = config["train"]
    labels, targets = train["labels"], train["targets"]
    if labels != "source" and labels not in config["density"]["engines"]:
        raise ConfigError(f"config key 'train.labels': {labels!r} is not in density.engines")
    columns = {s["name"]: label_columns(s["format"], labels) for s in config["sources"]}
    for i, target in enumerate(targets):
        if not any(target in c for c in columns.values()):
            raise ConfigError(
                f"config key 'train.targets[{i}]': {target!r} is a label of no source with "
                f'train.labels {labels!r} (see README "Labels")'
            )
    if train["sources"] is None:
        train["sources"] = [name for name, c in columns.items() if set(targets) <= c]
        if not train["sources"]:
            raise ConfigError(
                f"config key 'train.targets': no source has all of {targets} "
                f"with train.labels {labels!r}"
            )
        return
    for i, name in enumerate(train["sources"]):
        if name not in columns:
            raise ConfigError(f"config key 'train.sources[{i}]': {name!r} is not a source name")
        lacking = [t for t in targets if t not in columns[name]]
        if lacking:
            raise ConfigError(
                f"config key 'train.sources[{i}]': source {name!r} has no label {lacking} "
                f"with train.labels {labels!r}"
            )


def is_url(path: str) -> bool:
    """True for paths Snakemake fetches through a storage plugin (http, https)."""
    return path.startswith(("http://", "https://"))
