"""Where batch outputs go: always below OUTPUT, whatever a manifest names or a symlink points to."""

from __future__ import annotations

import cv2
import pytest

from veil.batch.command import main as batch_main
from veil.batch.storage import list_inputs, output_location
from veil.errors import OutputError

from batch_media import small_astronaut, small_camera


def test_a_manifest_entry_outside_its_folder_is_mirrored_inside_output(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "lists").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "p1.jpg"), small_astronaut())
    cv2.imwrite(str(tmp_path / "lists" / "here.jpg"), small_camera())
    (tmp_path / "lists" / "manifest.txt").write_text("../photos/p1.jpg\nhere.jpg\n")
    before = (tmp_path / "photos" / "p1.jpg").read_bytes()
    out = tmp_path / "lists" / "out"
    code = batch_main([str(tmp_path / "lists" / "manifest.txt"), "-o", str(out), "-q"])
    keys = [s.key for s in list_inputs(str(tmp_path / "lists" / "manifest.txt")).sources]
    assert code == 0
    assert keys == ["photos/p1.jpg", "lists/here.jpg"]
    assert (out / "photos" / "p1.jpg").exists()
    assert (tmp_path / "photos" / "p1.jpg").read_bytes() == before


@pytest.mark.parametrize("key", ["../p1.jpg", "a/../../p1.jpg", "/etc/p1.jpg"])
def test_a_key_that_climbs_out_is_refused(tmp_path, key):
    with pytest.raises(OutputError, match="outside the output folder"):
        output_location(str(tmp_path / "out"), key)


def test_a_symlink_in_output_does_not_lead_out(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "day0").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="outside the output folder"):
        output_location(str(tmp_path / "out"), "day0/p1.jpg")
    assert output_location(str(tmp_path / "out"), "day1/p1.jpg") == str(
        tmp_path / "out" / "day1" / "p1.jpg"
    )
