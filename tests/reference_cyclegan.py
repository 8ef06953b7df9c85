"""An independent CycleGAN step, written out in the official code's structure (G_A: A -> B, D_A
judges domain B) with its own plain ResnetGenerator and PatchGAN: the reference that the N = 2
test (training/test_step.py) and the import test (apps/test_importing.py) compare against."""

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class RefResBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


def ref_generator(ngf, n_blocks):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for mult in (1, 2):
        layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
    layers += [RefResBlock(ngf * 4) for _ in range(n_blocks)]
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def ref_patchgan(ndf, n_layers=3):
    layers = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2 if n < n_layers else 1, padding=1),
                   nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
    return nn.Sequential(*layers)


class RefPool:
    """CycleGAN's ImagePool, written out: store until full, then for each image with probability
    1/2 return a random stored one and keep the new one in its place. Its random numbers come
    from a generator seeded like the domain's pool, drawn in the same order (uniforms, then slots)."""

    def __init__(self, size, generator_state):
        self.size, self.images = size, []
        self.g = torch.Generator()
        self.g.set_state(generator_state)

    def query(self, images):
        u = torch.rand(images.shape[0], generator=self.g).tolist()
        slot = torch.randint(0, self.size, (images.shape[0],), generator=self.g).tolist()
        out = []
        for i, image in enumerate(images):
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif u[i] > 0.5:
                out.append(self.images[slot[i]].clone())
                self.images[slot[i]] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


def copy_in_order(dst: nn.Module, *sources: nn.Module) -> None:
    """Copy parameters by position (the layer order is the architecture's); shapes must agree."""
    theirs = [p for s in sources for p in s.parameters()]
    mine = list(dst.parameters())
    assert [p.shape for p in mine] == [p.shape for p in theirs]
    with torch.no_grad():
        for p, q in zip(mine, theirs):
            p.copy_(q)


def biases_before_instancenorm(net: nn.Module) -> set:
    """The bias of every conv whose next layer is an InstanceNorm (affine=False)."""
    layers = [m for m in net.modules() if not isinstance(m, (nn.Sequential, RefResBlock))]
    return {id(conv.bias) for conv, nxt in zip(layers, layers[1:])
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(nxt, nn.InstanceNorm2d)}


def reference_cyclegan_step(G_A, G_B, D_A, D_B, opt_G, opt_D, pool_A, pool_B, real_A, real_B, lam, lam_idt):
    mse = lambda p, t: F.mse_loss(p, torch.full_like(p, float(t)))  # noqa: E731
    fake_B, fake_A = G_A(real_A), G_B(real_B)
    rec_A, rec_B = G_B(fake_B), G_A(fake_A)
    for p in itertools.chain(D_A.parameters(), D_B.parameters()):
        p.requires_grad_(False)
    opt_G.zero_grad()
    out = {}
    if lam_idt > 0:
        out["idt_A"] = (G_A(real_B) - real_B).abs().mean() * lam * lam_idt
        out["idt_B"] = (G_B(real_A) - real_A).abs().mean() * lam * lam_idt
    out["G_A"], out["G_B"] = mse(D_A(fake_B), 1), mse(D_B(fake_A), 1)
    out["cycle_A"], out["cycle_B"] = (rec_A - real_A).abs().mean() * lam, (rec_B - real_B).abs().mean() * lam
    sum(out.values()).backward()
    opt_G.step()
    for p in itertools.chain(D_A.parameters(), D_B.parameters()):
        p.requires_grad_(True)
    opt_D.zero_grad()
    out["D_A"] = 0.5 * (mse(D_A(real_B), 1) + mse(D_A(pool_B.query(fake_B.detach())), 0))
    out["D_A"].backward()
    out["D_B"] = 0.5 * (mse(D_B(real_A), 1) + mse(D_B(pool_A.query(fake_A.detach())), 0))
    out["D_B"].backward()
    opt_D.step()
    return out


