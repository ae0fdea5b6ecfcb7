"""Detections files: the json export read back, checked against its schema."""

from __future__ import annotations

import json

import pytest

from veil.errors import InputError
from veil.io.export import detections_by_frame, read_rows, schema, validate_rows

from media import ROOT

BOX = {"frame": 0, "x1": 10, "y1": 20, "x2": 60, "y2": 90}


def test_the_documented_schema_is_the_one_veil_checks_against():
    documented = json.loads((ROOT / "docs" / "detections.schema.json").read_text())
    assert documented == schema()


def test_the_schema_is_valid_json_schema_and_accepts_an_export():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema())
    row = {**BOX, "time_ms": 0.0, "score": 0.91, "class": "face", "track_id": 3, "hide": False}
    jsonschema.validate([row], schema())
    assert validate_rows([row]) == [row]


@pytest.mark.parametrize(
    "row, field",
    [
        ({k: v for k, v in BOX.items() if k != "y2"}, "'y2' is missing"),
        ({**BOX, "x1": "10"}, "'x1' must be a number"),
        ({**BOX, "frame": 1.5}, "'frame' must be an integer"),
        ({**BOX, "frame": -1}, "'frame' must be at least 0"),
        ({**BOX, "hide": "no"}, "'hide' must be a boolean"),
        ({**BOX, "score": True}, "'score' must be a number"),
        ({**BOX, "colour": "red"}, "'colour' is not part of the format"),
        ({**BOX, "x2": 5}, "'x2' must not be less than 'x1'"),
    ],
)
def test_the_first_bad_field_is_named_on_one_line(row, field):
    with pytest.raises(InputError) as err:
        validate_rows([BOX, row], "edited.json")
    assert f"edited.json: box 1: field {field}" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_file_that_is_not_json_is_a_one_line_error(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[{'frame': 0}]")
    with pytest.raises(InputError, match="not a JSON detections file"):
        read_rows(path)


def test_a_track_marked_do_not_hide_is_left_out_on_every_frame():
    rows = [
        {**BOX, "frame": 0, "track_id": 1},
        {**BOX, "frame": 1, "track_id": 1, "hide": False},
        {**BOX, "frame": 1, "track_id": 2},
        {**BOX, "frame": 1, "track_id": -1, "hide": False},
        {**BOX, "frame": 2, "track_id": -1},
    ]
    per_frame = detections_by_frame(rows)
    assert 0 not in per_frame
    assert per_frame[1].track_id.tolist() == [2]
    assert per_frame[2].track_id.tolist() == [-1]
