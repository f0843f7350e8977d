"""Tests for the procedural demo dataset (animegan_cli.data.demo)."""

import random

import numpy as np
import pytest

from animegan_cli.data.demo import demo_array, render_face

LUMA = np.array([0.299, 0.587, 0.114])


def _luma(batch: np.ndarray) -> np.ndarray:
    return batch.astype(np.float64) @ LUMA


def _box(lum: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]) -> np.ndarray:
    """Slice a fractional region from a (n, size, size) luminance batch."""
    size = lum.shape[1]
    return lum[
        :, int(rows[0] * size) : int(rows[1] * size), int(cols[0] * size) : int(cols[1] * size)
    ]


@pytest.mark.parametrize("size", [32, 64, 128])
def test_render_face_mode_and_size(size):
    img = render_face(7, size)
    assert img.mode == "RGB"
    assert img.size == (size, size)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_same_seed_gives_identical_bytes(size):
    assert render_face(123, size).tobytes() == render_face(123, size).tobytes()


def test_different_seeds_give_different_images():
    a = np.asarray(render_face(1, 64), dtype=np.int16)
    b = np.asarray(render_face(2, 64), dtype=np.int16)
    assert np.abs(a - b).mean() > 10


def test_global_random_state_untouched():
    random.seed(42)
    before = random.getstate()
    render_face(5, 32)
    assert random.getstate() == before


@pytest.mark.parametrize("size", [32, 64, 128])
def test_demo_array_shape_and_dtype(size):
    arr = demo_array(3, size, seed=1)
    assert arr.shape == (3, size, size, 3)
    assert arr.dtype == np.uint8


def test_demo_array_matches_render_face_seed_mapping():
    arr = demo_array(4, 32, seed=3)
    expected = np.stack([np.asarray(render_face(3 * 1_000_003 + i, 32)) for i in range(4)])
    np.testing.assert_array_equal(arr, expected)


def test_demo_array_deterministic_and_seed_dependent():
    np.testing.assert_array_equal(demo_array(4, 32, seed=9), demo_array(4, 32, seed=9))
    assert not np.array_equal(demo_array(4, 32, seed=9), demo_array(4, 32, seed=10))


def test_demo_array_empty():
    assert demo_array(0, 32).shape == (0, 32, 32, 3)


def test_images_are_varied():
    batch = demo_array(32, 64).astype(np.float64)
    diffs = [np.abs(batch[i] - batch[j]).mean() for i in range(32) for j in range(i + 1, 32)]
    assert min(diffs) > 5  # no two faces (nearly) identical
    assert np.mean(diffs) > 30


def test_hair_colours_differ():
    batch = demo_array(32, 64)
    # The crown of the head is hair in every face; quantise its median colour coarsely.
    crown = batch[:, int(0.12 * 64) : int(0.16 * 64), int(0.4 * 64) : int(0.6 * 64)]
    medians = np.median(crown.reshape(32, -1, 3), axis=1).astype(int)
    assert len({tuple(m // 64) for m in medians}) >= 6


def test_eyes_are_where_expected():
    """Each eye box holds a dark pupil/lash and a white highlight; a cheek box just below
    (skin, maybe blush) holds nothing that dark. Fails if eyes vanish or drift off their line."""
    lum = _luma(demo_array(48, 64, seed=2))
    cheek_min = _box(lum, (0.74, 0.78), (0.32, 0.42)).min(axis=(1, 2))
    for cols in ((0.30, 0.46), (0.54, 0.70)):
        eye = _box(lum, (0.52, 0.68), cols)
        eye_min, eye_max = eye.min(axis=(1, 2)), eye.max(axis=(1, 2))
        assert (eye_min < 90).all()
        assert (eye_max > 230).all()
        assert (cheek_min - eye_min > 30).all()


def test_faces_are_centred():
    """The batch-mean image should be left-right near-symmetric: a consistent, centred layout
    is what makes the dataset learnable by a small DCGAN."""
    mean = _luma(demo_array(64, 32, seed=4)).mean(axis=0)
    assert np.abs(mean - mean[:, ::-1]).mean() < 12
