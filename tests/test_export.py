"""`animegan export`: a run's generator as a shareable folder that every command reads back."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, assert_user_error, run_cli
from PIL import Image
from safetensors import safe_open

from animegan_cli import export as export_module
from animegan_cli import load_generator
from animegan_cli.checkpoint import open_checkpoint, save
from animegan_cli.errors import UserError
from animegan_cli.export import ExportSummary, export
from animegan_cli.info import describe
from animegan_cli.metrics import METRICS
from animegan_cli.run_dir import EXPORT_MODEL, RunDir
from animegan_cli.sample import rank_by_discriminator, sample_to_files


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of 2 steps with SWD evaluated at its end, so metrics.jsonl has a value."""
    folder = tmp_path_factory.mktemp("export") / "run"
    result = run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--eval-every", "1",
                     "--out", folder)
    assert result.code == 0, result
    return folder


@pytest.fixture(scope="module")
def exported(run: Path) -> ExportSummary:
    return export(source=run, out=run.parent / "faces-dcgan", license="mit", overwrite=False,
                  push=None)


def test_export_samples_bit_identical_to_the_run(run: Path, exported: ExportSummary,
                                                 tmp_path: Path) -> None:
    out = exported.out
    assert exported.checkpoint == RunDir(run).generator
    assert sorted(p.name for p in out.iterdir()) == sorted(exported.files)
    # Plain state-dict names, as other tools expect a model file: no G_ema/ or G/ prefix.
    with safe_open(str(out / EXPORT_MODEL), framework="pt") as f:
        names = list(f.keys())
    assert names and not any("/" in name for name in names)
    ckpt, source = open_checkpoint(out / EXPORT_MODEL), open_checkpoint(exported.checkpoint)
    assert ckpt.kind == "export" and ckpt.model == source.model
    assert ckpt.meta["dataset_fingerprint"] == source.meta["dataset_fingerprint"]

    mine, theirs = load_generator(out, device="cpu"), load_generator(str(run), device="cpu")
    assert torch.equal(mine.sample(8, seed=3, uint8=False), theirs.sample(8, seed=3, uint8=False))
    # samples.png is the 8x8 grid of seeds 0-63, as `sample` draws it.
    sample_to_files(theirs, seeds=list(range(64)), out=tmp_path / "ref.png", out_dir=None,
                    nrow=8, truncation=None, fmt="png", batch_size=64)
    assert np.array_equal(np.asarray(Image.open(out / "samples.png")),
                          np.asarray(Image.open(tmp_path / "ref.png")))


def test_commands_read_the_folder_and_say_when_they_need_more(exported: ExportSummary) -> None:
    out = exported.out
    for need_full in (False, True):  # info reads a run's full checkpoint; an export has one file
        assert RunDir.checkpoint_for(out, need_full=need_full) == out / EXPORT_MODEL
    details = describe(out / EXPORT_MODEL)
    assert details["kind"] == "export" and details["contents"] == ["generator"]
    assert details["generator_parameters"] == describe(exported.checkpoint)["generator_parameters"]
    with pytest.raises(UserError, match="only the generator; --rank-by-d needs the full"):
        rank_by_discriminator(load_generator(out, device="cpu"), seeds=[0, 1], keep=1,
                              truncation=None, batch_size=2)


def test_an_export_file_is_checked_like_any_checkpoint(exported: ExportSummary,
                                                       tmp_path: Path) -> None:
    source = open_checkpoint(exported.checkpoint)
    prefixed = source.read(list(source.tensors))  # still named G_ema/...: not an export's layout
    save(tmp_path / "bad.safetensors", "export", source.model, prefixed, {})
    with pytest.raises(UserError, match="tensors of the generator do not match"):
        load_generator(tmp_path / "bad.safetensors", device="cpu")


def test_card_and_config(run: Path, exported: ExportSummary) -> None:
    card = (exported.out / "README.md").read_text(encoding="utf-8")
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "library_name: animegan\n" in front and "license: mit\n" in front
    assert all(f"- {tag}\n" in front for tag in ("gan", "dcgan", "image-generation", "anime"))
    records = [json.loads(line) for line in RunDir(run).metrics.read_text().splitlines()]
    swd = [r["swd"] for r in records if "swd" in r]
    assert len(swd) == 1 and f"| {METRICS['swd'].label} | {swd[0]:.6g} |" in body
    assert f"| {METRICS['fid'].label} | not measured |" in body  # no Inception on this run
    fingerprint = open_checkpoint(exported.checkpoint).meta["dataset_fingerprint"]
    assert fingerprint in body and "| images | 32 |" in body
    assert "| steps | 2 |" in body and "| images seen | 32 (2 steps x batch 16" in body
    assert "animegan sample faces-dcgan -n 64 -o grid.png" in body
    assert 'load_generator("faces-dcgan")' in body

    config = json.loads((exported.out / "config.json").read_text())
    model = open_checkpoint(exported.checkpoint).model
    assert {k: config[k] for k in ("arch", "image_size", "nz", "ngf", "ndf", "spectral_norm")} \
        == {"arch": model.arch, "image_size": 32, "nz": model.nz, "ngf": 8, "ndf": 8,
            "spectral_norm": False}
    assert config["train_config"]["batch_size"] == 16


