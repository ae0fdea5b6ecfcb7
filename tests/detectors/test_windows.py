import numpy as np
import pytest

from veil.detectors.windows import crop_windows, cut_by_edge, split


def test_crop_windows_merge_overlaps_and_stay_in_the_frame():
    boxes = np.array([[10, 10, 30, 30], [40, 10, 60, 30], [900, 500, 920, 520]], np.float32)
    windows = crop_windows(boxes, 960, 540, context=4.0, min_side=64)
    assert len(windows) == 2
    for x1, y1, x2, y2 in windows:
        assert 0 <= x1 < x2 <= 960
        assert 0 <= y1 < y2 <= 540
    first = min(windows)
    assert first[0] == 0
    assert first[2] >= 60 + 20  # both left faces inside one window, with context
    for x1, y1, x2, y2 in crop_windows(boxes, 950, 540, context=4.0, min_side=64, align=32):
        assert x1 % 32 == 0, "crops start on the network's grid"
        assert y1 % 32 == 0, "crops start on the network's grid"
        assert x2 % 32 == 0 or x2 == 950
        assert y2 % 32 == 0 or y2 == 540
    off_frame = np.array([[1200, 600, 1220, 620]], np.float32)
    assert crop_windows(off_frame, 960, 540, context=4.0, min_side=64) == []


@pytest.mark.parametrize(
    "window, side, overlap, align",
    [
        ((0, 0, 1024, 683), 768, 96, 16),
        ((0, 0, 12000, 8000), 1536, 256, 32),
        ((64, 32, 3000, 200), 512, 128, 32),
        ((0, 0, 500, 400), 768, 96, 16),
    ],
)
def test_split_covers_the_window_with_the_overlap_asked(window, side, overlap, align):
    tiles = split(window, side, overlap, align)
    x1, y1, x2, y2 = window
    xs = sorted({(a, c) for a, _, c, _ in tiles})
    ys = sorted({(b, d) for _, b, _, d in tiles})
    assert len(tiles) == len(xs) * len(ys)
    for spans, start, end in ((xs, x1, x2), (ys, y1, y2)):
        assert spans[0][0] == start
        assert spans[-1][1] == end
        for (_, b), (c, _) in zip(spans, spans[1:]):
            assert b - c >= overlap, "neighbours share at least the overlap"
        for a, b in spans:
            assert b - a <= side
            assert (a - start) % align == 0, "tiles start on the grid"


def test_split_makes_near_equal_tiles_not_a_sliver():
    tiles = split((0, 0, 1100, 100), 1024, 64, 32)
    widths = [c - a for a, _, c, _ in tiles]
    assert len(widths) == 2
    assert max(widths) - min(widths) <= 32


def test_split_refuses_an_overlap_too_large_for_the_tile():
    with pytest.raises(ValueError, match="overlap"):
        split((0, 0, 1000, 1000), 256, 128, 32)


def test_boxes_touching_an_inner_window_edge_are_cut():
    window = (100, 100, 300, 300)
    boxes = np.array(
        [
            [150, 150, 200, 200],  # inside
            [99, 150, 140, 190],  # on the left edge, which lies inside the frame
            [250, 260, 300, 300],  # on the right and bottom edges
        ],
        np.float32,
    )
    assert cut_by_edge(boxes, window, 1000, 1000).tolist() == [False, True, True]
    # The same window at the frame's corner: its right and bottom edges are the frame's.
    assert cut_by_edge(boxes, window, 300, 300).tolist() == [False, True, False]


def _merge_one_pair_at_a_time(windows):
    """The definition: merge the first overlapping pair into its bounding box, start over."""
    windows = [list(w) for w in windows]
    merged = True
    while merged:
        merged = False
        for a in range(len(windows)):
            for b in range(a + 1, len(windows)):
                wa, wb = windows[a], windows[b]
                if wa[0] < wb[2] and wb[0] < wa[2] and wa[1] < wb[3] and wb[1] < wa[3]:
                    windows[a] = [min(wa[0], wb[0]), min(wa[1], wb[1]), max(wa[2], wb[2]),
                                  max(wa[3], wb[3])]  # fmt: skip
                    del windows[b]
                    merged = True
                    break
            if merged:
                break
    return [tuple(w) for w in windows]


def test_windows_merge_as_one_pair_at_a_time_would():
    rng = np.random.default_rng(3)
    for trial in range(400):
        n = int(rng.integers(0, 40))
        centres = rng.uniform(0, 1920, size=(n, 2))
        sizes = rng.uniform(4, rng.choice([20, 60, 200]), size=n)
        boxes = np.concatenate([centres - sizes[:, None] / 2, centres + sizes[:, None] / 2], 1)
        got = crop_windows(boxes, 1920, 1080, 4.0, 64, 32)
        assert all(isinstance(v, int) for w in got for v in w)
        singles = [w for b in boxes for w in crop_windows(b[None], 1920, 1080, 4.0, 64, 32)]
        assert got == _merge_one_pair_at_a_time(singles), trial
