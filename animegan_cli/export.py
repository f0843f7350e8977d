"""`animegan export`: a trained generator as a folder to share, laid out as a Hugging Face model
repository, and uploaded there on request (`push`, the `hub` extra).

    OUT/
      model.safetensors  the generator's weights under their plain state-dict names, with the
                         model config and provenance in the metadata (checkpoint kind "export")
      config.json        the model config and the training options, for people and the Hub
                         (the loader reads model.safetensors alone)
      README.md          the model card: architecture, data, recipe, budget, quality, licence
      samples.png        an 8x8 grid of seeds 0-63, as `animegan sample OUT -n 64` draws it

Every command that takes a checkpoint takes OUT (RunDir.checkpoint_for), and so does
`animegan_cli.load_generator`. OUT is built under a hidden name and renamed into place once
complete (atomic.atomic_folder), so an interrupted export never leaves half a folder.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animegan_cli import checkpoint
from animegan_cli.atomic import atomic_folder, write_bytes
from animegan_cli.errors import UserError, first_line, one_line
from animegan_cli.evaluate import TRAINING_SWD_SAMPLES
from animegan_cli.info import describe
from animegan_cli.metrics import METRICS
from animegan_cli.run_dir import EXPORT_MODEL, RunDir
from animegan_cli.sample import load_generator, sample_to_files
from animegan_cli.train.config import SESSION_FIELDS
from animegan_cli.train.logs import MetricsLog

CONFIG = "config.json"
CARD = "README.md"
SAMPLES = "samples.png"
GRID = 8  # samples.png: GRID x GRID images, seeds 0 to GRID**2 - 1
# The checkpoint metadata that says where the weights come from, kept in model.safetensors.
PROVENANCE = ("epoch", "step", "train_config", "dataset_fingerprint")
# A licence as the Hub's card metadata names one (mit, apache-2.0, cc-by-nc-4.0, openrail++,
# other); it goes into the card's YAML front matter, so nothing else may.
LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")
# The Hub's rule for each half of OWNER/NAME: letters, digits, '_', and '-' or '.' between them.
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_]|[.-](?=[A-Za-z0-9_])){0,95}"
REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
TAGS = ("gan", "dcgan", "image-generation", "anime")


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    checkpoint: Path  # the file whose generator was exported
    files: tuple[str, ...]
    url: str | None  # the Hub repository it was uploaded to, with push


def export(*, source: Path, out: Path, license: str, overwrite: bool,
           push: str | None) -> ExportSummary:
    """Write the generator of `source` (a run folder: its generator.safetensors; or any
    checkpoint) with its config, model card and samples into the folder `out`; with `push`,
    upload that folder to the Hub repository `push` (OWNER/NAME)."""
    if not LICENSE.fullmatch(license):
        raise UserError(f"--license {license!r} is not a licence identifier; use one of the "
                        "Hub's, such as mit, apache-2.0, cc-by-nc-4.0 or other")
    hub = _hub(push) if push is not None else None  # refused before anything is written
    ckpt_path = RunDir.checkpoint_for(source, need_full=False)
    details = describe(ckpt_path)  # checks every network in the file against its architecture
    _check_out(out, ckpt_path, overwrite)
    ckpt = checkpoint.open_checkpoint(ckpt_path)
    weights = checkpoint.load_generator_module(ckpt).state_dict()
    run = _run_of(ckpt_path, details["dataset_fingerprint"])
    if details["training"] is not None:
        details = {**details, "training": _shareable(details["training"])}
    provenance = {key: ckpt.meta[key] for key in PROVENANCE if key in ckpt.meta}
    if "train_config" in provenance:
        provenance["train_config"] = json.dumps(details["training"])
    with atomic_folder(out) as tmp:
        checkpoint.save(tmp / EXPORT_MODEL, "export", ckpt.model, weights, provenance)
        # Drawn from the written file, through the loader every command uses: a file it could
        # not read never leaves this folder.
        sample_to_files(load_generator(tmp / EXPORT_MODEL, device="cpu"),
                        seeds=list(range(GRID * GRID)), out=tmp / SAMPLES, out_dir=None,
                        nrow=GRID, truncation=None, fmt="png", batch_size=GRID * GRID)
        config = json.loads(ckpt.model.to_json())
        if details["training"] is not None:
            config["train_config"] = details["training"]
        write_bytes(tmp / CONFIG, (json.dumps(config, indent=2) + "\n").encode())
        card = model_card(details, run, name=out.resolve().name, license=license, repo_id=push)
        write_bytes(tmp / CARD, card.encode())
    url = _upload(hub, push, out) if push is not None else None
    return ExportSummary(out, ckpt_path, (EXPORT_MODEL, CONFIG, CARD, SAMPLES), url)


def _shareable(training: dict[str, Any]) -> dict[str, Any]:
    """The training options as they leave this machine: an Inception file's path says where its
    owner keeps it (a home folder, a user name), not how the model was made; its name is enough."""
    weights = training.get("inception_weights")
    return ({**training, "inception_weights": Path(weights).name} if isinstance(weights, str)
            else training)


def _hub(repo_id: str) -> Any:
    """The Hub client, once the repository id and the package are known to be good."""
    if not REPO_ID.fullmatch(repo_id):
        raise UserError(f"--push {repo_id!r} is not a Hugging Face repository id; use "
                        "OWNER/NAME (letters, digits, '-', '_' and '.')")
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise UserError('--push needs the huggingface_hub package: pip install '
                        '"animegan-cli[hub]"') from None
    return HfApi()


def _upload(hub: Any, repo_id: str, folder: Path) -> str:
    try:
        url = hub.create_repo(repo_id, exist_ok=True)
        hub.upload_folder(repo_id=repo_id, folder_path=folder,
                          commit_message="Upload with animegan export")
    # The hub's HTTP, connection and missing-token errors are all OSErrors; a refused argument
    # is a ValueError.
    except (OSError, ValueError) as exc:
        raise UserError(f"wrote {folder}, but uploading it to {repo_id} failed "
                        f"({first_line(exc)}); log in with the Hugging Face CLI or set HF_TOKEN, "
                        "then export again with --overwrite --push") from None
    return str(url)


def _check_out(out: Path, ckpt_path: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out} is a file; pass a folder to write the model into")
    if ckpt_path.resolve().is_relative_to(out.resolve()):
        raise UserError(f"-o {out} holds the checkpoint being exported; choose another folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"-o {out} exists and is not empty; pass --overwrite to replace it, or "
                        "choose a new folder")


def _run_of(ckpt_path: Path, fingerprint: str | None) -> RunDir | None:
    """The run `ckpt_path` was saved by, whose logs the card quotes: the run folder around it,
    when that run trained on the data the checkpoint says it did."""
    run = RunDir.containing(ckpt_path)
    if run is None or _record(run).get("dataset_fingerprint") != fingerprint:
        return None
    return run


def _record(run: RunDir) -> dict[str, Any]:
    """The run's config.json (its latest invocation), or {} when it cannot be read."""
    try:
        record = json.loads(run.config.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return record if isinstance(record, dict) else {}


def model_card(details: dict[str, Any], run: RunDir | None, *, name: str, license: str,
               repo_id: str | None) -> str:
    """README.md of an export: Hub metadata, then what the model is and how it was made, from
    the checkpoint (`details`, as `info.describe` gives them) and its run's logs."""
    record = _record(run) if run is not None else {}
    records = MetricsLog(run.metrics, None).records() if run is not None else []
    training = details["training"] or {}
    step = _int(details["step"])
    images = _int(record.get("dataset_images"))
    size = details["image_size"]
    version = f" {details['tool_version']}" if details["tool_version"] else ""
    lines = ["---", "library_name: animegan", f"license: {license}", "tags:",
             *(f"- {tag}" for tag in TAGS), "pipeline_tag: unconditional-image-generation",
             "---", "", f"# {_text(name)}", "",
             f"A DCGAN that draws {size}x{size} anime-style images, trained with "
             f"animegan{_text(version)}.", "",
             f"![{GRID * GRID} samples, seeds 0-{GRID * GRID - 1}]({SAMPLES})", "",
             "## Architecture", "", *_table(
                 ("architecture", details["architecture"]), ("image size", f"{size} px"),
                 ("latent size (nz)", details["nz"]), ("generator width (ngf)", details["ngf"]),
                 ("discriminator width (ndf; D is not included)", details["ndf"]),
                 ("spectral norm (in D)", details["spectral_norm"]),
                 ("generator parameters", f"{details['generator_parameters']:,}"),
                 ("weights", details["sampling_weights"])), "",
             "## Dataset", "", *_table(
                 ("fingerprint (SHA-256 of the images)",
                  details["dataset_fingerprint"] or "not recorded"),
                 ("images", f"{images:,}" if images is not None else "not recorded")), "",
             "## Training", "", *_budget(details, training, record, records, step), "",
             "Options (`animegan train --help` explains each):", ""]
    options = [(key, "unset" if value is None else value)
               for key, value in sorted(training.items()) if key not in SESSION_FIELDS]
    lines += _table(*options) if options else ["not recorded"]
    lines += ["", "## Quality", "", *_quality(records, step, training, images), "",
              "## Licence", "",
              f"`{license}`, as given to `animegan export --license`. The weights are learned "
              "from the training images: use them only as the images' own licences allow.", "",
              "## Intended use and limitations", "",
              "For experiments, teaching and fun with small generative models. A DCGAN of this "
              "size draws low-resolution images with visible artefacts, repeats the styles and "
              "biases of its training images and may reproduce some of them nearly exactly "
              "(`animegan eval RUN DATA --nearest 64` looks for such copies). It is not meant "
              "to depict real people, nor for work passed off as made by a person.", "",
              "## Sampling", ""]
    if repo_id is not None:
        lines += ["Download this folder:", "", "```python",
                  "from huggingface_hub import snapshot_download", "",
                  f"snapshot_download({json.dumps(repo_id)}, local_dir={json.dumps(name)})",
                  "```", ""]
    lines += ["With animegan installed:", "", "```bash",
              f"animegan sample {shlex.quote(name)} -n 64 -o grid.png   # seeds 0-63, as "
              f"{SAMPLES}",
              f"animegan gif {shlex.quote(name)} --interpolate -o walk.gif   # a latent walk",
              "```", "", "```python", "from animegan_cli import load_generator", "",
              f"g = load_generator({json.dumps(name)})",
              f"images = g.sample(16, seed=0)   # uint8 tensor (16, {size}, {size}, 3)", "```",
              ""]
    return "\n".join(lines)


def _budget(details: dict[str, Any], training: dict[str, Any], record: dict[str, Any],
            records: list[dict[str, Any]], step: int | None) -> list[str]:
    """What training cost: epochs, steps, images seen, time, and on what."""
    batch, processes = _int(training.get("batch_size")), _int(record.get("world_size"))
    if step is None or batch is None:
        seen = "not recorded"
    elif processes is None:
        seen = f"{step * batch:,} per process ({step:,} steps x batch {batch})"
    else:
        seen = (f"{step * batch * processes:,} ({step:,} steps x batch {batch} x {processes} "
                f"process{'es' * (processes != 1)})")
    seconds = _wall_seconds(records, step)
    device, precision = record.get("device"), record.get("precision")
    return _table(
        ("epochs completed", details["epoch"] if details["epoch"] is not None
         else "not recorded"),
        ("steps", f"{step:,}" if step is not None else "not recorded"),
        ("images seen", seen),
        ("training time", f"{seconds / 60:.1f} min, as metrics.jsonl logs it" if seconds
         else "not recorded"),
        ("device", f"{device} ({precision})" if isinstance(device, str)
         and isinstance(precision, str) else "not recorded"))


def _wall_seconds(records: list[dict[str, Any]], step: int | None) -> float | None:
    """Training time up to `step` as metrics.jsonl logs it: `seconds` counts from the start of
    each invocation, so a resumed run's time is the sum of each invocation's last value."""
    total, last = 0.0, 0.0
    for record in records:
        seconds = record.get("seconds")
        at = record.get("step")
        if not _finite(seconds) or not isinstance(at, int) or (step is not None and at > step):
            continue
        if seconds < last:  # a new invocation started counting again
            total += last
        last = seconds
    return total + last or None


def _quality(records: list[dict[str, Any]], step: int | None, training: dict[str, Any],
             images: int | None) -> list[str]:
    """The latest value of each metric of the registry logged up to `step`, and how it was
    measured during training."""
    swd_samples = (f"{min(TRAINING_SWD_SAMPLES, images)}" if images is not None
                   else f"up to {TRAINING_SWD_SAMPLES}")
    inception_samples = _int(training.get("eval_samples"))
    weights = training.get("inception_weights")
    # `training` went through _shareable: the file's name, never its local path.
    network = (f"Inception file {weights}" if isinstance(weights, str)
               else "the default Inception file")
    rows = []
    for metric in METRICS.values():
        what = f"{metric.description}; {'lower' if metric.lower_is_better else 'higher'} is better"
        found = [r for r in records if _finite(r.get(metric.name))
                 and isinstance(r.get("step"), int) and (step is None or r["step"] <= step)]
        if not found:
            rows.append(_row(metric.label, "not measured", "", what))
            continue
        latest = found[-1]
        how = (f"{inception_samples or 'not recorded'} samples, {network}"
               if metric.needs_inception else f"{swd_samples} samples against as many training "
                                              "images")
        rows.append(_row(metric.label, f"{latest[metric.name]:.6g}",
                         f"epoch {latest.get('epoch')}, step {latest['step']:,}; {how}", what))
    return ["Measured during training, on the samples of fixed seeds; `animegan eval` measures "
            "again on more samples.", "",
            "| metric | value | measured at | what |", "| --- | --- | --- | --- |", *rows]


def _table(*rows: tuple[Any, Any]) -> list[str]:
    """A two-column Markdown table without a header."""
    return ["| | |", "| --- | --- |", *(_row(*row) for row in rows)]


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_text(cell) for cell in cells) + " |"


def _text(value: Any) -> str:
    """A value from a checkpoint or log as one table-safe line: they may come from a stranger."""
    return one_line(str(value), 200).replace("|", "\\|")


def _int(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