def test_a_local_inception_path_leaves_as_its_file_name(exported: ExportSummary,
                                                       tmp_path: Path) -> None:
    source = open_checkpoint(exported.checkpoint)
    training = {**source.json("train_config"),
                "inception_weights": "/home/alice/models/inception-2015-12-05.pt"}
    save(tmp_path / "g.safetensors", source.kind, source.model,
         source.read(list(source.tensors)), {**source.meta, "train_config": training})
    out = export(source=tmp_path / "g.safetensors", out=tmp_path / "shared", license="mit",
                 overwrite=False, push=None).out
    shared = [open_checkpoint(out / EXPORT_MODEL).json("train_config"),
              json.loads((out / "config.json").read_text())["train_config"]]
    assert [t["inception_weights"] for t in shared] == ["inception-2015-12-05.pt"] * 2
    assert shared[0]["batch_size"] == training["batch_size"]
    assert not any("alice" in (out / name).read_text(encoding="utf-8", errors="replace")
                   for name in ("README.md", "config.json"))
    with safe_open(str(out / EXPORT_MODEL), framework="pt") as f:
        assert "alice" not in json.dumps(f.metadata())


def test_existing_folder_needs_overwrite_and_interruptions_leave_it_whole(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="exists and is not empty; pass --overwrite"):
        export(source=run, out=out, license="mit", overwrite=False, push=None)

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # killed half-way: the old folder stays, nothing else
        patch.setattr(export_module, "sample_to_files", interrupted)
        with pytest.raises(KeyboardInterrupt):
            export(source=run, out=out, license="mit", overwrite=True, push=None)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert [p.name for p in out.iterdir()] == ["mine.txt"]

    export(source=run, out=out, license="mit", overwrite=True, push=None)
    assert (out / EXPORT_MODEL).is_file() and not (out / "mine.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no hidden folder left beside it
    with pytest.raises(UserError, match="holds the checkpoint being exported"):
        export(source=run, out=run, license="mit", overwrite=True, push=None)


@pytest.mark.parametrize("repo_id", ["faces", "me/faces/v2", "me/bad--name", "-me/faces",
                                     "me/faces.", "me/fa ces", "/faces"])
def test_bad_repo_id_refused_before_anything_is_written(run: Path, tmp_path: Path,
                                                        repo_id: str) -> None:
    with pytest.raises(UserError, match="OWNER/NAME") as refused:
        export(source=run, out=tmp_path / "model", license="mit", overwrite=False, push=repo_id)
    assert "\n" not in str(refused.value) and not any(tmp_path.iterdir())


@pytest.mark.parametrize("licence", ["MIT License", "mit\nx: y", ""])
def test_bad_licence_refused(run: Path, tmp_path: Path, licence: str) -> None:
    with pytest.raises(UserError, match="is not a licence identifier"):
        export(source=run, out=tmp_path / "model", license=licence, overwrite=False, push=None)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("huggingface_hub") is not None,
                    reason="huggingface_hub is installed: --push would try the network")
def test_push_without_huggingface_hub_writes_nothing(run: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError) as refused:
        export(source=run, out=tmp_path / "model", license="mit", overwrite=False,
               push="me/faces")
    assert str(refused.value) == ('--push needs the huggingface_hub package: pip install '
                                  '"animegan-cli[hub]"')
    assert not any(tmp_path.iterdir())


def test_cli_export_then_sample_and_info(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    result = run_cli("export", run, "-o", out)
    assert result.code == 0, result
    assert f"wrote {out} (model.safetensors, config.json, README.md, samples.png)" in result.stdout
    assert "license: other\n" in (out / "README.md").read_text(encoding="utf-8")
    assert_user_error(run_cli("export", run, "-o", out), "--overwrite")
    again = run_cli("export", run, "-o", out, "--overwrite", "--json", "--quiet")
    assert again.code == 0 and again.stderr == "", again
    assert json.loads(again.stdout)["files"] == ["model.safetensors", "config.json", "README.md",
                                                 "samples.png"]
    result = run_cli("sample", out, "-n", "4", "--nrow", "2", "-o", tmp_path / "x.png")
    assert result.code == 0, result
    with Image.open(tmp_path / "x.png") as im:
        assert im.size == (2 * 34 + 2, 2 * 34 + 2)
    result = run_cli("info", out, "--json")
    assert result.code == 0, result
    assert json.loads(result.stdout)["kind"] == "export"
