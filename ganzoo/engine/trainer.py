"""The generic training loop: any family that builds a GANModel plugs into it.

One iteration = `n_critic` discriminator steps (each on a fresh real batch) and one generator
step. kimg counts real images shown to D, as in ProGAN. Everything that decides the trajectory
(weights, optimizer state, RNG, data cursor) is in the snapshot, so `--resume` continues
bit-for-bit. `Trainer.run` reads top to bottom: start (fresh or resumed), the loop, and once
per tick the maintenance (log, samples, snapshot, evaluation), then the end.
"""

from __future__ import annotations

import bisect
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from rich.console import Console

from ganzoo.context import LossContext
from ganzoo.engine import build, distributed, preflight, resume, runlog, speed
from ganzoo.engine.checkpoint import Snapshot, list_snapshots, preserved_rng, seed_everything, sweep_temporaries
from ganzoo.engine.ema import EMA, mean_beta, ramped_beta
from ganzoo.engine.guards import Preemption, RunLock
from ganzoo.engine.runlog import Console80, MetricsLog, TensorBoardLog, now_iso, peak_memory_mb
from ganzoo.engine.schedule import phases
from ganzoo.engine.stream import RealStream, preview_items
from ganzoo.errors import RunStopped, UserError
from ganzoo.evaluation import EvalContext, run_metrics
from ganzoo.files import write_text
from ganzoo.images import make_grid, save_png, to_float
from ganzoo.model import set_growth
from ganzoo.recipe import Recipe, dumps_toml, recipe_to_dict

LABEL_BANK = 1024  # labels of this many real images are stored with each snapshot


def label_bank(dataset) -> torch.Tensor:
    """The first LABEL_BANK label vectors, from the dataset's label table when it has one."""
    table = getattr(dataset, "labels", None)
    if isinstance(table, torch.Tensor):
        return table[:LABEL_BANK].clone()
    return torch.stack([dataset[i][1] for i in range(min(LABEL_BANK, len(dataset)))])


