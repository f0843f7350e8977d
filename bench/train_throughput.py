"""Training throughput: `animegan train` against the standard PyTorch DCGAN pipeline.

    python bench/train_throughput.py                        # CPU: ~5 min idle, ~10 busy
    python bench/train_throughput.py --steps 25 --repeats 5 # steadier figures, ~3x longer
    python bench/train_throughput.py --diagnose             # + variants p, pcl, b16
    python bench/train_throughput.py --profile              # op profiles + interleaved steps
    python bench/train_throughput.py --device cuda          # GPU defaults: 16,384 images,
                                                            #   20 warm-up + 200 timed steps

All variants train the same networks (animegan_cli.models.build(ModelConfig()): canonical DCGAN,
ngf = ndf = 64, 64x64, DCGAN initialisation) at the same batch size on the same folder of small
JPEGs (root/class0/*.jpg, ~96 px, in the page cache):

  a  pytorch/examples/dcgan/main.py, written out here: ImageFolder + Resize/CenterCrop/ToTensor/
     Normalize, DataLoader(num_workers=2, shuffle=True), nn.BCELoss on torch.sigmoid(D(x))
     (main.py's D ends in nn.Sigmoid; ours returns logits, so the sigmoid is applied outside),
     Adam(2e-4, betas=(0.5, 0.999)), three backward passes per step, the five `.item()` calls and
     the progress line main.py prints every step (to the log file here). NCHW, fp32,
     cudnn.benchmark as main.py sets it. Not included: main.py's image dump every 100 steps.
  b  the real engine: Trainer(make_plan(RunRequest(prepared dataset, batch size, max_steps,
     device)), ...).fit(on_step=the clock), i.e. `animegan train` with its defaults for the
     device (EMA, channels_last, bf16 autocast on CUDA, feeder without DataLoader, progress
     display, metrics.jsonl). The dataset is prepared once beforehand (not timed).
  c  the compute ceiling: the engine's Trainer.train_step on one random batch already on the
     device, nothing else.
  with --diagnose:
  p  the plain step of `a` (same math, NCHW) on a random batch on the device: a minus p is the
     cost of the DataLoader and the .item() syncs.
  pcl  p with the model and the batch in channels_last.
  b16  b with --precision bf16 (opt-in on a CPU: worth it where the CPU has AVX512-BF16 or
     AMX; slower where bf16 is emulated).

Timing: each variant runs in a fresh child process and times `--steps` steps after `--warmup`
untimed ones, all inside one epoch (so the DataLoader does not restart and the engine writes no
end-of-epoch samples or checkpoints). A step is timed from the end of the previous one, so the
loop's own work between steps (fetching the batch, logging) is in it.
On CPU the variants run in lockstep by default: all child processes start together, then
exactly one of them computes at a time, one step each in turn (the order rotating), and time
spent waiting for the turn is not counted. Other people's jobs on a shared machine then slow
every variant alike, instead of whichever ran during a busy minute. One bias: a's DataLoader
workers keep decoding while a waits for its turn (prefetch), so up to ~3% of a's data work is
hidden in the other variants' steps. `--sequential` runs the variants one after the other
(always so on a GPU, where the clock synchronises the device only at the window's ends).
Medians of `--repeats`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
CPU_TARGETS = {"b/a": 1.2}
CUDA_TARGETS = {"b/a": 10.0, "b/c": 0.8}


# ---- helpers for the children ----------------------------------------------------------------

class Clock:
    """Times the steps after `warmup` untimed ones; `tick()` is called at the end of each step.

    A step's time runs from the end of the previous step (or, in lockstep mode, from the moment
    this process was allowed to continue) to its own end, so it includes everything the
    training loop does between two steps: fetching the batch, logging, bookkeeping.

    Lockstep (CPU): the driver runs all variants at once and lets exactly one of them compute
    at a time, one step each in turn, so every variant sees the same machine load at the
    granularity of one step; the time spent waiting for its turn is not counted.
    """

    def __init__(self, device, warmup: int, steps: int, lockstep: bool = False) -> None:  # noqa: ANN001
        self.device, self.warmup, self.steps, self.lockstep = device, warmup, steps, lockstep
        self.ticks = 0
        self.durations: list[float] = []
        self.resumed = time.perf_counter()

    def _sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def tick(self) -> bool:
        """Call after each step; True when the timed steps are done."""
        self.ticks += 1
        timed = self.warmup < self.ticks <= self.warmup + self.steps
        if self.lockstep or self.ticks in (self.warmup, self.warmup + self.steps):
            self._sync()
        end = time.perf_counter()
        if timed:
            self.durations.append(end - self.resumed)
        if self.lockstep and self.ticks <= self.warmup + self.steps:
            sys.stdout.write("done\n")
            sys.stdout.flush()
            if not sys.stdin.readline():
                raise SystemExit("lockstep driver went away")
            end = time.perf_counter()
        self.resumed = end
        return self.ticks >= self.warmup + self.steps

    def result(self, batch: int) -> dict:
        assert len(self.durations) == self.steps, "not enough steps ran"
        seconds = sum(self.durations)
        ordered = sorted(self.durations)
        return {"seconds": seconds, "steps": self.steps, "images": self.steps * batch,
                "images_per_s": self.steps * batch / seconds,
                "median_step_images_per_s": batch / ordered[len(ordered) // 2],
                "best_step_images_per_s": batch / ordered[0]}


def _device(name: str):  # noqa: ANN202
    import torch

    from animegan_cli.device import select_device

    dev = select_device(name)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return dev


def _plain_models(device, channels_last: bool):  # noqa: ANN001, ANN202
    import torch

    from animegan_cli.models import ModelConfig, build

    g, d = build(ModelConfig(), device)
    if channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return g, d, opt_g, opt_d


def _main_py_step(real, g, d, opt_g, opt_d, criterion, nz: int, items: bool):  # noqa: ANN001, ANN202
    """One iteration of pytorch/examples/dcgan/main.py (D: real then fake; G: fake)."""
    import torch

    real_label, fake_label = 1.0, 0.0
    d.zero_grad()
    b = real.size(0)
    label = torch.full((b,), real_label, dtype=real.dtype, device=real.device)
    output = torch.sigmoid(d(real))
    err_d_real = criterion(output, label)
    err_d_real.backward()
    d_x = output.mean().item() if items else None
    noise = torch.randn(b, nz, 1, 1, device=real.device)
    fake = g(noise)
    label.fill_(fake_label)
    output = torch.sigmoid(d(fake.detach()))
    err_d_fake = criterion(output, label)
    err_d_fake.backward()
    d_g_z1 = output.mean().item() if items else None
    err_d = err_d_real + err_d_fake
    opt_d.step()
    g.zero_grad()
    label.fill_(real_label)
    output = torch.sigmoid(d(fake))
    err_g = criterion(output, label)
    err_g.backward()
    d_g_z2 = output.mean().item() if items else None
    opt_g.step()
    if items:
        return err_d.item(), err_g.item(), d_x, d_g_z1, d_g_z2
    return None


# ---- the variants ----------------------------------------------------------------------------

def variant_a(args: argparse.Namespace) -> dict:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(args.seed)
    device = _device(args.device)
    dataset = datasets.ImageFolder(root=str(args.root), transform=transforms.Compose([
        transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=2)
    g, d, opt_g, opt_d = _plain_models(device, channels_last=False)
    criterion = nn.BCELoss()
    clock = Clock(device, args.warmup, args.steps, args.lockstep)
    for i, data in enumerate(loader):
        real = data[0].to(device)
        err_d, err_g, d_x, d_g_z1, d_g_z2 = _main_py_step(real, g, d, opt_g, opt_d, criterion,
                                                          100, items=True)
        print(f"[0/1][{i}/{len(loader)}] Loss_D: {err_d:.4f} Loss_G: {err_g:.4f} "
              f"D(x): {d_x:.4f} D(G(z)): {d_g_z1:.4f} / {d_g_z2:.4f}", file=sys.stderr)
        if clock.tick():
            break
    return clock.result(args.batch_size)


def _engine(args: argparse.Namespace, max_steps: int, precision: str | None = None):  # noqa: ANN202
    """A built Trainer (common.engine_trainer); `precision` forces one."""
    options = {"batch_size": args.batch_size, "max_steps": max_steps, "device": args.device,
               "seed": args.seed, **({"precision": precision} if precision else {})}
    return common.engine_trainer(args.dataset, args.out, options)


def variant_b(args: argparse.Namespace, precision: str | None = None) -> dict:
    trainer = _engine(args, args.warmup + args.steps, precision)
    clock = Clock(trainer.device, args.warmup, args.steps, args.lockstep)
    summary = trainer.fit(on_step=clock.tick)
    out = clock.result(args.batch_size)
    out["engine_summary_images_per_s"] = summary.images_per_second
    out["precision"] = trainer.precision
    out["placement"] = trainer.feeder.placement
    shutil.rmtree(args.out, ignore_errors=True)
    return out


def variant_b16(args: argparse.Namespace) -> dict:
    """Experiment: b with bf16 autocast forced (useful where the CPU has AVX512-BF16 or AMX)."""
    return variant_b(args, "bf16")


def variant_c(args: argparse.Namespace) -> dict:
    import torch

    trainer = _engine(args, args.warmup + args.steps)
    gen = torch.Generator(device=trainer.device).manual_seed(1)
    real = (torch.rand(args.batch_size, 3, 64, 64, device=trainer.device, generator=gen) * 2 - 1)
    real = real.contiguous(memory_format=torch.channels_last)
    clock = Clock(trainer.device, args.warmup, args.steps, args.lockstep)
    done = False
    while not done:
        common.engine_step(trainer, real)
        done = clock.tick()
    out = clock.result(args.batch_size)
    shutil.rmtree(args.out, ignore_errors=True)
    return out


def _variant_plain(args: argparse.Namespace, channels_last: bool) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    device = _device(args.device)
    g, d, opt_g, opt_d = _plain_models(device, channels_last)
    real = torch.rand(args.batch_size, 3, 64, 64, device=device) * 2 - 1
    if channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    criterion = nn.BCELoss()
    clock = Clock(device, args.warmup, args.steps, args.lockstep)
    done = False
    while not done:
        _main_py_step(real, g, d, opt_g, opt_d, criterion, 100, items=False)
        done = clock.tick()
    return clock.result(args.batch_size)


def variant_p(args: argparse.Namespace) -> dict:
    return _variant_plain(args, channels_last=False)


def variant_pcl(args: argparse.Namespace) -> dict:
    return _variant_plain(args, channels_last=True)


VARIANTS = {"a": variant_a, "b": variant_b, "c": variant_c, "p": variant_p, "pcl": variant_pcl,
            "b16": variant_b16}
LABELS = {"a": "a: pytorch/examples dcgan main.py pipeline",
          "b": "b: animegan train (engine, defaults)",
          "c": "c: engine train_step on a batch on the device",
          "p": "p: main.py step on a batch on the device (NCHW)",
          "pcl": "pcl: p in channels_last",
          "b16": "b16: b with bf16 autocast forced (experiment; the engine refuses it on CPU)"}


def profile(args: argparse.Namespace) -> dict:
    """torch.profiler tables for the engine's step and the plain main.py step (random data)."""
    import torch
    from torch import nn
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    trainer = _engine(args, 100)
    device = trainer.device
    real = (torch.rand(args.batch_size, 3, 64, 64, device=device) * 2 - 1)
    real_cl = real.contiguous(memory_format=torch.channels_last)
    g, d, opt_g, opt_d = _plain_models(device, channels_last=False)
    criterion = nn.BCELoss()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == "cuda" else [])
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    tables = {}
    steps = {"engine": lambda: trainer.train_step(real_cl),
             "plain": lambda: _main_py_step(real, g, d, opt_g, opt_d, criterion, 100, False)}
    for name, fn in steps.items():
        for _ in range(3):
            fn()
        with tprofile(activities=activities) as prof:
            for _ in range(5):
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
        tables[name] = prof.key_averages().table(sort_by=sort, row_limit=22)
    tables["interleaved"] = _interleaved_steps(args, trainer, real, real_cl)
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.rmtree(args.out.with_name("profile-bf16"), ignore_errors=True)
    return tables


