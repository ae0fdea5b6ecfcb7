"""The choices the web page offers: the options declared with `web=` in the option schema.

The page builds its controls from `form()` (served at /api/options), and every upload
and camera connection passes through `check_options`, which holds the values to the
limits declared there. Those are safer than the command line's: no 'none' method and
no overlay path from the client (a path would reach the server's file system),
strengths near the re-identification-safe defaults and no mask smaller than the box.
A new option declared with `web=` needs no change here or on the page.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from ..errors import OptionError
from ..options import Option, options_in, update
from ..pipeline import JobOptions


@cache
def web_options() -> tuple[Option, ...]:
    """The options the page offers, in declaration order (a `by` option before its dependant)."""
    return tuple(o for o in options_in(JobOptions) if o.web is not None)


def kind(declared: Option) -> str:
    """The control: choice (one of), multiple (some of), number, or level (named values)."""
    web = declared.web
    assert web is not None
    if web.levels:
        return "level"
    if web.choices:
        return "multiple" if isinstance(declared.default, tuple) else "choice"
    return "number"


def _default(declared: Option) -> Any:
    if kind(declared) == "multiple":
        return list(declared.default)
    return declared.default


def form() -> list[dict[str, Any]]:
    """One control per web option: its name, label, help, default and safe limits."""
    fields = []
    for declared in web_options():
        web = declared.web
        assert web is not None
        entry: dict[str, Any] = {
            "name": declared.dest,
            "label": web.label,
            "kind": kind(declared),
            "help": declared.help_for("main"),
            "default": _default(declared),
        }
        if web.choices:
            entry["choices"] = [[c, web.labels.get(c, c)] for c in web.choices]
        if entry["kind"] == "number":
            entry.update(min=web.ge, max=web.le, step=web.step, unit=web.unit)
        if entry["kind"] == "level":
            entry["by"] = web.by
            entry["levels"] = [
                [name, web.labels.get(name, name), dict(values)]
                for name, values in web.levels.items()
            ]
            entry["ranges"] = {value: list(bounds) for value, bounds in web.ranges.items()}
            entry["default"] = next(iter(web.levels))
        fields.append(entry)
    return fields


def check_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The page's choices held to their web limits: JSON-ready values by name.

    Missing ones take their defaults; a bad one is a one-line OptionError.
    """
    chosen: dict[str, Any] = {}
    for declared in web_options():
        raw = params.get(declared.dest)
        chosen[declared.dest] = (
            _default(declared) if raw in (None, "") else _checked(declared, raw, chosen)
        )
    return chosen


def _checked(declared: Option, raw: Any, chosen: Mapping[str, Any]) -> Any:
    web, name = declared.web, declared.dest
    assert web is not None
    control = kind(declared)
    if control in ("choice", "multiple"):
        items = [str(raw)]
        if control == "multiple":
            items = [t.strip() for t in str(raw).split(",") if t.strip()]
        for item in items or [""]:
            if item not in web.choices:
                raise OptionError(
                    f"{name}: invalid choice {item!r}; choose from: {', '.join(web.choices)}"
                )
        return items if control == "multiple" else items[0]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number") from None
    if control == "level":
        bounds = web.ranges.get(chosen.get(web.by))
        if bounds is None:  # e.g. a solid fill has no strength
            return None
        low, high = bounds
        if not low <= value <= high:
            raise OptionError(f"{name} for {chosen[web.by]} must be between {low:g} and {high:g}")
        return value
    low = -float("inf") if web.ge is None else web.ge
    high = float("inf") if web.le is None else web.le
    if not low <= value <= high:
        raise OptionError(f"{name} must be between {low:g} and {high:g}")
    return value


def job_options(
    chosen: Mapping[str, Any], kind: str, base: JobOptions = JobOptions()
) -> JobOptions:
    """JobOptions for one stored job.

    Videos ask for a review report, so the page can show the frames it flags.
    """
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in chosen.items()}
    return dataclasses.replace(
        update(base, values), overwrite=True, export_format=None, review=kind == "video"
    )


def query_parameters() -> Callable[..., dict[str, Any]]:
    """A FastAPI dependency taking the web options as query parameters.

    Its signature is built from the schema, so the OpenAPI schema lists each option
    with its type, choices and limits; it returns `check_options`' result.
    """
    from fastapi import Query

    parameters = []
    for declared in web_options():
        web = declared.web
        assert web is not None
        control = kind(declared)
        extra: dict[str, Any] = {}
        annotation: Any = str
        default = _default(declared)
        description = declared.help_for("main")
        if control == "choice":
            extra["enum"] = list(web.choices)
        elif control == "multiple":
            default = ",".join(default)
            description += f" (comma-separated; offered here: {', '.join(web.choices)})"
        elif control == "number":
            annotation = float
            extra.update({"minimum": web.ge, "maximum": web.le})
        else:
            annotation, default = float | None, None
            description += "; allowed here: " + ", ".join(
                f"{value} {low:g} to {high:g}" for value, (low, high) in web.ranges.items()
            )
        parameters.append(
            inspect.Parameter(
                declared.dest,
                inspect.Parameter.KEYWORD_ONLY,
                default=Query(default, description=description, json_schema_extra=extra or None),
                annotation=annotation,
            )
        )

    def chosen(**params: Any) -> dict[str, Any]:
        return check_options(params)

    chosen.__signature__ = inspect.Signature(parameters, return_annotation=dict)  # type: ignore[attr-defined]
    return chosen
