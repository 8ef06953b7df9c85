"""One ComboGAN training step: a CycleGAN step through enc_A -> dec_B -> enc_B -> dec_A.

Read beside the paper. For the sampled ordered pair (A, B) and batches a ~ A, b ~ B:

    fake_b = dec_B(enc_A(a))         rec_a = dec_A(enc_B(fake_b))
    fake_a = dec_A(enc_B(b))         rec_b = dec_B(enc_A(fake_a))

    L_G = GAN(D_B(fake_b), real) + GAN(D_A(fake_a), real)
        + lambda_cyc * (|rec_a - a|_1 + |rec_b - b|_1)
        [+ lambda_cyc * lambda_idt * (|dec_A(enc_B(a)) - a|_1 + |dec_B(enc_A(b)) - b|_1)]   CycleGAN identity
        [+ lambda_ae * (S(dec_A(enc_A(a)), a) + S(dec_B(enc_B(b)), b))]   ComboGAN autoencode
        [+ lambda_fwd * (S(fake_b, a) + S(fake_a, b))]                    ComboGAN forward
        [+ lambda_lat * (|enc_B(fake_b) - enc_A(a)|_1 + |enc_A(fake_a) - enc_B(b)|_1)]

    S = smooth L1 of 3x3/2 average-pooled images (the official ComboGAN code's criterionIdt).

    L_D_B = 0.5 * (GAN(D_B(b), real) + GAN(D_B(pool_B(fake_b)), fake)),  likewise L_D_A.

Only the two sampled domains' networks and optimizers are touched. A frozen domain (add-domain)
passes gradients through to the trainable side but is never stepped. The function holds no
state of its own: everything lives in the registry, so it can be replayed, captured or wrapped.

The generator loss splits into two halves that share weights but no activations: the A side
(terms on a, fake_b, rec_a) and the B side. `StepOptions.overlap` may run them concurrently
(combogan.overlap); by default they run one after the other.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from .config import LossConfig
from .distributed import Dist
from .losses import discriminator_loss, downsampled_smooth_l1, gan_loss, l1
from .overlap import Overlap, sequential
from .registry import Domain, DomainRegistry

T = TypeVar("T")


@dataclass(frozen=True)
class StepOptions:
    """How to run a step (not what to learn): precision, the non-finite guard, overlap, DDP."""

    autocast_dtype: torch.dtype | None = None  # e.g. torch.bfloat16 on CUDA
    check_finite: bool = True
    dist: Dist | None = None  # under torchrun: average the updated gradients over ranks
    overlap: Overlap | None = None  # run the A and B halves concurrently (CPU threads)
    # Zero gradients in place instead of freeing them: CUDA graphs (combogan.graphs) keep the
    # addresses they captured, so a gradient tensor must never be replaced.
    keep_grads: bool = False


def finite(loss: torch.Tensor, options: StepOptions) -> bool:
    if not options.check_finite:
        return True
    ok = bool(torch.isfinite(loss))
    # Every rank must take the same branch, or the next all-reduce would wait forever.
    return options.dist.all_true(ok, loss.device) if options.dist is not None else ok


def zero_grads(opts: list[torch.optim.Optimizer], options: StepOptions) -> None:
    for opt in opts:
        opt.zero_grad(set_to_none=not options.keep_grads)


def apply_updates(opts: list[torch.optim.Optimizer], options: StepOptions) -> None:
    """Average over ranks (torchrun), then step: only the given optimizers' parameters move."""
    if options.dist is not None:
        options.dist.average_grads([p for opt in opts for group in opt.param_groups for p in group["params"]])
    for opt in opts:
        opt.step()


def _with_backward(forward: Callable[[], tuple[torch.Tensor, T]]) -> Callable[[], tuple[torch.Tensor, T]]:
    """forward() -> (loss, extra); run its backward on the same thread, so halves overlap whole."""
    def run() -> tuple[torch.Tensor, T]:
        loss, extra = forward()
        loss.backward()
        return loss.detach(), extra
    return run


def _requires_grad(domains: tuple[Domain, ...], flag: bool) -> None:
    for d in domains:
        if not d.frozen:
            for p in d.discriminator.parameters():
                p.requires_grad_(flag)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    # Autocast's cast cache must be off while a CUDA graph is being captured (torch.cuda.graphs).
    capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=not capturing)


def optimizers(domains: tuple[Domain, ...], attr: str) -> list[torch.optim.Optimizer]:
    return [getattr(d, attr) for d in domains if not d.frozen and getattr(d, attr) is not None]