def _interleaved_steps(args: argparse.Namespace, trainer, real, real_cl) -> str:  # noqa: ANN001
    """One step of each variant in turn, `rounds` times: every variant sees the same load."""
    import statistics

    import torch
    import torch.nn.functional as F
    from torch import nn

    device = trainer.device
    criterion = nn.BCELoss()
    plain = _plain_models(device, channels_last=False)
    plain_cl = _plain_models(device, channels_last=True)
    g, d, opt_g, opt_d = _plain_models(device, channels_last=True)
    nchw = _plain_models(device, channels_last=False)

    def recipe(models=(g, d, opt_g, opt_d), x=real_cl, freeze: bool = True) -> None:  # noqa: ANN001
        """The engine's recipe without EMA: channels_last, logits + softplus, D frozen for G."""
        g_, d_, opt_g_, opt_d_ = models
        z = torch.randn(x.shape[0], 100, device=device)
        fake = g_(z)
        loss_d = F.softplus(-d_(x)).mean() + F.softplus(d_(fake.detach())).mean()
        opt_d_.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d_.step()
        d_.requires_grad_(not freeze)
        loss_g = F.softplus(-d_(fake)).mean()
        opt_g_.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g_.step()
        d_.requires_grad_(True)

    steps = {
        "p  main.py step, NCHW": lambda: _main_py_step(real, *plain, criterion, 100, False),
        "pcl  main.py step, channels_last": lambda: _main_py_step(real_cl, *plain_cl,
                                                                  criterion, 100, False),
        "engine recipe, no EMA, D not frozen": lambda: recipe(freeze=False),
        "engine recipe, no EMA (D frozen for G)": recipe,
        "engine recipe, no EMA, NCHW": lambda: recipe(nchw, real),
        "c  engine Trainer.train_step": lambda: trainer.train_step(real_cl),
    }
    if trainer.precision == "fp32":
        args16 = argparse.Namespace(**{**vars(args), "out": args.out.with_name("profile-bf16")})
        trainer16 = _engine(args16, 100, "bf16")
        steps["c16  engine train_step, bf16 autocast forced"] = \
            lambda: trainer16.train_step(real_cl)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    for fn in steps.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times[next(iter(steps))])
    lines = [f"{args.rounds} rounds, one step of each in turn, batch {args.batch_size}:",
             f"{'step':42s} {'median ms':>10s} {'images/s':>9s} {'vs p':>6s}"]
    for name, ts in times.items():
        m = statistics.median(ts)
        lines.append(f"{name:42s} {1e3 * m:10.1f} {args.batch_size / m:9.1f} {base / m:6.2f}")
    return "\n".join(lines)


