"""Hostile checkpoints through the real CLI: each one is refused in one line, and nothing more.

Every case below is a file a stranger could hand a user as "my checkpoint", derived from the
real checkpoint of a tiny run made once for this module. Each is given to every command that
reads checkpoints (COMMANDS: `sample FILE`, and `train ... --out RUN2` with the file at
RUN2/checkpoints/last.safetensors, which resumes; `info` and `eval` join automatically once
the CLI has them). Each must end in:

- exit code 2 and exactly one line on stderr, starting with `animegan: error:`, of bounded
  length, with no traceback, and nothing on stdout;
- no code run: the pickle payloads would create MARKER if anything ever unpickled them;
- bounded memory: every command runs under RLIMIT_AS (so an allocation sized by the file
  fails loudly instead of swapping), and its peak RSS is measured and bounded;
- the file untouched, no output written, no `.partial` file left behind.

To keep the module fast, the cases run in one Python process per command that calls
`animegan_cli.cli.main([...])` once per case with fd-level capture of stdout/stderr (the same
code path as the console script, minus the interpreter start-up); a representative subset
also runs as real `animegan` processes (REAL_SUBPROCESS).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import pickletools
import resource
import stat
import struct
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import animegan_command

# ---- limits ---------------------------------------------------------------------------------

# Address space for every child. Measured with torch 2.14.1+cu130 on CPU: importing torch maps
# ~3.1 GiB, a normal `sample` or tiny `train` peaks at ~3.6-3.8 GiB (VmPeak). 5 GiB leaves
# margin for that and none for any allocation sized by a hostile file (the largest network a
# config may declare needs ~11 GiB for G alone).
ADDRESS_LIMIT = 5 * 2**30
# Peak RSS of a whole `animegan` process (a normal sample/resume is ~0.6-0.75 GiB).
MAX_PROCESS_RSS_KIB = 1536 * 1024
# Peak RSS growth of one hostile case inside the warmed-up batch process.
MAX_CASE_GROWTH_KIB = 256 * 1024
# One error line: the path, a reason cut to 300 characters by checkpoint._bad, and a hint.
MAX_ERROR_CHARS = 1500
TRAIN_ARGS = ["--demo", "64", "--epochs", "1", "--image-size", "32", "--ngf", "8", "--ndf", "8",
              "--batch-size", "16"]
CHILD_ENV = {
    **os.environ,
    "CUDA_VISIBLE_DEVICES": "",  # CUDA would map tens of GiB of address space at init
    "OMP_NUM_THREADS": "1",  # the machine is small and shared
    "COLUMNS": "200",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def _limit_memory() -> None:  # preexec_fn: runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def _command_exists(name: str) -> bool:
    """Whether `animegan NAME --help` exits 0 (checked at collection: typer only, fast)."""
    try:
        proc = subprocess.run([*animegan_command(), name, "--help"], capture_output=True,
                              timeout=60, env=CHILD_ENV)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


# ---- safetensors by hand --------------------------------------------------------------------

def split(blob: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def assemble(header: dict[str, Any] | bytes, data: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


Tensors = dict[str, tuple[str, list[int], bytes]]  # name -> (dtype, shape, bytes)


def unpack(blob: bytes) -> tuple[Tensors, dict[str, str]]:
    header, data = split(blob)
    meta = header.pop("__metadata__")
    tensors = {name: (e["dtype"], e["shape"], data[e["data_offsets"][0]:e["data_offsets"][1]])
               for name, e in header.items()}
    return tensors, meta


def pack(tensors: Tensors, meta: dict[str, str] | None) -> bytes:
    """A well-formed safetensors file: contiguous data in insertion order."""
    header: dict[str, Any] = {} if meta is None else {"__metadata__": meta}
    chunks, offset = [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    return assemble(header, b"".join(chunks))


# ---- the world every case is derived from ----------------------------------------------------

@dataclass
class World:
    root: Path
    full: bytes  # RUN/checkpoints/last.safetensors of a real tiny run
    generator: bytes  # RUN/generator.safetensors
    marker: Path  # created only if a pickle payload is ever unpickled
    pickles: dict[str, bytes]
    dataset: Path  # a tiny prepared dataset, for commands that take DATA

    @property
    def tensors(self) -> Tensors:
        return unpack(self.full)[0]

    @property
    def meta(self) -> dict[str, str]:
        return unpack(self.full)[1]

    def with_meta(self, **changes: str) -> bytes:
        tensors, meta = unpack(self.full)
        return pack(tensors, {**meta, **changes})

    def with_model(self, **changes: Any) -> bytes:
        model = json.loads(self.meta["model"])
        return self.with_meta(model=json.dumps({**model, **changes}))

    def with_train_config(self, **changes: Any) -> bytes:
        config = json.loads(self.meta["train_config"])
        return self.with_meta(train_config=json.dumps({**config, **changes}))

    def with_network(self, **changes: Any) -> bytes:
        """The model config and the training config agree on the change: a consistent lie."""
        model = json.loads(self.meta["model"])
        config = json.loads(self.meta["train_config"])
        return self.with_meta(model=json.dumps({**model, **changes}),
                              train_config=json.dumps({**config, **changes}))


class Payload:
    """Unpickling this calls open(marker, "w"), which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _assert_is_payload(pickled: bytes, marker: Path) -> None:
    """Statically (never unpickling) check that `pickled` would call open(marker) on load."""
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(pickled)]
    names = [op for op, _ in ops]
    assert "REDUCE" in names, names
    assert ("SHORT_BINUNICODE", "open") in ops or ("BINUNICODE", "open") in ops or any(
        op == "GLOBAL" and "open" in str(arg) for op, arg in ops), ops
    assert any(isinstance(arg, str) and arg == str(marker) for _, arg in ops), ops


