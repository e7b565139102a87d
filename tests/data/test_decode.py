"""Bad files become reasons, odd modes become RGB."""

import warnings

import numpy as np
import pytest
from PIL import Image

from vsae.data import DecodeError, load_image
from vsae.data.testing import bad_files, noise, odd_modes, png_bomb


def test_bad_files_give_reasons(tmp_path):
    for name, reason in bad_files(tmp_path).items():
        with pytest.raises(DecodeError) as e:
            load_image(tmp_path / name)
        assert str(e.value).startswith(reason), (name, str(e.value))
    with pytest.raises(DecodeError, match="file not found"):
        load_image(tmp_path / "missing.png")


def test_moderate_bomb_warning_is_refused_and_limit_is_configurable(tmp_path):
    # between 1x and 2x PIL's limit PIL only warns; it must still be refused, without a warning leaking
    side = int((Image.MAX_IMAGE_PIXELS * 1.5) ** 0.5)
    png_bomb(tmp_path / "b.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DecodeError, match="decompression bomb"):
            load_image(tmp_path / "b.png")
    noise(0, (30, 30)).save(tmp_path / "ok.png")
    assert load_image(tmp_path / "ok.png").size == (30, 30)
    with pytest.raises(DecodeError, match="decompression bomb"):
        load_image(tmp_path / "ok.png", max_pixels=500)


def test_odd_modes_become_rgb(tmp_path):
    for name in odd_modes(tmp_path):
        im = load_image(tmp_path / name)
        assert im.mode == "RGB" and im.size == (20, 20), name
    assert load_image(tmp_path / "rgba.png").getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert load_image(tmp_path / "grey.png").getpixel((0, 0)) == (77, 77, 77)
    assert load_image(tmp_path / "grey16.png").getpixel((0, 0)) == (255, 255, 255)
    r, g, b = load_image(tmp_path / "cmyk.jpg").getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red
    src = noise(3, (20, 20))
    pal = np.asarray(load_image(tmp_path / "palette.png"), np.int16)
    assert np.abs(pal - np.asarray(src.convert("P").convert("RGB"), np.int16)).max() == 0
