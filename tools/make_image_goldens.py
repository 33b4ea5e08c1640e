#!/usr/bin/python3
"""Image decoding and preprocessing goldens for tests/test_image.c.

Writes small deterministic test images under tests/goldens/images/ and, for
each, what PIL decodes (Image.open(p).convert("RGB")) and what torchvision's
eval transform (Resize, CenterCrop, ToTensor, Normalize) produces for a few
configs. Files:
  <name>.png / .jpg            the image
  <name>.rgb.gz                PIL's decoded RGB8, row-major HWC, gzip; for
                               16-bit grey the engine's decision instead (see
                               decoded_rgb: high byte, where PIL clamps)
  <name>.<cfg>.u8.gz           torchvision's PIL image after Resize+CenterCrop, HWC
  <name>.<cfg>.f32.gz          the final tensor, float32 little-endian CHW
  manifest.txt                 one line per golden (format in its header)

Run with Debian's interpreter (it has torch/torchvision/PIL):
  /usr/bin/python3 tools/make_image_goldens.py            # regenerate all
  /usr/bin/python3 tools/make_image_goldens.py --decode-only  # images and decode goldens
                       # only (numpy + PIL, no torch); transform goldens kept
  /usr/bin/python3 tools/make_image_goldens.py --live LINES  # used by the C live test
"""
import gzip
import io
import os
import struct
import sys
import warnings
import zlib

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "goldens", "images")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


# ---------------------------------------------------------------- PNG writer
# Our own writer, so every bit depth / colour type / tRNS / interlace case can
# be produced (PIL cannot write 16-bit RGB or 2-bit grey).

def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _pack_rows(samples, bit_depth):
    """samples: H x (W*channels) uint array -> list of packed row bytes."""
    rows = []
    for r in samples:
        if bit_depth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif bit_depth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // bit_depth
            n = len(r)
            padded = np.zeros(((n + per - 1) // per) * per, dtype=np.uint8)
            padded[:n] = r
            padded = padded.reshape(-1, per)
            b = np.zeros(len(padded), dtype=np.uint16)
            for i in range(per):
                b = (b << bit_depth) | padded[:, i]
            rows.append(b.astype(np.uint8).tobytes())
    return rows


def _filtered(rows, bpp, filt):
    """Applies PNG filter `filt` (0..4, or -1 = cycle per row) to packed rows."""
    out = b""
    prev = bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        f = (i % 5) if filt < 0 else filt
        cur = np.frombuffer(row, dtype=np.uint8).astype(np.int32)
        up = np.frombuffer(prev, dtype=np.uint8).astype(np.int32)
        if f == 0:
            res = cur
        elif f == 1:
            left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
            res = cur - left
        elif f == 2:
            res = cur - up
        elif f == 3:
            left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
            res = cur - (left + up) // 2
        else:  # Paeth
            left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
            ul = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
            p = left + up - ul
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
            res = cur - pred
        out += bytes([f]) + (res & 0xFF).astype(np.uint8).tobytes()
        prev = row
    return out


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, samples, bit_depth, color_type, plte=None, trns=None, interlace=False, filt=0):
    """samples: H x W x C array of sample values (indices for palette)."""
    h, w, c = samples.shape
    bpp = max(1, (c * bit_depth) // 8)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            raw += _filtered(_pack_rows(sub.reshape(sub.shape[0], -1), bit_depth), bpp, filt)
    else:
        raw = _filtered(_pack_rows(samples.reshape(h, -1), bit_depth), bpp, filt)
    data = b"\x89PNG\r\n\x1a\n"
    data += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0))
    if plte is not None:
        data += _chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        data += _chunk(b"tRNS", trns)
    data += _chunk(b"IDAT", zlib.compress(raw, 9))
    data += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- content

