"""mri_core.preprocess: the brain crop on odd images, and prepare() for every card setting."""

import numpy as np
import pytest

from factories import phantom
from mri_core.preprocess import (brain_box, channel_p99, crop_brain, normalize_intensity, prepare, resize, to_gray, to_rgb,
                                 to_uint8)


def padded_phantom():
    img = np.zeros((200, 240), np.float32)
    img[40:136, 60:156] = phantom()
    return img


def test_crop_finds_the_head():
    img = padded_phantom()
    top, bottom, left, right = brain_box(img)
    # the phantom's ellipse spans rows ~11..85 and cols ~17..79 of the 96 px tile
    assert 40 <= top <= 60 and 115 <= bottom <= 136
    assert 60 <= left <= 85 and 130 <= right <= 156
    out = crop_brain(img)
    assert out.shape == (bottom - top, right - left)


ODD_IMAGES = {
    "blank": np.zeros((64, 64), np.float32),
    "all_white": np.ones((64, 64), np.float32),
    "tiny": np.full((3, 3), 0.8, np.float32),
    "one_pixel": np.ones((1, 1), np.float32),
    "single_bright_pixel": np.pad(np.ones((1, 1), np.float32), 40),
    "already_cropped": np.full((80, 60), 0.7, np.float32),
    "noise": np.random.default_rng(0).random((64, 64)).astype(np.float32),
    "uint16": (phantom() * 60000).astype(np.uint16),
    "uint8": (phantom() * 255).astype(np.uint8),
    "rgb": np.dstack([phantom()] * 3),
    "thin_line": np.pad(np.ones((1, 50), np.float32), ((30, 30), (5, 5))),
    "nan": np.full((32, 32), np.nan, np.float32),
}


@pytest.mark.parametrize("name", list(ODD_IMAGES))
def test_crop_never_returns_empty(name):
    img = ODD_IMAGES[name]
    out = crop_brain(img)
    assert out.size > 0
    assert out.ndim == img.ndim
    assert out.shape[0] >= 1 and out.shape[1] >= 1


@pytest.mark.parametrize("name", ["blank", "all_white", "tiny", "already_cropped"])
def test_crop_keeps_whole_image_when_nothing_to_crop(name):
    img = ODD_IMAGES[name]
    assert crop_brain(img).shape == img.shape


def test_crop_is_idempotent_on_its_output():
    once = crop_brain(padded_phantom())
    twice = crop_brain(once)
    assert abs(twice.shape[0] - once.shape[0]) <= 4 and abs(twice.shape[1] - once.shape[1]) <= 4


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("crop", [True, False])
@pytest.mark.parametrize("src", ["gray", "rgb"])
def test_prepare_shapes(channels, crop, src):
    img = padded_phantom() if src == "gray" else np.dstack([padded_phantom()] * 3)
    x = prepare(img, {"crop": crop, "size": [64, 48], "channels": channels})
    assert x.shape == (64, 48, channels)
    assert x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_prepare_is_deterministic():
    pre = {"crop": True, "size": [32, 32], "channels": 1}
    np.testing.assert_array_equal(prepare(padded_phantom(), pre), prepare(padded_phantom(), pre))


def test_helpers():
    assert to_uint8(np.array([0.0, 1.0, 2.0, -1.0])).tolist() == [0, 255, 255, 0]
    assert to_gray(np.dstack([np.ones((4, 4))] * 3)).shape == (4, 4)
    assert to_rgb(np.ones((4, 4))).shape == (4, 4, 3)
    m = np.zeros((8, 8), np.float32)
    m[2:6, 2:6] = 1
    assert set(np.unique(resize(m, (16, 16), nearest=True))) <= {0.0, 1.0}


def _three_channel(scale):
    return np.dstack([phantom(seed=c) * s for c, s in enumerate(scale)])


def test_dark_channels_are_brightened_to_the_reference():
    reference = channel_p99(_three_channel((1.0, 1.0, 1.0)))
    dark = _three_channel((0.3, 1.0, 0.5))  # a scanner that writes FLAIR and T1 at a third and a half
    out = normalize_intensity(dark, reference, max_gain=4.0)
    np.testing.assert_allclose(channel_p99(out), reference, rtol=0.02)
    np.testing.assert_array_equal(out[..., 1], dark[..., 1])  # the channel already at the level is left


def test_bright_images_are_left_and_the_gain_is_capped():
    reference = np.array([0.5, 0.5, 0.5])
    bright = _three_channel((1.0, 1.0, 1.0))
    np.testing.assert_array_equal(normalize_intensity(bright, reference, 4.0), bright)
    very_dark = _three_channel((0.05, 0.05, 0.05))
    out = normalize_intensity(very_dark, reference, max_gain=4.0)
    np.testing.assert_allclose(out, very_dark * 4.0, atol=1e-6)
    assert out.max() <= 1.0


@pytest.mark.parametrize("image", [np.zeros((32, 32, 3), np.float32), np.full((32, 32, 3), 0.01, np.float32)])
def test_blank_images_pass_through_intensity_normalization(image):
    assert np.isnan(channel_p99(image)).all()
    out = normalize_intensity(image, [0.5, 0.5, 0.5], 4.0)
    np.testing.assert_array_equal(out, image)


def test_prepare_applies_the_cards_intensity_block_at_model_size():
    img = _three_channel((0.3, 0.3, 0.3))
    plain = {"crop": False, "size": [48, 48], "channels": 3}
    spec = {"reference_p99": [0.8, 0.8, 0.8], "max_gain": 4.0}
    x = prepare(img, {**plain, "intensity": spec})
    np.testing.assert_array_equal(x, normalize_intensity(prepare(img, plain), spec["reference_p99"], 4.0))
    assert x.dtype == np.float32 and x.mean() > prepare(img, plain).mean()


def test_a_one_sequence_model_takes_its_channel_of_a_three_sequence_slice():
    from mri_core.preprocess import prepare

    rgb = np.zeros((40, 40, 3), np.float32)
    rgb[..., 1] = 0.7  # the FLAIR channel of an LGG slice
    pre = {"crop": False, "size": [20, 20], "channels": 1, "scale": "[0, 1]", "source_channel": 1}
    np.testing.assert_allclose(prepare(rgb, pre), 0.7)
    np.testing.assert_allclose(prepare(rgb[..., 1], pre), 0.7)  # a grey slice is its own channel
    mixed = prepare(rgb, {k: v for k, v in pre.items() if k != "source_channel"})
    assert float(mixed.mean()) < 0.7  # without it, the luminance of all three
