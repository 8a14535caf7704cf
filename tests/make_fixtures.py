# Writes the Python-made fixtures under tests/fixtures/ that the C++ tests read (no Python needed
# to run the tests). Run with Debian's python (numpy + torch):  /usr/bin/python3 tests/make_fixtures.py
#   io          small.safetensors, small.npy, small_i64.npy: known values for the readers
#   names       iresnet50_names.txt, iresnet18_names.txt: "name shape" per state_dict entry
#   crosscheck  runs build/bench_export_tiny (an engine r18 tiny checkpoint), loads it into the
#               PyTorch model (tests/torch_iresnet.py, strict), runs it in float64 and writes
#               crosscheck_r18tiny.safetensors + crosscheck_r18tiny_io.safetensors
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures")

# safetensors dtype names <-> numpy dtypes (little-endian).
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?"}


def st_write(path, tensors, metadata=None, sort_keys=False):
    """Our own safetensors writer, following the format: u64 header length, JSON header, data.
    tensors: list of (name, ndarray); bytes are laid out in list order. sort_keys writes the JSON
    keys alphabetically, so header order and data order differ (a reader must not assume them
    equal). The header is padded with spaces to a multiple of 8, as the reference writer does."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    by_np = {np.dtype(v): k for k, v in DTYPES.items()}
    for name, a in tensors:
        a = np.array(a, order="C")  # (ascontiguousarray would turn a 0-d array 1-d)
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": by_np[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), sort_keys=sort_keys).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


def st_read(path):
    """Our own safetensors reader: {name: ndarray} in header order, plus the metadata."""
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out, meta


def make_io():
    # Values the C++ test (tests/test_safetensors.cpp, tests/test_npy.cpp) states independently.
    weight = (np.arange(6, dtype=np.float32).reshape(2, 3) * 0.25 - 1.0)
    counts = np.array([1, -2, 3, 1 << 40], dtype=np.int64)
    scalar = np.array(np.pi, dtype=np.float64)  # shape ()
    empty = np.zeros((0,), dtype=np.float32)
    bias = np.array([-0.5, 2.5], dtype=np.float64)
    # json.dumps escapes the non-ASCII name as \u00e9 and the quote/newline in the metadata.
    st_write(os.path.join(FIXTURES, "small.safetensors"),
             [("weight", weight), ("counts", counts), ("scalar", scalar), ("empty", empty),
              ("caf\u00e9.bias", bias)],
             metadata={"format": "pt", "note": 'a "quote", a \\ and a\nnewline'},
             sort_keys=True)
    # numpy's own writer for the .npy fixtures.
    np.save(os.path.join(FIXTURES, "small.npy"),
            np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.5 - 3.0)
    np.save(os.path.join(FIXTURES, "small_i64.npy"), np.array([7, -8, 1 << 50], dtype=np.int64))
    print("wrote small.safetensors, small.npy, small_i64.npy")


def make_names():
    sys.path.insert(0, HERE)
    from torch_iresnet import IResNet
    for depth in (50, 18):
        model = IResNet(depth=depth)
        path = os.path.join(FIXTURES, "iresnet%d_names.txt" % depth)
        with open(path, "w") as f:
            for name, t in model.state_dict().items():
                # "name shape", shape comma separated; scalars (num_batches_tracked) have no
                # shape and the line is just the name.
                f.write((name + " " + ",".join(str(d) for d in t.shape)).rstrip() + "\n")
        print("wrote", path, len(model.state_dict()), "entries")


def make_crosscheck(exporter, seed):
    import torch
    sys.path.insert(0, HERE)
    from torch_iresnet import IResNet
    # The tiny configuration of bench/export_tiny.cpp: r18, width 1/8, input 16, 16 features.
    batch, size, nf = 4, 16, 16
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "r18tiny.safetensors")
        subprocess.run([exporter, ckpt, str(seed)], check=True)
        shutil.copyfile(ckpt, os.path.join(FIXTURES, "crosscheck_r18tiny.safetensors"))
    state, _ = st_read(os.path.join(FIXTURES, "crosscheck_r18tiny.safetensors"))

    # The reference runs in float64, so the C++ float32 run is compared with (nearly) exact
    # values and the C++ float64 run can be held to a tight tolerance.
    model = IResNet(depth=18, width=0.125, input_size=size, num_features=nf, dropout=0.0)
    model = model.double()
    sd = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
    model.load_state_dict(sd, strict=True)  # raises on a missing, unknown or misshapen entry

    rs = np.random.RandomState(20190601)
    # init() leaves BN at gamma 1, beta 0, mean 0, var 1, PReLU at 0.25 and biases at 0, values
    # under which a swapped or ignored tensor goes unnoticed. Draw them at random instead; the
    # io file carries them as "set.<name>" and the C++ test writes them into its model after
    # loading the (unchanged) engine checkpoint.
    overrides = []
    for name, v in state.items():
        if name == "features.weight" or v.dtype != np.float32:
            continue  # gamma fixed to 1; num_batches_tracked
        if name.endswith("running_mean") or name.endswith("bias"):
            new = rs.uniform(-0.5, 0.5, size=v.shape)
        elif name.endswith("running_var"):
            new = rs.uniform(0.5, 2.0, size=v.shape)
        elif name.endswith("prelu.weight"):
            new = rs.uniform(0.05, 0.5, size=v.shape)
        elif v.ndim == 1:  # BN gamma
            new = rs.uniform(0.5, 1.5, size=v.shape)
        else:
            continue  # conv and fc weights keep the engine's initialisation
        new = new.astype(np.float32)
        overrides.append(("set." + name, new))
        sd[name] = torch.from_numpy(new)
    model.load_state_dict(sd, strict=True)

    images = rs.uniform(0.0, 255.0, size=(batch, 3, size, size)).astype(np.float32)
    d_emb = rs.normal(0.0, 1.0, size=(batch, nf)).astype(np.float32)

    model.train()
    x = torch.from_numpy(images.astype(np.float64)).requires_grad_(True)
    emb_train = model(x)
    emb_train.backward(torch.from_numpy(d_emb.astype(np.float64)))
    out = overrides + [("input", images), ("d_embedding", d_emb),
           ("embedding_train", emb_train.detach().numpy()),
           ("grad_input", x.grad.numpy())]
    for name, p in model.named_parameters():
        if p.grad is not None:
            out.append(("grad." + name, p.grad.numpy()))
    # Running statistics after the one training forward (MXNet momentum, biased variance).
    for name, b in model.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            out.append(("running." + name, b.numpy().copy()))
    model.eval()
    with torch.no_grad():
        emb_eval = model(torch.from_numpy(images.astype(np.float64)))
    out.append(("embedding_eval", emb_eval.numpy()))
    path = os.path.join(FIXTURES, "crosscheck_r18tiny_io.safetensors")
    st_write(path, out, metadata={"torch": torch.__version__, "seed": str(seed),
                                  "reference_dtype": "float64"})
    print("wrote", path, len(out), "tensors")


def main():
    ap = argparse.ArgumentParser(description="Write the fixtures under tests/fixtures/ (see the file header).")
    # (No argparse choices here: Python 3.11 checks an empty or default list against them as one
    # value and rejects it, so the names are checked below.)
    ap.add_argument("what", nargs="*", help="io, names and/or crosscheck (default: all three)")
    ap.add_argument("--exporter", default=os.path.join(ROOT, "build", "bench_export_tiny"),
                    help="the engine binary that writes the tiny r18 checkpoint")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    args.what = args.what or ["io", "names", "crosscheck"]
    for w in args.what:
        if w not in ("io", "names", "crosscheck"):
            ap.error("unknown fixture set %r (choose from io, names, crosscheck)" % w)
    os.makedirs(FIXTURES, exist_ok=True)
    if "io" in args.what:
        make_io()
    if "names" in args.what:
        make_names()
    if "crosscheck" in args.what:
        make_crosscheck(args.exporter, args.seed)


if __name__ == "__main__":
    main()