class Trainer:
    def __init__(self, recipe: Recipe, *, resume: bool | str = False, resume_anyway: bool = False,
                 init_from: str | None = None, console: Console | None = None):
        self.recipe = recipe
        self.console = console or Console()
        self.out_dir = Path(recipe.run.out_dir)
        self.snapshot_dir = self.out_dir / "checkpoints"
        self.resume_anyway = resume_anyway
        device = build.resolve_device(recipe.run.device)
        self.dist = distributed.init(device.type)
        self.device = distributed.device_for(self.dist, device)
        self.resume_from = self._find_resume_point(resume)
        self.init_from = init_from
        if init_from and self.resume_from:
            raise UserError("--init-from starts a new run; it cannot be combined with --resume")

        seed_everything(recipe.run.seed + self.dist.rank)  # seeds are per rank
        self.dataset = build.build_dataset(recipe.data)
        self.model = build.build_model(recipe, self.dataset.label_dim)
        self.losses = build.build_losses(recipe.losses)
        self.schedule = build.build_schedule(recipe)
        self.phases = phases(self.schedule, recipe.train.kimg)  # scanned once: ~0.1 s for a long run
        preflight.check_batch_sizes(self)
        preflight.check_lr_lasts(self)
        # the image counts at which the phases begin (fades, stable stages): the EMA's ramp-up
        # restarts at each
        self.phase_starts = [round(p.start_kimg * 1000) for p in self.phases]
        self.G = self.model.generator.to(self.device)
        self.D = self.model.discriminator.to(self.device)
        self.ema = EMA(self.G)
        self.opt_G = build.build_optimizer(recipe.optim.generator, self.G.parameters())
        self.opt_D = build.build_optimizer(recipe.optim.discriminator, self.D.parameters())
        self.base_lr = (recipe.optim.generator.lr, recipe.optim.discriminator.lr)
        speed.apply(self)  # sets G_train, D_train (eager, for penalties) and D_score: DDP, compile

        workers = recipe.data.workers
        if workers < 0:  # in-memory datasets need no workers
            workers = 0 if getattr(self.dataset, "in_memory", False) else min(4, os.cpu_count() or 1)
        self.stream = RealStream(self.dataset, seed=recipe.run.seed, mirror=recipe.data.mirror,
                                 workers=workers, rank=self.dist.rank, world=self.dist.world,
                                 pin_memory=self.device.type == "cuda")
        self.images = 0
        self.step = 0
        self.phase: int | None = None
        self.growth: tuple[int, float] | None = None
        self.precision = resolve_precision(recipe.run.precision, self.device)
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if self.precision == "bf16" else nullcontext())
        self.sample_inputs = self.model.grid_inputs(
            recipe.train.sample_grid, seed=recipe.run.seed, dataset=self.dataset,
            first_reals=lambda k: preview_items(self.dataset, recipe, k))
        self.dataset_labels = label_bank(self.dataset) if self.dataset.label_dim else None
        self.metrics = MetricsLog(self.out_dir / "metrics.jsonl")
        self.tensorboard: TensorBoardLog | None = None
        self.last_snapshot: Path | None = self.resume_from
        self.reals_written: set[int] = set()
        self.skipped_steps = 0

    def _find_resume_point(self, resume: bool | str) -> Path | None:
        if not self.recipe.run.out_dir.strip():
            raise UserError("run.out_dir is empty; set it to the folder the run writes into")
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise UserError(f"run.out_dir '{self.out_dir}' is a file; set run.out_dir to a folder")
        if isinstance(resume, str):  # a named snapshot rather than the newest
            named = Path(resume)
            if not named.is_file():
                raise UserError(f"--resume '{resume}': no such snapshot file")
            return named
        snapshots = list_snapshots(self.snapshot_dir)
        if snapshots and not resume:
            raise UserError(f"'{self.out_dir}' already holds a run ({len(snapshots)} snapshots); "
                            "pass --resume to continue it or set run.out_dir to a new folder")
        if resume and not snapshots:
            self.console.print(f"no snapshot in '{self.snapshot_dir}': starting a new run")
        return snapshots[-1] if resume and snapshots else None

    @property
    def kimg(self) -> float:
        return self.images / 1000.0

    # ------------------------------------------------------------------------------ the run

    def run(self) -> None:
        clean = False
        try:
            self._run()
            clean = True
        finally:
            distributed.shutdown(self.dist, clean)

    def _run(self) -> None:
        recipe = self.recipe
        total = round(recipe.train.kimg * 1000)
        if self.dist.is_main:
            self._make_out_dir()
        lock = RunLock(self.out_dir) if self.dist.is_main else nullcontext()
        with lock, Preemption() as stop:
            # Start: resume exactly where the snapshot stopped, or begin afresh.
            self._start()
            if self.images >= total:
                self.console.print(f"the run already reached {self.kimg:.3f} kimg (train.kimg = "
                                   f"{recipe.train.kimg}); raise train.kimg to train further")
                return
            out = Console80(self.console, total / 1000, self.kimg) if self.dist.is_main else None
            self.tick = {"sums": {}, "count": 0, "images": self.images,
                         "time": time.perf_counter(), "side": 0.0}
            started = time.perf_counter()
            try:
                while self.images < total:
                    state = self._apply_schedule()
                    before = self.images
                    self._accumulate(self.train_iteration(state))
                    done = self.images >= total
                    stopping = distributed.any_rank(stop.signal is not None, self.dist)

                    # Maintenance, once per tick; its time is left out of the speed.
                    side_start = time.perf_counter()
                    if _crossed(before, self.images, recipe.train.log_kimg) or done or stopping:
                        self._log_interval(state, out)
                    elif out:
                        out.tick(self.kimg, _stage(state))
                    if state.resolution not in self.reals_written:
                        self._write_reals(state.resolution)
                    if _crossed(before, self.images, recipe.train.sample_kimg) or done:
                        self._write_samples()
                    if _crossed(before, self.images, recipe.train.snapshot_kimg) or done or stopping:
                        resume.save(self)
                    every = recipe.eval.every_kimg
                    if recipe.eval.metrics and (done or (every and _crossed(before, self.images, every))):
                        self._evaluate(state)
                    self.tick["side"] += time.perf_counter() - side_start

                    if stopping:
                        raise RunStopped(
                            f"stopped by {stop.name} at {self.kimg:.3f} kimg; snapshot "
                            f"'{self.last_snapshot}'; continue with: ganzoo run "
                            f"{self.out_dir / 'recipe.toml'} --resume",
                            stop.exit_code)
            finally:
                if out:
                    out.close()
                if self.tensorboard:
                    self.tensorboard.close()
        # End: what was reached, and what to do next.
        if self.dist.is_main:
            runlog.finish(self, time.perf_counter() - started)

    def _make_out_dir(self) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"run.out_dir '{self.out_dir}' is not a writable folder ({exc.strerror}); "
                            "set run.out_dir to one") from None

    def _start(self) -> None:
        if self.dist.is_main:
            sweep_temporaries(self.snapshot_dir)
            sweep_temporaries(self.out_dir)
        if self.resume_from is not None:
            snapshot = Snapshot.read(self.resume_from)
            resume.check_resumable(self, snapshot)
            resume.restore(self, snapshot)
            if self.dist.is_main:
                self.metrics.truncate_after(self.kimg)
        else:
            if self.init_from:
                resume.init_weights(self, self.init_from)
            if self.dist.is_main:
                aside = self.metrics.set_aside()
                if aside:
                    self.console.print(f"a previous metrics.jsonl without snapshots was kept as '{aside.name}'")
        if self.dist.is_main:
            write_text(self.out_dir / "recipe.toml", dumps_toml(recipe_to_dict(self.recipe)))
            if self.recipe.log.tensorboard:
                self.tensorboard = TensorBoardLog(self.out_dir / "tb")
            runlog.banner(self)

    # ------------------------------------------------------------------------------ one iteration

    def _apply_schedule(self):
        state = self.schedule.state(self.kimg)
        if (state.resolution, state.alpha) != self.growth:
            for net in (self.G, self.D, self.ema.model):
                set_growth(net, state.resolution, state.alpha)
            self.growth = (state.resolution, state.alpha)
        if state.phase != self.phase:
            if self.phase is not None and state.reset_optimizers:
                self.opt_G.state.clear()
                self.opt_D.state.clear()
            self.phase = state.phase
        lr_G, lr_D = (state.lr, state.lr) if state.lr is not None else self.base_lr
        for group in self.opt_G.param_groups:
            group["lr"] = lr_G * state.lr_scale
        for group in self.opt_D.param_groups:
            group["lr"] = lr_D * state.lr_scale
        self.stream.configure(state.resolution, state.batch_size)
        return state

    def _real_batch(self, state):
        images, labels = self.stream.next()
        real = to_float(images.to(self.device, non_blocking=True))
        prepare = getattr(self.schedule, "prepare_real", None)
        if prepare is not None:  # e.g. ProGAN fades real images between resolutions
            real = prepare(real, state)
        self.images += state.batch_size
        return real, labels.to(self.device, non_blocking=True)

    def train_iteration(self, state) -> dict[str, torch.Tensor]:
        logged: dict[str, torch.Tensor] = {}
        phase_start = self.phase_starts[bisect.bisect_right(self.phase_starts, self.images) - 1]
        for _ in range(self.recipe.train.n_critic):
            real, labels = self._real_batch(state)
            inputs, target = self.model.make_inputs(real, labels)
            with torch.no_grad(), self.autocast:
                fake = self.G_train(inputs, target)
            ctx = LossContext(real=real, fake=fake.detach(), discriminator=self._critic,
                              phase="discriminator", real_labels=labels, target_labels=target,
                              generator=self._generator, resolution=state.resolution,
                              target_resolution=self.dataset.resolution)
            total = self._sum_terms(ctx, "discriminator_loss", "D", logged)
            self.opt_D.zero_grad(set_to_none=True)
            total.backward()
            self._step(self.opt_D, self.D, "D")
            for term in self.losses:
                term.after_discriminator_step(self.D)
        self.D.requires_grad_(False)
        try:
            inputs, _ = self.model.make_inputs(real, labels, target)
            with self.autocast:  # the G step reuses the last real batch (and its target labels)
                fake = self.G_train(inputs, target)
            ctx = LossContext(real=real, fake=fake, discriminator=self._critic, phase="generator",
                              real_labels=labels, target_labels=target, generator=self._generator,
                              resolution=state.resolution, target_resolution=self.dataset.resolution)
            total = self._sum_terms(ctx, "generator_loss", "G", logged)
            self.opt_G.zero_grad(set_to_none=True)
            total.backward()
            self._step(self.opt_G, self.G, "G")
        finally:
            self.D.requires_grad_(True)
        ema = self.recipe.ema
        beta = ramped_beta(ema.beta, ema.rampup, self.images - phase_start, state.batch_size)
        if ema.mean_from_kimg:
            beta = mean_beta(beta, self.images - round(ema.mean_from_kimg * 1000), state.batch_size)
        self.ema.update(self.G, beta)
        self.step += 1
        return logged

    def _step(self, optimizer, net, side: str) -> None:
        """The optimizer step; with train.skip_nonfinite_steps, a step whose gradients are not
        finite is skipped (up to that many in the run) instead of poisoning the weights."""
        allowed = self.recipe.train.skip_nonfinite_steps
        if allowed:
            grads = [p.grad for p in net.parameters() if p.grad is not None]
            if grads and not torch.isfinite(torch.stack([g.float().sum() for g in grads]).sum()):
                self.skipped_steps += 1
                if self.skipped_steps > allowed:
                    raise UserError(f"training diverged: {self.skipped_steps} optimizer steps with "
                                    f"non-finite {side} gradients (train.skip_nonfinite_steps = "
                                    f"{allowed}) at {self.kimg:.3f} kimg; last good snapshot: "
                                    f"'{self.last_snapshot}'")
                optimizer.zero_grad(set_to_none=True)
                return
        optimizer.step()

    def _generator(self, inputs, labels=None):
        """G for loss terms that call it again (cycle reconstruction), under the run's precision."""
        with self.autocast:
            return self.G_train(inputs, labels)

    def _critic(self, images, labels=None):
        net = self.D_train if speed.needs_eager(images) else self.D_score
        with self.autocast:
            return net(images, labels)

    def _sum_terms(self, ctx, method: str, side: str, logged: dict) -> torch.Tensor:
        share = self.recipe.train.n_critic if side == "D" else 1  # D's terms: mean over its steps
        total = None
        for term in self.losses:
            value = getattr(term, method)(ctx)
            if value is None:
                continue
            if not (isinstance(value, torch.Tensor) and value.numel() == 1 and value.requires_grad):
                got = (f"a tensor of shape {tuple(value.shape)}" + ("" if value.requires_grad else " without grad")
                       if isinstance(value, torch.Tensor) else f"a {type(value).__name__}")
                raise UserError(f"loss '{term.name}': {method}(ctx) must return a scalar tensor that "
                                f"requires grad (or None), got {got}")
            key = f"{side}/{term.name}"
            logged[key] = logged.get(key, 0) + value.detach().float() / share
            weighted = term.weight * value.float()
            total = weighted if total is None else total + weighted
        if total is None:
            which = "discriminator" if side == "D" else "generator"
            raise UserError(f"no loss term in [[losses]] trains the {which}")
        logged[f"{side}/total"] = logged.get(f"{side}/total", 0) + total.detach() / share
        return total

    def _accumulate(self, logged: dict[str, torch.Tensor]) -> None:
        sums = self.tick["sums"]
        for name, value in logged.items():
            sums[name] = sums.get(name, 0) + value
        self.tick["count"] += 1

    # ------------------------------------------------------------------------------ maintenance

    def _log_interval(self, state, out: Console80 | None) -> None:
        """Loss means over the interval (all ranks), checked for divergence, then written."""
        tick = self.tick
        seconds = max(time.perf_counter() - tick["time"] - tick["side"], 1e-9)
        shown = self.images - tick["images"]
        names = sorted(tick["sums"])
        values = torch.stack([torch.as_tensor(tick["sums"][n], device=self.device).float()
                              for n in names]) / max(tick["count"], 1)
        means = dict(zip(names, distributed.all_reduce_mean(values, self.dist).tolist()))
        self._check_finite(means)
        self.tick = {"sums": {}, "count": 0, "images": self.images, "time": time.perf_counter(),
                     "side": 0.0}
        if not self.dist.is_main:
            return
        record = {"kimg": round(self.kimg, 6), "step": self.step, "time": now_iso(),
                  "img_per_s": round(shown / seconds, 2),
                  "sec_per_kimg": round(seconds / max(shown / 1000, 1e-9), 4),
                  "peak_mem_mb": round(peak_memory_mb(self.device), 1),
                  "resolution": state.resolution, "alpha": round(state.alpha, 6),
                  "batch_size": state.batch_size, "lr_G": self.opt_G.param_groups[0]["lr"],
                  "lr_D": self.opt_D.param_groups[0]["lr"]}
        record.update({k: round(v, 6) for k, v in means.items()})
        self.metrics.write(record)
        if self.tensorboard:
            self.tensorboard.scalars(record)
        if out:
            out.interval(self.kimg, _stage(state), record, means)

    def _check_finite(self, means: dict[str, float]) -> None:
        """Stop at the first non-finite loss or weight: nothing after it is ever snapshotted."""
        bad = next((name for name, value in means.items() if not torch.isfinite(torch.tensor(value))), None)
        if bad is None:
            with torch.no_grad():
                for what, net in (("G", self.G), ("D", self.D)):
                    if not torch.isfinite(sum(p.float().sum() for p in net.parameters())):
                        bad = f"{what} weights"
                        break
        if bad is not None:
            last = f"'{self.last_snapshot}'" if self.last_snapshot else "none (no snapshot yet)"
            raise UserError(f"training diverged: {bad} is not finite at {self.kimg:.3f} kimg; no "
                            f"snapshot was written after it; last good snapshot: {last}. Lower the "
                            "learning rates or check the losses' weights, then resume from it")

    def _write_samples(self) -> None:
        if not self.dist.is_main:
            return
        grid = self.model.sample_grid(self.ema.model, *self.sample_inputs, dataset=self.dataset,
                                      device=self.device, autocast=self.autocast)
        save_png(grid, self.out_dir / "samples" / f"fakes-{self.images:012d}.png")
        if self.tensorboard:
            self.tensorboard.grid(grid, self.images)

    def _write_reals(self, resolution: int) -> None:
        """The real images exactly as D sees them at this resolution, once per resolution."""
        self.reals_written.add(resolution)
        if not self.dist.is_main:
            return
        batch, _ = preview_items(self.dataset, self.recipe, min(self.recipe.train.sample_grid, 64),
                                 resolution=resolution)
        save_png(make_grid(batch), self.out_dir / "samples" / f"reals-{resolution}.png")

    def _evaluate(self, state) -> None:
        """Periodic evaluation ([eval]); it draws no random numbers the training would have drawn."""
        ctx = EvalContext(model=self.model, generator=self.ema.model, discriminator=self.D,
                          dataset=self.dataset, resolution=self.dataset.resolution, device=self.device,
                          num_images=self.recipe.eval.num_images, seed=self.recipe.run.seed,
                          mirror=self.recipe.data.mirror)
        with preserved_rng():
            results = run_metrics(ctx, self.recipe.eval.metrics, self.recipe.eval.params)
        if self.dist.is_main:
            record = {"kimg": round(self.kimg, 6), "step": self.step, "time": now_iso(), **results}
            self.metrics.write(record)
            if self.tensorboard:
                self.tensorboard.scalars(record)
            self.console.print(f"eval at {self.kimg:.1f} kimg: " + ", ".join(
                f"{k} {v:.4g}" for k, v in results.items()))


def resolve_precision(precision: str, device: torch.device) -> str:
    """`[run] precision` as run: "auto" is bf16 where it is native (recipe.py says where)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:  # oneDNN's bf16 convolutions need AVX512-BF16 (or AMX); without it they are emulated
        native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return "bf16" if native else "fp32"


def _crossed(before: int, after: int, interval_kimg: float) -> bool:
    step = max(1, round(interval_kimg * 1000))
    return before // step != after // step


def _stage(state) -> str:
    return f"{state.resolution}px" + (f" fade {state.alpha:.2f}" if state.fading else "")