def _make_pickles(marker: Path) -> dict[str, bytes]:
    import io

    import torch

    out: dict[str, bytes] = {}
    buf = io.BytesIO()
    torch.save({"state_dict": Payload(marker)}, buf)  # zip: archive/data.pkl inside
    out["zip"] = buf.getvalue()
    with zipfile.ZipFile(io.BytesIO(out["zip"])) as z:
        inner = next(n for n in z.namelist() if n.endswith("data.pkl"))
        _assert_is_payload(z.read(inner), marker)
    buf = io.BytesIO()
    torch.save({"state_dict": Payload(marker)}, buf, _use_new_zipfile_serialization=False)
    out["legacy"] = buf.getvalue()
    assert out["legacy"][:1] == b"\x80"
    out["protocol0"] = pickle.dumps(Payload(marker), protocol=0)  # starts "c_io\nopen": no magic
    _assert_is_payload(out["protocol0"], marker)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("hostile")
    run = root / "RUN"
    proc = subprocess.run([*animegan_command(), "train", *TRAIN_ARGS, "--eval-every", "0", "--out",
                           str(run)],
                          capture_output=True, text=True, timeout=300, env=CHILD_ENV)
    assert proc.returncode == 0, proc.stderr
    marker = root / f"PWNED-{uuid.uuid4().hex}"
    import numpy as np

    from animegan_cli.data.demo import render_face
    from animegan_cli.data.packed import DatasetWriter

    writer = DatasetWriter(root / "dataset", 32)
    for i in range(16):
        writer.append(np.asarray(render_face(i, 32)))
    writer.commit({"source": {"root": "demo", "signature": "hostile-test"}}, None)
    return World(root, (run / "checkpoints" / "last.safetensors").read_bytes(),
                 (run / "generator.safetensors").read_bytes(), marker, _make_pickles(marker),
                 root / "dataset")


# ---- the cases ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[World, Path], None]  # create the hostile thing at the given path
    suffix: str = ".safetensors"
    commands: tuple[str, ...] | None = None  # None: every command


def file_case(name: str, content: Callable[[World], bytes], **kw: Any) -> Case:
    return Case(name, lambda w, p: p.write_bytes(content(w)), **kw)


def _truncate(where: Callable[[int, int], int]) -> Callable[[World], bytes]:
    def content(w: World) -> bytes:
        (n,) = struct.unpack("<Q", w.full[:8])
        return w.full[:where(n, len(w.full))]
    return content


TRUNCATIONS = {  # name -> offset from (header length n, file size)
    "in-length-field": lambda n, size: 3,
    "after-length-field": lambda n, size: 8,
    "header-quarter": lambda n, size: 8 + n // 4,
    "header-half": lambda n, size: 8 + n // 2,
    "header-last-byte": lambda n, size: 8 + n - 1,
    "header-only": lambda n, size: 8 + n,
    "data-half": lambda n, size: (8 + n + size) // 2,
    "data-last-byte": lambda n, size: size - 1,
}


