"""The layout of a run folder, in one place: every command that reads or writes a run asks
`RunDir` for its paths instead of spelling file names.

    RUN/
      config.json            the resolved options of the latest invocation
      metrics.jsonl          one JSON object per logged step and per evaluation
      loss.png               loss and quality curves
      generator.safetensors  the sampling generator (EMA when on) of the latest checkpoint
      result.gif             what `animegan gif RUN` writes by default
      samples/epoch_0001.png the fixed-noise grid of each epoch
      checkpoints/last.safetensors   full state for exact resume
      checkpoints/best.safetensors   the best generator by --eval-metric
      checkpoints/epoch_0005.safetensors, step_0001000.safetensors   periodic (--keep)
      tensorboard/           with --tensorboard
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from animegan_cli.errors import UserError

# The weights of an `animegan export` folder (export.py), which checkpoint_for accepts too.
EXPORT_MODEL = "model.safetensors"
_PERIODIC = re.compile(r"(epoch_\d{4,}|step_\d{7,})\.safetensors")
_EPOCH_GRID = re.compile(r"epoch_(\d{4,})\.png")


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.safetensors"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.safetensors"

    @property
    def generator(self) -> Path:
        return self.root / "generator.safetensors"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def loss_plot(self) -> Path:
        return self.root / "loss.png"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def animation(self) -> Path:
        return self.root / "result.gif"

    def epoch_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:04d}.png"

    def epoch_grids(self) -> list[tuple[int, Path]]:
        """(epoch, path) of the saved epoch grids, in epoch order."""
        if not self.samples.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.samples.iterdir()
                 if (m := _EPOCH_GRID.fullmatch(p.name))]
        return sorted(found)

    def periodic_checkpoint(self, *, epoch: int | None = None, step: int | None = None) -> Path:
        """The kept copy for an epoch boundary (epoch=) or a step (step=)."""
        if (epoch is None) == (step is None):
            raise ValueError("pass exactly one of epoch= and step=")
        name = f"epoch_{epoch:04d}" if epoch is not None else f"step_{step:07d}"
        return self.checkpoints / f"{name}.safetensors"

    def periodic_checkpoints(self) -> list[Path]:
        """The kept periodic checkpoints, oldest first (zero-padded names sort in training
        order); never `last` or `best`."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(p for p in self.checkpoints.iterdir() if _PERIODIC.fullmatch(p.name))

    @staticmethod
    def containing(path: Path) -> RunDir | None:
        """The run a folder or checkpoint belongs to (RUN, RUN/generator.safetensors,
        RUN/checkpoints/*.safetensors), if it is one: the folder with the config.json."""
        for folder in (path, path.parent, path.parent.parent):
            if (folder / "config.json").is_file() and (folder / "checkpoints").is_dir():
                return RunDir(folder)
        return None

    def training_data(self) -> tuple[str | None, int, str | None]:
        """(DATA, --demo N, dataset fingerprint) the run trained on, from its config.json."""
        try:
            record = json.loads(self.config.read_text(encoding="utf-8"))
            data, demo, fingerprint = (record.get("data"), record.get("demo") or 0,
                                       record.get("dataset_fingerprint"))
        except (OSError, ValueError, AttributeError):
            data, demo, fingerprint = None, 0, None
        # The file may have been edited: only values of the types training wrote are used.
        if not (isinstance(data, str) or (isinstance(demo, int) and demo > 0)):
            raise UserError(f"{self.config} does not say what the run trained on; pass the "
                            "dataset: `animegan eval RUN DATA`")
        return (data if isinstance(data, str) else None, demo if not isinstance(data, str) else 0,
                fingerprint if isinstance(fingerprint, str) else None)

    def create(self) -> None:
        """Make the run's folders, drop files a kill left half-written, check it is writable."""
        try:
            for folder in (self.root, self.checkpoints, self.samples):
                folder.mkdir(parents=True, exist_ok=True)
                for stale in folder.glob(".*.partial"):  # see atomic.py
                    stale.unlink()
            probe = self.root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to --out {self.root} ({exc.strerror}); choose a "
                            "writable folder") from None

    @staticmethod
    def checkpoint_for(path: Path, *, need_full: bool) -> Path:
        """The checkpoint a command reads when handed `path`: a file as it is; for a run folder,
        its full checkpoint (last) when the command needs the discriminator or the training
        state (`need_full`), else the sampling generator, what `sample` and `eval` score; for an
        export folder, its model, whatever the command needs: there is nothing else, and a
        command that needs D says so when it finds none in the file."""
        if not path.is_dir():
            return path  # a checkpoint file: opening it explains a missing or unusable one
        if (path / EXPORT_MODEL).is_file():
            return path / EXPORT_MODEL
        run = RunDir(path)
        ckpt = run.last if need_full else run.generator
        if not ckpt.is_file():
            raise UserError(f"{path} holds no checkpoint ({ckpt.relative_to(path)}); train into "
                            f"it first with `animegan train DATA --out {path}`, or pass a "
                            ".safetensors file")
        return ckpt
