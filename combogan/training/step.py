"""One ComboGAN training step: a CycleGAN step through enc_A -> dec_B -> enc_B -> dec_A.

Read beside the paper. For the sampled ordered pair (A, B) and batches a ~ A, b ~ B:

    fake_b = dec_B(enc_A(a))         rec_a = dec_A(enc_B(fake_b))
    fake_a = dec_A(enc_B(b))         rec_b = dec_B(enc_A(fake_a))

    L_G = GAN(D_B(fake_b), real) + GAN(D_A(fake_a), real)
        + lambda_cyc * (|rec_a - a|_1 + |rec_b - b|_1)
        [+ lambda_cyc * lambda_idt * (|dec_A(enc_B(a)) - a|_1 + |dec_B(enc_A(b)) - b|_1)]   CycleGAN identity

    L_D_B = 0.5 * (GAN(D_B(b), real) + GAN(D_B(pool_B(fake_b)), fake)),  likewise L_D_A.

G is updated first, then D on fakes from its history pool. Only the two sampled domains'
networks and optimizers are touched; a frozen domain (add-domain) passes gradients through but
is never stepped. L_G is a sum over the two directions of the cycle (A->B->A and B->A->B),
which share weights but no activations: each is one forward+backward job.

Two departures the config can choose: with loss.cycle_forward_grad false (the default) the
cycle's gradient stops at fake_b (and fake_a), so the cycle trains only the way back; each
decoder is handed the image its latent came from, dec_B(enc_A(a), a), which the
'recolour_mask' output recolours (the paper's 'image' output ignores it).

*How* the pieces run (one after the other or on two threads, autocast, gradient averaging
across ranks, in-place zeroing for CUDA graphs) is the Executor's business: the speed layer
(combogan.accel) passes its own. The step only says what happens, in the paper's order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from ..config import LossConfig
from ..model.combogan import ComboGAN
from ..model.losses import WeightedMaps, discriminator_loss, gan_loss, l1
from .state import TrainState

T = TypeVar("T")
U = TypeVar("U")


class Executor:
    """How the step's pieces run. This one: plainly, one after the other, on this thread."""

    def both(self, first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
        """Run two independent jobs (the two directions, the two critics)."""
        return first(), second()

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def zero(self, opts: list[torch.optim.Optimizer]) -> None:
        for opt in opts:
            opt.zero_grad(set_to_none=True)

    def update(self, opts: list[torch.optim.Optimizer]) -> None:
        for opt in opts:
            opt.step()

    def finite(self, loss: torch.Tensor) -> bool:
        return bool(torch.isfinite(loss))


Critic = Callable[[str, torch.Tensor, str], WeightedMaps]


def direction(model: ComboGAN, src: str, dst: str, real: torch.Tensor, loss: LossConfig,
              critic: Critic | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One direction of the cycle, src -> dst -> src: its loss terms and the fake it made in dst.
    critic(domain, images, role) judges (default: that domain's discriminator, as it is)."""
    critic = critic or (lambda d, x, role: model.discriminators[d](x))
    lc = loss.lambda_cycle
    fake = model.decoders[dst](model.encoders[src](real), real)
    back = fake if loss.cycle_forward_grad else fake.detach()  # where the way back starts
    rec = model.decoders[src](model.encoders[dst](back), back)
    terms = {
        f"G_gan/{dst}": gan_loss(critic(dst, fake, "fake"), True, loss.gan_mode),
        f"cycle/{src}": lc * l1(rec, real),
    }
    if loss.lambda_identity > 0:
        # CycleGAN: the generator *into* src should leave a src image alone (G_B(a) ~ a).
        terms[f"idt/{src}"] = lc * loss.lambda_identity * l1(model.decoders[src](model.encoders[dst](real), real), real)
    return terms, fake


@dataclass
class GeneratorPass:
    """What both directions produced: loss terms by name, their sum, and the two fakes."""

    terms: dict[str, torch.Tensor]
    total: torch.Tensor
    fake_b: torch.Tensor  # made from the A batch, judged by D_B
    fake_a: torch.Tensor


class Step:
    """step(pair, real_a, real_b) -> detached losses by name; {'skipped': 1} for a non-finite step.

    Names are per domain: 'G_gan/winter' is the adversarial loss of images generated *into*
    winter, 'cycle/summer' the reconstruction of summer inputs, 'D/winter' winter's critic.
    """

    def __init__(self, model: ComboGAN, state: TrainState, loss: LossConfig, executor: Executor | None = None):
        self.model, self.state, self.loss = model, state, loss
        self.executor = executor or Executor()

    def __call__(self, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        g_opts, d_opts = self.state.optimizers(pair, "generator"), self.state.optimizers(pair, "critic")

        g = self.generators(pair, real_a, real_b)
        if not self.executor.finite(g.total):
            self.executor.zero(g_opts)  # a bad step only throws its gradients away
            return {"skipped": torch.ones(())}
        self.executor.update(g_opts)

        critics = self.pooled(pair, real_a, real_b, g)
        d_terms = self.critics(critics)
        if d_terms:
            if self.executor.finite(sum(d_terms.values())):
                self.executor.update(d_opts)
            else:
                self.executor.zero(d_opts)
        return {**g.terms, **d_terms, "G_total": g.total.detach()}

    def generators(self, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor) -> GeneratorPass:
        """Zero G's gradients, then both directions forward and backward. The critics judge the
        fakes but take no gradient from L_G."""
        a, b = pair
        self.executor.zero(self.state.optimizers(pair, "generator"))
        critics = [self.model.discriminators[n] for n in pair if n not in self.state.frozen]
        for d in critics:
            d.requires_grad_(False)
        def one_way(src: str, dst: str, real: torch.Tensor):
            terms, fake = direction(self.model, src, dst, real, self.loss, self.critic)
            return sum(terms.values()), (terms, fake)

        try:
            (loss_a, (terms_a, fake_b)), (loss_b, (terms_b, fake_a)) = self.executor.both(
                self._job(lambda: one_way(a, b, real_a), real_a.device), self._job(lambda: one_way(b, a, real_b), real_b.device))
        finally:
            for d in critics:
                d.requires_grad_(True)
        terms = {k: v.detach() for k, v in {**terms_a, **terms_b}.items()}
        return GeneratorPass(terms, loss_a + loss_b, fake_b.detach(), fake_a.detach())

    def pooled(self, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor,
               g: GeneratorPass) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(critic, real batch, fake from its history pool) per trainable critic; D_B draws first."""
        a, b = pair
        return [(d, real, self.state.pools[d].query(fake)) for d, real, fake in ((b, real_b, g.fake_b), (a, real_a, g.fake_a))
                if d not in self.state.frozen]

    def critics(self, critics: list[tuple[str, torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Zero the critics' gradients, then each critic on real vs pooled fake, forward and backward."""
        self.executor.zero(self.state.optimizers([d for d, _, _ in critics], "critic"))

        def judge(d: str, real: torch.Tensor, fake: torch.Tensor):
            return discriminator_loss(self.critic(d, real, "real"), self.critic(d, fake, "pooled"), self.loss.gan_mode), None

        jobs = [self._job(lambda c=c: judge(*c), c[1].device) for c in critics]
        losses = self.executor.both(*jobs) if len(jobs) == 2 else [job() for job in jobs]
        return {f"D/{d}": value for (d, _, _), (value, _) in zip(critics, losses)}

    def critic(self, domain: str, images: torch.Tensor, role: str) -> WeightedMaps:
        """The domain's critic on `images`, through train.diffaugment's transforms when set."""
        augment = self.state.augment
        return self.model.discriminators[domain](augment(images, domain, role) if augment else images)

    def _job(self, forward: Callable[[], tuple[torch.Tensor, T]], device: torch.device) -> Callable[[], tuple[torch.Tensor, T]]:
        """forward() -> (loss, extra) as one job: forward under the executor's autocast (entered on
        the job's own thread: autocast is thread-local), then backward; (detached loss, extra)."""
        def job() -> tuple[torch.Tensor, T]:
            with self.executor.autocast(device):
                loss, extra = forward()
            loss.backward()
            return loss.detach(), extra
        return job