def _entries(w: World) -> tuple[dict[str, Any], bytes, list[str]]:
    """The header, the data, and the tensor names in data order."""
    header, data = split(w.full)
    names = sorted((k for k in header if k != "__metadata__"),
                   key=lambda k: header[k]["data_offsets"])
    return header, data, names


def _out_of_range(w: World) -> bytes:
    header, data, names = _entries(w)
    header[names[-1]]["data_offsets"][1] = len(data) + 4096
    return assemble(header, data)


def _overlap(w: World) -> bytes:
    header, data, names = _entries(w)
    # Point the last tensor at the same bytes as an earlier tensor of the same size.
    last = header[names[-1]]
    size = last["data_offsets"][1] - last["data_offsets"][0]
    twin = next(k for k in names[:-1]
                if header[k]["data_offsets"][1] - header[k]["data_offsets"][0] == size)
    last["data_offsets"] = list(header[twin]["data_offsets"])
    return assemble(header, data[:len(data) - size])


def _gap(w: World) -> bytes:
    header, data, names = _entries(w)
    for k in names:
        header[k]["data_offsets"] = [o + 16 for o in header[k]["data_offsets"]]
    return assemble(header, b"\0" * 16 + data)


def _header_patch(old: bytes, new: bytes) -> Callable[[World], bytes]:
    def content(w: World) -> bytes:
        header, data = split(w.full)
        raw = json.dumps(header).encode()
        assert old in raw
        return assemble(raw.replace(old, new, 1), data)
    return content


def _retype(dtype: str, itemsize: int) -> Callable[[World], bytes]:
    def content(w: World) -> bytes:
        tensors, meta = unpack(w.full)
        for name, (old, shape, data) in list(tensors.items()):
            if name.startswith(("G/", "G_ema/", "D/")) and name.endswith("weight") and old == "F32":
                count = len(data) // 4
                tensors[name] = (dtype, shape, b"\x01" * (count * itemsize))
        return pack(tensors, meta)
    return content


def _reshape(w: World) -> bytes:
    tensors, meta = unpack(w.full)
    for prefix in ("G", "G_ema"):
        dtype, shape, data = tensors[f"{prefix}/net.0.weight"]
        tensors[f"{prefix}/net.0.weight"] = (dtype, list(reversed(shape)), data)
    return pack(tensors, meta)


def _drop(*names: str) -> Callable[[World], bytes]:
    def content(w: World) -> bytes:
        tensors, meta = unpack(w.full)
        for name in names:
            del tensors[name]
        return pack(tensors, meta)
    return content


def _drop_generators(w: World) -> bytes:
    tensors, meta = unpack(w.full)
    return pack({k: v for k, v in tensors.items() if not k.startswith(("G/", "G_ema/"))}, meta)


def _extra(w: World) -> bytes:
    tensors, meta = unpack(w.full)
    for prefix in ("G", "G_ema", "D"):
        tensors[f"{prefix}/net.99.weight"] = ("F32", [4], b"\0" * 16)
    return pack(tensors, meta)


def _shape_overflow(w: World) -> bytes:
    # 2**39 * 2**39 overflows 64 bits before the 0 makes the product 0: Python's math.prod
    # says 0 bytes, the Rust reader refuses the file. Named outside every prefix we load.
    tensors, meta = unpack(w.full)
    tensors["junk"] = ("F32", [2**39, 2**39, 0], b"")
    return pack(tensors, meta)


def _largest_network(w: World) -> bytes:
    """Valid widths, the largest network a config may declare (~11 GiB for G), in a 1 MB file.

    Consistent in every field a resume checks first: model and training config agree, and the
    dataset fingerprint is that of the 128 px demo set, which anyone can compute.
    """
    from animegan_cli.data.demo import demo_array

    blob = w.with_network(ngf=1024, ndf=1024, nz=1024, image_size=128)
    tensors, meta = unpack(blob)
    meta["dataset_fingerprint"] = hashlib.sha256(demo_array(64, 128).tobytes()).hexdigest()
    return pack(tensors, meta)


def _not_animegan(w: World) -> bytes:
    return pack({"weight": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))},
                {"format": "pt"})


