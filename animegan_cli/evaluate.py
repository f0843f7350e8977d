"""`animegan eval`: how close a checkpoint's samples come to the data it was trained on.

Every metric of the registry (animegan_cli.metrics.METRICS): those that need the Inception
network only when it is available; `nearest=K` looks for memorised training images.
`TrainingEvaluator` is what the training loop logs every few epochs: the same metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from animegan_cli.console import StagedProgressFn, stage
from animegan_cli.data.packed import is_dataset, open_dataset
from animegan_cli.errors import UserError
from animegan_cli.images import format_for, make_grid, save_image
from animegan_cli.metrics import METRICS, Metric, MetricInputs, inception, precision_recall
from animegan_cli.sample import generate, latents, load_generator
from animegan_cli.train import distributed as dist
from animegan_cli.train.config import TrainConfig
from animegan_cli.train.data import TrainData, load_data

DEFAULT_SAMPLES = 10_000
# Below this many samples FID's covariance is rank-deficient (2048-d features) and FID is
# strongly biased upwards; KID is unbiased at any size.
FID_MIN_SAMPLES = 2048
# SWD sorts 128 patch projections per image, level and direction: 4096 images keep a CPU run
# to a few minutes and memory near a gigabyte. A fixed cap keeps values comparable between
# runs (SWD depends on the number of images).
SWD_IMAGES = 4096
NEAREST_SHOWN = 8  # closest pairs listed in the result; all K go into the PNG
_CHUNK_BYTES = 64 * 1024 * 1024  # nearest-neighbour search reads the training set in chunks


def evaluate(ckpt_path: str | os.PathLike[str], data: str | os.PathLike[str] | None = None, *,
             demo: int = 0, n: int | None = None, batch_size: int = 64, device: str = "auto",
             inception_weights: str | os.PathLike[str] | None = None, nearest: int = 0,
             nearest_out: str | os.PathLike[str] | None = None, seed: int = 0,
             fid: bool = True, log: Callable[[str], None] | None = None,
             progress: StagedProgressFn | None = None) -> dict[str, Any]:
    """Score a checkpoint against its training images; a JSON-serialisable dict.

    `data` is a prepared dataset or a folder of images (prepared into the same cache `train`
    uses), or `demo` the number of built-in demo faces. n samples (default min(10000, dataset
    size)) from latent seeds seed..seed+n-1. FID, KID, precision and recall compare them with
    as many real images (fewer if the dataset is smaller), whose features are cached beside
    the dataset. `fid=False` skips the Inception network (slow on CPU) and with it every
    metric that needs it. `progress(stage, done, total)` while samples are generated and
    features extracted.
    """
    say = log or (lambda _message: None)
    started = time.monotonic()
    if batch_size < 1 or nearest < 0 or seed < 0:
        raise UserError("--batch-size must be at least 1; --nearest and --seed 0 or more")
    if nearest_out is not None:
        format_for(nearest_out)  # refuse a bad file name before minutes of scoring
    gen = load_generator(ckpt_path, device)
    size = gen.config.image_size
    dataset = _real_images(data, demo, size, ckpt_path)
    count = min(DEFAULT_SAMPLES, len(dataset.images)) if n is None else n
    if count < 2 or nearest > count:
        raise UserError(f"-n must be at least 2 and at least --nearest ({nearest}); got {count}")
    warnings = []
    if count > len(dataset.images):
        warnings.append(f"-n {count} is more than the {len(dataset.images)} training images: "
                        f"every metric compares the samples with those {len(dataset.images)}")
        say(f"warning: {warnings[-1]}")
    extractor, skipped = (inception.find_inception(inception_weights, gen.device) if fid
                          else (None, "turned off (--no-fid)"))

    say(f"generating {count} samples on {gen.device}")
    fake = np.concatenate(list(gen.generate(latents(range(seed, seed + count), gen.config.nz),
                                            batch_size, stage(progress, "generating"))))
    result: dict[str, Any] = {
        "checkpoint": str(ckpt_path), "dataset": dataset.description,
        "dataset_fingerprint": dataset.fingerprint, "dataset_images": len(dataset.images),
        "image_size": size, "samples": count, "seed": seed, "warnings": warnings,
    }
    m = min(count, len(dataset.images), SWD_IMAGES)
    real = dataset.images[inception.real_subset(len(dataset.images), m, seed)]
    real_stats = fake_features = None
    if extractor is not None:
        real_count = min(count, len(dataset.images))
        cache = inception.stats_cache_path(dataset, real_count)
        say(f"Inception features of {real_count} training images"
            + ("" if cache is None else " (cached)" if cache.exists() else f", cached in {cache}"))
        real_stats = inception.real_stats(dataset, extractor, count, batch_size,
                                          stage(progress, "Inception: training images"))
        say(f"Inception features of {count} samples")
        fake_features = extractor.features(fake, batch_size, stage(progress, "Inception: samples"))
        if count < FID_MIN_SAMPLES:
            warnings.append(
                f"FID from {count} samples (< {FID_MIN_SAMPLES}) is biased upwards and not "
                "comparable with published values; read KID, which is unbiased")
        k = precision_recall.neighbourhood(real_count, count)
        if k < precision_recall.NHOOD_SIZE:
            warnings.append(f"precision and recall from {min(real_count, count)} "
                                      f"images use the {k} nearest neighbours, not "
                                      f"{precision_recall.NHOOD_SIZE}: not comparable")
    inputs = MetricInputs(real, fake[:m], seed, gen.device, real_stats, fake_features)
    runnable = runnable_metrics(extractor)
    for name, metric in METRICS.items():
        if name not in runnable:
            result[name] = None
            continue
        say(f"{metric.label} of {count if metric.needs_inception else m} samples "
            f"({metric.description})")
        result[name] = metric.compute(inputs).report
    result["inception"] = None if extractor is None else {"weights": str(extractor.path),
                                                          "sha256": extractor.sha256}
    result["fid_skipped"] = skipped
    real_features = real_stats[2] if real_stats is not None else None

    if nearest:
        say(f"nearest training image of {nearest} samples")
        result["nearest"] = _nearest_report(dataset, fake[:nearest], seed,
                                            real_features, fake_features, gen.device,
                                            Path(nearest_out) if nearest_out else None)
    else:
        result["nearest"] = None
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def runnable_metrics(extractor: inception.FeatureExtractor | None) -> dict[str, Metric]:
    """The registry's metrics that can run: those on pixels always, those on Inception
    features only with an extractor."""
    return {name: metric for name, metric in METRICS.items()
            if extractor is not None or not metric.needs_inception}


# Images per SWD evaluation during training: seconds on a CPU.
TRAINING_SWD_SAMPLES = 256


def training_evaluator(config: TrainConfig, data: inception.RealImages, device: torch.device,
                       is_main: bool) -> TrainingEvaluator | None:
    """What `--eval-every` evaluates, or None (off, or another rank than the first).

    The Inception metrics are computed on a GPU whenever the network is installed; on a CPU
    (about 8 images/s) only when asked for, by --eval-metric or --inception-weights. Every
    rank checks a required network, so all of them stop together when it is missing: call
    this before anything is written.
    """
    if not config.eval_every:
        return None
    required = METRICS[config.eval_metric].needs_inception or config.inception_weights is not None
    extractor = None
    if required or (is_main and device.type != "cpu"):
        extractor, why = inception.find_inception(config.inception_weights, device)
        if extractor is None and required:
            raise UserError(f"--eval-metric {config.eval_metric} needs the Inception network "
                            f"({why}); or use --eval-metric swd")
    if not is_main:
        return None
    return TrainingEvaluator(data, config.nz, device, config.seed, TRAINING_SWD_SAMPLES,
                             extractor, config.eval_samples)


class TrainingEvaluator:
    """Quality of the generator during training, on the same latents and real images every
    time, so successive values differ only because the generator changed.

    Metrics on pixels (SWD: seconds on a CPU) on `swd_samples` always; with an Inception
    extractor also those that need it (FID, KID, precision, recall) on `inception_samples`,
    whose real side's features are computed (or read from the dataset's cache) once, at the
    first call. Precision and recall add about 3 s on two CPU cores at 2048 samples (float64
    distance blocks), little beside the Inception network's minutes there.
    """

    def __init__(self, data: inception.RealImages, nz: int, device: torch.device, seed: int = 0,
                 swd_samples: int = 256, extractor: inception.FeatureExtractor | None = None,
                 inception_samples: int = 2048) -> None:
        self.data, self.nz, self.device, self.seed = data, nz, device, seed
        self.swd_samples = min(swd_samples, len(data.images))
        self.extractor = extractor
        self.inception_samples = inception_samples
        self.metrics: list[Metric] = list(runnable_metrics(extractor).values())
        self._real_swd = data.images[inception.real_subset(len(data.images), self.swd_samples,
                                                           seed)]
        self._real_stats: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, generator: nn.Module) -> dict[str, float]:
        """The flat values of `self.metrics` ('swd', 'swd_<res>'..., and with Inception 'fid',
        'kid', 'kid_std', 'precision', 'recall'); the generator runs in eval mode and is put
        back in the mode it was in."""
        count = max(self.swd_samples, self.inception_samples if self.extractor else 0)
        fake = self._samples(generator, count)
        features = None
        if self.extractor is not None:
            if self._real_stats is None:
                self._real_stats = inception.real_stats(self.data, self.extractor,
                                                        self.inception_samples)
            features = self.extractor.features(fake[:self.inception_samples])
        inputs = MetricInputs(self._real_swd, fake[:self.swd_samples], self.seed, self.device,
                              self._real_stats, features)
        values: dict[str, float] = {}
        for metric in self.metrics:
            values.update(metric.compute(inputs).values)
        return values

    def _samples(self, generator: nn.Module, count: int) -> np.ndarray:
        z = latents(range(self.seed, self.seed + count), self.nz)
        was_training = generator.training
        generator.eval()
        try:
            return np.concatenate(list(generate(generator, z, self.device)))
        finally:
            generator.train(was_training)


def result_table(result: dict[str, Any]) -> Any:
    """The result as a rich Table, for the terminal."""
    from rich.table import Table

    table = Table(title=f"{result['checkpoint']} vs {result['dataset']} "
                        f"({result['samples']} samples)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("note")
    for name, metric in METRICS.items():
        if result[name] is not None:
            for row in metric.rows(result[name]):
                table.add_row(*row)
    skipped = [metric.label for name, metric in METRICS.items() if result[name] is None]
    if skipped:  # only those that need the Inception network are ever skipped
        table.add_row(" / ".join(skipped), "-", f"skipped: {result['fid_skipped']}")
    near = result["nearest"]
    if near:
        table.add_row("nearest distance", f"{near['min']:.4g}",
                      f"min; median {near['median']:.4g}, mean {near['mean']:.4g} "
                      f"({near['space']}, {near['searched']} images searched)")
    for warning in result["warnings"]:
        table.add_row("[yellow]warning[/]", "", warning)
    return table


def _real_images(data: str | os.PathLike[str] | None, demo: int, size: int,
                 ckpt_path: str | os.PathLike[str]) -> TrainData:
    """The images to compare with, at the model's size: what `train` would train on."""
    if demo < 0 or bool(data) == bool(demo):
        raise UserError("pass either DATA (a prepared dataset or a folder of images) or "
                        "--demo N, as the run was trained")
    if data is not None and is_dataset(Path(data)):
        dataset = open_dataset(Path(data))
        if dataset.size != size:
            raise UserError(f"{ckpt_path} draws {size}px images but {dataset.path} holds "
                            f"{dataset.size}x{dataset.size} ones; prepare the training images "
                            f"at the model's size: `animegan prepare SRC -o DATASET --size "
                            f"{size}`, or pass the image folder itself")
        return TrainData(dataset.images, dataset.fingerprint, str(dataset.path), dataset.path)
    # A folder of images is prepared at the model's size into the cache `train` uses.
    return load_data(None if data is None else str(data), demo, size, dist.DistInfo())


