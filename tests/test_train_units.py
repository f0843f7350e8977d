"""Fast in-process tests of the training core's logic: the plan's precedence and refusals,
losses at known logits, the loss step's gradients, EMA warm-up, feeder shards, retention.

Real torch on tiny networks (32 px, 8 channels); the whole file runs in a few seconds.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import torch
from torch import nn

import animegan_cli
from animegan_cli.device import cpu_has_native_bf16, resolve_precision
from animegan_cli.errors import UserError
from animegan_cli.model_config import DEFAULT_WIDTHS, ModelConfig
from animegan_cli.models import build
from animegan_cli.run_dir import RunDir
from animegan_cli.train.augment import AdaptiveAugment
from animegan_cli.train.checkpointer import Checkpointer
from animegan_cli.train.config import LOSSES, RECIPES, Recipe, TrainConfig, resolve
from animegan_cli.train.ema import EMA
from animegan_cli.train.feeder import Feeder
from animegan_cli.train.losses import LOSS_CLASSES, R1_INTERVAL, Players, make_loss
from animegan_cli.train.plan import RunRequest, make_plan, typed_learning_rates
from animegan_cli.train.report import start_line
from animegan_cli.train.state import Position, TrainingState, adam, load_full

TINY = {"image_size": 32, "ngf": 8, "ndf": 8}


def tiny_state(config: TrainConfig) -> TrainingState:
    """The engine's state for `config` on the CPU: channels_last networks, fused Adam."""
    torch.manual_seed(config.seed)
    cpu = torch.device("cpu")
    G, D = (net.to(memory_format=torch.channels_last) for net in build(config.model_config()))
    return TrainingState(
        G=G, D=D, ema=EMA(G, config.ema_half_life) if config.ema else None,
        ada=AdaptiveAugment(config.ada_target, cpu) if config.ada_target
        else None,
        opt_g=adam(G, config.lr_g, (config.beta1, config.beta2), cpu),
        opt_d=adam(D, config.lr_d, (config.beta1, config.beta2), cpu),
        scaler_g=torch.amp.GradScaler("cpu", enabled=False),
        scaler_d=torch.amp.GradScaler("cpu", enabled=False),
        noise_gen=torch.Generator().manual_seed(1), fixed_noise=torch.randn(4, config.nz),
        pos=Position())


def saved_run(root: Path, config: TrainConfig, step: int = 3,
              state: TrainingState | None = None) -> RunDir:
    """A run folder whose last.safetensors holds `config` at `step` (and `state`, when given:
    else a fresh one)."""
    run = RunDir(root)
    run.checkpoints.mkdir(parents=True)
    state = tiny_state(config) if state is None else state
    state.pos = Position(epoch=1, epoch_step=0, step=step)
    Checkpointer(run, config.model_config(), config, "f" * 64, True).save(
        state, state.G, periodic=False)
    return run


# ---- the plan: defaults <- saved run <- typed options ----------------------------------------


def test_plan_of_a_new_run_is_the_defaults_plus_what_was_typed(tmp_path: Path) -> None:
    plan = make_plan(RunRequest(None, 64, tmp_path / "run", {"epochs": 3, **TINY}))
    assert plan.config == replace(TrainConfig(), epochs=3, **TINY)
    assert plan.resume_from is None and plan.run.root == tmp_path / "run"
    assert plan.model == ModelConfig("dcgan", 32, 100, 8, 8, False)


def test_plan_resumes_with_the_saved_options_and_typed_ones_win(tmp_path: Path) -> None:
    saved = TrainConfig(batch_size=16, lr_g=1e-3, lr_d=3e-4, max_steps=5, **TINY)
    run = saved_run(tmp_path / "run", saved)
    plan = make_plan(RunRequest(None, 64, run.root, {"lr_g": 5e-4, "epochs": 9}))
    assert plan.resume_from is not None and plan.resume_from.meta["step"] == "3"
    assert (plan.config.batch_size, plan.config.lr_d, plan.config.ngf) == (16, 3e-4, 8)
    assert (plan.config.lr_g, plan.config.epochs) == (5e-4, 9)
    assert plan.config.max_steps is None  # a session option: not inherited
    assert typed_learning_rates(plan) == {"lr_g": 5e-4}