def generator_half(src: Domain, dst: Domain, real: torch.Tensor, loss: LossConfig,
                   autocast_dtype: torch.dtype | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One direction of the cycle, src -> dst -> src: its loss terms and the fake it made in dst.

        z = enc_src(real)     fake = dec_dst(z)     rec = dec_src(enc_dst(fake))
        GAN(D_dst(fake), real) + lambda_cyc |rec - real|_1 [+ identity, latent terms]
    """
    mode, lc = loss.gan_mode, loss.lambda_cycle
    with _autocast(real.device, autocast_dtype):  # autocast is thread-local: enter it here
        z = src.encoder(real)
        fake = dst.decoder(z)
        z_fake = dst.encoder(fake)
        rec = src.decoder(z_fake)
        terms = {
            f"G_gan/{dst.name}": gan_loss(dst.discriminator(fake), True, mode),
            f"cycle/{src.name}": lc * l1(rec, real),
        }
        if loss.lambda_identity > 0:
            # CycleGAN: the generator *into* src should leave a src image alone (G_B(a) ~ a).
            terms[f"idt/{src.name}"] = lc * loss.lambda_identity * l1(src.decoder(dst.encoder(real)), real)
        if loss.lambda_autoencode > 0:
            terms[f"autoencode/{src.name}"] = loss.lambda_autoencode * downsampled_smooth_l1(src.decoder(z), real)
        if loss.lambda_forward > 0:
            terms[f"forward/{src.name}"] = loss.lambda_forward * downsampled_smooth_l1(fake, real)
        if loss.lambda_latent > 0:
            # The target latent is detached: the cycle should pull enc_dst(fake) to z, not z to it.
            terms[f"latent/{src.name}"] = loss.lambda_latent * l1(z_fake, z.detach())
    return terms, fake


def critic_loss(d: Domain, real: torch.Tensor, pooled_fake: torch.Tensor, mode: str,
                autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    with _autocast(real.device, autocast_dtype):
        return discriminator_loss(d.discriminator(real), d.discriminator(pooled_fake), mode)


@dataclass
class GeneratorPass:
    """What both generator halves produced: loss terms by name, their sum, and the two fakes."""

    terms: dict[str, torch.Tensor]
    total: torch.Tensor
    fake_b: torch.Tensor  # made from the A batch, judged by D_B
    fake_a: torch.Tensor


def generator_pass(a: Domain, b: Domain, real_a: torch.Tensor, real_b: torch.Tensor, loss: LossConfig,
                   options: StepOptions = StepOptions()) -> GeneratorPass:
    """Forward and backward of both halves (A->B->A and B->A->B); no zeroing, no update.

    The critics take no gradient here: they judge the fakes, they are not trained by L_G.
    """
    both, amp = options.overlap or sequential, options.autocast_dtype

    def side(src: Domain, dst: Domain, real: torch.Tensor):
        terms, fake = generator_half(src, dst, real, loss, amp)
        return sum(terms.values()), (terms, fake)

    _requires_grad((a, b), False)
    try:
        (loss_a, (terms_a, fake_b)), (loss_b, (terms_b, fake_a)) = both(_with_backward(lambda: side(a, b, real_a)),
                                                                        _with_backward(lambda: side(b, a, real_b)))
    finally:
        _requires_grad((a, b), True)
    terms = {k: v.detach() for k, v in {**terms_a, **terms_b}.items()}
    return GeneratorPass(terms, loss_a + loss_b, fake_b.detach(), fake_a.detach())


def critics_pass(critics: list[tuple[Domain, torch.Tensor, torch.Tensor]], mode: str,
                 options: StepOptions = StepOptions()) -> dict[str, torch.Tensor]:
    """Forward and backward of each (critic, real, pooled fake): 'D/<name>' -> its loss."""
    jobs = [_with_backward(lambda c=c: (critic_loss(*c, mode, options.autocast_dtype), None)) for c in critics]
    both = options.overlap or sequential
    losses = [l for l, _ in (both(*jobs) if len(jobs) == 2 else [job() for job in jobs])]
    return {f"D/{d.name}": value for (d, _, _), value in zip(critics, losses)}


def train_step(
    registry: DomainRegistry,
    pair: tuple[str, str],
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    loss: LossConfig,
    options: StepOptions = StepOptions(),
) -> dict[str, torch.Tensor]:
    """Run one G update then one D update for `pair`; return detached loss tensors by name.

    Names are per domain: 'G_gan/winter' is the adversarial loss of images generated *into*
    winter, 'cycle/summer' the reconstruction of summer inputs, 'D/winter' winter's critic.
    A step whose loss is not finite updates nothing and returns {'skipped': 1}.
    """
    a, b = registry[pair[0]], registry[pair[1]]
    g_opts, d_opts = optimizers((a, b), "gen_opt"), optimizers((a, b), "dis_opt")

    # ---- generators (encoders + decoders): the A side and the B side, each forward+backward --
    # Backward runs before the finiteness check so that each half is one job for `overlap`; a
    # non-finite step then only throws its gradients away.
    zero_grads(g_opts, options)
    g = generator_pass(a, b, real_a, real_b, loss, options)
    if not finite(g.total, options):
        zero_grads(g_opts, options)
        return {"skipped": torch.ones(())}
    apply_updates(g_opts, options)

    # ---- discriminators: real vs pooled fake, each forward+backward -------------------------
    zero_grads(d_opts, options)
    d_terms = critics_pass(pooled_critics(a, b, real_a, real_b, g), loss.gan_mode, options)
    if d_terms:
        if finite(sum(d_terms.values()), options):
            apply_updates(d_opts, options)
        else:
            zero_grads(d_opts, options)
    return {**g.terms, **d_terms, "G_total": g.total.detach()}


def pooled_critics(a: Domain, b: Domain, real_a: torch.Tensor, real_b: torch.Tensor,
                   g: GeneratorPass) -> list[tuple[Domain, torch.Tensor, torch.Tensor]]:
    """(critic, real, fake from its history pool) for each trainable critic; D_B's pool draws first."""
    return [(d, real, d.pool.query(fake)) for d, real, fake in ((b, real_b, g.fake_b), (a, real_a, g.fake_a)) if not d.frozen]
