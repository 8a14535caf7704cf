# PyTorch CPU timings of the layers and the r50 step that bench/cpu_layers.cpp times in the
# engine (same shapes, batch, float32, median of repeats after one warm-up), as JSON lines.
#   /usr/bin/python3 bench/torch_cpu.py --threads 2 [--repeats 5] [--net-repeats 2]
#                                       [--net-warmup 1] [--batch 8] [--no-net] [--json F]
import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_iresnet import IResNet, set_mxnet_running_var  # noqa: E402


def median_ms(fn, repeats):
    fn()  # warm-up
    ms = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms)


def bench_module(report, name, module, x, repeats, input_grad, gflop_fwd, gflop_bwd):
    """Forward alone, then backward alone: each backward run gets a fresh graph from an untimed
    forward. Parameter gradients are accumulated, the input gradient only when input_grad."""
    x = x.detach().requires_grad_(input_grad)
    report(name, "fwd", median_ms(lambda: module(x), repeats), gflop_fwd)
    dout = torch.empty_like(module(x)).uniform_(-1, 1)
    times = []
    for r in range(repeats + 1):
        y = module(x)
        t = time.perf_counter()
        y.backward(dout)
        if r > 0:
            times.append((time.perf_counter() - t) * 1e3)
    report(name, "bwd", statistics.median(times), gflop_bwd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--net-repeats", type=int, default=2)
    ap.add_argument("--net-warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-net", action="store_true")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = open(args.json, "w") if args.json else None
    print("%-28s %-5s %10s %10s %9s" % ("layer", "pass", "ms", "GFLOP", "GFLOP/s"))

    def report(name, p, ms, gflop):
        print("%-28s %-5s %10.3f %10.3f %9.1f" % (name, p, ms, gflop, gflop / (ms * 1e-3)),
              flush=True)
        if out:
            out.write(json.dumps({"impl": "torch", "name": name, "pass": p, "ms": round(ms, 4),
                                  "gflop": round(gflop, 5)}) + "\n")

    N = args.batch
    convs = [  # name, C, K, HW, R, stride, input gradient (the stem has none)
        ("conv3x3_stem_3to64_112", 3, 64, 112, 3, 1, False),
        ("conv3x3_64_56", 64, 64, 56, 3, 1, True),
        ("conv3x3_128_28", 128, 128, 28, 3, 1, True),
        ("conv3x3_256_14", 256, 256, 14, 3, 1, True),
        ("conv3x3_512_7", 512, 512, 7, 3, 1, True),
        ("conv3x3_s2_128_56to28", 128, 128, 56, 3, 2, True),
        ("conv1x1_s2_64to128_56", 64, 128, 56, 1, 2, True),
    ]
    for name, C, K, HW, R, stride, ig in convs:
        conv = nn.Conv2d(C, K, R, stride, R // 2, bias=False)
        x = torch.empty(N, C, HW, HW).uniform_(-1, 1)
        P = (HW + 2 * (R // 2) - R) // stride + 1
        fwd = 2.0 * N * K * P * P * C * R * R * 1e-9
        bench_module(report, name, conv, x, args.repeats, ig, fwd, 2 * fwd if ig else fwd)

    bn = nn.BatchNorm2d(64, eps=2e-5, momentum=0.1).train()
    bench_module(report, "bn_64_112", bn, torch.empty(N, 64, 112, 112).uniform_(-2, 2),
                 args.repeats, True, 0, 0)
    prelu = nn.PReLU(64, init=0.25)
    bench_module(report, "prelu_64_112", prelu, torch.empty(N, 64, 112, 112).uniform_(-2, 2),
                 args.repeats, True, 0, 0)
    fc = nn.Linear(25088, 512)
    fwd = 2.0 * N * 25088 * 512 * 1e-9
    bench_module(report, "fc_25088to512", fc, torch.empty(N, 25088).uniform_(-1, 1),
                 args.repeats, True, fwd, 2 * fwd)

    if not args.no_net:
        # The same r50 (tests/torch_iresnet.py) with stock PyTorch BN (no extra running-var
        # pass), training mode, dropout 0.4; forward and backward timed apart.
        net = IResNet(depth=50).train()
        set_mxnet_running_var(net, False)
        x = torch.empty(N, 3, 112, 112).uniform_(0, 255)
        d = torch.empty(N, 512).uniform_(-1, 1)
        f_ms, b_ms = [], []
        for r in range(args.net_warmup + args.net_repeats):
            net.zero_grad(set_to_none=False)
            t = time.perf_counter()
            y = net(x)
            f = (time.perf_counter() - t) * 1e3
            t = time.perf_counter()
            y.backward(d)
            b = (time.perf_counter() - t) * 1e3
            if r >= args.net_warmup:
                f_ms.append(f)
                b_ms.append(b)
        fwd = 2 * 6.3 * N  # SPEC.md section 3: ~6.3 G multiply-adds per image forward
        report("r50_step", "fwd", statistics.median(f_ms), fwd)
        report("r50_step", "bwd", statistics.median(b_ms), 2 * fwd)
    if out:
        out.close()


if __name__ == "__main__":
    main()
