#!/usr/bin/env python3
"""Writes the data fixtures under tests/fixtures/data/, independently of the C++ code: .rec/.idx
sets made by following FORMATS.md sections 1-2, verification .bin files made by Python's own
pickle (and one Python-2-style file written byte by byte), tiny PNG images, a .safetensors and a
.npy written by hand. Plain python3, no numpy. Run from the repository root:
    python3 tests/make_data_fixtures.py
The tests hard-code facts stated here (labels, colours, counts), never values our code computed.
"""
import os
import pickle
import shutil
import struct
import sys
import types
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "data")
MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)  # 0A 23 D7 CE


# ----------------------------------------------------------------------------------------------
# PNG (RGB, 8 bits, no filter) with optional extra ancillary chunks placed before IDAT.

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(w, h, pixel, extra=()):
    """pixel(x, y) -> (r, g, b). extra: list of (kind, data) chunks inserted after IHDR."""
    raw = b"".join(b"\x00" + bytes(c for x in range(w) for c in pixel(x, y)) for y in range(h))
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    for kind, data in extra:
        out += png_chunk(kind, data)
    return out + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")


def solid_png(n, w=8, h=8, extra=()):
    """Image number n: pixel (x, y) = ((20n + x) % 256, (30y) % 256, (7n) % 256)."""
    return make_png(w, h, lambda x, y: ((20 * n + x) % 256, (30 * y) % 256, (7 * n) % 256), extra)


# ----------------------------------------------------------------------------------------------
# RecordIO, written from FORMATS.md section 1.

def rec_frame(payload):
    """Chunks of one record: split where the magic sits at a 4-aligned payload offset."""
    out, start = b"", 0
    for i in range(0, len(payload) - len(payload) % 4, 4):
        if payload[i:i + 4] == MAGIC_BYTES:
            cflag = 1 if start == 0 else 2
            out += MAGIC_BYTES + struct.pack("<I", cflag << 29 | (i - start)) + payload[start:i]
            start = i + 4
    last = payload[start:]
    cflag = 0 if start == 0 else 3
    out += MAGIC_BYTES + struct.pack("<I", cflag << 29 | len(last)) + last
    return out + b"\x00" * ((4 - len(last) % 4) % 4)


def irheader(flag, label, id1, id2=0, labels=()):
    assert len(labels) == flag
    return struct.pack("<IfQQ", flag, label, id1, id2) + struct.pack("<%df" % flag, *labels)


def write_rec(d, records, idx_order, prop=None):
    """records: list of (key, payload) in physical order; idx lines in idx_order (keys)."""
    os.makedirs(d, exist_ok=True)
    offsets, blob = {}, b""
    for key, payload in records:
        offsets[key] = len(blob)
        blob += rec_frame(payload)
    with open(os.path.join(d, "train.rec"), "wb") as f:
        f.write(blob)
    with open(os.path.join(d, "train.idx"), "w") as f:
        for k in idx_order:
            f.write("%d\t%d\n" % (k, offsets[k]))
    if prop is not None:
        with open(os.path.join(d, "property"), "w") as f:
            f.write(prop + "\n")
    return offsets


def make_rec_insightface():
    """9 images of 3 classes (keys 1-3 class 0, 4-5 class 1, 6-9 class 2), then identity records
    10-12 and record 0 after them. Keys 4-5 use face2rec2's flag 2 [class, aligned]; the others
    flag 0 with a scalar label. Key 2's IRHeader id is the magic (split at payload offset 8); key
    7's PNG carries a tEXt chunk with the magic at three 4-aligned payload offsets (chunks with
    cflag 1, 2, 2 (empty), 3). The .idx is not in offset order."""
    classes = {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2, 7: 2, 8: 2, 9: 2}
    records = []
    for k in range(1, 10):
        if k == 7:
            # The tEXt data starts at payload offset 24 (header) + 33 (signature + IHDR) + 8.
            data_at = 24 + 33 + 8
            pad = (4 - data_at % 4) % 4
            text = b"k\x00" + b"x" * pad  # keyword "k", then the magic at 4-aligned offsets
            while (data_at + len(text)) % 4:
                text += b"y"
            text += MAGIC_BYTES + b"abcd" + MAGIC_BYTES + MAGIC_BYTES + b"tail"
            png = solid_png(k, extra=[(b"tEXt", text)])
            assert png.find(MAGIC_BYTES) >= 0
        else:
            png = solid_png(k)
        if classes[k] == 1:
            head = irheader(2, 0.0, k, 0, (float(classes[k]), 1.0))
        elif k == 2:
            head = irheader(0, float(classes[k]), MAGIC)
        else:
            head = irheader(0, float(classes[k]), k)
        records.append((k, head + png))
    ids = [(1, 4), (4, 6), (6, 10)]
    for j, (a, b) in enumerate(ids):
        records.append((10 + j, irheader(2, 0.0, 0, 0, (float(a), float(b)))))
    records.append((0, irheader(2, 0.0, 0, 0, (10.0, 13.0))))
    d = os.path.join(OUT, "rec_insightface")
    offs = write_rec(d, records, [0, 12, 3, 1, 10, 5, 2, 9, 11, 4, 8, 6, 7], "3,8,8")
    blob = open(os.path.join(d, "train.rec"), "rb").read()
    # Check the splits happened where intended (chunk headers with cflag 1 in the file).
    assert struct.unpack_from("<I", blob, offs[2] + 4)[0] >> 29 == 1
    assert struct.unpack_from("<I", blob, offs[7] + 4)[0] >> 29 == 1


