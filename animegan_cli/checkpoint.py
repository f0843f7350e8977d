"""Checkpoints: safetensors files with the model config and training state in the metadata.

Every checkpoint a user hands us may come from a stranger, so nothing is unpickled and nothing
is allocated on the word of the file: the header is parsed and checked (bounded length, JSON
shape, dtypes, offsets inside the file, no overlaps), the model config is validated, and the
tensor names, shapes and dtypes are compared with a model built on the `meta` device before a
single tensor is read.

Three kinds of file share the format:
- ``full``: G, D, G_ema, both optimizers, RNG states, fixed noise, config: exact resume.
- ``generator``: the sampling generator's weights only (EMA when trained with it), for sharing.
- ``export``: the same generator under its plain state-dict names (no `G_ema/` prefix), the
  model.safetensors of an `animegan export` folder, as other tools expect a model file.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_bytes
from torch import nn

from animegan_cli import __version__
from animegan_cli.atomic import write_bytes
from animegan_cli.errors import UserError, one_line
from animegan_cli.models import Discriminator, Generator, ModelConfig

FORMAT = "animegan-checkpoint"
FORMAT_VERSION = "1"
KINDS = ("full", "generator", "export")
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_REASON_CHARS = 300  # file-controlled text quoted in an error is cut to this
DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}


@dataclass(frozen=True)
class TensorInfo:
    dtype: torch.dtype
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose header and config passed validation; tensors are read on demand."""

    path: Path
    kind: str
    model: ModelConfig
    meta: dict[str, str]
    tensors: dict[str, TensorInfo]

    def json(self, key: str, default: Any = None) -> Any:
        """A metadata value that was stored as JSON, parsed; bad JSON is a UserError."""
        if key not in self.meta:
            return default
        try:
            return json.loads(self.meta[key])
        except (ValueError, RecursionError):
            raise _bad(self.path, f"metadata field {key!r} is not valid JSON") from None

    def has(self, prefix: str) -> bool:
        return any(name.startswith(prefix + "/") for name in self.tensors)

    def network(self, prefix: str) -> dict[str, TensorInfo]:
        """The tensors of network `prefix` by their state-dict names; prefix "" is the one
        network of an export file, whose tensors carry no prefix."""
        if not prefix:
            return dict(self.tensors)
        return {n[len(prefix) + 1:]: info for n, info in self.tensors.items()
                if n.startswith(prefix + "/")}

    def read(self, names: list[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        return read_tensors(self.path, names, device)

    def check_module(self, prefix: str, module: nn.Module) -> None:
        """Insist that `prefix/...` has exactly `module`'s tensor names, shapes and dtypes.

        Works on a module built on the `meta` device: call it before allocating the module, so
        a tiny file that claims a huge network is refused before any memory is taken for it.
        """
        expected = module.state_dict()
        found = self.network(prefix)
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        if missing or extra:
            what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
            raise _bad(self.path, f"tensors of {prefix or 'the generator'} do not match the "
                                  f"architecture ({what})")
        for name, tensor in expected.items():
            info = found[name]
            if info.shape != tuple(tensor.shape) or info.dtype != tensor.dtype:
                needs = _describe(TensorInfo(tensor.dtype, tuple(tensor.shape)))
                raise _bad(self.path, f"{tensor_name(prefix, name)} is {_describe(info)}, the "
                                      f"architecture needs {needs}")

    def load_module(self, prefix: str, module: nn.Module) -> None:
        """Load `prefix/...` tensors into `module`: exactly its names, shapes and dtypes."""
        self.check_module(prefix, module)
        expected = module.state_dict()
        values = self.read([tensor_name(prefix, n) for n in expected])
        module.load_state_dict({n: values[tensor_name(prefix, n)] for n in expected})

    def check_tensor(self, name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
        info = self.tensors.get(name)
        if info is None:
            raise _bad(self.path, f"tensor {name!r} is missing")
        if info.dtype != dtype or info.shape != shape:
            raise _bad(self.path, f"tensor {name!r} is {_describe(info)}, expected "
                                  f"{_describe(TensorInfo(dtype, shape))}")


def save(path: str | os.PathLike[str], kind: str, model: ModelConfig,
         tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write atomically: the previous file at `path` survives any crash during the write."""
    metadata = {key: value if isinstance(value, str) else json.dumps(value)
                for key, value in meta.items()}
    metadata.update(format=FORMAT, format_version=FORMAT_VERSION, kind=kind,
                    model=model.to_json(), tool_version=__version__)
    metadata.setdefault("created", _now())
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    # Serialise in memory, then write with Python's file API: a full disk then surfaces as an
    # OSError that atomic_path turns into a clear message, not a Rust SafetensorError.
    write_bytes(path, save_bytes(cpu, metadata=metadata))


def open_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Validate everything but the tensor bytes; every failure is a one-line UserError."""
    path = Path(path)
    header, meta = read_header(path)
    if meta.get("format") != FORMAT:
        raise _bad(path, "it is a safetensors file but not an animegan checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _bad(path, f"checkpoint format version {meta.get('format_version')!r} is not "
                         f"supported by animegan {__version__} (reads version {FORMAT_VERSION})")
    kind = meta.get("kind")
    if kind not in KINDS:
        raise _bad(path, f"unknown checkpoint kind {kind!r}")
    try:
        model = ModelConfig.from_json(meta.get("model", ""))
    except (ValueError, TypeError, RecursionError) as exc:
        raise _bad(path, f"its model config is invalid ({exc})") from None
    return Checkpoint(path, kind, model, meta, header)


def tensor_name(prefix: str, name: str) -> str:
    """How a file names tensor `name` of network `prefix` (see Checkpoint.network)."""
    return f"{prefix}/{name}" if prefix else name


def generator_prefix(ckpt: Checkpoint) -> str:
    """The weights to sample with: the EMA generator when the file has one; "" in an export,
    which holds nothing else."""
    if ckpt.kind == "export":
        return ""
    for prefix in ("G_ema", "G"):
        if ckpt.has(prefix):
            return prefix
    raise _bad(ckpt.path, "it contains no generator weights")


def meta_network(ckpt: Checkpoint, prefix: str) -> nn.Module:
    """The network that `prefix` holds, built on the `meta` device (no memory)."""
    with torch.device("meta"):
        return Discriminator(ckpt.model) if prefix == "D" else Generator(ckpt.model)


def check_networks(ckpt: Checkpoint, prefixes: tuple[str, ...]) -> None:
    """Check every network under `prefixes` against the architecture, allocating nothing."""
    for prefix in prefixes:
        ckpt.check_module(prefix, meta_network(ckpt, prefix))


def _load_network(ckpt: Checkpoint, prefix: str, device: str | torch.device) -> nn.Module:
    net = meta_network(ckpt, prefix)
    ckpt.check_module(prefix, net)  # before to_empty: the file must hold what we allocate
    net = net.to_empty(device="cpu")
    ckpt.load_module(prefix, net)
    return net.to(device).eval()


def load_generator_module(ckpt: Checkpoint, device: str | torch.device = "cpu") -> Generator:
    return _load_network(ckpt, generator_prefix(ckpt), device)  # type: ignore[return-value]


def load_discriminator_module(ckpt: Checkpoint, device: str | torch.device = "cpu"
                              ) -> Discriminator | None:
    return _load_network(ckpt, "D", device) if ckpt.has("D") else None  # type: ignore[return-value]


def read_tensors(path: Path, names: list[str], device: str | torch.device = "cpu"
                 ) -> dict[str, torch.Tensor]:
    """The named tensors of a file whose header `read_header` accepted."""
    # read_header mirrors the Rust reader's rules, so this should never fail; if the two
    # ever disagree (or the file changed since it was validated), it is still one line.
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            return {name: f.get_tensor(name) for name in names}
    except (SafetensorError, OSError) as exc:
        raise _bad(path, f"its tensor data cannot be read ({exc})") from None


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensors (names, dtypes, shapes) and metadata of a safetensors file from anywhere (a
    checkpoint, the FID statistics cached in a dataset folder), validated without reading any
    tensor data; every failure is a one-line UserError."""
    try:
        st = path.stat()
    except OSError as exc:
        raise UserError(f"cannot open checkpoint {path}: {exc.strerror or exc}; "
                        "check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise _bad(path, "it is not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 0 <= n <= MAX_HEADER_BYTES or n + 8 > st.st_size:
                # Only now name the likely culprit: a valid header length may begin with the
                # same bytes as a pickle's protocol marker.
                if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
                    raise _bad(path, "it looks like a PyTorch pickle/zip file, which animegan "
                                     "never loads because unpickling can run code; convert it "
                                     "to safetensors")
                if n < 0:
                    raise _bad(path, "it is too short to be a safetensors file")
                raise _bad(path, f"its header claims {n} bytes, more than the file or any "
                                 "checkpoint holds (truncated or not safetensors)")
            raw = f.read(n)
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    try:
        # Strict, like the Rust reader that later reads the tensors: no duplicate keys, no
        # NaN/Infinity, no lone surrogates. What it would refuse must be refused here first.
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_strict_object,
                            parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad(path, "its header is not valid JSON (truncated or not safetensors)") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise _bad(path, "its metadata is not a map of strings")
    # Metadata ends up in messages and logs: a newline, line separator or escape sequence
    # there could forge output lines. Our writer only stores printable text (JSON is escaped).
    if not all(k.isprintable() and v.isprintable() for k, v in meta.items()):
        raise _bad(path, "its metadata contains control characters")
    data_len = st.st_size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int]] = []
    for name, entry in header.items():
        info, span = _check_entry(path, name, entry, data_len)
        tensors[name] = info
        spans.append(span)
    # The Rust reader insists that the tensors tile the data exactly: in offset order, each
    # starts where the previous ended, and the last ends at the end of the file. A gap, an
    # overlap or trailing bytes would pass a looser check here and then fail (with a
    # traceback) at the first tensor read, so refuse them now.
    spans.sort()
    position = 0
    for begin, end in spans:
        if begin != position:
            raise _bad(path, "tensor data regions overlap" if begin < position
                       else "tensor data regions leave gaps")
        position = end
    if position != data_len:
        raise _bad(path, "it has bytes after the last tensor (not a safetensors file we wrote)")
    return tensors, meta


def _check_entry(path: Path, name: str, entry: Any, data_len: int
                 ) -> tuple[TensorInfo, tuple[int, int]]:
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
        raise _bad(path, f"tensor {name[:60]!r} has no supported dtype")
    if set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _bad(path, f"tensor {name[:60]!r} has unexpected fields")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if (not isinstance(shape, list) or len(shape) > 8
            or not all(type(s) is int and 0 <= s < 2**40 for s in shape)):
        raise _bad(path, f"tensor {name[:60]!r} has an invalid shape")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len):
        raise _bad(path, f"tensor {name[:60]!r} points outside the file (truncated?)")
    dtype, itemsize = DTYPES[entry["dtype"]]
    # The Rust reader multiplies the dimensions in order in 64 bits and fails on overflow even
    # when a later dimension is 0 (e.g. [2**39, 2**39, 0]); do the same.
    count = 1
    for s in shape:
        count *= s
        if count >= 2**64:
            raise _bad(path, f"tensor {name[:60]!r} has an invalid shape")
    if count * itemsize != offsets[1] - offsets[0]:
        raise _bad(path, f"tensor {name[:60]!r} size does not match its shape")
    return TensorInfo(dtype, tuple(shape)), (offsets[0], offsets[1])


def _describe(info: TensorInfo) -> str:
    return f"{str(info.dtype).removeprefix('torch.')}{list(info.shape)}"


def _bad(path: Path, why: str) -> UserError:
    # `why` may quote the file (a config value, an exception about it): keep it to one short
    # line, so a hostile file cannot flood the terminal or forge extra output lines.
    why = one_line(why, MAX_REASON_CHARS)
    return UserError(f"{path} is not a usable animegan checkpoint: {why}; pass a .safetensors "
                     "file written by `animegan train`")


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: refuse duplicate keys and strings that are not valid Unicode."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:60]!r}")
        for text in (key, value) if isinstance(value, str) else (key,):
            text.encode("utf-8")  # a lone surrogate ("\\ud800") raises UnicodeEncodeError
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
