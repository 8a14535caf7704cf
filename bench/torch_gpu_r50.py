# PyTorch timing of the training step that bench/gpu_r50.cpp times in the engine: iresnet r50
# (tests/torch_iresnet.py, stock cuDNN BatchNorm) forward + backward + SGD momentum update at
# 112x112, batch 128, in float32 (TF32 off, as the engine), bf16 autocast with channels_last, and
# TF32; CUDA events, images/s and peak memory (torch.cuda.max_memory_allocated). JSON lines out.
#   python3 bench/torch_gpu_r50.py [--device cuda] [--batch 128] [--warmup 5] [--iters 20]
#       [--modes fp32,bf16,tf32] [--classes 0] [--network r50] [--size 112] [--json FILE]
#   CPU smoke test: /usr/bin/python3 bench/torch_gpu_r50.py --device cpu --batch 2 --warmup 0
#       --iters 1 --modes fp32,bf16
# Exit status: 0 done, 1 a mode failed, 3 --device cuda without a usable GPU.
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_iresnet import IResNet, set_mxnet_running_var  # noqa: E402

# mode -> (autocast dtype or None, channels_last, TF32 allowed)
MODES = {
    "fp32": (None, False, False),     # the engine's arithmetic: float32 FMA, NCHW
    "fp32cl": (None, True, False),    # float32, channels_last
    "tf32": (None, False, True),      # PyTorch's default for convolutions on Ampere and later
    "bf16": (torch.bfloat16, True, False),  # autocast bf16, channels_last
}


def arcface_loss(emb, W, y, s=64.0, m=0.5):
    """Normalised classifier + ArcFace (loss-type 4, keep branch) + cross-entropy, batch mean,
    as losses/margin_softmax.h defines it, with the gradient through the margin."""
    cos = F.linear(F.normalize(emb.float(), dim=1), F.normalize(W, dim=1))
    cy = cos.gather(1, y[:, None])[:, 0].clamp(-1.0, 1.0)
    sin_t = torch.sqrt((1.0 - cy * cy).clamp_min(1e-8))
    main = cy * math.cos(m) - sin_t * math.sin(m)
    keep = cy - m * math.sin(m)
    zy = torch.where(cy > math.cos(math.pi - m), main, keep)
    logits = s * cos.scatter(1, y[:, None], zy[:, None])
    return F.cross_entropy(logits, y)