def make_rec_plain():
    """No header record: keys 0..5 are all images (flag 0), labels 0,0,1,1,1,2; no property."""
    labels = [0, 0, 1, 1, 1, 2]
    records = [(k, irheader(0, float(labels[k]), k) + solid_png(20 + k)) for k in range(6)]
    write_rec(os.path.join(OUT, "rec_plain"), records, [3, 0, 5, 1, 4, 2])


# ----------------------------------------------------------------------------------------------
# Verification sets.

def bin_images():
    """8 PNGs 8x8, image i = solid_png(40 + i); image 1 carries a 300-byte tEXt chunk so it is
    longer than 255 bytes (BINBYTES / BINSTRING rather than the short forms)."""
    imgs = [solid_png(40 + i) for i in range(8)]
    imgs[1] = solid_png(41, extra=[(b"tEXt", b"pad\x00" + bytes(range(256)) + b"z" * 44)])
    assert len(imgs[1]) > 255 and all(len(x) < 256 for j, x in enumerate(imgs) if j != 1)
    return imgs


BIN_ISSAME = [True, False, True, False]


def many_images():
    """1002 pairs of short byte strings: image i = bytes([i % 256, 7i % 256, 128 + i % 128]) +
    ascii(i); issame[p] = (p % 3 == 0). Lists longer than 1000 need two APPENDS batches, and more
    than 256 memo entries need LONG_BINPUT/LONG_BINGET."""
    imgs = [bytes([i % 256, (7 * i) % 256, 128 + i % 128]) + str(i).encode() for i in range(2004)]
    return imgs, [p % 3 == 0 for p in range(1002)]


def py2_style(imgs, issame):
    """Protocol 2 as Python 2 wrote it: str as SHORT_BINSTRING / BINSTRING, BINPUT after each."""
    out = bytearray(b"\x80\x02]q\x00(")
    memo = 1
    for im in imgs:
        if len(im) < 256:
            out += b"U" + bytes([len(im)]) + im
        else:
            out += b"T" + struct.pack("<i", len(im)) + im
        out += b"q" + bytes([memo])
        memo += 1
    out += b"e]q" + bytes([memo]) + b"("
    memo += 1
    out += bytes(0x88 if s else 0x89 for s in issame)
    out += b"e\x86q" + bytes([memo]) + b"."
    return bytes(out)


def fake_numpy_pickles():
    """A pickle whose images are 'numpy arrays': real numpy is not needed, only its global name.
    Fake modules numpy.core.multiarray._reconstruct make pickle write GLOBAL (protocol 2) or
    STACK_GLOBAL (protocol 4) naming numpy, as a cv2.imencode-output .bin does."""
    mods = {}
    for name in ("numpy", "numpy.core", "numpy.core.multiarray"):
        mods[name] = types.ModuleType(name)
    saved = {k: sys.modules.get(k) for k in mods}

    def _reconstruct(*args):
        return None
    _reconstruct.__module__ = "numpy.core.multiarray"
    _reconstruct.__qualname__ = "_reconstruct"
    mods["numpy.core.multiarray"]._reconstruct = _reconstruct
    mods["numpy"].core = mods["numpy.core"]
    mods["numpy.core"].multiarray = mods["numpy.core.multiarray"]

    class FakeArray:
        def __init__(self, data):
            self.data = data

        def __reduce__(self):
            return (_reconstruct, (self.data,))

    try:
        sys.modules.update(mods)
        arrays = [FakeArray(x) for x in bin_images()[:2]]
        return {p: pickle.dumps((arrays, [True]), protocol=p) for p in (2, 4)}
    finally:
        for k, v in saved.items():
            if v is None:
                del sys.modules[k]
            else:
                sys.modules[k] = v


