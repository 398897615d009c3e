"""Independent plain-torch reference of the documented VGGT forward (tests only).

Everything runs straight from a VGGT-layout state dict with explicit matmuls, explicit softmax
attention, explicit RoPE rotation and explicit conv calls — no module of ``recon`` is used — so
it checks the implementation against VGGT's published algorithm (frame/global attention with
camera and register tokens, 2D RoPE, qk-norm, LayerScale, the camera head's adaLN refinement, the
DPT head). It also builds a VGGT-layout state dict by hand for a tiny config (the key list written out from the layout description).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


# --------------------------------------------------------------------------- hand-built checkpoint
def make_vggt_state_dict(
    dim=32,
    agg_depth=3,
    dino_depth=2,
    registers=4,
    pos_grid=4,
    patch=14,
    trunk_depth=1,
    features=16,
    out_channels=(8, 16, 32, 32),
    conv_patch=False,
    seed=0,
    extra_heads=True,
    heads=4,
    device=None,
) -> dict[str, torch.Tensor]:
    """A random VGGT-layout state dict (every key of the official VGGT checkpoint) with non-trivial values.

    ``heads`` sets the aggregator's attention heads (the width of its q/k norms); ``device="meta"``
    gives the key layout and shapes only (e.g. VGGT-1B's, without allocating a billion weights).
    """
    g = torch.Generator().manual_seed(seed)
    meta = str(device) == "meta"

    def rnd(*shape, scale=0.2, base=0.0):
        if meta:
            return torch.empty(*shape, device="meta")
        return base + scale * torch.randn(*shape, generator=g)

    sd: dict[str, torch.Tensor] = {}

    def linear(name, fan_in, fan_out):
        sd[f"{name}.weight"] = rnd(fan_out, fan_in, scale=1.0 / math.sqrt(fan_in))
        sd[f"{name}.bias"] = rnd(fan_out, scale=0.1)

    def norm(name, width):
        sd[f"{name}.weight"] = rnd(width, scale=0.1, base=1.0)
        sd[f"{name}.bias"] = rnd(width, scale=0.1)

    def conv(name, cin, cout, k, bias=True, transpose=False):
        sd[f"{name}.weight"] = rnd(
            *((cin, cout) if transpose else (cout, cin)), k, k, scale=1.0 / math.sqrt(cin * k * k)
        )
        if bias:
            sd[f"{name}.bias"] = rnd(cout, scale=0.1)

    def block(prefix, width, qk_norm, heads=heads):
        norm(f"{prefix}.norm1", width)
        linear(f"{prefix}.attn.qkv", width, 3 * width)
        if qk_norm:
            norm(f"{prefix}.attn.q_norm", width // heads)
            norm(f"{prefix}.attn.k_norm", width // heads)
        linear(f"{prefix}.attn.proj", width, width)
        sd[f"{prefix}.ls1.gamma"] = rnd(width, scale=0.3, base=0.5)
        norm(f"{prefix}.norm2", width)
        linear(f"{prefix}.mlp.fc1", width, 4 * width)
        linear(f"{prefix}.mlp.fc2", 4 * width, width)
        sd[f"{prefix}.ls2.gamma"] = rnd(width, scale=0.3, base=0.5)

    a = "aggregator"
    sd[f"{a}.camera_token"] = rnd(1, 2, 1, dim, scale=1.0)
    sd[f"{a}.register_token"] = rnd(1, 2, registers, dim, scale=1.0)
    for i in range(agg_depth):
        block(f"{a}.frame_blocks.{i}", dim, True)
        block(f"{a}.global_blocks.{i}", dim, True)
    pe = f"{a}.patch_embed"
    if conv_patch:
        conv(f"{pe}.proj", 3, dim, patch)
    else:
        sd[f"{pe}.cls_token"] = rnd(1, 1, dim, scale=1.0)
        sd[f"{pe}.pos_embed"] = rnd(1, 1 + pos_grid * pos_grid, dim, scale=1.0)
        sd[f"{pe}.register_tokens"] = rnd(1, registers, dim, scale=1.0)
        sd[f"{pe}.mask_token"] = rnd(1, dim)
        conv(f"{pe}.patch_embed.proj", 3, dim, patch)
        for i in range(dino_depth):
            block(f"{pe}.blocks.{i}", dim, False)
        norm(f"{pe}.norm", dim)
    c2 = 2 * dim
    ch = "camera_head"
    sd[f"{ch}.empty_pose_tokens"] = rnd(1, 1, 9, scale=1.0)
    linear(f"{ch}.embed_pose", 9, c2)
    linear(f"{ch}.poseLN_modulation.1", c2, 3 * c2)
    norm(f"{ch}.token_norm", c2)
    norm(f"{ch}.trunk_norm", c2)
    linear(f"{ch}.pose_branch.fc1", c2, c2 // 2)
    linear(f"{ch}.pose_branch.fc2", c2 // 2, 9)
    sd[f"{ch}.pose_branch.fc2.bias"][7:] += 1.0
    for i in range(trunk_depth):
        block(f"{ch}.trunk.{i}", c2, False)
    d = "depth_head"
    norm(f"{d}.norm", c2)
    for i, oc in enumerate(out_channels):
        conv(f"{d}.projects.{i}", c2, oc, 1)
    conv(f"{d}.resize_layers.0", out_channels[0], out_channels[0], 4, transpose=True)
    conv(f"{d}.resize_layers.1", out_channels[1], out_channels[1], 2, transpose=True)
    conv(f"{d}.resize_layers.3", out_channels[3], out_channels[3], 3)
    for k, oc in enumerate(out_channels, start=1):
        conv(f"{d}.scratch.layer{k}_rn", oc, features, 3, bias=False)
        r = f"{d}.scratch.refinenet{k}"
        conv(f"{r}.out_conv", features, features, 1)
        for unit in ("resConfUnit2",) if k == 4 else ("resConfUnit1", "resConfUnit2"):
            conv(f"{r}.{unit}.conv1", features, features, 3)
            conv(f"{r}.{unit}.conv2", features, features, 3)
    conv(f"{d}.scratch.output_conv1", features, features // 2, 3)
    conv(f"{d}.scratch.output_conv2.0", features // 2, 32, 3)
    conv(f"{d}.scratch.output_conv2.2", 32, 2, 1)
    sd[f"{d}.scratch.output_conv2.2.bias"] = rnd(2, scale=0.05)
    if extra_heads:
        sd["point_head.norm.weight"] = torch.ones(c2, device=device)
        sd["track_head.feature_extractor.norm.weight"] = torch.ones(c2, device=device)
    return sd


# --------------------------------------------------------------------------- primitives
def ln(x, sd, name, eps=1e-5, affine=True):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps)
    return y * sd[f"{name}.weight"] + sd[f"{name}.bias"] if affine else y


def lin(x, sd, name):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def softmax_attention(q, k, v):
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    logits = logits - logits.max(-1, keepdim=True).values
    w = torch.exp(logits)
    return (w / w.sum(-1, keepdim=True)) @ v


def rope_rotate(x, pos, base=100.0):
    """x [B, h, N, D], pos [N, 2] (y, x): rotate pairs (j, j + D/4) of each half by pos·base^(−2j/(D/2))."""
    d = x.shape[-1]
    half, quarter = d // 2, d // 4
    freqs = base ** (-torch.arange(quarter, dtype=torch.float64) * 2.0 / half)
    out = []
    for axis in range(2):
        part = x[..., axis * half : (axis + 1) * half]
        ang = (pos[:, axis].double()[:, None] * freqs[None]).float()
        c, s = torch.cos(ang), torch.sin(ang)
        a, b = part[..., :quarter], part[..., quarter:]
        out += [a * c - b * s, b * c + a * s]
    return torch.cat([out[0], out[1], out[2], out[3]], dim=-1)


def block(x, sd, p, heads, qk_norm=False, pos=None, eps=1e-5):
    b, n, c = x.shape
    hd = c // heads
    y = ln(x, sd, f"{p}.norm1", eps)
    qkv = lin(y, sd, f"{p}.attn.qkv").reshape(b, n, 3, heads, hd)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    if qk_norm:
        q, k = ln(q, sd, f"{p}.attn.q_norm"), ln(k, sd, f"{p}.attn.k_norm")
    if pos is not None:
        q, k = rope_rotate(q, pos), rope_rotate(k, pos)
    o = softmax_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
    x = x + lin(o, sd, f"{p}.attn.proj") * sd[f"{p}.ls1.gamma"]
    m = lin(gelu(lin(ln(x, sd, f"{p}.norm2", eps), sd, f"{p}.mlp.fc1")), sd, f"{p}.mlp.fc2")
    return x + m * sd[f"{p}.ls2.gamma"]


# --------------------------------------------------------------------------- VGGT pieces
def dino_patch_tokens(x, sd, heads, registers, patch=14):
    """Normalised images [N,3,H,W] → DINOv2 patch tokens after the final norm [N, P, C]."""
    pe = "aggregator.patch_embed"
    if f"{pe}.proj.weight" in sd:
        t = F.conv2d(x, sd[f"{pe}.proj.weight"], sd[f"{pe}.proj.bias"], stride=patch)
        return t.flatten(2).transpose(1, 2)
    t = F.conv2d(x, sd[f"{pe}.patch_embed.proj.weight"], sd[f"{pe}.patch_embed.proj.bias"], stride=patch)
    n, c, h, w = t.shape
    t = t.flatten(2).transpose(1, 2)
    pos = sd[f"{pe}.pos_embed"]
    m = int(round((pos.shape[1] - 1) ** 0.5))
    if h * w == m * m and h == w:
        grid = pos[:, 1:]
    else:
        grid = F.interpolate(
            pos[:, 1:].reshape(1, m, m, c).permute(0, 3, 1, 2).float(), size=(h, w), mode="bicubic", antialias=True
        )
        grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, c)
    t = torch.cat([sd[f"{pe}.cls_token"].expand(n, 1, c) + pos[:, :1], t + grid], dim=1)
    t = torch.cat([t[:, :1], sd[f"{pe}.register_tokens"].expand(n, registers, c), t[:, 1:]], dim=1)
    depth = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith(f"{pe}.blocks."))
    for i in range(depth):
        t = block(t, sd, f"{pe}.blocks.{i}", heads, eps=1e-6)
    return ln(t, sd, f"{pe}.norm", 1e-6)[:, 1 + registers :]


def aggregator(images, sd, heads, enc_heads, patch=14):
    """images [B,S,3,H,W] in [0,1] → list of all layers [B,S,N,2C], patch_start_idx."""
    b, s, _, hgt, wid = images.shape
    x = (images.reshape(b * s, 3, hgt, wid) - MEAN) / STD
    reg = sd["aggregator.register_token"].shape[2]
    pt = dino_patch_tokens(x, sd, enc_heads, reg, patch)
    c = pt.shape[-1]
    h, w = hgt // patch, wid // patch

    def slots(tab):
        tab = tab[0]  # [2, K, C]
        per_frame = torch.stack([tab[0]] + [tab[1]] * (s - 1))  # [S, K, C]
        return per_frame[None].expand(b, *per_frame.shape).reshape(b * s, tab.shape[1], c)

    tok = torch.cat([slots(sd["aggregator.camera_token"]), slots(sd["aggregator.register_token"]), pt], dim=1)
    n = tok.shape[1]
    pos = [(0, 0)] * (1 + reg) + [(y + 1, xx + 1) for y in range(h) for xx in range(w)]
    pos = torch.tensor(pos)
    pos_global = pos.repeat(s, 1)
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("aggregator.frame_blocks."))
    layers = []
    for i in range(depth):
        tok = block(tok, sd, f"aggregator.frame_blocks.{i}", heads, True, pos)
        fr = tok.reshape(b, s, n, c)
        tok = block(tok.reshape(b, s * n, c), sd, f"aggregator.global_blocks.{i}", heads, True, pos_global)
        layers.append(torch.cat([fr, tok.reshape(b, s, n, c)], dim=-1))
        tok = tok.reshape(b * s, n, c)
    return layers, 1 + reg


def camera_head(last, sd, heads, iterations=4):
    p = "camera_head"
    tokens = ln(last[:, :, 0], sd, f"{p}.token_norm")
    b, s, c = tokens.shape
    trunk = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith(f"{p}.trunk."))
    pose, outs = None, []
    for _ in range(iterations):
        prev = sd[f"{p}.empty_pose_tokens"].expand(b, s, 9) if pose is None else pose
        cond = lin(prev, sd, f"{p}.embed_pose")
        mod = lin(cond * torch.sigmoid(cond), sd, f"{p}.poseLN_modulation.1")
        shift, scale, gate = mod[..., :c], mod[..., c : 2 * c], mod[..., 2 * c :]
        mu = tokens.mean(-1, keepdim=True)
        var = ((tokens - mu) ** 2).mean(-1, keepdim=True)
        x = gate * ((tokens - mu) / torch.sqrt(var + 1e-6) * (1 + scale) + shift) + tokens
        for i in range(trunk):
            x = block(x, sd, f"{p}.trunk.{i}", heads)
        y = ln(x, sd, f"{p}.trunk_norm")
        delta = lin(gelu(lin(y, sd, f"{p}.pose_branch.fc1")), sd, f"{p}.pose_branch.fc2")
        pose = delta if pose is None else pose + delta
        outs.append(torch.cat([pose[..., :7], pose[..., 7:].clamp_min(0)], dim=-1))
    return outs


def uv_embed_np(h, w, channels, aspect):
    diag = math.sqrt(aspect**2 + 1)
    sx, sy = aspect / diag, 1 / diag
    u = np.linspace(-sx * (w - 1) / w, sx * (w - 1) / w, w)
    v = np.linspace(-sy * (h - 1) / h, sy * (h - 1) / h, h)
    q = channels // 4
    omega = 1.0 / 100.0 ** (np.arange(q) / q)
    emb = np.zeros((channels, h, w))
    for yi in range(h):
        for xi in range(w):
            au, av = u[xi] * omega, v[yi] * omega
            emb[:, yi, xi] = np.concatenate([np.sin(au), np.cos(au), np.sin(av), np.cos(av)])
    return torch.from_numpy(emb).float()


def _conv(x, sd, name, padding=0, stride=1):
    return F.conv2d(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"), stride=stride, padding=padding)


def _rcu(x, sd, name):
    x = torch.clamp_min(x, 0)
    return x + _conv(torch.clamp_min(_conv(x, sd, f"{name}.conv1", 1), 0), sd, f"{name}.conv2", 1)


def _fusion(x0, x1, sd, name, size):
    out = x0 if x1 is None else x0 + _rcu(x1, sd, f"{name}.resConfUnit1")
    out = _rcu(out, sd, f"{name}.resConfUnit2")
    out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
    return _conv(out, sd, f"{name}.out_conv")


def dpt_head(layers, sd, layer_idx, start, image_hw, patch=14):
    p = "depth_head"
    hgt, wid = image_hw
    h, w = hgt // patch, wid // patch
    b, s = layers[0].shape[:2]
    feats = []
    for j, li in enumerate(layer_idx):
        t = layers[li][:, :, start:].reshape(b * s, h * w, -1)
        t = ln(t, sd, f"{p}.norm")
        x = t.transpose(1, 2).reshape(b * s, -1, h, w)
        x = _conv(x, sd, f"{p}.projects.{j}")
        x = x + 0.1 * uv_embed_np(h, w, x.shape[1], wid / hgt)[None]
        if j == 0:
            x = F.conv_transpose2d(x, sd[f"{p}.resize_layers.0.weight"], sd[f"{p}.resize_layers.0.bias"], stride=4)
        elif j == 1:
            x = F.conv_transpose2d(x, sd[f"{p}.resize_layers.1.weight"], sd[f"{p}.resize_layers.1.bias"], stride=2)
        elif j == 3:
            x = _conv(x, sd, f"{p}.resize_layers.3", padding=1, stride=2)
        feats.append(x)
    rn = [_conv(f, sd, f"{p}.scratch.layer{k}_rn", 1) for k, f in enumerate(feats, start=1)]
    out = _fusion(rn[3], None, sd, f"{p}.scratch.refinenet4", rn[2].shape[2:])
    out = _fusion(out, rn[2], sd, f"{p}.scratch.refinenet3", rn[1].shape[2:])
    out = _fusion(out, rn[1], sd, f"{p}.scratch.refinenet2", rn[0].shape[2:])
    out = _fusion(out, rn[0], sd, f"{p}.scratch.refinenet1", (2 * rn[0].shape[2], 2 * rn[0].shape[3]))
    out = _conv(out, sd, f"{p}.scratch.output_conv1", 1)
    out = F.interpolate(out, size=(hgt, wid), mode="bilinear", align_corners=True)
    out = out + 0.1 * uv_embed_np(hgt, wid, out.shape[1], wid / hgt)[None]
    out = torch.clamp_min(_conv(out, sd, f"{p}.scratch.output_conv2.0", 1), 0)
    out = _conv(out, sd, f"{p}.scratch.output_conv2.2").reshape(b, s, 2, hgt, wid)
    return torch.exp(out[:, :, 0]), 1 + torch.exp(out[:, :, 1])


def vggt_forward(images, sd, heads=4, enc_heads=4, camera_heads=4, layer_idx=(0, 1, 1, 2), iterations=4):
    """The whole documented VGGT forward: pose_enc_list, depth, depth_conf."""
    layers, start = aggregator(images, sd, heads, enc_heads)
    poses = camera_head(layers[-1], sd, camera_heads, iterations)
    depth, conf = dpt_head(layers, sd, list(layer_idx), start, tuple(images.shape[-2:]))
    return {"pose_enc_list": poses, "pose_enc": poses[-1], "depth": depth, "depth_conf": conf}
