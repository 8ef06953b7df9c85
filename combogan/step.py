"""One ComboGAN training step: a CycleGAN step through enc_A -> dec_B -> enc_B -> dec_A.

Read beside the paper. For the sampled ordered pair (A, B) and batches a ~ A, b ~ B:

    fake_b = dec_B(enc_A(a))         rec_a = dec_A(enc_B(fake_b))
    fake_a = dec_A(enc_B(b))         rec_b = dec_B(enc_A(fake_a))

    L_G = GAN(D_B(fake_b), real) + GAN(D_A(fake_a), real)
        + lambda_cyc * (|rec_a - a|_1 + |rec_b - b|_1)
        [+ lambda_cyc * lambda_idt * (|dec_A(enc_A(a)) - a|_1 + |dec_B(enc_B(b)) - b|_1)]
        [+ lambda_lat * (|enc_B(fake_b) - enc_A(a)|_1 + |enc_A(fake_a) - enc_B(b)|_1)]

    L_D_B = 0.5 * (GAN(D_B(b), real) + GAN(D_B(pool_B(fake_b)), fake)),  likewise L_D_A.

Only the two sampled domains' networks and optimizers are touched. A frozen domain (add-domain)
passes gradients through to the trainable side but is never stepped. The function holds no
state of its own: everything lives in the registry, so it can be replayed, captured or wrapped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .config import LossConfig
from .distributed import Dist
from .losses import discriminator_loss, gan_loss, l1
from .registry import Domain, DomainRegistry


@dataclass(frozen=True)
class StepOptions:
    """How to run a step (not what to learn): precision and the non-finite guard."""

    autocast_dtype: torch.dtype | None = None  # e.g. torch.bfloat16 on CUDA
    check_finite: bool = True
    dist: Dist | None = None  # under torchrun: average the updated gradients over ranks


def _finite(loss: torch.Tensor, options: StepOptions) -> bool:
    if not options.check_finite:
        return True
    ok = bool(torch.isfinite(loss))
    # Every rank must take the same branch, or the next all-reduce would wait forever.
    return options.dist.all_true(ok, loss.device) if options.dist is not None else ok


def _update(opts: list[torch.optim.Optimizer], loss: torch.Tensor, options: StepOptions) -> None:
    """Backward, average over ranks (torchrun), step: only the given optimizers' parameters move."""
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if options.dist is not None:
        options.dist.average_grads([p for opt in opts for group in opt.param_groups for p in group["params"]])
    for opt in opts:
        opt.step()


def _requires_grad(domains: tuple[Domain, ...], flag: bool) -> None:
    for d in domains:
        if not d.frozen:
            for p in d.discriminator.parameters():
                p.requires_grad_(flag)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _optimizers(domains: tuple[Domain, ...], attr: str) -> list[torch.optim.Optimizer]:
    return [getattr(d, attr) for d in domains if not d.frozen and getattr(d, attr) is not None]


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
    mode, lc = loss.gan_mode, loss.lambda_cycle
    amp = _autocast(registry.device, options.autocast_dtype)

    # ---- generators (encoders + decoders) --------------------------------------------------
    _requires_grad((a, b), False)
    with amp:
        z_a, z_b = a.encoder(real_a), b.encoder(real_b)
        fake_b, fake_a = b.decoder(z_a), a.decoder(z_b)
        z_fake_b, z_fake_a = b.encoder(fake_b), a.encoder(fake_a)
        rec_a, rec_b = a.decoder(z_fake_b), b.decoder(z_fake_a)
        terms = {
            f"G_gan/{b.name}": gan_loss(b.discriminator(fake_b), True, mode),
            f"G_gan/{a.name}": gan_loss(a.discriminator(fake_a), True, mode),
            f"cycle/{a.name}": lc * l1(rec_a, real_a),
            f"cycle/{b.name}": lc * l1(rec_b, real_b),
        }
        if loss.lambda_identity > 0:
            w = lc * loss.lambda_identity
            terms[f"idt/{a.name}"] = w * l1(a.decoder(z_a), real_a)
            terms[f"idt/{b.name}"] = w * l1(b.decoder(z_b), real_b)
        if loss.lambda_latent > 0:
            # The target latent is detached: the cycle should pull enc_B(fake) to z_A, not z_A to it.
            terms[f"latent/{a.name}"] = loss.lambda_latent * l1(z_fake_b, z_a.detach())
            terms[f"latent/{b.name}"] = loss.lambda_latent * l1(z_fake_a, z_b.detach())
    g_total = sum(terms.values())
    if not _finite(g_total, options):
        _requires_grad((a, b), True)
        return {"skipped": torch.ones(())}

    _update(_optimizers((a, b), "gen_opt"), g_total, options)

    # ---- discriminators: real vs pooled fake ------------------------------------------------
    _requires_grad((a, b), True)
    d_terms: dict[str, torch.Tensor] = {}
    with amp:
        for d, real, fake in ((b, real_b, fake_b), (a, real_a, fake_a)):
            if d.frozen:
                continue
            pooled = d.pool.query(fake.detach())
            d_terms[f"D/{d.name}"] = discriminator_loss(d.discriminator(real), d.discriminator(pooled), mode)
    d_total = sum(d_terms.values()) if d_terms else None
    if d_total is not None and _finite(d_total, options):
        _update(_optimizers((a, b), "dis_opt"), d_total, options)

    out = {k: v.detach() for k, v in {**terms, **d_terms}.items()}
    out["G_total"] = g_total.detach()
    return out
