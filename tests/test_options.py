"""pam_bench.options: one coercion of -o/-d/-m values, a bad value naming the component and the option."""
from __future__ import annotations

import pytest

from pam_bench import options as O
from pam_bench.errors import OptionError, PamBenchError


def test_parse_value_and_pairs():
    assert [O.parse_value(v) for v in ("true", "False", "3", "-2", "0.5", "1e3", "abc", "")] == \
        [True, False, 3, -2, 0.5, 1000.0, "abc", ""]
    assert O.parse_pairs(["clip-frames=16", "detector=x=y"]) == {"clip_frames": 16, "detector": "x=y"}
    with pytest.raises(PamBenchError, match="'nokey' must look like key=value"):
        O.parse_pairs(["nokey"])


def test_numeric_turns_only_numeric_text_into_numbers():
    assert O.numeric({"a": "3", "b": "0.25", "c": "lk", "d": 7, "e": True}) == \
        {"a": 3, "b": 0.25, "c": "lk", "d": 7, "e": True}


@pytest.mark.parametrize("call, text", [
    (lambda: O.integer("fvd", "clip_frames", "abc", 9), "fvd option clip_frames: must be an integer, got 'abc'"),
    (lambda: O.integer("fvd", "clip_frames", 4, 9), "fvd option clip_frames: must be >= 9, got 4"),
    (lambda: O.choice("fvd", "clip", "middle", ("start", "random")),
     "fvd option clip: must be one of start, random, got 'middle'"),
    (lambda: O.boolean("pam", "offload", "maybe"), "pam option offload: must be a boolean (true/false), got 'maybe'"),
])
def test_bad_values_name_the_component_and_the_option(call, text):
    with pytest.raises(OptionError) as e:
        call()
    assert str(e.value) == text and "\n" not in str(e.value)


def test_good_values():
    assert O.integer("x", "k", "12", 0) == 12 and O.choice("x", "k", "a", ("a",)) == "a"
    assert [O.boolean("x", "k", v) for v in ("yes", "0", "ON", 1, False)] == [True, False, True, True, False]


def test_components_use_it():
    """FVD, FVMD and PAM report their bad options through it (the registry builds them with -m / -o)."""
    from pam_bench.metrics.fvd import FVD
    from pam_bench.metrics.fvmd import FVMD

    with pytest.raises(OptionError, match="^fvd option clip_frames: must be >= 9, got 4$"):
        FVD(clip_frames=4)
    with pytest.raises(OptionError, match="^fvmd option stride: must be >= 1, got 0$"):
        FVMD(stride=0)


def test_dataset_options_use_it():
    from pam_bench.datasets.synthetic import SyntheticHOI

    with pytest.raises(OptionError, match="^synthetic option n_clips: must be an integer, got 'many'$"):
        SyntheticHOI(n_clips="many")