def make_bins():
    imgs = bin_images()
    for p in (2, 3, 4, 5):
        with open(os.path.join(OUT, "py_proto%d.bin" % p), "wb") as f:
            f.write(pickle.dumps((imgs, BIN_ISSAME), protocol=p))
    many, many_same = many_images()
    for p in (2, 4):
        with open(os.path.join(OUT, "py_proto%d_many.bin" % p), "wb") as f:
            f.write(pickle.dumps((many, many_same), protocol=p))
    # Python 2 style: images 0..3 (image 1 is longer than 255 bytes), issame [True, False].
    p2 = py2_style(imgs[:4], [True, False])
    assert pickle.loads(p2, encoding="bytes") == (imgs[:4], [True, False])
    with open(os.path.join(OUT, "py2_style.bin"), "wb") as f:
        f.write(p2)
    for p, data in fake_numpy_pickles().items():
        with open(os.path.join(OUT, "numpy_fake_p%d.bin" % p), "wb") as f:
            f.write(data)
    # os.system('ls'): a pickle that would run code.
    with open(os.path.join(OUT, "evil_global.bin"), "wb") as f:
        f.write(b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.")
    # 3 images for 1 pair.
    with open(os.path.join(OUT, "mismatch.bin"), "wb") as f:
        f.write(pickle.dumps(([b"a", b"b", b"c"], [True]), protocol=4))


# ----------------------------------------------------------------------------------------------
# Image folders and .lst files for the packer.

def make_folders():
    def write(path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    root = os.path.join(OUT, "folder")
    # alice (label 0): images 60,61,62; bob (1): 63,64 and a non-image file; carol (2): 65.
    # Written in an order that is not sorted, the packer must sort names.
    for ident, nums in (("carol", [65]), ("alice", [60, 61, 62]), ("bob", [63, 64])):
        for j, n in enumerate(nums):
            write(os.path.join(root, ident, "img%d.png" % j), solid_png(n))
    write(os.path.join(root, "bob", "notes.txt"), b"not an image\n")
    bad = os.path.join(OUT, "folder_bad")
    write(os.path.join(bad, "a", "0.png"), solid_png(70))
    write(os.path.join(bad, "a", "1.png"), solid_png(71))
    write(os.path.join(bad, "b", "broken.png"), solid_png(72)[:40])  # truncated PNG
    write(os.path.join(bad, "b", "big.png"), solid_png(73, w=16, h=16))  # wrong size
    write(os.path.join(bad, "c", "0.png"), solid_png(74))
    # InsightFace style "aligned path label" and im2rec style "index label path"; paths relative
    # to the .lst's directory. Same 6 images, labels: alice 0, bob 1, carol 2.
    items = [("folder/alice/img0.png", 0), ("folder/alice/img1.png", 0),
             ("folder/alice/img2.png", 0), ("folder/bob/img0.png", 1),
             ("folder/bob/img1.png", 1), ("folder/carol/img0.png", 2)]
    with open(os.path.join(OUT, "insightface.lst"), "w") as f:
        for i, (p, l) in enumerate(items):
            if i == 0:  # one line with bbox and landmarks (17 columns)
                f.write("1\t%s\t%d\t0\t0\t8\t8\t%s\n" % (p, l, "\t".join(["1.5"] * 10)))
            else:
                f.write("1\t%s\t%d\n" % (p, l))
    with open(os.path.join(OUT, "im2rec.lst"), "w") as f:
        for i, (p, l) in enumerate(items):
            f.write("%d\t%f\t%s\n" % (i, float(l), p))


# ----------------------------------------------------------------------------------------------
# safetensors and npy written by hand.

def make_tensor_files():
    a = [0.5, -1.0, 2.0, 3.25, 4.0, -5.5]  # F32 (2, 3)
    b = [1, -2, 3, 40000000000]  # I64 (4,)
    data = struct.pack("<6f", *a) + struct.pack("<4q", *b)
    header = ('{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],'
              '"data_offsets":[0,24]},"b":{"dtype":"I64","shape":[4],"data_offsets":[24,56]}}')
    header += " " * ((8 - len(header) % 8) % 8)
    with open(os.path.join(OUT, "sample.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode() + data)
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
    with open(os.path.join(OUT, "sample.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() +
                struct.pack("<6f", *a))


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    make_rec_insightface()
    make_rec_plain()
    make_bins()
    make_folders()
    make_tensor_files()
    print("fixtures written to", OUT)


if __name__ == "__main__":
    main()