class Clock:
    """Phase marks: CUDA events on a GPU (read after one synchronisation), perf_counter on a
    CPU (where every op is synchronous)."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def ms(self, a, b):
        return a.elapsed_time(b) if self.cuda else (b - a) * 1e3


def run_mode(args, mode, device):
    amp_dtype, channels_last, tf32 = MODES[mode]
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True  # algorithm search once per shape, as the engine
    torch.manual_seed(args.seed)
    depth = int(args.network.lstrip("r"))
    model = IResNet(depth=depth, input_size=args.size).to(device)
    set_mxnet_running_var(model, False)  # stock BN: PyTorch's fastest path
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    B, S = args.batch, args.size
    images = torch.randint(0, 256, (B, 3, S, S), device=device).float()
    images = images.contiguous(memory_format=memory_format)
    d_emb = (torch.rand(B, 512, device=device) * 2 - 1) / B
    params = [p for p in model.parameters() if p.requires_grad]
    W = y = None
    if args.classes > 0:
        W = (torch.rand(args.classes, 512, device=device) * 2 - 1) * 0.01
        W.requires_grad_(True)
        params.append(W)
        y = torch.randint(0, args.classes, (B,), device=device)
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    clock = Clock(device)
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=amp_dtype)) if amp_dtype \
        else None

    def step(marks):
        if marks is not None:
            marks.append(clock.mark())
        opt.zero_grad(set_to_none=True)
        if autocast:
            with autocast():
                emb = model(images)
        else:
            emb = model(images)
        if marks is not None:
            marks.append(clock.mark())
        loss = arcface_loss(emb, W, y) if W is not None else None
        if marks is not None:
            marks.append(clock.mark())
        if loss is not None:
            loss.backward()
        else:
            emb.backward(d_emb.to(emb.dtype))
        if marks is not None:
            marks.append(clock.mark())
        opt.step()
        if marks is not None:
            marks.append(clock.mark())
        return emb, loss

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step(None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    steps = []
    for _ in range(args.iters):
        marks = []
        emb, loss = step(marks)
        steps.append(marks)
    if device.type == "cuda":
        torch.cuda.synchronize()
    phases = [[clock.ms(m[i], m[i + 1]) for m in steps] for i in range(4)]
    run_ms = clock.ms(steps[0][0], steps[-1][4])
    ms_step = run_ms / args.iters
    finite = bool(torch.isfinite(emb.float()).all()) and (loss is None or
                                                          math.isfinite(float(loss)))
    rec = {
        "impl": "torch", "mode": mode, "network": args.network, "batch": B, "size": S,
        "classes": args.classes, "warmup": args.warmup, "iters": args.iters,
        "ms_step": round(ms_step, 4), "images_per_s": round(B * 1e3 / ms_step, 2),
        "fwd_ms": round(statistics.median(phases[0]), 4),
        "loss_ms": round(statistics.median(phases[1]), 4),
        "bwd_ms": round(statistics.median(phases[2]), 4),
        "update_ms": round(statistics.median(phases[3]), 4),
        "num_params": n_params, "finite": finite, "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "channels_last": channels_last, "autocast": str(amp_dtype) if amp_dtype else None,
        "tf32": tf32,
    }
    if device.type == "cuda":
        rec["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        rec["peak_reserved_bytes"] = torch.cuda.max_memory_reserved(device)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--modes", default="fp32,bf16,tf32")
    ap.add_argument("--classes", type=int, default=0)
    ap.add_argument("--network", default="r50", choices=["r18", "r34", "r50", "r100"])
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad or args.batch < 1 or args.iters < 1 or args.warmup < 0 or args.size % 16:
        ap.error("modes from %s; batch, iters >= 1; size a multiple of 16" % ",".join(MODES))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("torch_gpu_r50: no usable GPU (torch %s, torch.cuda.is_available() is False); "
              "nothing to time (exit 3)" % torch.__version__, flush=True)
        return 3
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        print("torch %s, CUDA %s, cuDNN %s, %s, %d SMs, %.0f MiB" % (
            torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), p.name,
            p.multi_processor_count, p.total_memory / 2**20), flush=True)
    else:
        print("torch %s on the CPU (smoke test: timings mean nothing)" % torch.__version__,
              flush=True)
    print("%s at %dx%d, batch %d, %s; %d warm-up + %d timed steps" % (
        args.network, args.size, args.size, args.batch,
        "classifier + ArcFace CE over %d classes" % args.classes if args.classes
        else "random d_embedding (no loss)", args.warmup, args.iters), flush=True)
    status = 0
    for mode in modes:
        try:
            rec = run_mode(args, mode, device)
        except Exception as e:  # report and go on with the next mode
            print("mode %s failed: %s: %s" % (mode, type(e).__name__, e), flush=True)
            status = 1
            continue
        mem = ""
        if "peak_allocated_bytes" in rec:
            mem = ", peak allocated %.1f MiB (reserved %.1f MiB)" % (
                rec["peak_allocated_bytes"] / 2**20, rec["peak_reserved_bytes"] / 2**20)
        print("%-6s %8.2f ms/step %9.1f images/s (fwd %.2f, loss %.2f, bwd %.2f, update %.2f "
              "ms)%s%s" % (mode, rec["ms_step"], rec["images_per_s"], rec["fwd_ms"],
                           rec["loss_ms"], rec["bwd_ms"], rec["update_ms"], mem,
                           "" if rec["finite"] else ", NOT FINITE"), flush=True)
        line = json.dumps(rec)
        print(line, flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(line + "\n")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return status


if __name__ == "__main__":
    sys.exit(main())
