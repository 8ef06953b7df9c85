"""The official ComboGAN critic, written out independently of combogan's classes (for tests)."""

import torch


def official_two_view_reference(state: dict, x: torch.Tensor, n_layers: int) -> list[torch.Tensor]:
    """The official ComboGAN NLayerDiscriminator written out plainly from its state dict: per view,
    conv(k4, s2 then s1, pad 2), InstanceNorm, PReLU; every inner stage's last channel is a
    prediction (SequentialOutput); gray = .299 R + .587 G + .114 B; RGB blurred with gkern_2d()."""
    F = torch.nn.functional
    # scipy.ndimage.gaussian_filter(5x5 impulse, sigma=3) (util.gkern_2d), separable; its middle row:
    row = torch.tensor([0.0400122867, 0.0400874772, 0.040133203, 0.0400874772, 0.0400122867])
    kernel = (torch.outer(row, row) / row[2]).expand(3, 1, 5, 5)
    views = {"gray": (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None], "rgb": F.conv2d(x, kernel, padding=2, groups=3)}
    out = {}
    for view, h in views.items():
        p = lambda k, view=view: state[f"model_{view}.{k}"]  # noqa: E731
        h = F.prelu(F.conv2d(h, p("0.0.weight"), p("0.0.bias"), stride=2, padding=2), p("0.1.weight"))
        preds = []
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            h = F.prelu(F.instance_norm(F.conv2d(h, p(f"{i}.0.weight"), p(f"{i}.0.bias"), stride=stride, padding=2)), p(f"{i}.2.weight"))
            if i < n_layers:
                preds.append(h[:, -1])
                h = h[:, :-1]
            else:
                preds.append(F.conv2d(h, p(f"{i}.3.weight"), p(f"{i}.3.bias"), padding=2)[:, -1])
        out[view] = preds
    return [torch.cat([g, c], 1) for g, c in zip(out["gray"], out["rgb"])]
