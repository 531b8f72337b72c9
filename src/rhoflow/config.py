"""Config validation: JSON schema with defaults, errors that name the offending key.

Imported by the Snakefile at parse time, so it stays cheap: jsonschema and yaml only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config that would fail later; the message names the key."""


def _fill_defaults(validator_class: type) -> type:
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator:
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = _copy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _key(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _message(error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - allowed)
        return "; ".join(
            f"unknown config key '{_key(path + [k])}' (allowed: {', '.join(sorted(allowed))})"
            for k in unknown
        )
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"missing config key '{_key(path + [missing])}'"
    return f"config key '{_key(path)}': {error.message}"


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read a YAML JSON-schema file."""
    with open(path) as fh:
        return yaml.safe_load(fh)


def validate(config: dict[str, Any], schema: dict[str, Any], workdir: str | Path = ".") -> None:
    """Validate ``config`` in place (filling defaults); raise :class:`ConfigError` naming keys.

    Beyond the schema: source names are unique and local source paths exist (relative to
    ``workdir``); http(s) URLs are left to Snakemake's storage plugin.
    """
    cls = _fill_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_message(e) for e in errors))
    names = [s["name"] for s in config["sources"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"config key 'sources[{i}].name': duplicate source name {name!r}")
    for i, source in enumerate(config["sources"]):
        path = source["path"]
        if not is_url(path) and not (Path(workdir) / path).exists():
            raise ConfigError(f"config key 'sources[{i}].path': input file not found: {path!r}")
    _validate_engines(config.get("density", {}))
    for section in ("voxels", "pointclouds", "render"):
        engine = config.get(section, {}).get("engine")
        if engine is not None and engine not in config["density"]["engines"]:
            raise ConfigError(
                f"config key '{section}.engine': {engine!r} is not in density.engines"
            )
    _validate_render(config.get("render", {}))


def _validate_render(render: dict[str, Any]) -> None:
    if render.get("engine") is None:
        return
    from rhoflow.render import resolve_settings  # imported only when images are asked

    try:
        render["settings"] = resolve_settings(render["settings"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"config key 'render.settings': {exc}") from exc


def _validate_engines(density: dict[str, Any]) -> None:
    """Fill and check each configured engine's section with the engine's own validator."""
    if not density.get("engines"):
        return
    from rhoflow.density import validate_settings  # imported only when densities are asked

    if density["workers"] > density["threads"]:
        raise ConfigError("config key 'density.workers': more workers than density.threads")
    for engine in density["engines"]:
        try:
            density[engine] = validate_settings(engine, density[engine])
        except ValueError as exc:
            raise ConfigError(f"config key 'density.{engine}': {exc}") from exc


def is_url(path: str) -> bool:
    """True for paths Snakemake fetches through a storage plugin (http, https)."""
    return path.startswith(("http://", "https://"))
