"""The command line offers every setting, with the settings' own defaults (one source of truth)."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from flowstyle import FlowstyleError, RunOptions, Settings, StyleRef
from flowstyle.cli import build_parser, settings_from_args

ARGS = ["stylize", "clip/", "--out", "o/"]


def parse(*extra: str):
    return settings_from_args(build_parser().parse_args([*ARGS, *extra]))


def test_no_flags_give_the_dataclass_defaults():
    settings, options = parse()
    assert settings == Settings().resolved()
    assert options == RunOptions()


@pytest.mark.parametrize("f", [f for f in dataclasses.fields(Settings) + dataclasses.fields(RunOptions)
                               if f.metadata.get("cli", True)], ids=lambda f: f.name)
def test_every_field_has_a_flag_whose_help_names_its_default(f):
    help_text = build_parser()._subparsers._group_actions[0].choices["stylize"].format_help()
    flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
    assert flag in help_text
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["stylize"]._actions
                  if flag in a.option_strings)
    assert action.dest == f.name and "(default: " in action.help


def test_quality_recipe_sets_the_budgets_and_explicit_flags_win():
    budgets = lambda *argv: (lambda s: (s.iterations, s.iterations_first, s.coarse_to_fine))(
        parse("--mode", "quality", *argv)[0].resolved())
    assert budgets() == (500, 1000, 0)  # the papers' counts
    assert budgets("--recipe", "fast") == (50, 70, 2)
    assert budgets("--recipe", "fast", "--iterations-first", "9", "--coarse-to-fine", "0") == (50, 9, 0)
    assert budgets("--iterations", "20") == (20, 1000, 0)


def test_the_settings_the_readme_names_are_reachable():
    settings, options = parse("--coarse-to-fine", "2", "--sharpness-weight", "0", "--temporal-luminance",
                              "--feature-temporal-weight", "0.5", "--init-first", "random", "--warp-mode", "bilinear",
                              "--detail", "0.4", "--band", "16", "--fidelity-weight", "0.3", "--solver", "band",
                              "--style", "builtin:3:0.5", "--style", "builtin:4", "--frames", "2:9", "--size", "0",
                              "--ray", "--margin", "3", "--cache", "c/", "--debug")
    assert (settings.coarse_to_fine, settings.sharpness_weight, settings.temporal_luminance) == (2, 0.0, True)
    assert (settings.feature_temporal_weight, settings.init_first, settings.warp_mode) == (0.5, "random", "bilinear")
    assert (settings.detail, settings.band, settings.fidelity_weight, settings.solver) == (0.4, 16, 0.3, "band")
    assert settings.styles == (StyleRef(builtin=3, weight=0.5), StyleRef(builtin=4))
    assert (settings.frames, settings.size) == ((2, 9), None)
    assert (options.ray, options.margin, options.cache_dir, options.debug) == ("", 3, "c/", True)


def test_mode_defaults_are_shown_per_mode():
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["stylize"].format_help().split())
    assert "(default: 1 fast, 1000 quality)" in help_text and "(default: dis-fast fast, dis quality)" in help_text


@pytest.mark.parametrize("extra, message", [
    (("--frames", "9:2"), "--frames '9:2'"),
    (("--long-term", "0"), "--long-term '0'"),
    (("--chunk", "4/3"), "--chunk '4/3'"),
    (("--detail", "1.5"), "--detail in [0, 1]"),
    (("--margin", "-5"), "--margin must be 0 or more"),
    (("--temporal-weight", "inf"), "must be a finite number"),
    (("--keep-detail", "-1"), "--keep-detail must be 0"),
    (("--carry-detail", "1.5"), "--carry-detail must be between 0 and 1"),
    (("--stroke-sources", "1"), "or 2 or more, and --stroke-band 0 or more; got 1"),
])
def test_bad_values_are_one_clear_line(extra, message):
    with pytest.raises(FlowstyleError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(*extra)


def test_stitch_needs_chunks():
    with pytest.raises(FlowstyleError, match="needs --chunks N"):
        settings_from_args(build_parser().parse_args(["stitch", "clip/", "--out", "o/"]))


def test_help_and_version_do_not_load_torch():
    code = ("import sys; from flowstyle.cli import build_parser; build_parser().format_help(); "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-m", "flowstyle", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("flowstyle ")


@pytest.mark.parametrize("given,expected", [(None, "10000"), ("300000", "300000")])
def test_openmp_spin_is_shortened_unless_the_user_set_it(given, expected):
    # fast mode interleaves torch (OpenMP) and OpenCV threads: flowstyle shortens libgomp's spin-wait
    import os
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | ({"GOMP_SPINCOUNT": given} if given else {})
    out = subprocess.run([sys.executable, "-c", "import flowstyle, os; print(os.environ['GOMP_SPINCOUNT'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == expected