def _sparse(w: World, p: Path) -> None:
    p.write_bytes(w.full)
    os.truncate(p, 64 * 2**30)  # 64 GiB, almost all of it a hole


def _zip(w: World) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/weights.txt", "0.1 0.2 0.3\n" * 100)
    return buf.getvalue()


def _symlink_to(target: str) -> Callable[[World, Path], None]:
    return lambda w, p: p.symlink_to(target)


TEN_MB = "x" * (10 * 2**20)
TRAIN_ONLY = ("train-resume", "train-resume-bare")

CASES: list[Case] = [
    file_case("empty", lambda w: b""),
    *(file_case(f"truncated-{name}", _truncate(where)) for name, where in TRUNCATIONS.items()),
    file_case("header-length-terabytes", lambda w: struct.pack("<Q", 2**42) + w.full[8:]),
    file_case("header-length-max-u64", lambda w: b"\xff" * 8 + w.full[8:]),
    file_case("header-not-json", lambda w: assemble(b"this is not json {", split(w.full)[1])),
    file_case("header-not-utf8", lambda w: assemble(b'{"\xff\xfe": 1}', b"")),
    file_case("header-deeply-nested-list", lambda w: assemble(b"[" * 100_000, b"")),
    file_case("header-deeply-nested-object", lambda w: assemble(b'{"a":' * 100_000, b"")),
    file_case("header-not-an-object", lambda w: assemble(b"[1, 2, 3]", b"")),
    file_case("header-empty-object", lambda w: assemble(b"{}", b"")),
    file_case("header-nan", _header_patch(b'"dtype": "F32"', b'"dtype": "F32", "x": NaN')),
    file_case("header-duplicate-field", _header_patch(b'"dtype": "F32"',
                                                      b'"dtype": "I8", "dtype": "F32"')),
    file_case("offsets-out-of-range", _out_of_range),
    file_case("offsets-overlap", _overlap),
    file_case("offsets-gap", _gap),
    file_case("trailing-bytes", lambda w: w.full + b"\0" * 64),
    Case("sparse-64GiB", _sparse),
    file_case("shape-overflow", _shape_overflow),
    file_case("dtype-int8", _retype("I8", 1)),
    file_case("dtype-float64", _retype("F64", 8)),
    file_case("dtype-unknown", _header_patch(b'"dtype": "F32"', b'"dtype": "F4_E2M1"')),
    file_case("wrong-shape", _reshape),
    file_case("missing-tensor", _drop("G/net.0.weight", "G_ema/net.0.weight")),
    file_case("missing-generator", _drop_generators),
    file_case("extra-tensors", _extra),
    file_case("metadata-huge-model-config", lambda w: w.with_model(arch=TEN_MB)),
    file_case("metadata-huge-version", lambda w: w.with_meta(format_version=TEN_MB)),
    file_case("metadata-not-utf8", _header_patch(b'"format": "animegan-checkpoint"',
                                                 b'"format": "animegan-\xff\xfe"')),
    file_case("metadata-lone-surrogate", lambda w: w.with_meta(created="\ud800")),
    file_case("metadata-control-characters",
              lambda w: w.with_meta(dataset_fingerprint="abc\nanimegan: error: forged\x1b[2J")),
    file_case("metadata-not-strings", _header_patch(b'"__metadata__": {',
                                                    b'"__metadata__": {"steps": 5, ')),
    file_case("metadata-duplicate-key", _header_patch(b'"__metadata__": {',
                                                      b'"__metadata__": {"step": "5", ')),
    file_case("metadata-unknown-architecture", lambda w: w.with_model(arch="stylegan9")),
    file_case("metadata-giant-width", lambda w: w.with_model(ngf=10**9)),
    file_case("metadata-model-newline-field", lambda w: w.with_model(**{"a\nanimegan: b": 1})),
    file_case("metadata-model-not-json", lambda w: w.with_meta(model="{")),
    file_case("metadata-model-deeply-nested", lambda w: w.with_meta(model="[" * 100_000)),
    file_case("metadata-largest-network-tiny-file", _largest_network),
    file_case("metadata-format-version-2", lambda w: w.with_meta(format_version="2")),
    file_case("metadata-unknown-kind", lambda w: w.with_meta(kind="optimizer")),
    file_case("metadata-no-format", lambda w: pack(unpack(w.full)[0], None)),
    file_case("metadata-step-negative", lambda w: w.with_meta(step="-5"), commands=TRAIN_ONLY),
    file_case("metadata-lr-huge-string",
              lambda w: w.with_meta(lr=json.dumps({"opt_g": "x" * 100_000})),
              commands=TRAIN_ONLY),
    file_case("train-config-not-object", lambda w: w.with_meta(train_config="[1]"),
              commands=TRAIN_ONLY),
    file_case("train-config-wrong-type", lambda w: w.with_train_config(lr_g="fast"),
              commands=TRAIN_ONLY),
    file_case("train-config-seed-overflow", lambda w: w.with_train_config(seed=10**30),
              commands=TRAIN_ONLY),
    file_case("generator-only-for-resume", lambda w: w.generator, commands=TRAIN_ONLY),
    file_case("pickle-torch-zip", lambda w: w.pickles["zip"], suffix=".pt"),
    file_case("pickle-torch-legacy", lambda w: w.pickles["legacy"], suffix=".pt"),
    file_case("pickle-protocol-0", lambda w: w.pickles["protocol0"], suffix=".pkl"),
    file_case("zip", _zip, suffix=".zip"),
    Case("directory", lambda w, p: p.mkdir()),
    Case("fifo", lambda w, p: os.mkfifo(p)),
    Case("dev-zero", _symlink_to("/dev/zero")),
    Case("symlink-to-dev-zero", _symlink_to("/dev/zero")),
    Case("symlink-to-proc-self-mem", _symlink_to("/proc/self/mem")),
    # A dangling last.safetensors simply starts a new run, so only for commands given a path.
    Case("dangling-symlink", _symlink_to("/nonexistent/animegan/ckpt.safetensors"),
         commands=("sample", "info", "eval")),
    file_case("safetensors-not-animegan", _not_animegan),
]

