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
        "mask_scale": 1.3,
        "strength": None,
        "voice": "keep",
        "voice_segments": None,
        "audit": False,
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
        ({"mask_scale": "0.9"}, "mask_scale must be between 1 and 2"),
        ({"mask_scale": "nan"}, "mask_scale must be between 1 and 2"),
        ({"mask_scale": "wide"}, "mask_scale must be a number"),
        ({"strength": "0.1"}, "strength for blur must be between 0.2 and 1"),
        ({"voice": "whisper"}, "voice: invalid choice 'whisper'"),
        ({"audit": "maybe"}, "audit must be true or false"),
        ({"voice": "bleep", "voice_segments": "9-3"}, "time range '9-3' must be START-END"),
        ({"voice_segments": "1-2"}, "--voice-segments needs --voice"),
    ],
)
def test_unsafe_choices_are_refused(params, message):
    with pytest.raises(OptionError, match=message):
        check_options(params)


def test_form_offers_only_safe_values_within_the_command_line_ones():
    fields = {f["name"]: f for f in form()}
    assert list(fields) == [
        "targets",
        "method",
        "shape",
        "mask_scale",
        "strength",
        "voice",
        "voice_segments",
        "audit",
    ]
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


def test_voice_and_audit_reach_the_job():
    opts = job_options(check_options({"voice": "pitch", "audit": "true"}), "video")
    assert opts.encoder.voice.voice == "pitch"
    assert opts.audit is True
    assert job_options(check_options({"audit": "false"}), "video").audit is False


def test_voice_ranges_are_typed_as_text_and_stored_as_shown():
    chosen = check_options({"voice": "bleep", "voice_segments": " 30-41, 0-12.5"})
    assert chosen["voice_segments"] == "0-12.5,30-41"
    voice = job_options(chosen, "video").encoder.voice
    assert voice.voice_segments == ((0.0, 12.5), (30.0, 41.0))
    assert {f["name"]: f["kind"] for f in form()}["voice_segments"] == "text"


def test_voice_is_a_choice_and_audit_a_switch():
    fields = {f["name"]: f for f in form()}
    assert [c for c, _ in fields["voice"]["choices"]] == ["keep", "mute", "pitch", "bleep"]
    assert fields["voice"]["default"] == "keep"
    assert fields["audit"]["kind"] == "switch"
    assert fields["audit"]["default"] is False
