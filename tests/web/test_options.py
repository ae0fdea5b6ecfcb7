"""The page's choices, checked and turned into JobOptions."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from veil.errors import OptionError  # noqa: E402
from veil.web.options import check_options, job_options  # noqa: E402


def test_options_map_to_job_options():
    chosen = check_options("pixelate", "rect", 4, 1.5, "face")
    opts = job_options(chosen, "video")
    assert (
        opts.anonymize.method,
        opts.anonymize.shape,
        opts.anonymize.strength,
        opts.anonymize.mask_scale,
    ) == ("pixelate", "rect", 4, 1.5)
    assert opts.review is True
    assert job_options(chosen, "image").review is False
    assert check_options("fill", strength=0.5)["strength"] is None
    with pytest.raises(OptionError, match="strength for pixelate"):
        check_options("pixelate", strength=20)