# ---- the commands ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """`argv(world, case_dir, hostile_path)`; `place` says where the hostile file must be."""

    name: str
    argv: Callable[[World, Path, Path], list[str]]
    place: Callable[[Path, Case], Path]
    outputs: Callable[[Path], list[Path]] = field(default=lambda d: [])


def _given_path(d: Path, case: Case) -> Path:
    return d / f"hostile{case.suffix}"


def _resume_path(d: Path, case: Case) -> Path:
    return d / "RUN2" / "checkpoints" / "last.safetensors"


def _run_outputs(d: Path) -> list[Path]:
    return [d / "RUN2" / "generator.safetensors", d / "RUN2" / "metrics.jsonl",
            d / "RUN2" / "samples" / "epoch_0001.png"]


COMMANDS = [
    Command("sample", lambda w, d, f: ["sample", str(f), "-n", "4", "-o", str(d / "out.png")],
            _given_path, lambda d: [d / "out.png"]),
    # Re-running the same command on a run folder resumes it.
    Command("train-resume", lambda w, d, f: ["train", *TRAIN_ARGS, "--out", str(d / "RUN2")],
            _resume_path, _run_outputs),
    # ... and so does a bare re-run, which takes everything else from the checkpoint.
    Command("train-resume-bare", lambda w, d, f: ["train", "--demo", "64",
                                                  "--out", str(d / "RUN2")],
            _resume_path, _run_outputs),
]
if _command_exists("info"):
    COMMANDS.append(Command("info", lambda w, d, f: ["info", str(f)], _given_path))
if _command_exists("eval"):
    # FID would load Inception for every case (slow on a CPU): SWD reads the same checkpoint.
    COMMANDS.append(Command("eval", lambda w, d, f: ["eval", str(f), str(w.dataset), "--no-fid",
                                                     "-n", "16"], _given_path))

# Also run as real `animegan` processes (the rest run in one batch process per command).
REAL_SUBPROCESS = {
    "sample": ("metadata-largest-network-tiny-file",),
    "train-resume": ("offsets-gap",),
    "train-resume-bare": ("header-length-terabytes",),
    "info": ("pickle-torch-zip",),
    "eval": ("pickle-torch-zip",),
}


def _pairs() -> list[Any]:
    params = []
    for command in COMMANDS:
        for case in CASES:
            if case.commands is not None and command.name not in case.commands:
                continue
            params.append(pytest.param(command, case, id=f"{command.name}-{case.name}"))
    return params


