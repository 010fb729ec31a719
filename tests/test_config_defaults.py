"""Defaults come from one place: config/config.yaml, the schema, the options dataclasses (and so
the command line, whose defaults are theirs) all agree."""

import dataclasses

import pytest
import yaml

from conftest import REPO
from spectropol import options as opts
from spectropol.cli import build_parser, options_from


def schema_defaults(node: dict) -> dict:
    """The defaults a JSON schema declares, nested as the config is."""
    return {key: schema_defaults(sub) if sub.get("type") == "object" and "properties" in sub else sub.get("default")
            for key, sub in node["properties"].items()}


@pytest.fixture(scope="module")
def defaults():
    return schema_defaults(yaml.safe_load((REPO / "config/config.schema.yaml").read_text()))


def test_config_yaml_holds_exactly_the_schema_defaults(defaults):
    assert yaml.safe_load((REPO / "config/config.yaml").read_text()) == defaults


# options class -> how it is made from the config (the planner's way)
FROM_CONFIG = {
    opts.SelectionOptions: lambda d: opts.SelectionOptions.from_config(d["input"]),
    opts.SplitOptions: lambda d: opts.SplitOptions.from_config(d["input"]),
    opts.GeometryOptions: lambda d: opts.GeometryOptions.from_config(d["imaging"]),
    opts.ImagingOptions: lambda d: opts.ImagingOptions.from_config(d["imaging"]),
    opts.CleanOptions: lambda d: opts.CleanOptions.from_config(d["clean"]),
    opts.CubeOptions: lambda d: opts.CubeOptions.from_config(d["cube"]),
    opts.DaskOptions: lambda d: opts.DaskOptions.from_config(d["dask"]),
    opts.MomentsOptions: lambda d: opts.MomentsOptions.from_config(d["moments"]),
    opts.RMSynthesisOptions: lambda d: opts.RMSynthesisOptions.from_config(d["faraday"]),
    opts.RMCleanOptions: lambda d: opts.RMCleanOptions.from_config(d["faraday"]),
    opts.FaradayProductsOptions: lambda d: opts.FaradayProductsOptions.from_config(d["faraday"]),
    opts.CatalogueOptions: lambda d: opts.CatalogueOptions.from_config(d["catalogue"]),
    opts.QAOptions: lambda d: opts.QAOptions.from_config(d["qa"]),
    opts.SimulateOptions: lambda d: opts.SimulateOptions.from_config(d["simulate"]),
}


@pytest.mark.parametrize("cls", list(FROM_CONFIG), ids=lambda c: c.__name__)
def test_options_defaults_are_the_schema_defaults(defaults, cls):
    assert FROM_CONFIG[cls](defaults) == cls()


def test_every_options_class_is_checked():
    classes = {c for c in vars(opts).values() if isinstance(c, type) and dataclasses.is_dataclass(c)}
    assert classes - set(FROM_CONFIG) == {opts.ChannelSettings}  # made of two checked ones


@pytest.mark.parametrize("argv,cls", [
    (["simulate", "x.ms"], opts.SimulateOptions),
    (["inspect", "x.ms"], opts.SelectionOptions),
    (["inspect", "x.ms"], opts.GeometryOptions),
    (["split", "s", "m", "0", "v", "q"], opts.SplitOptions),
    (["image", "s", "v", "0", "i", "q"], opts.ImagingOptions),
    (["image", "s", "v", "0", "i", "q"], opts.CleanOptions),
    (["cube", "s", "c", "q", "a.zarr"], opts.CubeOptions),
    (["moments", "c", "o", "q"], opts.MomentsOptions),
    (["faraday-depth", "o", "q", "--cube", "c"], opts.RMSynthesisOptions),
    (["faraday-depth", "o", "q", "--cube", "c"], opts.DaskOptions),
    (["faraday-depth", "o", "q", "--cube", "c"], opts.RMCleanOptions),
    (["faraday-depth", "o", "q", "--cube", "c"], opts.FaradayProductsOptions),
    (["faraday", "d", "--cube", "c"], opts.FaradayProductsOptions),
    (["catalogue", "c", "m", "p", "d", "q"], opts.CatalogueOptions),
    (["qa", "aggregate"], opts.QAOptions),
])
def test_command_line_defaults_are_the_options_defaults(defaults, argv, cls):
    assert options_from(build_parser().parse_args(argv), cls) == FROM_CONFIG[cls](defaults)


def test_command_line_sky_model_and_layout_defaults_are_the_config_ones(defaults):
    args = build_parser().parse_args(["simulate", "x.ms"])
    assert (args.skymodel, args.layout) == (defaults["simulate"]["skymodel"], defaults["simulate"]["layout"])
