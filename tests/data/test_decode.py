"""Bad files become reasons, odd modes become RGB."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from vsae.data import DecodeError, load_image
from vsae.data.fake_images import bad_files, noise, odd_modes, png_bomb


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


# ----------------------------------------------------------------------------- hostile files (issue 16)
POSTSCRIPT = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\nshowpage\n"
)


def test_postscript_named_png_never_reaches_the_eps_plugin(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    def refuse(*a, **k):
        raise AssertionError("the EPS plugin (Ghostscript) was used")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", refuse)
    (tmp_path / "ps.png").write_bytes(POSTSCRIPT)
    with pytest.raises(DecodeError) as e:
        load_image(tmp_path / "ps.png")
    assert str(e.value) == "not an image (unidentified format)"


@pytest.mark.parametrize("value,want", [(0.5, 127), (1.0, 255), (200.0, 200), (0.0, 0)])
def test_float_tiff_is_scaled_by_its_convention(tmp_path, value, want):
    a = np.full((8, 8), value, np.float32)
    a[0, 0] = 0.0
    Image.fromarray(a, "F").save(tmp_path / "f.tif")
    assert load_image(tmp_path / "f.tif").getpixel((3, 3)) == (want,) * 3


def test_float_tiff_beyond_255_and_nan_use_the_image_range(tmp_path):
    a = np.linspace(0, 1000, 64, dtype=np.float32).reshape(8, 8)
    a[0, 1] = np.nan
    Image.fromarray(a, "F").save(tmp_path / "f.tif")
    im = np.asarray(load_image(tmp_path / "f.tif"))[..., 0]
    assert im[-1, -1] == 255 and im[0, 1] == 0 and 120 <= im[4, 0] <= 135


def test_special_files_are_refused_with_their_real_reason(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "dir.png").mkdir()
    want = {
        "fifo.png": "not a regular file but a FIFO",
        "zero.png": "not a regular file but a character device",
        "dangling.png": "dangling symlink",
        "loop.png": "symlink loop",
        "dir.png": "a directory, not an image",
    }
    for name, reason in want.items():
        with pytest.raises(DecodeError) as e:
            load_image(tmp_path / name)
        assert str(e.value) == reason, name


def test_permission_denied_is_named(tmp_path, monkeypatch):
    import builtins

    noise(0, (10, 10)).save(tmp_path / "x.png")
    os.chmod(tmp_path / "x.png", 0)
    if os.geteuid() == 0:  # root reads mode-000 files: make open() answer as it does for other users
        real = builtins.open

        def deny(f, *a, **k):
            if str(f) == str(tmp_path / "x.png"):
                raise PermissionError(13, "Permission denied", str(f))
            return real(f, *a, **k)

        monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(DecodeError, match="^permission denied$"):
        load_image(tmp_path / "x.png")