# ---- the driver ------------------------------------------------------------------------------

def run_lockstep(runs: dict[str, list[str]], ticks: int, log: Path) -> dict[str, dict]:
    """Start every variant at once; then let them take one step each in turn (the order
    rotating every round) until each has done `ticks` steps; collect their JSON results."""
    import subprocess

    with open(log, "ab") as err:
        procs = {v: subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=err, cwd=common.REPO)
                 for v, argv in runs.items()}
        try:
            names = list(procs)
            for r in range(ticks):
                order = names[r % len(names):] + names[:r % len(names)]
                for v in order:
                    p = procs[v]
                    if r > 0:
                        p.stdin.write(b"go\n")
                        p.stdin.flush()
                    if p.stdout.readline().strip() != b"done":
                        raise RuntimeError(f"variant {v} failed; see {log}")
            for p in procs.values():  # release all: they finish and report
                p.stdin.write(b"go\n")
                p.stdin.flush()
            results = {}
            for v, p in procs.items():
                out, _ = p.communicate(timeout=600)
                lines = out.decode().strip().splitlines()
                if p.returncode != 0 or not lines:
                    raise RuntimeError(f"variant {v} failed with exit code {p.returncode}; "
                                       f"see {log}")
                results[v] = json.loads(lines[-1])
            return results
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=common.DEFAULT_WORKDIR)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--images", type=int, help="JPEGs in the folder (cpu: 2048, cuda: 16384)")
    ap.add_argument("--warmup", type=int, help="untimed steps (cpu: 3, cuda: 20)")
    ap.add_argument("--steps", type=int, help="timed steps (cpu: 12, cuda: 200)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", choices=("faces", "emoji"), default="faces")
    ap.add_argument("--variants", default="a,b,c", help="comma list from a,b,c,p,pcl,b16")
    ap.add_argument("--diagnose", action="store_true", help="also run p, pcl and b16")
    ap.add_argument("--profile", action="store_true",
                    help="instead: torch.profiler tables of the engine step and the plain step")
    ap.add_argument("--sequential", action="store_true",
                    help="run the variants one after the other instead of in lockstep "
                         "(always so on a GPU)")
    ap.add_argument("--lockstep", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=12,
                    help="--profile: rounds of the interleaved step comparison")
    ap.add_argument("--json", type=Path, help="also write all raw figures here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    gpu = args.device != "cpu"
    args.images = args.images or (16384 if gpu else 2048)
    args.warmup = args.warmup or (20 if gpu else 3)
    args.steps = args.steps or (200 if gpu else 12)

    if args.child:
        fn = profile if args.child == "profile" else VARIANTS[args.child]
        print(json.dumps(fn(args)))
        return

    per_epoch = args.images // args.batch_size
    if args.warmup + args.steps > per_epoch:
        sys.exit(f"--warmup + --steps ({args.warmup + args.steps}) must fit in one epoch "
                 f"({args.images} images / batch {args.batch_size} = {per_epoch} steps); "
                 "raise --images or lower --steps")
    variants = [v for v in args.variants.split(",") if v]
    if args.diagnose:
        variants += [v for v in ("p", "pcl", "b16") if v not in variants]
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    log = work / "train_throughput.log"
    root = common.build_folder(work, "small", args.images, args.source)
    dataset = work / "datasets" / f"{root.name}-64px"
    from animegan_cli.data.decode import DecodeOptions
    from animegan_cli.data.prepare import PrepareOptions, prepare

    prepare(root, dataset, PrepareOptions(DecodeOptions(size=64)))  # up to date: instant
    if args.device != "cpu":
        import torch

        available = torch.cuda.is_available() if args.device == "cuda" else \
            torch.backends.mps.is_available()
        if not available:
            sys.exit(f"--device {args.device}: no such device on this machine")
    mb = common.warm_page_cache(root) / 1e6
    command = "python bench/train_throughput.py " + " ".join(sys.argv[1:])
    print(f"# train throughput  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# machine: {common.machine_line()}")
    print(f"# reproduce: {command.strip()}")
    print(f"# device {args.device}, batch {args.batch_size}, {args.warmup} warm-up + "
          f"{args.steps} timed steps, {args.repeats} repeats; canonical dcgan 64 px, "
          f"ngf = ndf = 64")
    print(f"# images: {root} ({args.images} JPEGs, {mb:.1f} MB); prepared: {dataset}")
    print(f"# child stderr in {log}")
    for v in variants:
        print(f"#   {LABELS[v]}")
    child_args = ["--lockstep"] if args.device == "cpu" and not args.sequential else []
    child_args += ["--device", args.device, "--batch-size", str(args.batch_size),
                  "--warmup", str(args.warmup), "--steps", str(args.steps),
                  "--seed", str(args.seed), "--root", str(root), "--dataset", str(dataset),
                  "--images", str(args.images), "--rounds", str(args.rounds)]

    if args.profile:
        print(f"\n(load average {common.load_average()})")
        tables = common.run_child([SCRIPT, "--child", "profile", *child_args,
                                   "--out", str(work / "runs" / "profile")], log)
        for name, table in tables.items():
            title = "interleaved step timings" if name == "interleaved" else \
                f"{name} step: torch.profiler over 5 steps, batch {args.batch_size}"
            print(f"\n## {title}\n{table}")
        return

    lockstep = args.device == "cpu" and not args.sequential
    print(f"# mode: {'lockstep (one step of each variant in turn)' if lockstep else 'sequential'}")
    loads = [common.load_average()]
    raw: dict[str, list[float]] = {v: [] for v in variants}
    raw_step: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.repeats):
        runs = {v: [SCRIPT, "--child", v, *child_args,
                    "--out", str(work / "runs" / f"bench-{v}")] for v in variants}
        if lockstep:
            results = run_lockstep(runs, args.warmup + args.steps, log)
        else:
            results = {v: common.run_child(argv, log) for v, argv in runs.items()}
        for v in variants:
            res = results[v]
            raw[v].append(res["images_per_s"])
            raw_step[v].append(res["median_step_images_per_s"])
            extra = f"  ({res['precision']}, data in {res['placement']})" if v == "b" else ""
            print(f"  repeat {r + 1} {v:3s} {res['images']:5d} images {res['seconds']:7.2f} s "
                  f"{res['images_per_s']:8.1f} images/s  (median step "
                  f"{res['median_step_images_per_s']:6.1f}, best step "
                  f"{res['best_step_images_per_s']:6.1f})   load {common.load_average()}{extra}",
                  flush=True)
        loads.append(common.load_average())

    print(f"\nload average (1, 5, 15 min) before and after each repeat: {' | '.join(loads)}")
    med = {v: common.median(raw[v]) for v in variants}
    med_step = {v: common.median(raw_step[v]) for v in variants}
    targets = CUDA_TARGETS if args.device == "cuda" else CPU_TARGETS
    pairs = [(x, y) for x, y in (("b", "a"), ("b", "c"), ("a", "p"), ("p", "c"), ("pcl", "p"),
                                 ("c", "pcl"), ("b16", "b"), ("b16", "a"))
             if x in med and y in med]
    print(f"\nimages/s over the {args.steps} timed steps, medians of {args.repeats} runs "
          "(ratios of medians); 'median step': the same from each run's median step time\n")
    if args.device != "cpu":
        print("(on a GPU the 'median step' figures time kernel launches, not kernels: use the "
              "first column)\n")
    rows = [[LABELS[v], common.fmt(med[v]), " ".join(common.fmt(x) for x in raw[v]),
             common.fmt(med_step[v])] for v in variants]
    print(common.markdown_table(["variant", "images/s", "runs", "median step"], rows))
    print()
    rows = []
    for x, y in pairs:
        key = f"{x}/{y}"
        target = targets.get(key)
        verdict = "" if target is None else \
            f">= {target} {'met' if med[x] / med[y] >= target else 'MISSED'}"
        rows.append([key, f"{med[x] / med[y]:.2f}", f"{med_step[x] / med_step[y]:.2f}", verdict])
    print(common.markdown_table(["ratio", "value", "median step", "target"], rows))
    if args.json:
        args.json.write_text(json.dumps({"raw": raw, "raw_median_step": raw_step,
                                         "loads": loads, "command": command}, indent=1))


if __name__ == "__main__":
    main()