PAIRS = _pairs()
REAL_PAIRS = [p for p in PAIRS
              if p.values[1].name in REAL_SUBPROCESS.get(p.values[0].name, ())]


# ---- running --------------------------------------------------------------------------------

@dataclass
class Outcome:
    code: int | str
    stdout: str
    stderr: str
    peak_kib: int | None  # whole-process peak RSS, or one case's growth inside a batch
    seconds: float

    def __repr__(self) -> str:
        return (f"exit {self.code} in {self.seconds:.1f}s, peak {self.peak_kib} KiB\n"
                f"stdout: {self.stdout[:2000]!r}\nstderr: {self.stderr[:2000]!r}")


BATCH_RUNNER = Path(__file__).with_name("children") / "batch_runner.py"


def _prepare(world: World, command: Command, case: Case, base: Path
             ) -> tuple[Path, Path, list[str]]:
    d = base / case.name
    d.mkdir(parents=True)
    target = command.place(d, case)
    target.parent.mkdir(parents=True, exist_ok=True)
    case.make(world, target)
    if case.name == "dev-zero" and command.place is _given_path:
        target.unlink()
        target = Path("/dev/zero")  # the device itself, for commands that take a path
    return d, target, command.argv(world, d, target)


def _fingerprint(path: Path) -> str:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    if stat.S_ISLNK(st.st_mode):
        return f"link -> {os.readlink(path)}"
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                if f.tell() > 64 * 2**20:  # the sparse file: its size and head will do
                    h.update(str(st.st_size).encode())
                    break
        return h.hexdigest()
    return f"mode {stat.S_IFMT(st.st_mode):o}"


@dataclass
class Prepared:
    dir: Path
    target: Path
    argv: list[str]
    before: str  # _fingerprint(target) before the command ran


@dataclass
class Process:
    """One child to run under the memory limit; `wait4` gives its own peak RSS."""

    argv: list[str]
    cwd: Path
    log: Path  # stdout and stderr
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    code: int | str | None = None
    peak_kib: int = 0
    seconds: float = 0.0

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, cwd=self.cwd,
                                         stdin=subprocess.DEVNULL, env=CHILD_ENV,
                                         preexec_fn=_limit_memory)
        self.started = time.monotonic()

    def poll(self, timeout: float) -> bool:
        assert self.proc is not None
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if not pid and time.monotonic() - self.started > timeout:
            self.proc.kill()
            pid, status, usage = os.wait4(self.proc.pid, 0)
            self.code = f"timed out after {timeout:.0f}s"
        if not pid:
            return False
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.code = self.code or self.proc.returncode
        self.peak_kib, self.seconds = usage.ru_maxrss, time.monotonic() - self.started
        return True


def run_all(processes: list[Process], parallel: int = 2, timeout: float = 300) -> None:
    pending, running = list(processes), []
    while pending or running:
        while pending and len(running) < parallel:
            pending[0].start()
            running.append(pending.pop(0))
        running = [p for p in running if not p.poll(timeout)]
        time.sleep(0.02)


@dataclass
class Results:
    batch: dict[tuple[str, str], tuple[Prepared, Outcome]]
    real: dict[tuple[str, str], tuple[Prepared, Outcome]]


CONTROL = Case("control-valid", lambda w, p: p.write_bytes(w.full))


