"""The CUDA paths: bf16 training, resume, checkpoints that move between devices, sampling and
evaluation on the GPU. They run only where torch sees a CUDA device (CI has none); everything
they share with the CPU paths is tested there too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, run_cli, write_faces
from PIL import Image
from safetensors.torch import load_file

from animegan_cli.checkpoint import open_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device visible to torch")

GPU = ["--device", "cuda"]


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cuda") / "run"
    result = run_cli("train", "--demo", "64", "--epochs", "2", *TINY, *GPU, "--out", run)
    assert result.code == 0, result
    return run


def test_training_on_cuda_uses_bf16_autocast_and_saves_finite_weights(cuda_run: Path) -> None:
    config = json.loads((cuda_run / "config.json").read_text())
    assert config["device"] == "cuda"
    assert config["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    records = [json.loads(x) for x in (cuda_run / "metrics.jsonl").read_text().splitlines()]
    assert records and all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in records)
    full = open_checkpoint(cuda_run / "checkpoints" / "last.safetensors")
    assert full.meta["step"] == "8"
    for name, tensor in load_file(cuda_run / "checkpoints" / "last.safetensors").items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name


def test_resume_on_cuda_continues_where_it_stopped(tmp_path: Path) -> None:
    args = ["train", "--demo", "64", "--epochs", "2", *TINY, *GPU, "--out", tmp_path / "r"]
    first = run_cli(*args, "--max-steps", "6")
    assert first.code == 0, first
    second = run_cli(*args)
    assert second.code == 0, second
    assert "resuming at step 6/8" in second.stderr
    assert open_checkpoint(tmp_path / "r/checkpoints/last.safetensors").meta["step"] == "8"


def test_a_cuda_checkpoint_samples_the_same_images_on_cpu(cuda_run: Path, tmp_path: Path) -> None:
    ckpt = cuda_run / "generator.safetensors"
    for device in ("cuda", "cpu"):
        result = run_cli("sample", ckpt, "-n", "16", "--seed", "3", "--device", device, "-o",
                         tmp_path / f"{device}.png")
        assert result.code == 0, result
    on_gpu = np.asarray(Image.open(tmp_path / "cuda.png"), dtype=np.int16)
    on_cpu = np.asarray(Image.open(tmp_path / "cpu.png"), dtype=np.int16)
    # Same latents (drawn on the CPU); TF32 convolutions on the GPU differ by a level or two.
    assert np.abs(on_gpu - on_cpu).mean() < 2.0


def test_a_cpu_run_resumes_on_cuda(tmp_path: Path) -> None:
    args = ["train", "--demo", "64", "--epochs", "2", *TINY, "--out", tmp_path / "r"]
    first = run_cli(*args, "--max-steps", "4", "--device", "cpu")
    assert first.code == 0, first
    second = run_cli(*args, *GPU)
    assert second.code == 0, second
    assert "resuming at step 4/8" in second.stderr


def test_eval_on_cuda(cuda_run: Path, tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 40)
    assert run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32").code == 0
    result = run_cli("eval", cuda_run / "generator.safetensors", tmp_path / "ds", "-n", "64",
                     "--no-fid", "--json", *GPU)
    assert result.code == 0, result
    assert json.loads(result.stdout)["swd"]["swd"] > 0
