"""The generic training loop: any family that builds a GANModel plugs into it.

One iteration = `n_critic` discriminator steps (each on a fresh real batch) and one generator
step. kimg counts real images shown to D, as in ProGAN. Everything that decides the trajectory
(weights, optimizer state, RNG, data cursor) is in the snapshot, so `--resume` continues
bit-for-bit.
"""

from __future__ import annotations

import json
import os
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel

from ganzoo.context import LossContext
from ganzoo.engine import build, checkpoint, distributed
from ganzoo.engine.ema import EMA
from ganzoo.engine.progress import MetricsLog, ProgressBar
from ganzoo.engine.state import (load_weights, preserved_rng, restore_rng, rng_tensors,
                                 seed_everything, versions)
from ganzoo.engine.stream import Cursor, RealStream, preview_batch, preview_items
from ganzoo.errors import UserError
from ganzoo.evaluation import EvalContext, run_metrics
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
    def __init__(self, recipe: Recipe, *, resume: bool = False, console: Console | None = None):
        self.recipe = recipe
        self.console = console or Console()
        self.out_dir = Path(recipe.run.out_dir)
        self.snapshot_dir = self.out_dir / "checkpoints"
        device = build.resolve_device(recipe.run.device)
        self.dist = distributed.init(device.type)
        self.device = distributed.device_for(self.dist, device)
        self.resume_from = self._find_resume_point(resume)

        seed_everything(recipe.run.seed + self.dist.rank)  # seeds are per rank
        self.dataset = build.build_dataset(recipe.data)
        self.model = build.build_model(recipe, self.dataset.label_dim)
        self.losses = build.build_losses(recipe.losses)
        self.schedule = build.build_schedule(recipe)
        self.G = self.model.generator.to(self.device)
        self.D = self.model.discriminator.to(self.device)
        self.ema = EMA(self.G, recipe.ema.beta)
        self.opt_G = build.build_optimizer(recipe.optim.generator, self.G.parameters())
        self.opt_D = build.build_optimizer(recipe.optim.discriminator, self.D.parameters())
        self.base_lr = (recipe.optim.generator.lr, recipe.optim.discriminator.lr)
        self.G_train, self.D_train = self.G, self.D
        if self.dist.enabled:  # growing networks leave layers unused at early stages
            kwargs = {"find_unused_parameters": True}
            self.G_train = DistributedDataParallel(self.G, **kwargs)
            self.D_train = DistributedDataParallel(self.D, **kwargs)

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
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if recipe.run.precision == "bf16" else nullcontext())
        self.sample_inputs = self.model.grid_inputs(
            recipe.train.sample_grid, seed=recipe.run.seed, dataset=self.dataset,
            first_reals=lambda k: preview_items(self.dataset, recipe, k))
        self.dataset_labels = label_bank(self.dataset) if self.dataset.label_dim else None
        self.metrics = MetricsLog(self.out_dir / "metrics.jsonl")

    # ------------------------------------------------------------------------------ setup

    def _find_resume_point(self, resume: bool) -> Path | None:
        snapshots = checkpoint.list_snapshots(self.snapshot_dir)
        if snapshots and not resume:
            raise UserError(f"'{self.out_dir}' already holds a run ({len(snapshots)} snapshots); "
                            "pass --resume to continue it or set run.out_dir to a new folder")
        if resume and not snapshots:
            self.console.print(f"no snapshot in '{self.snapshot_dir}': starting a new run")
        return snapshots[-1] if resume and snapshots else None

    # ------------------------------------------------------------------------------ the loop

    @property
    def kimg(self) -> float:
        return self.images / 1000.0

    def run(self) -> None:
        recipe = self.recipe
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "recipe.toml").write_text(dumps_toml(recipe_to_dict(recipe)))
        if self.resume_from is not None:
            self._load_snapshot(self.resume_from)
            if self.dist.is_main:
                self.metrics.truncate_after(self.kimg)
                self.console.print(f"resuming from '{self.resume_from}' at {self.kimg:.3f} kimg")
        total = round(recipe.train.kimg * 1000)
        if self.images >= total:
            self.console.print(f"the run already reached {self.kimg:.3f} kimg (train.kimg = "
                               f"{recipe.train.kimg}); raise train.kimg to train further")
            return
        bar = ProgressBar(self.console, total / 1000, self.kimg) if self.dist.is_main else None
        sums: dict[str, torch.Tensor] = {}
        count, tick_images, tick_time, side_time = 0, self.images, time.perf_counter(), 0.0
        try:
            while self.images < total:
                state = self._apply_schedule()
                before = self.images
                for name, value in self.train_iteration(state).items():
                    sums[name] = sums.get(name, 0) + value
                count += 1
                side_start = time.perf_counter()
                done = self.images >= total
                if _crossed(before, self.images, recipe.train.log_kimg) or done:
                    seconds = max(time.perf_counter() - tick_time - side_time, 1e-9)
                    speed = (self.images - tick_images) / seconds
                    means = self._mean_over_ranks(sums, count)
                    self._log(state, speed, means)
                    if bar:
                        bar.update(self.kimg, _stage(state), speed, means)
                    sums, count, tick_images, tick_time, side_time = {}, 0, self.images, time.perf_counter(), 0.0
                    side_start = tick_time
                elif bar:
                    bar.update(self.kimg, _stage(state))
                if _crossed(before, self.images, recipe.train.sample_kimg) or done:
                    self._write_samples()
                if _crossed(before, self.images, recipe.train.snapshot_kimg) or done:
                    self._save_snapshot()
                every = recipe.eval.every_kimg
                if recipe.eval.metrics and (done or (every and _crossed(before, self.images, every))):
                    self._evaluate(state)
                side_time += time.perf_counter() - side_start
        finally:
            if bar:
                bar.close()
        if self.dist.is_main:
            self.console.print(f"done: {self.kimg:.3f} kimg; samples and snapshots in '{self.out_dir}'")

    def _apply_schedule(self):
        state = self.schedule.state(self.kimg)
        if (state.resolution, state.alpha) != self.growth:
            for net in (self.G, self.D, self.ema.model):
                set_growth(net, state.resolution, state.alpha)
            if self.growth is None or state.resolution != self.growth[0]:
                self._write_reals(state.resolution, state)
            self.growth = (state.resolution, state.alpha)
        if state.phase != self.phase:
            if self.phase is not None and state.reset_optimizers:
                self.opt_G.state.clear()
                self.opt_D.state.clear()
            self.phase = state.phase
        lr_G, lr_D = (state.lr, state.lr) if state.lr is not None else self.base_lr
        lr_G, lr_D = lr_G * state.lr_scale, lr_D * state.lr_scale
        for group in self.opt_G.param_groups:
            group["lr"] = lr_G
        for group in self.opt_D.param_groups:
            group["lr"] = lr_D
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
        for _ in range(self.recipe.train.n_critic):
            real, labels = self._real_batch(state)
            inputs, target = self.model.make_inputs(real, labels)
            with torch.no_grad(), self.autocast:
                fake = self.G_train(inputs, target)
            ctx = LossContext(real=real, fake=fake.detach(), discriminator=self._critic,
                              phase="discriminator", real_labels=labels, target_labels=target,
                              generator=self._generator)
            total = self._sum_terms(ctx, "discriminator_loss", "D", logged)
            self.opt_D.zero_grad(set_to_none=True)
            total.backward()
            self.opt_D.step()
            for term in self.losses:
                hook = getattr(term.term, "after_discriminator_step", None)
                if hook is not None:
                    hook(self.D)
        self.D.requires_grad_(False)
        try:
            inputs, _ = self.model.make_inputs(real, labels, target)
            with self.autocast:  # the G step reuses the last real batch (and its target labels)
                fake = self.G_train(inputs, target)
            ctx = LossContext(real=real, fake=fake, discriminator=self._critic, phase="generator",
                              real_labels=labels, target_labels=target, generator=self._generator)
            total = self._sum_terms(ctx, "generator_loss", "G", logged)
            self.opt_G.zero_grad(set_to_none=True)
            total.backward()
            self.opt_G.step()
        finally:
            self.D.requires_grad_(True)
        self.ema.update(self.G)
        self.step += 1
        return logged

    def _generator(self, inputs, labels=None):
        """G for loss terms that call it again (cycle reconstruction), under the run's precision."""
        with self.autocast:
            return self.G_train(inputs, labels)

    def _critic(self, images, labels=None):
        with self.autocast:
            return self.D_train(images, labels)

    def _sum_terms(self, ctx, method: str, side: str, logged: dict) -> torch.Tensor:
        total = None
        for term in self.losses:
            value = getattr(term, method)(ctx)
            if value is None:
                continue
            value = value.float()
            key = f"{side}/{term.name}"
            logged[key] = logged.get(key, 0) + value.detach() / (
                self.recipe.train.n_critic if side == "D" else 1)
            total = term.weight * value if total is None else total + term.weight * value
        if total is None:
            which = "discriminator" if side == "D" else "generator"
            raise UserError(f"no loss term in [[losses]] trains the {which}")
        logged[f"{side}/total"] = logged.get(f"{side}/total", 0) + total.detach() / (
            self.recipe.train.n_critic if side == "D" else 1)
        return total

    # ------------------------------------------------------------------------------ outputs

    def _mean_over_ranks(self, sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
        """Loss means over the log interval, averaged over all processes."""
        names = sorted(sums)
        values = torch.stack([torch.as_tensor(sums[n], device=self.device).float() for n in names]) / count
        values = distributed.all_reduce_mean(values, self.dist)
        return dict(zip(names, values.tolist()))

    def _log(self, state, speed: float, means: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        record = {"kimg": round(self.kimg, 6), "step": self.step, "img_per_s": round(speed, 2),
                  "resolution": state.resolution, "alpha": round(state.alpha, 6),
                  "batch_size": state.batch_size, "lr_G": self.opt_G.param_groups[0]["lr"],
                  "lr_D": self.opt_D.param_groups[0]["lr"]}
        record.update({k: round(v, 6) if math.isfinite(v) else v for k, v in means.items()})
        self.metrics.write(record)

    def _write_samples(self) -> None:
        if not self.dist.is_main:
            return
        grid = self.model.sample_grid(self.ema.model, *self.sample_inputs, dataset=self.dataset,
                                      device=self.device, autocast=self.autocast)
        save_png(grid, self.out_dir / "samples" / f"fakes-{self.images:012d}.png")

    def _evaluate(self, state) -> None:
        """Periodic evaluation ([eval]); it draws no random numbers the training would have drawn."""

        ctx = EvalContext(model=self.model, generator=self.ema.model, discriminator=self.D,
                          dataset=self.dataset, resolution=state.resolution, device=self.device,
                          num_images=self.recipe.eval.num_images, seed=self.recipe.run.seed)
        with preserved_rng():
            results = run_metrics(ctx, self.recipe.eval.metrics, self.recipe.eval.params)
        if self.dist.is_main:
            self.metrics.write({"kimg": round(self.kimg, 6), "step": self.step, **results})
            self.console.print(f"eval at {self.kimg:.1f} kimg: " + ", ".join(
                f"{k} {v:.4g}" for k, v in results.items()))

    def _write_reals(self, resolution: int, state) -> None:
        """The real images exactly as D sees them at this resolution, once per resolution."""
        if not self.dist.is_main:
            return
        batch = preview_batch(self.dataset, self.recipe, min(self.recipe.train.sample_grid, 64),
                              resolution=resolution)
        save_png(make_grid(batch), self.out_dir / "samples" / f"reals-{resolution}.png")

    def _save_snapshot(self) -> None:
        if not self.dist.is_main:
            return
        tensors = {}
        tensors.update(checkpoint.prefixed("G", self.G.state_dict()))
        tensors.update(checkpoint.prefixed("D", self.D.state_dict()))
        tensors.update(checkpoint.prefixed("G_ema", self.ema.model.state_dict()))
        opt_G, opt_G_meta = checkpoint.optimizer_to_flat(self.opt_G)
        opt_D, opt_D_meta = checkpoint.optimizer_to_flat(self.opt_D)
        tensors.update(checkpoint.prefixed("optim/G", opt_G))
        tensors.update(checkpoint.prefixed("optim/D", opt_D))
        rng, rng_meta = rng_tensors()
        tensors.update(rng)
        if self.dataset.label_dim:  # real label combinations, for sampling conditional models later
            tensors["data/labels"] = self.dataset_labels
        resolution, alpha = self.growth
        metadata = {
            "step": str(self.step), "kimg": repr(self.kimg), "images": str(self.images),
            "schedule": json.dumps({"resolution": resolution, "alpha": alpha, "phase": self.phase}),
            "cursor": json.dumps([self.stream.cursor.epoch, self.stream.cursor.position]),
            "recipe": dumps_toml(recipe_to_dict(self.recipe)),
            "data": json.dumps({"resolution": self.dataset.resolution,
                                "attribute_names": list(self.dataset.attribute_names),
                                "attribute_groups": list(self.dataset.attribute_groups)}),
            "optim/G": opt_G_meta, "optim/D": opt_D_meta, "rng": rng_meta, "versions": versions(),
        }
        path = self.snapshot_dir / checkpoint.snapshot_name(self.images)
        checkpoint.save(path, tensors, metadata)
        keep = self.recipe.train.keep_snapshots
        if keep:
            for old in checkpoint.list_snapshots(self.snapshot_dir)[:-keep]:
                old.unlink(missing_ok=True)

    def _load_snapshot(self, path: Path) -> None:
        tensors, meta = checkpoint.load(path)
        source = str(path)
        load_weights(self.G, checkpoint.split(tensors, "G"), "generator", source)
        load_weights(self.D, checkpoint.split(tensors, "D"), "discriminator", source)
        load_weights(self.ema.model, checkpoint.split(tensors, "G_ema"), "generator", source)
        checkpoint.optimizer_from_flat(self.opt_G, checkpoint.split(tensors, "optim/G"), meta["optim/G"])
        checkpoint.optimizer_from_flat(self.opt_D, checkpoint.split(tensors, "optim/D"), meta["optim/D"])
        self.images, self.step = int(meta["images"]), int(meta["step"])
        self.phase = json.loads(meta["schedule"])["phase"]
        epoch, position = json.loads(meta["cursor"])
        self.stream.cursor = Cursor(epoch, position)
        self.stream.restart()
        if self.dist.is_main:
            restore_rng(tensors, meta["rng"])
        else:  # only rank 0's generators are stored; the others continue from a derived seed
            seed_everything(self.recipe.run.seed + self.dist.rank + self.images)


def _crossed(before: int, after: int, interval_kimg: float) -> bool:
    step = max(1, round(interval_kimg * 1000))
    return before // step != after // step


def _stage(state) -> str:
    return f"{state.resolution}px" + (f" fade {state.alpha:.2f}" if state.fading else "")
