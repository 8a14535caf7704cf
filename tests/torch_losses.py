#!/usr/bin/python3
"""Cross-check fixtures for the losses, computed by PyTorch autograd in float64.

Run from the repository root with Debian's python (torch 1.13, CPU):
    /usr/bin/python3 tests/torch_losses.py
It writes tests/fixtures/losses_{arcface,combined,nr,center_dispersed}.txt, read by
tests/test_loss_crosscheck.cpp. The fixtures are committed, so `make test` needs no PyTorch.

File format (plain text): '#' lines are comments; every tensor is one header line
    NAME NDIM D0 D1 ...
followed by one line of its numel values (repr of float64, integers for labels). Scalars have
NDIM 0 and one value. Options are written as scalars too (s, m, beta, ...).

The formulas are written here independently of the C++ engine, from SPEC.md section 4, and
differentiated by autograd: ArcFace loss-type 4 with its keep branch and the FULL gradient
through the margin (as the seed's MXNet does), the combined margin through acos, the NR loss with
the argmax detached, and the center-dispersed loss.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def write(path, tensors, comment):
    with open(path, "w") as f:
        for line in comment.strip().splitlines():
            f.write("# " + line + "\n")
        for name, value in tensors:
            t = torch.as_tensor(value).detach()
            f.write("%s %d %s\n" % (name, t.dim(), " ".join(str(d) for d in t.shape)))
            flat = t.reshape(-1).tolist()
            if t.dtype in (torch.int32, torch.int64):
                f.write(" ".join(str(int(v)) for v in flat) + "\n")
            else:
                f.write(" ".join(repr(float(v)) for v in flat) + "\n")


def classification_problem(seed, B=8, C=10, D=16, keep_rows=()):
    rng = np.random.default_rng(seed)
    W = rng.uniform(-1, 1, (C, D))
    y = rng.integers(0, C, B)
    x = rng.uniform(-1, 1, (B, D)) + 0.3 * W[y]
    for b in keep_rows:  # cos t_y ~ -0.99: the keep branch of loss-type 4
        x[b] = -W[y[b]] + 0.05 * x[b]
    return torch.tensor(x), torch.tensor(W), torch.tensor(y, dtype=torch.int64)


def cosines(x, W):
    return F.normalize(x, dim=1) @ F.normalize(W, dim=1).t()


def arcface_logits(cos, y, s, m):
    cy = cos.gather(1, y[:, None])[:, 0]
    sin_t = torch.sqrt(1 - cy * cy)
    main = cy * math.cos(m) - sin_t * math.sin(m)
    keep = cy - m * math.sin(m)
    zy = torch.where(cy > math.cos(math.pi - m), main, keep)
    onehot = F.one_hot(y, cos.shape[1]).bool()
    return s * torch.where(onehot, zy[:, None], cos)


def combined_logits(cos, y, s, m1, m2, m3):
    cy = cos.gather(1, y[:, None])[:, 0]
    zy = torch.cos(m1 * torch.acos(cy) + m2) - m3
    onehot = F.one_hot(y, cos.shape[1]).bool()
    return s * torch.where(onehot, zy[:, None], cos)


def nr_loss(logits, y, beta):
    logp = F.log_softmax(logits, dim=1)
    y_hat = logits.detach().argmax(dim=1)  # no gradient through the argmax
    per = -(beta * logp.gather(1, y[:, None])[:, 0] + (1 - beta) * logp.gather(1, y_hat[:, None])[:, 0])
    return per.mean(), per


def margin_case(name, seed, keep_rows, make_logits, options, beta=None):
    x, W, y = classification_problem(seed, keep_rows=keep_rows)
    x.requires_grad_(True)
    W.requires_grad_(True)
    logits = make_logits(cosines(x, W), y)
    if beta is None:
        per = F.cross_entropy(logits, y, reduction="none")
        loss = per.mean()
    else:
        loss, per = nr_loss(logits, y, beta)
    loss.backward()
    tensors = [(k, torch.tensor(v)) for k, v in options] + [
        ("x", x), ("W", W), ("labels", y), ("loss", loss), ("per_sample_loss", per),
        ("dx", x.grad), ("dW", W.grad)]
    write(os.path.join(OUT, "losses_%s.txt" % name), tensors,
          "%s: PyTorch float64 autograd fixture written by tests/torch_losses.py" % name)


def center_dispersed_case(seed, K=5, k=3, D=12, interweight=2.0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(-1, 1, (K, D))
    e = np.repeat(base, k, axis=0) + 0.5 * rng.uniform(-1, 1, (K * k, D))
    e = torch.tensor(e, requires_grad=True)
    u = F.normalize(e, dim=1)
    c = F.normalize(u.view(K, k, D).mean(dim=1), dim=1)
    G = (c @ c.t()) * (1 - torch.eye(K))  # C = c c^T - I with the diagonal zeroed
    loss = interweight * (G ** 2).mean()
    loss.backward()
    write(os.path.join(OUT, "losses_center_dispersed.txt"),
          [("k", torch.tensor(float(k))), ("interweight", torch.tensor(interweight)),
           ("emb", e), ("loss", loss), ("demb", e.grad)],
          "center-dispersed loss: PyTorch float64 autograd fixture (tests/torch_losses.py)")


def main():
    os.makedirs(OUT, exist_ok=True)
    s, m = 64.0, 0.5
    margin_case("arcface", 101, (1, 6), lambda cos, y: arcface_logits(cos, y, s, m),
                [("s", s), ("m", m)])
    m1, m2, m3 = 0.9, 0.4, 0.15
    margin_case("combined", 102, (3,), lambda cos, y: combined_logits(cos, y, s, m1, m2, m3),
                [("s", s), ("m1", m1), ("m2", m2), ("m3", m3)])
    margin_case("nr", 103, (2,), lambda cos, y: arcface_logits(cos, y, s, m),
                [("s", s), ("m", m), ("beta", 0.9)], beta=0.9)
    center_dispersed_case(104)
    print("wrote fixtures to", OUT)


if __name__ == "__main__":
    main()