@pytest.fixture(scope="module")
def results(world: World) -> Results:
    """Run everything once, side by side: one batch process per command that goes through
    every case, then the REAL_SUBPROCESS cases as real `animegan` processes."""
    batches = []
    for command in COMMANDS:
        # A valid checkpoint first: it imports everything (so each case's growth is measured
        # warm) and proves the harness, memory limit included, lets a normal run succeed.
        cases = [CONTROL] + [c for c in CASES if c.commands is None or command.name in c.commands]
        base = world.root / "batch" / command.name
        jobs, prepared = [], {}
        for case in cases:
            d, target, argv = _prepare(world, command, case, base)
            prepared[case.name] = Prepared(d, target, argv, _fingerprint(target))
            jobs.append({"id": case.name, "argv": argv, "cwd": str(d),
                         "stdout": str(d / "stdout.txt"), "stderr": str(d / "stderr.txt")})
        (base / "jobs.json").write_text(json.dumps(jobs))
        process = Process([sys.executable, str(BATCH_RUNNER), str(base / "jobs.json"),
                           str(base / "results.jsonl")], base, base / "runner.log")
        batches.append((command, prepared, process))
    reals = []
    for param in REAL_PAIRS:
        command, case = param.values
        d, target, argv = _prepare(world, command, case, world.root / "real" / command.name)
        reals.append((command, case, Prepared(d, target, argv, _fingerprint(target)),
                      Process([*animegan_command(), *argv], d, d / "output.txt")))
    # stdout and stderr of a real process share one file: the test wants stdout empty anyway.
    run_all([b[2] for b in batches] + [r[3] for r in reals])

    out = Results({}, {})
    for command, prepared, process in batches:
        log = process.cwd / "results.jsonl"
        done = {}
        if log.exists():
            done = {r["id"]: r for r in map(json.loads, log.read_text().splitlines())}
        for name, p in prepared.items():
            record = done.get(name)
            if record is None:  # the first job without a record took the process down
                outcome = Outcome(f"batch process ended ({process.code}) at or before this "
                                  "case", "", process.log.read_text(errors="replace")[-3000:],
                                  None, process.seconds)
            else:
                outcome = Outcome(record["code"],
                                  (p.dir / "stdout.txt").read_text(errors="replace"),
                                  (p.dir / "stderr.txt").read_text(errors="replace"),
                                  record["growth"], record["seconds"])
            out.batch[command.name, name] = (p, outcome)
    for command, case, p, process in reals:
        text = process.log.read_text(errors="replace")
        out.real[command.name, case.name] = (p, Outcome(process.code or 0, "", text,
                                                        process.peak_kib, process.seconds))
    return out


# ---- the checks -----------------------------------------------------------------------------

def assert_refused(world: World, command: Command, p: Prepared, outcome: Outcome,
                   peak_limit: int) -> None:
    assert outcome.code == 2, outcome
    assert "Traceback" not in outcome.stderr, outcome
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and outcome.stderr.endswith("\n"), outcome
    assert lines[0].startswith("animegan: error: "), outcome
    assert len(lines[0]) <= MAX_ERROR_CHARS, f"{len(lines[0])} characters: {outcome}"
    assert outcome.stdout == "", outcome
    assert outcome.peak_kib is None or outcome.peak_kib <= peak_limit, outcome
    assert not world.marker.exists(), "a pickle payload was unpickled"
    assert _fingerprint(p.target) == p.before, "the hostile file was changed or removed"
    for path in command.outputs(p.dir):
        assert not path.exists(), f"{path} was written for a refused checkpoint"
    leftovers = list(p.dir.rglob(".*.partial"))
    assert not leftovers, leftovers


def test_the_pickle_payloads_are_real(world: World) -> None:
    """The payloads were checked statically (pickletools) when built; never unpickled."""
    assert set(world.pickles) == {"zip", "legacy", "protocol0"}
    assert not world.marker.exists()


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_valid_checkpoint_works_under_the_same_limits(results: Results,
                                                      command: Command) -> None:
    p, outcome = results.batch[command.name, CONTROL.name]
    assert outcome.code == 0, outcome
    assert "Traceback" not in outcome.stderr, outcome


@pytest.mark.parametrize(("command", "case"), PAIRS)
def test_hostile_checkpoint_is_refused(world: World, results: Results, command: Command,
                                       case: Case) -> None:
    p, outcome = results.batch[command.name, case.name]
    assert_refused(world, command, p, outcome, MAX_CASE_GROWTH_KIB)


@pytest.mark.parametrize(("command", "case"), REAL_PAIRS)
def test_hostile_checkpoint_is_refused_by_the_real_command(world: World, results: Results,
                                                           command: Command,
                                                           case: Case) -> None:
    p, outcome = results.real[command.name, case.name]
    assert_refused(world, command, p, outcome, MAX_PROCESS_RSS_KIB)


def test_every_command_has_a_real_subprocess_and_enough_cases() -> None:
    assert {"sample", "train-resume"} <= {c.name for c in COMMANDS}
    assert {c.name for c in COMMANDS} <= {p.values[0].name for p in REAL_PAIRS}
    assert len({c.name for c in CASES}) == len(CASES) >= 50


def test_no_payload_ran_at_the_end(world: World) -> None:
    assert not world.marker.exists()
