"""The page's choices: read from the option schema, held to safe limits, turned into JobOptions."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from veil.errors import OptionError  # noqa: E402
from veil.hide import AnonymizeOptions  # noqa: E402
from veil.pipeline import JobOptions  # noqa: E402
from veil.web.options import check_options, form, job_options  # noqa: E402


def test_options_map_to_job_options():
    chosen = check_options(
        {"method": "pixelate", "shape": "rect", "strength": "4", "mask_scale": "1.5"}
    )
    opts = job_options(chosen, "video")
    assert (
        opts.anonymize.method,
        opts.anonymize.shape,
        opts.anonymize.strength,
        opts.anonymize.mask_scale,
    ) == ("pixelate", "rect", 4, 1.5)
    assert opts.review is True
    assert job_options(chosen, "image").review is False
    assert check_options({"method": "fill", "strength": "0.5"})["strength"] is None
    with pytest.raises(OptionError, match="strength for pixelate"):
        check_options({"method": "pixelate", "strength": "20"})


def test_missing_choices_take_the_schema_defaults():
    chosen = check_options({})
    assert chosen == {
        "targets": ["face"],
        "method": "blur",
        "shape": "ellipse",
        "mask_scale": 1.6,
        "strength": None,
    }
    assert job_options(chosen, "image", JobOptions(suffix="_x")).suffix == "_x"
    assert job_options(chosen, "image").anonymize == AnonymizeOptions()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"method": "none"}, "method: invalid choice 'none'"),
        ({"method": "image"}, "method: invalid choice 'image'"),
        ({"shape": "star"}, "shape: invalid choice 'star'"),
        ({"targets": "face,plates"}, "targets: invalid choice 'plates'"),
        ({"targets": ","}, "targets: invalid choice ''"),
        ({"mask_scale": "0.9"}, "mask_scale must be between 1 and 3"),
        ({"mask_scale": "nan"}, "mask_scale must be between 1 and 3"),
        ({"mask_scale": "wide"}, "mask_scale must be a number"),
        ({"strength": "0.1"}, "strength for blur must be between 0.2 and 1"),
    ],
)
def test_unsafe_choices_are_refused(params, message):
    with pytest.raises(OptionError, match=message):
        check_options(params)


def test_form_offers_only_safe_values_within_the_command_line_ones():
    fields = {f["name"]: f for f in form()}
    assert list(fields) == ["targets", "method", "shape", "mask_scale", "strength"]
    assert [c for c, _ in fields["method"]["choices"]] == ["blur", "pixelate", "fill"]
    assert fields["mask_scale"]["min"] >= 1
    strength = fields["strength"]
    assert strength["kind"] == "level"
    assert strength["by"] == "method"
    for _, _, values in strength["levels"]:
        for method, value in values.items():
            low, high = strength["ranges"][method]
            assert low <= value <= high, (method, value)
            check_options({"method": method, "strength": str(value)})