def scene(w, h, seed, noise=12):
    """Smooth gradients + rectangles + mild noise: compresses well, has edges
    (to exercise the resampling filters) and noise (to expose rounding)."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for ch in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        img[..., ch] = 128 + 100 * np.sin(a * x / max(w, 1) * 6 + b * y / max(h, 1) * 6 + c * 3)
    for _ in range(4):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        x1, y1 = rng.randint(x0, w + 1), rng.randint(y0, h + 1)
        img[y0:y1, x0:x1] = rng.randint(0, 256, 3)
    if noise:
        img += rng.normal(0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def wide(v, rng):
    """8-bit values -> 16-bit samples with random low bytes."""
    return v.astype(np.uint16) * 256 + rng.randint(0, 256, v.shape).astype(np.uint16)


# ---------------------------------------------------------------- transforms

def tv_transform(path, resize, crop, interp, mean, std):
    import torch
    import torchvision.transforms as T
    modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
             "nearest": T.InterpolationMode.NEAREST}
    img = Image.open(path).convert("RGB")
    steps = []
    if resize:
        steps.append(T.Resize(resize, interpolation=modes[interp]))
    if crop:
        steps.append(T.CenterCrop(crop))
    pil = T.Compose(steps)(img) if steps else img
    u8 = np.asarray(pil, dtype=np.uint8)
    t = T.Normalize(mean, std)(T.ToTensor()(pil))
    assert t.dtype == torch.float32
    return u8, t.numpy()


def save_gz(path, arr):
    # mtime=0: byte-identical output on every run
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as g:
        g.write(np.ascontiguousarray(arr).tobytes())


def decoded_rgb(path):
    """What the engine must decode: PIL's convert("RGB"), except 16-bit grey.
    PIL opens that as mode I (or I;16) and I -> RGB clamps at 255, turning a
    normal image near-white; the engine scales it by the high byte, as PIL
    itself does for 16-bit RGB and grey+alpha (host/io/image.h)."""
    with Image.open(path) as im:
        if im.format == "PNG" and im.mode in ("I", "I;16", "I;16B"):
            v = np.asarray(im, dtype=np.int64)
            assert v.max() > 255, "the 16-bit grey golden should exercise the clamp"
            clamped = np.asarray(im.convert("RGB"), dtype=np.uint8)
            scaled = np.repeat((v >> 8).astype(np.uint8)[..., None], 3, 2)
            assert (clamped != scaled).any()  # the departure is real
            return scaled
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def fmt(v):
    return repr(float(v))


# ---------------------------------------------------------------- goldens

def make_images():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.RandomState(1234)
    made = []  # file names

    def png(name, *a, **k):
        write_png(os.path.join(OUT, name), *a, **k)
        made.append(name)

    def jpg(name, img, **k):
        img.save(os.path.join(OUT, name), "JPEG", **k)
        made.append(name)

    s = scene(37, 23, 1)
    png("rgb8_37x23.png", s, 8, 2, filt=-1)
    png("rgb8_adam7_37x23.png", s, 8, 2, interlace=True, filt=-1)
    alpha = rng.randint(0, 256, (23, 37, 1)).astype(np.uint8)
    png("rgba8_37x23.png", np.concatenate([s, alpha], 2), 8, 6, filt=4)
    g = scene(23, 37, 2)[..., :1]
    png("grey8_23x37.png", g, 8, 0)
    png("greyalpha8_23x37.png", np.concatenate([g, alpha.reshape(37, 23, 1)], 2), 8, 4)
    png("grey8_trns_23x37.png", g, 8, 0, trns=struct.pack(">H", int(g[0, 0, 0])))
    png("rgb8_trns_37x23.png", s, 8, 2, trns=struct.pack(">HHH", *[int(v) for v in s[0, 0]]))
    for bd in (1, 2, 4):
        png("grey%d_13x7.png" % bd, rng.randint(0, 1 << bd, (7, 13, 1)), bd, 0)
    plte = rng.randint(0, 256, (200, 3))
    idx = rng.randint(0, 200, (23, 37, 1))
    png("palette8_trns_37x23.png", idx, 8, 3, plte=plte, trns=bytes(rng.randint(0, 256, 150).astype(np.uint8)))
    png("palette4_adam7_37x23.png", idx % 16, 4, 3, plte=plte[:16], interlace=True)
    png("palette1_13x7.png", idx[:7, :13] % 2, 1, 3, plte=plte[:2])
    # indices beyond PLTE (invalid, seen in the wild): PIL shows (i, i, i)
    png("palette4_oob_13x7.png", idx[:7, :13] % 16, 4, 3, plte=plte[:5])
    png("rgb16_37x23.png", wide(s, rng), 16, 2, filt=-1)
    png("rgba16_37x23.png", wide(np.concatenate([s, alpha], 2), rng), 16, 6)
    g16 = np.concatenate([rng.randint(0, 256, (37, 11, 1)), rng.randint(0, 65536, (37, 12, 1))], 1)
    png("grey16_23x37.png", g16.astype(np.uint16), 16, 0)
    png("greyalpha16_23x37.png", np.concatenate([wide(g, rng), wide(alpha.reshape(37, 23, 1), rng)], 2), 16, 4)
    png("rgb8_300x199.png", scene(300, 199, 3, noise=0), 8, 2, filt=4)
    png("rgb8_5x300.png", scene(5, 300, 4), 8, 2)
    png("rgb8_128x128.png", scene(128, 128, 5, noise=4), 8, 2, filt=-1)

    c = Image.fromarray(scene(300, 199, 6, noise=0))
    jpg("ycc420_300x199.jpg", c, quality=90, subsampling=2)
    c37 = Image.fromarray(scene(37, 23, 7))
    jpg("ycc420_37x23.jpg", c37, quality=85, subsampling=2)
    jpg("ycc422_37x23.jpg", c37, quality=85, subsampling=1)
    jpg("ycc444_37x23.jpg", c37, quality=95, subsampling=0)
    jpg("grey_23x37.jpg", Image.fromarray(scene(23, 37, 8)[..., 0]), quality=90)
    jpg("progressive_128x128.jpg", Image.fromarray(scene(128, 128, 9, noise=4)), quality=80, progressive=True)
    jpg("cmyk_37x23.jpg", Image.fromarray(scene(37, 23, 10)).convert("CMYK"), quality=90)
    return made


# (resize, crop, interp, mean, std): the shipped model's, ImageNet's, upscale,
# bicubic/nearest, and crops larger than the resized image (zero padding).
CONFIGS = {
    "rgb8_300x199.png": [(128, 128, "bilinear", HALF, HALF), (64, 56, "bicubic", IMAGENET_MEAN, IMAGENET_STD),
                         (50, 40, "nearest", HALF, HALF), (256, 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD),
                         # 199 -> 30 and 300 -> 45: Pillow's accumulated nearest
                         # coordinate differs from (x + 0.5) * scale here
                         (30, 0, "nearest", HALF, HALF)],
    "rgb8_37x23.png": [(64, 56, "bilinear", IMAGENET_MEAN, IMAGENET_STD), (41, 40, "bicubic", HALF, HALF),
                       (30, 30, "nearest", HALF, HALF), (11, 9, "bilinear", HALF, HALF),
                       (16, 24, "bilinear", IMAGENET_MEAN, IMAGENET_STD)],
    "rgb8_5x300.png": [(3, 5, "bilinear", HALF, HALF), (8, 8, "bicubic", HALF, HALF), (7, 0, "nearest", HALF, HALF)],
    "rgb8_128x128.png": [(128, 128, "bilinear", (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)),
                         (0, 100, "bilinear", HALF, HALF), (0, 0, "bilinear", HALF, HALF)],
    "ycc420_300x199.jpg": [(100, 90, "bilinear", IMAGENET_MEAN, IMAGENET_STD)],
    "grey8_23x37.png": [(17, 15, "bicubic", HALF, HALF)],
}


def main(decode_only=False):
    # PIL warns that P images with tRNS "should be converted to RGBA": we
    # convert to RGB on purpose, as the engine's users do.
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    made = make_images()
    lines = [
        "# Generated by tools/make_image_goldens.py; do not edit.",
        "# decode NAME W H RGB_GZ",
        "# transform NAME RESIZE CROP INTERP MEAN0 MEAN1 MEAN2 STD0 STD1 STD2 OUT_W OUT_H U8_GZ F32_GZ",
    ]
    kept = {}  # --decode-only: name -> its transform lines from the old manifest
    if decode_only:
        for line in open(os.path.join(OUT, "manifest.txt")):
            if line.startswith("transform "):
                kept.setdefault(line.split()[1], []).append(line.rstrip("\n"))
    for name in made:
        p = os.path.join(OUT, name)
        rgb = decoded_rgb(p)
        save_gz(p + ".rgb.gz", rgb)
        lines.append("decode %s %d %d %s" % (name, rgb.shape[1], rgb.shape[0], name + ".rgb.gz"))
        if decode_only:
            lines += kept.get(name, [])
            continue
        for i, (r, c, interp, mean, std) in enumerate(CONFIGS.get(name, [])):
            u8, t = tv_transform(p, r, c, interp, mean, std)
            base = "%s.t%d" % (name, i)
            save_gz(os.path.join(OUT, base + ".u8.gz"), u8)
            save_gz(os.path.join(OUT, base + ".f32.gz"), t.astype("<f4"))
            lines.append("transform %s %d %d %s %s %s %d %d %s %s" % (
                name, r, c, interp, " ".join(fmt(m) for m in mean), " ".join(fmt(s) for s in std),
                u8.shape[1], u8.shape[0], base + ".u8.gz", base + ".f32.gz"))
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("wrote %d images, %d bytes in %s" % (len(made), total, os.path.normpath(OUT)))


def live(lines_path):
    """--live LINES: LINES has lines 'IMAGE RESIZE CROP INTERP M0 M1 M2 S0 S1 S2 OUT_U8 OUT_F32';
    writes the raw (uncompressed) transform outputs. Used by the C live test."""
    for line in open(lines_path):
        f = line.split()
        if not f:
            continue
        mean = tuple(float(v) for v in f[4:7])
        std = tuple(float(v) for v in f[7:10])
        u8, t = tv_transform(f[0], int(f[1]), int(f[2]), f[3], mean, std)
        with open(f[10], "wb") as o:
            o.write(struct.pack("<ii", u8.shape[1], u8.shape[0]) + u8.tobytes())
        with open(f[11], "wb") as o:
            o.write(t.astype("<f4").tobytes())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--live":
        live(sys.argv[2])
    else:
        main(decode_only=sys.argv[1:] == ["--decode-only"])
