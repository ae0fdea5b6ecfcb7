import numpy as np
import pytest
from PIL import Image

from veil.errors import InputError, OutputError
from veil.io.images import read_image, write_image
from veil.io.paths import TEMP_PREFIX, atomic_output, collect_inputs, free_name, plan_output


def save_with_exif(path, rgb, orientation=None):
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 12"  # Model
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    if orientation:
        exif[0x0112] = orientation
    im.save(path, exif=exif, quality=95)


def test_metadata_stripped_by_default_and_kept_on_request(tmp_path, astronaut):
    src = tmp_path / "in.jpg"
    save_with_exif(src, astronaut[:, :, ::-1])
    loaded = read_image(src)
    assert loaded.exif
    write_image(loaded.image, tmp_path / "out.jpg", source=loaded)
    with Image.open(tmp_path / "out.jpg") as im:
        assert len(im.getexif()) == 0
        assert "exif" not in im.info
    write_image(loaded.image, tmp_path / "kept.jpg", source=loaded, keep_metadata=True)
    with Image.open(tmp_path / "kept.jpg") as im:
        exif = im.getexif()
        assert exif[0x010F] == "PhoneMaker"
        assert exif.get_ifd(0x8825)


def test_exif_orientation_is_applied(tmp_path, astronaut):
    src = tmp_path / "rot.jpg"
    save_with_exif(
        src, astronaut[:, :, ::-1], orientation=6
    )  # stored sideways, shown rotated 90 cw
    loaded = read_image(src)
    assert loaded.image.shape == (512, 512, 3)
    rotated = np.ascontiguousarray(np.rot90(astronaut, -1))
    assert np.abs(loaded.image.astype(int) - rotated).mean() < 6


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a readable image"),
    ],
)
def test_bad_images(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        collect_inputs([path])
        read_image(path)


def test_truncated_image(tmp_path, astronaut):
    good = tmp_path / "good.jpg"
    Image.fromarray(astronaut).save(good)
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(InputError, match="truncated|damaged"):
        read_image(bad)


def test_output_planning(tmp_path):
    src = tmp_path / "a" / "photo.jpg"
    src.parent.mkdir()
    src.write_bytes(b"x")
    assert plan_output(src, src.parent, None, many=False) == tmp_path / "a" / "photo_anonymized.jpg"
    assert plan_output(src, src.parent, tmp_path / "o.png", many=False) == tmp_path / "o.png"
    assert (
        plan_output(src, tmp_path, tmp_path / "out", many=True)
        == tmp_path / "out" / "a" / "photo.jpg"
    )
    with pytest.raises(OutputError, match="overwrite the input"):
        plan_output(src, src.parent, src, many=False, overwrite=True)
    taken = tmp_path / "a" / "photo_anonymized.jpg"
    taken.write_bytes(b"y")
    assert (
        plan_output(src, src.parent, None, many=False)
        == tmp_path / "a" / "photo_anonymized (2).jpg"
    )
    assert plan_output(src, src.parent, None, many=False, overwrite=True) == taken
    assert free_name(tmp_path / "new.jpg") == tmp_path / "new.jpg"


def test_collect_inputs_recursive(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/1.jpg", "d/sub/2.png", "d/notes.txt", f"d/{TEMP_PREFIX}x.jpg"):
        (tmp_path / name).write_bytes(b"x")
    flat = [p.name for p, _ in collect_inputs([tmp_path / "d"])]
    deep = [p.name for p, _ in collect_inputs([tmp_path / "d"], recursive=True)]
    assert flat == ["1.jpg"]
    assert sorted(deep) == ["1.jpg", "2.png"]
    with pytest.raises(InputError, match="no such file"):
        collect_inputs([tmp_path / "missing.jpg"])
    with pytest.raises(InputError, match="not a supported"):
        collect_inputs([tmp_path / "d" / "notes.txt"])


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jpg"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert list(tmp_path.iterdir()) == [target]