def test_a_run_keeps_its_default_widths_when_the_defaults_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = saved_run(tmp_path / "run", TrainConfig(image_size=32))  # ngf, ndf: the defaults
    widths = DEFAULT_WIDTHS["dcgan"]
    monkeypatch.setitem(DEFAULT_WIDTHS, "dcgan", (widths[0] // 2, widths[1] // 2))
    plan = make_plan(RunRequest(None, 64, run.root, {"epochs": 9}))
    assert (plan.model.ngf, plan.model.ndf) == widths
    assert make_plan(RunRequest(None, 64, tmp_path / "new", {})).model.ngf == widths[0] // 2


def test_plan_refusals_come_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nothing to resume"):
        make_plan(RunRequest(None, 64, tmp_path / "new", {}, resume=True))
    assert not (tmp_path / "new").exists()
    run = saved_run(tmp_path / "run", TrainConfig(**TINY))
    with pytest.raises(UserError, match="different network.*ngf: run has 8, asked 16"):
        make_plan(RunRequest(None, 64, run.root, {"ngf": 16}))
    with pytest.raises(UserError, match="trained with an EMA generator.*--ema"):
        make_plan(RunRequest(None, 64, run.root, {"ema": False}))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        make_plan(RunRequest(None, 64, tmp_path / "file", {}))


def test_recipes_resolve_to_their_documented_settings_under_typed_options() -> None:
    assert tuple(RECIPES) == get_args(Recipe)
    canonical = resolve({"recipe": "canonical"})
    # pytorch/examples/dcgan: BCE, Adam 2e-4 (0.5, 0.999), batch 64, no EMA or augmentation.
    assert (canonical.batch_size, canonical.loss, canonical.lr_g, canonical.lr_d) == \
        (64, "bce", 2e-4, 2e-4)
    assert (canonical.beta1, canonical.beta2, canonical.ema, canonical.augment) == \
        (0.5, 0.999, False, False)
    assert canonical.arch == "dcgan" and canonical.ada_target == 0 and canonical.r1_gamma == 0
    assert canonical.model_config() == ModelConfig("dcgan", 64, 100, 64, 64, False)
    assert resolve({"recipe": "canonical", "batch_size": 32}).batch_size == 32
    assert resolve({}) == TrainConfig()
    # A resumed run keeps its recipe and its saved values.
    saved = json.loads(canonical.to_json())
    assert resolve({}, saved) == canonical
    with pytest.raises(UserError, match="--recipe"):
        resolve({}, {**saved, "recipe": "evil"})


def test_auto_precision_is_bf16_exactly_on_cpus_with_native_bf16() -> None:
    cpu = torch.device("cpu")
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    line = start_line(TrainConfig(), Path("run"), 0, 10, cpu, expected, 1, "demo", "memory",
                      resuming=False)
    # Said at the start, with the way out, only when auto chose it.
    assert ("native bf16, --precision fp32 to turn it off" in line) == (expected == "bf16")
    typed = start_line(TrainConfig(precision="bf16"), Path("run"), 0, 10, cpu, "bf16", 1, "demo",
                       "memory", resuming=False)
    assert "on cpu (bf16)" in typed


def test_label_smoothing_is_refused_where_the_loss_ignores_it(tmp_path: Path) -> None:
    for loss in ("hinge", "lsgan"):
        with pytest.raises(UserError, match="--label-smoothing only acts on --loss bce"):
            make_plan(RunRequest(None, 64, tmp_path / "run",
                                 {"loss": loss, "label_smoothing": 0.1}))
    plan = make_plan(RunRequest(None, 64, tmp_path / "run", {"loss": "bce",
                                                             "label_smoothing": 0.1}))
    assert plan.config.label_smoothing == 0.1


# ---- losses ------------------------------------------------------------------------------


def objectives(name: str, **options: float) -> tuple[object, object]:
    loss = LOSS_CLASSES[name](None, TrainConfig(loss=name, **options))  # type: ignore[arg-type]
    return loss.d_objective, loss.g_objective


def test_loss_classes_are_the_configs_losses() -> None:
    assert tuple(LOSS_CLASSES) == LOSSES


@pytest.mark.parametrize(("name", "real", "fake", "d_expected", "g_expected"), [
    # hinge: mean(relu(1 - r)) + mean(relu(1 + f)); G: -mean(f)
    ("hinge", [2.0, 0.0], [-2.0, 0.5], 0.5 + 0.75, -(-2.0 + 0.5) / 2),
    # bce: softplus(-r) + softplus(f) means; G: mean softplus(-f)
    ("bce", [0.0, 0.0], [0.0, 0.0], 2 * math.log(2), math.log(2)),
    # lsgan: 0.5 (mean (r-1)^2 + mean f^2); G: 0.5 mean (f-1)^2
    ("lsgan", [1.0, 3.0], [0.0, 2.0], 0.5 * (2.0 + 2.0), 0.5 * (1.0 + 1.0) / 2),
    # rpgan: mean softplus(f - r) over the pairs; G: mean softplus(r - f)
    ("rpgan", [1.0, 0.0], [1.0, 2.0], (math.log(2) + math.log1p(math.exp(2))) / 2,
     (math.log(2) + math.log1p(math.exp(-2))) / 2),
])
def test_losses_at_known_logits(name: str, real: list[float], fake: list[float],
                                d_expected: float, g_expected: float) -> None:
    d_objective, g_objective = objectives(name)
    d = d_objective(torch.tensor(real), torch.tensor(fake))
    g = g_objective(torch.tensor(fake), torch.tensor(real))
    assert d.item() == pytest.approx(d_expected, rel=1e-6)
    assert g.item() == pytest.approx(g_expected, rel=1e-6)


def test_bce_label_smoothing_moves_only_the_real_target() -> None:
    d_plain, _ = objectives("bce")
    d_smooth, _ = objectives("bce", label_smoothing=0.1)
    real, fake = torch.tensor([10.0]), torch.tensor([-10.0])
    # Target 0.9 at logit 10: 0.9 softplus(-10) + 0.1 softplus(10), plus softplus(-10) for fake.
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = 0.9 * softplus(-10) + 0.1 * softplus(10) + softplus(-10)
    assert d_smooth(real, fake).item() == pytest.approx(expected, rel=1e-5)
    assert d_plain(real, fake).item() == pytest.approx(2 * softplus(-10), rel=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_the_loss_steps_give_gradients_to_their_own_player_only(name: str) -> None:
    config = TrainConfig(loss=name, **TINY)
    G, D = build(config.model_config())
    loss = make_loss(Players(G, D, D, lambda x: x, lambda: torch.autocast("cpu", enabled=False),
                             freeze_d_for_g=True), config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    step = loss.accumulate_d(real, torch.randn(4, 100), scaler, step=1)
    assert all(p.grad is not None for p in D.parameters())
    assert all(p.grad is None for p in G.parameters())
    assert step.fake.requires_grad and not step.loss.requires_grad
    D.zero_grad(set_to_none=True)
    loss.accumulate_g(step.fake, real, scaler)
    assert all(p.grad is not None for p in G.parameters())
    assert all(p.grad is None for p in D.parameters())  # D was frozen for G's step...
    assert all(p.requires_grad for p in D.parameters())  # ...and is trainable again


def test_r1_penalty_is_the_squared_gradient_norm_at_the_real_images() -> None:
    """D(x) = 0.5 |x|^2 has gradient x: the penalty is gamma/2 E|x|^2, times the interval."""
    class Quadratic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * self.scale * x.square().sum(dim=(1, 2, 3))

    d = Quadratic()
    players = Players(None, None, d, lambda x: x, contextlib.nullcontext,  # type: ignore[arg-type]
                      freeze_d_for_g=True)
    loss = LOSS_CLASSES["hinge"](players, TrainConfig(r1_gamma=2.0))
    real = torch.randn(5, 3, 4, 4)
    expected = 2.0 / 2 * real.square().sum(dim=(1, 2, 3)).mean() * R1_INTERVAL
    penalty = loss.gradient_penalty(real)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    penalty.backward()  # differentiable in D's parameters: it trains D
    assert d.scale.grad is not None and d.scale.grad.item() == pytest.approx(
        2 * expected.item(), rel=1e-6)


def test_r1_runs_only_every_interval_steps_and_pushes_d_gradients() -> None:
    config = TrainConfig(r1_gamma=10.0, **TINY)
    torch.manual_seed(0)
    G, D = build(config.model_config())
    players = Players(G, D, D, lambda x: x, lambda: torch.autocast("cpu", enabled=False), True)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    real, z = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 100)
    grads = {}
    for gamma, step in ((0.0, 0), (10.0, 1), (10.0, R1_INTERVAL)):
        D.zero_grad(set_to_none=True)
        loss = make_loss(players, replace(config, r1_gamma=gamma))
        loss.accumulate_d(real, z, scaler, step=step)
        grads[(gamma, step)] = D.net[0].weight.grad.clone()
    assert torch.equal(grads[(0.0, 0)], grads[(10.0, 1)])  # not due: no penalty
    assert not torch.allclose(grads[(0.0, 0)], grads[(10.0, R1_INTERVAL)])


@pytest.mark.parametrize(("name", "penalised_at_fakes"), [("hinge", False), ("rpgan", True)])
def test_the_lazy_penalty_is_r1_and_for_rpgan_also_r2(name: str, penalised_at_fakes: bool) -> None:
    """A due step's D gradient is the plain step's plus the penalty's at the reals, and for the
    relativistic loss also at the fakes G(z)."""
    config = TrainConfig(loss=name, r1_gamma=10.0, **TINY)
    torch.manual_seed(0)
    G, D = build(config.model_config())
    players = Players(G, D, D, lambda x: x, lambda: torch.autocast("cpu", enabled=False), True)
    loss = make_loss(players, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    real, z = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 100)

    def d_grad(run: Callable[[], object]) -> torch.Tensor:
        D.zero_grad(set_to_none=True)
        run()
        return D.net[0].weight.grad.clone()

    due = d_grad(lambda: loss.accumulate_d(real, z, scaler, step=R1_INTERVAL))
    plain = d_grad(lambda: loss.accumulate_d(real, z, scaler, step=1))
    r1 = d_grad(lambda: loss.gradient_penalty(real).backward())
    with torch.no_grad():
        fake = G(z)
    r2 = d_grad(lambda: loss.gradient_penalty(fake).backward())
    expected = plain + r1 + (r2 if penalised_at_fakes else 0)
    assert torch.allclose(due, expected, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(r2, torch.zeros_like(r2))


# ---- ADA, EMA, feeder, retention ----------------------------------------------------------


def test_ada_probability_rises_when_d_is_sure_of_the_reals_and_falls_otherwise() -> None:
    ada = AdaptiveAugment(target=0.6, device=torch.device("cpu"))
    assert ada.p.item() == 0.0
    images = AdaptiveAugment.INTERVAL * 8
    for _ in range(100):
        ada.observe(torch.full((8,), 3.0))  # D(real) always positive: r_t = 1 > 0.6
        ada.adjust(images)
    assert ada.p.item() == pytest.approx(100 * images / AdaptiveAugment.SPEED_IMAGES)
    for _ in range(300):
        ada.observe(torch.tensor([1.0, -1.0, -1.0, 1.0]))  # r_t = 0 < 0.6
        ada.adjust(images)
    assert ada.p.item() == 0.0  # clamped at 0
    for _ in range(10_000):
        ada.observe(torch.ones(8))
        ada.adjust(images)
    assert ada.p.item() == 1.0  # clamped at 1


def test_ada_at_p_zero_is_the_identity_and_at_p_one_changes_every_image() -> None:
    ada = AdaptiveAugment(target=0.6, device=torch.device("cpu"))
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    assert torch.equal(ada(x, torch.Generator().manual_seed(0)), x)
    ada.p = torch.tensor(1.0)
    a = ada(x, torch.Generator().manual_seed(0))
    b = ada(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)  # all randomness from the generator
    assert a.shape == x.shape
    assert all(not torch.allclose(a[i], x[i]) for i in range(len(x)))
    x.requires_grad_(True)
    ada(x, torch.Generator().manual_seed(1)).sum().backward()  # differentiable
    assert x.grad is not None and x.grad.abs().sum() > 0




def test_ema_half_life_means_the_same_images_at_any_batch_size() -> None:
    ema = EMA(nn.Linear(1, 1), half_life=5000)
    late = 10**6  # past the ramp-up
    # After 5000 images the old average keeps half its weight, whatever the batch size.
    for batch in (8, 64, 500):
        steps = 5000 // batch
        assert ema.beta(late, batch) ** steps == pytest.approx(0.5 ** (steps * batch / 5000))
    assert ema.beta(late, 8) ** 625 == pytest.approx(0.5)
    assert ema.beta(late, 64) ** (5000 / 64) == pytest.approx(0.5)


def test_ema_ramp_up_forgets_the_initial_weights_early() -> None:
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = EMA(model, half_life=5000)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, images_seen=0, batch_images=8)  # nothing seen: the average is the model
    assert ema.model.weight.item() == 1.0
    # After 1600 images the half-life is 5% of them, 80 images: a step of 8 keeps 0.5**0.1.
    assert ema.beta(1600, 8) == pytest.approx(0.5 ** 0.1)
    with torch.no_grad():
        ema.model.weight.zero_()
    ema.update(model, images_seen=10**6, batch_images=8)
    assert ema.model.weight.item() == pytest.approx(1 - 0.5 ** (8 / 5000))


def test_feeder_shards_are_disjoint_cover_the_epoch_and_change_each_epoch() -> None:
    images = np.zeros((50, 8, 8, 3), dtype=np.uint8)
    feeders = [Feeder(images, torch.device("cpu"), 4, seed=7, rank=r, world_size=3)
               for r in range(3)]
    assert {f.steps_per_epoch for f in feeders} == {50 // 12}
    shards = [f.epoch_indices(0) for f in feeders]
    together = torch.cat(shards)
    assert len(together) == len(set(together.tolist())) == 4 * 3 * 4  # disjoint, all used
    assert all(len(s) == 4 * 4 for s in shards)
    assert torch.equal(feeders[0].epoch_indices(0), shards[0])  # deterministic
    assert not torch.equal(feeders[0].epoch_indices(1), shards[0])


def test_retention_keeps_the_newest_periodic_checkpoints_and_never_best_or_last(
        tmp_path: Path) -> None:
    config = TrainConfig(keep=2, **TINY)
    run = RunDir(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    state = tiny_state(config)
    keeper = Checkpointer(run, config.model_config(), config, "f" * 64, True)
    assert keeper.offer_best(5.0, state, state.G)
    assert not keeper.offer_best(6.0, state, state.G) and keeper.best == 5.0
    (run.checkpoints / "mine.safetensors").write_bytes(b"a user's file")
    for epoch in range(1, 5):
        state.pos = Position(epoch=epoch, epoch_step=0, step=epoch * 10)
        keeper.save(state, state.G, periodic=True)
    names = sorted(p.name for p in run.checkpoints.iterdir())
    assert names == ["best.safetensors", "epoch_0003.safetensors", "epoch_0004.safetensors",
                     "last.safetensors", "mine.safetensors"]
    assert [p.name for p in run.periodic_checkpoints()] == ["epoch_0003.safetensors",
                                                           "epoch_0004.safetensors"]


def test_full_state_round_trips(tmp_path: Path) -> None:
    config = TrainConfig(**TINY)
    run = saved_run(tmp_path / "run", config, step=7)
    restored = tiny_state(replace(config, seed=1))
    from animegan_cli.checkpoint import open_checkpoint

    load_full(open_checkpoint(run.last), restored)
    original = tiny_state(config)
    assert restored.pos == Position(1, 0, 7)
    for (name, a), b in zip(restored.G.state_dict().items(), original.G.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(restored.noise_gen.get_state(),
                       torch.Generator().manual_seed(1).get_state())
    meta = json.loads(open_checkpoint(run.generator).meta["train_config"])
    assert meta["ngf"] == 8  # the generator file keeps the options that trained it


def _adam_step(state: TrainingState) -> None:
    """One generator step on a fixed batch of noise."""
    state.opt_g.zero_grad()
    state.G(torch.ones(2, state.fixed_noise.shape[1], 1, 1)).square().mean().backward()
    state.opt_g.step()


def test_adam_moments_come_back_in_the_parameters_memory_layout(tmp_path: Path) -> None:
    """Fused Adam walks weights, gradients and moments as flat arrays: a resumed run whose
    moments were NCHW under channels_last weights would pair each weight with another's
    moments. The step after a save and load must equal the step without them."""
    config = TrainConfig(**TINY)
    straight, saved = tiny_state(config), tiny_state(config)
    for state in (straight, saved):
        _adam_step(state)
    run = saved_run(tmp_path / "run", config, state=saved)
    from animegan_cli.checkpoint import open_checkpoint

    resumed = tiny_state(replace(config, seed=1))
    load_full(open_checkpoint(run.last), resumed)
    conv = next(p for p in resumed.G.parameters() if p.dim() == 4)
    assert not conv.is_contiguous() and conv.is_contiguous(memory_format=torch.channels_last)
    assert resumed.opt_g.state[conv]["exp_avg"].stride() == conv.stride()
    for state in (straight, resumed):
        _adam_step(state)
    for a, b in zip(straight.G.parameters(), resumed.G.parameters()):
        assert torch.equal(a, b)


# ---- the package's import graph -----------------------------------------------------------


def _imports(path: Path, package: str) -> set[str]:
    """Modules of `package` that `path` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith(package):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(package))
    return found


def package_modules() -> dict[str, Path]:
    root = Path(animegan_cli.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def test_no_import_circles_even_through_lazy_imports() -> None:
    modules = package_modules()
    # Importing a submodule imports its packages first anyway: edges to them are no circle.
    graph = {name: {m for m in _imports(path, "animegan_cli")
                    if m in modules and m != name and not name.startswith(m + ".")}
             for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            pytest.fail("import circle: " + " -> ".join(trail[trail.index(name):] + [name]))
        state[name] = 1
        for dep in sorted(graph[name]):
            visit(dep, [*trail, name])
        state[name] = 2

    for name in sorted(graph):
        visit(name, [])


def test_every_module_imports_alone() -> None:
    names = sorted(n for n in package_modules() if not n.endswith("__main__"))
    script = ("import importlib, sys\n"
              f"for name in {names!r}:\n"
              "    for loaded in [m for m in sys.modules if m.startswith('animegan_cli')]:\n"
              "        del sys.modules[loaded]\n"
              "    importlib.import_module(name)\n"
              "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_collapse_watch_flags_identical_samples_and_not_varied_ones() -> None:
    from animegan_cli.train.collapse import (
        COLLAPSE_RATIO,
        WARMUP_IMAGES,
        CollapseWatch,
        diversity,
    )

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (100, 8, 8, 3), dtype=np.uint8)
    assert diversity(np.repeat(real[:1], 16, axis=0)) == 0.0
    # Two images that differ by 255 in every pixel are 1 apart; the mean counts each pair.
    pair = np.stack([np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)])
    assert diversity(pair) == pytest.approx(1.0)
    watch = CollapseWatch(real, 16)
    varied = watch.ratio(real[50:66])
    assert varied == pytest.approx(1.0, abs=0.1)
    assert watch.warning(varied, WARMUP_IMAGES) is None
    collapsed = np.clip(real[:1].astype(int) + rng.integers(-8, 9, (16, 8, 8, 3)), 0, 255)
    ratio = watch.ratio(collapsed.astype(np.uint8))
    assert ratio < COLLAPSE_RATIO
    assert watch.warning(ratio, WARMUP_IMAGES - 1) is None  # early grids are all alike
    assert "near-identical" in (watch.warning(ratio, WARMUP_IMAGES) or "")
