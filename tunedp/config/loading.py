"""From YAML to a :class:`~tunedp.config.search_config.SearchConfig`: every failure one line.

:func:`load_config` reads a file, :func:`parse_config` validates a parsed
document; a missing file, bad YAML, a validation error (through
:func:`format_validation_error`) or a YAML boolean where a number belongs
becomes one :class:`~tunedp.errors.ConfigError` line, which the CLI prints as
it is (the refusal catalogue's messages).

Imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from tunedp.config.search_config import SearchConfig
from tunedp.errors import ConfigError

__all__ = ["format_validation_error", "load_config", "parse_config"]


def format_validation_error(error: ValidationError) -> str:
    """One line: the first failing field's dotted path and what is wrong with it."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part))
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if first["type"] == "extra_forbidden":
        message = "unknown field; remove it or check its spelling"
    elif first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        # Name the discriminating field itself (``search.mode``), not only its parent.
        context = first.get("ctx") or {}
        tag_field = str(context.get("discriminator", "")).strip("'")
        if tag_field:
            location = f"{location}.{tag_field}" if location else tag_field
        if first["type"] == "union_tag_not_found":
            message = "required field is missing"
        else:
            message = f"{context.get('tag')!r} is not one of {context.get('expected_tags')}"
    return f"{location}: {message}" if location else message


def _is_union_tag(part: object) -> bool:
    """Pydantic puts the discriminator's value into error paths (``search.random.…``); drop it."""
    return part in {
        "random", "adaptive", "grid", "private", "public", "two_stage", "public_proxy", "hypo",
        "constant", "linear", "exponential", "step", "cyclic",
        "log_uniform", "uniform", "choice", "fixed",
        "named_workload", "csv", "numeric", "categorical",
    }  # fmt: skip


def parse_config(data: object, *, source: str = "config", base_dir: Path | None = None) -> SearchConfig:
    """Validate an already-parsed YAML document; errors become one-line ConfigErrors.

    ``base_dir`` is where relative data paths (``workload.path`` of a csv
    workload) are resolved: the config file's folder, else the working directory.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level")
    try:
        # Lax at the top level: YAML 1.1 reads ``1e-5`` (no dot) as a string,
        # and users mean the number; pydantic's lax mode parses it.
        config = SearchConfig.model_validate(data, strict=False, context={"base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(f"{source}: {format_validation_error(error)}") from None
    # Lax mode would also read ``true``/``yes`` as 1: a typo that silently sets
    # e.g. ``training.epochs`` to 1 and changes the privacy cost. Refuse it.
    where = _boolean_as_number(data, config, ())
    if where is not None:
        raise ConfigError(f"{source}: {where}: expected a number, got a YAML boolean; write the number")
    return config


def _boolean_as_number(data: object, validated: object, path: tuple[str, ...]) -> str | None:
    """Dotted path of the first YAML boolean that validation turned into something else."""
    if isinstance(data, bool):
        return None if isinstance(validated, bool) else ".".join(path)
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(validated, BaseModel):
                child = getattr(validated, str(key), None)
            elif isinstance(validated, dict):
                child = validated.get(key)
            else:
                child = None
            found = _boolean_as_number(value, child, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(data, list):
        items = validated if isinstance(validated, list | tuple) else ()
        for index, value in enumerate(data):
            child = items[index] if index < len(items) else None
            found = _boolean_as_number(value, child, (*path, str(index)))
            if found is not None:
                return found
    return None


def load_config(path: Path | str) -> SearchConfig:
    """Read and validate a YAML search config; every failure is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--config: file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"--config: cannot read {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}; fix the syntax") from None
    return parse_config(data, source=str(path), base_dir=path.resolve().parent)