def _nearest_report(dataset: TrainData, samples: np.ndarray, seed: int,
                    real_features: np.ndarray | None, fake_features: np.ndarray | None,
                    device: torch.device, out: Path | None) -> dict[str, Any]:
    """Nearest training image of each sample: in Inception space among the images FID used
    when there are features, else in pixel space among all training images."""
    k = len(samples)
    if real_features is not None and fake_features is not None:
        space = "inception"
        index = inception.real_subset(len(dataset.images), len(real_features))
        queries = torch.from_numpy(fake_features[:k]).float()
        refs = _chunks(torch.from_numpy(real_features).float(), lambda i: i)
        searched = len(real_features)
    else:
        space = "pixels"
        index = np.arange(len(dataset.images))
        queries = _pixels(samples)
        refs = _chunks(dataset.images, _pixels)
        searched = len(dataset.images)
    found = _nearest(queries.to(device), refs, device)
    # Exact distances of the winners, in float64: the search's |a|^2 + |b|^2 - 2ab loses
    # precision exactly where it matters, for near-copies.
    if space == "inception":
        winners = torch.from_numpy(real_features[found])
        dist = (torch.from_numpy(fake_features[:k]) - winners).norm(dim=1)
    else:
        winners = _pixels(dataset.images[found])
        # RMS difference of [0, 1] pixels: 0 is an exact copy, independent of image size.
        dist = (queries.double() - winners.double()).square().mean(dim=1).sqrt()
    order = torch.argsort(dist).tolist()
    report = {
        "space": space, "samples": k, "searched": searched,
        "min": float(dist.min()), "median": float(dist.median()), "mean": float(dist.mean()),
        "closest": [{"sample_seed": seed + i, "train_index": int(index[found[i]]),
                     "distance": float(dist[i])} for i in order[:NEAREST_SHOWN]],
        "image": str(out) if out else None,
    }
    if out is not None:
        pairs = np.stack([np.stack([samples[i], dataset.images[index[found[i]]]]) for i in order])
        save_image(make_grid(pairs.reshape(-1, *samples.shape[1:]), nrow=2 * min(k, 4)), out)
    return report


def _pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images, dtype=np.float32)).flatten(1) / 255


def _chunks(refs: Any, convert: Callable[[Any], torch.Tensor]) -> Iterator[torch.Tensor]:
    """Rows of `refs` converted to float vectors, a bounded number of bytes at a time."""
    row_bytes = 4 * int(np.prod(refs.shape[1:]))
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, len(refs), step):
        yield convert(refs[start:start + step])


def _nearest(queries: torch.Tensor, refs: Iterator[torch.Tensor],
             device: torch.device) -> np.ndarray:
    """Index of the nearest reference row (L2) for each query row."""
    best = torch.full((len(queries),), float("inf"), device=device)
    where = torch.zeros(len(queries), dtype=torch.long, device=device)
    q2 = queries.square().sum(dim=1, keepdim=True)
    offset = 0
    for chunk in refs:
        chunk = chunk.to(device)
        d2 = q2 + chunk.square().sum(dim=1) - 2 * queries @ chunk.T
        value, arg = d2.min(dim=1)
        better = value < best
        best = torch.where(better, value, best)
        where = torch.where(better, arg + offset, where)
        offset += len(chunk)
    return where.cpu().numpy()
