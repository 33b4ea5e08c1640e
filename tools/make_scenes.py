#!/usr/bin/python3
"""Cluttered Fashion-MNIST scenes with exact boxes (the data of weights/vgg16_mini).

Each 128x128 RGB scene holds 1-3 instances of ONE Fashion-MNIST class, each
colourised and scaled, on a cluttered background (gradients, smooth noise,
stripes or checks, and low-contrast fragments of OTHER classes' glyphs), so a
classifier has to find the objects rather than read the whole frame.

Determinism: scene `i` of split `s` with seed `S` is a pure function of
(S, s, i) and the Fashion-MNIST files: its numpy Generator is
PCG64(SeedSequence([S, split_id, i])), only Generator.integers/.random are
drawn (their streams do not touch libm), and the pixel arithmetic is
element-wise IEEE float64 (+ - * /, floor) and integer sums, so it does not
depend on BLAS, SIMD reduction order or transcendental functions. PNG bytes
may differ between zlib versions; pixel values do not.

Splits: train = Fashion-MNIST train[0:50000], val = train[50000:60000],
test = Fashion-MNIST t10k; distractor fragments come from the same pool, so
no source image is shared between splits.

Output of `--out D`:
  D/images/<ImageId>.png
  D/annotations/<ImageId>.xml   ILSVRC2012 val layout; boxes 1-based inclusive
                                (PASCAL VOC / ILSVRC devkit: xmin=1 is the
                                first pixel), i.e. our 0-based box + 1.
  D/images.csv                  NIPS 2017 ImageNet-compatible layout;
                                TrueLabel = class index + 1; x1,y1,x2,y2 =
                                union box of the instances, RELATIVE to the
                                image as in the NIPS dev_dataset.csv (x1 =
                                xmin/W, x2 = (xmax+1)/W: pixel edges, so
                                PIL's crop((int(x1*W), .., int(x2*W), ..))
                                cuts exactly the box).
  D/sources.csv                 provenance: Fashion-MNIST indices per scene.
  D/list.txt                    one image path per line.

Library use (training): SceneGenerator(split, seed).scene(i) or .batch(idx).
"""

import argparse
import csv
import gzip
import hashlib
import os
import struct
import sys

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian dataset-fashion-mnist
SIZE = 128
NUM_CLASSES = 10
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
WNIDS = ["fm%07d" % c for c in range(NUM_CLASSES)]
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
TRAIN_VAL_BOUNDARY = 50000  # train = FM train[:50000], val = FM train[50000:]

CSV_HEADER = ["ImageId", "URL", "x1", "y1", "x2", "y2", "TrueLabel",
              "TargetClass", "OriginalLandingURL", "License", "Author",
              "AuthorProfileURL"]


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_pool(split, root=FASHION_MNIST_DIR):
    """Source glyphs (N,28,28 uint8), labels (N,) and their original indices."""
    kind = "t10k" if split == "test" else "train"
    images = _read_idx(os.path.join(root, "%s-images-idx3-ubyte.gz" % kind))
    labels = _read_idx(os.path.join(root, "%s-labels-idx1-ubyte.gz" % kind))
    if split == "train":
        sel = np.arange(0, TRAIN_VAL_BOUNDARY)
    elif split == "val":
        sel = np.arange(TRAIN_VAL_BOUNDARY, len(labels))
    elif split == "test":
        sel = np.arange(len(labels))
    else:
        raise ValueError("unknown split %r" % split)
    return images[sel], labels[sel].astype(np.int64), sel


def resize_bilinear(src, out_h, out_w):
    """Bilinear resize of a 2-D or HxWxC float array, half-pixel centres
    (align_corners=False), edge clamp; element-wise arithmetic only."""
    in_h, in_w = src.shape[:2]
    ys = (np.arange(out_h, dtype=np.float64) + 0.5) * (in_h / out_h) - 0.5
    xs = (np.arange(out_w, dtype=np.float64) + 0.5) * (in_w / out_w) - 0.5
    ys = np.clip(ys, 0.0, in_h - 1)
    xs = np.clip(xs, 0.0, in_w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, in_h - 1)
    x1 = np.minimum(x0 + 1, in_w - 1)
    wy = ys - y0
    wx = xs - x0
    if src.ndim == 3:
        wy = wy[:, None, None]
        wx = wx[None, :, None]
    else:
        wy = wy[:, None]
        wx = wx[None, :]
    top = src[y0][:, x0] * (1.0 - wx) + src[y0][:, x1] * wx
    bot = src[y1][:, x0] * (1.0 - wx) + src[y1][:, x1] * wx
    return top * (1.0 - wy) + bot * wy


def round_u8(x):
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def hsv_to_rgb(h, s, v):
    """Scalar HSV in [0,1) x [0,1] x [0,1] -> RGB in [0,255] (piecewise linear)."""
    h6 = h * 6.0
    i = int(np.floor(h6)) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float64) * 255.0


def luminance(rgb):
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


class SceneGenerator:
    """Deterministic scene source for one split; scene(i) depends only on
    (seed, split, i), so any subset can be generated in any order."""

    def __init__(self, split, seed, root=FASHION_MNIST_DIR):
        self.split = split
        self.split_id = SPLIT_IDS[split]
        self.seed = int(seed)
        self.images, self.labels, self.source_index = load_pool(split, root)
        self.by_class = [np.flatnonzero(self.labels == c) for c in range(NUM_CLASSES)]
        self.others = [np.flatnonzero(self.labels != c) for c in range(NUM_CLASSES)]
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        self.yy = yy.astype(np.float64)
        self.xx = xx.astype(np.float64)

    def image_id(self, index):
        return "fmscene_%s_%08d" % (self.split, index)

    def label_of(self, index):
        # Round-robin classes: any 10 consecutive scenes cover every class.
        return index % NUM_CLASSES

    def rng(self, index):
        return np.random.Generator(np.random.PCG64(
            np.random.SeedSequence([self.seed, self.split_id, int(index)])))

    # -- background ---------------------------------------------------------
    def _background(self, rng):
        c0 = rng.integers(30, 226, size=3).astype(np.float64)
        c1 = np.clip(c0 + rng.integers(-70, 71, size=3), 0, 255).astype(np.float64)
        dx, dy = rng.random() * 2 - 1, rng.random() * 2 - 1
        t = self.xx * dx + self.yy * dy
        span = t.max() - t.min()
        t = (t - t.min()) / span if span > 0 else t * 0.0
        bg = c0[None, None, :] * (1.0 - t[..., None]) + c1[None, None, :] * t[..., None]

        kind = int(rng.integers(0, 4))
        if kind == 0 or rng.random() < 0.35:
            # Smooth value noise: a coarse random grid upsampled bilinearly.
            g = int(rng.integers(3, 10))
            amp = 15.0 + rng.random() * 45.0
            grid = rng.random((g, g, 3)) * 2.0 - 1.0
            if rng.random() < 0.5:  # grey blobs
                grid[..., 1] = grid[..., 0]
                grid[..., 2] = grid[..., 0]
            bg = bg + amp * resize_bilinear(grid, SIZE, SIZE)
        if kind == 1 or kind == 2:
            # Stripes (kind 1) or checks (kind 2), low contrast, integer geometry.
            period = int(rng.integers(4, 17))
            amp = rng.integers(-40, 41, size=3).astype(np.float64)
            xi = self.xx.astype(np.int64)
            yi = self.yy.astype(np.int64)
            if kind == 1:
                a, b = int(rng.integers(-2, 3)), int(rng.integers(-2, 3))
                if a == 0 and b == 0:
                    a = 1
                m = ((xi * a + yi * b) // period) % 2
            else:
                m = (xi // period + yi // period) % 2
            bg = bg + m[..., None].astype(np.float64) * amp[None, None, :]
        return bg

    # -- glyph drawing ------------------------------------------------------
    def _draw(self, canvas, glyph_u8, top, left, colour, opacity, shaded):
        """Composite a scaled glyph (uint8, 0 = transparent) at (top, left)."""
        g = glyph_u8.astype(np.float64) / 255.0
        if shaded:  # solid object with the glyph's texture as shading
            alpha = np.minimum(1.0, 2.0 * g) * opacity
            col = colour[None, None, :] * (0.55 + 0.45 * g[..., None])
        else:       # faint fragment
            alpha = g * opacity
            col = np.broadcast_to(colour[None, None, :], g.shape + (3,))
        h, w = g.shape
        region = canvas[top:top + h, left:left + w]
        a = alpha[..., None]
        canvas[top:top + h, left:left + w] = region * (1.0 - a) + col * a

    def _distractors(self, rng, canvas, label):
        n = int(rng.integers(3, 9))
        pool = self.others[label]
        sources = []
        for _ in range(n):
            k = int(pool[rng.integers(0, len(pool))])
            sources.append(int(self.source_index[k]))
            glyph = self.images[k]
            ch, cw = int(rng.integers(9, 19)), int(rng.integers(9, 19))
            cy, cx = int(rng.integers(0, 29 - ch)), int(rng.integers(0, 29 - cw))
            frag = glyph[cy:cy + ch, cx:cx + cw].astype(np.float64)
            f = 0.8 + rng.random() * 1.0
            oh, ow = max(4, int(ch * f)), max(4, int(cw * f))
            frag = round_u8(resize_bilinear(frag, oh, ow))
            top = int(rng.integers(0, SIZE - oh + 1))
            left = int(rng.integers(0, SIZE - ow + 1))
            colour = rng.integers(0, 256, size=3).astype(np.float64)
            opacity = 0.2 + rng.random() * 0.25
            self._draw(canvas, frag, top, left, colour, opacity, shaded=False)
        return sources

    def _object_colour(self, rng, bg_lum):
        for _ in range(40):
            rgb = hsv_to_rgb(rng.random(), 0.35 + rng.random() * 0.65,
                             0.25 + rng.random() * 0.75)
            if abs(luminance(rgb) - bg_lum) >= 60.0:
                return rgb
        return np.array([255.0, 255.0, 255.0]) if bg_lum < 128 else np.zeros(3)

    def scene(self, index):
        """-> (uint8 HxWx3 image, class index, list of 0-based inclusive
        (xmin, ymin, xmax, ymax) boxes, list of Fashion-MNIST source indices)."""
        rng = self.rng(index)
        label = self.label_of(index)
        canvas = self._background(rng)
        distractor_sources = self._distractors(rng, canvas, label)
        canvas = round_u8(canvas).astype(np.float64)

        n_obj = int(rng.integers(1, 4))
        lo, hi = {1: (48, 72), 2: (40, 64), 3: (32, 56)}[n_obj]
        boxes, sources = [], []
        pool = self.by_class[label]
        for _ in range(n_obj):
            k = int(pool[rng.integers(0, len(pool))])
            s = int(rng.integers(lo, hi + 1))
            glyph = self.images[k].astype(np.float64)
            if rng.random() < 0.5:
                glyph = glyph[:, ::-1]
            glyph = round_u8(resize_bilinear(glyph, s, s))
            ys, xs = np.nonzero(glyph)
            if len(ys) == 0:
                continue
            gy0, gy1, gx0, gx1 = ys.min(), ys.max(), xs.min(), xs.max()
            placed = None
            for _attempt in range(30):
                top = int(rng.integers(-gy0, SIZE - gy1))
                left = int(rng.integers(-gx0, SIZE - gx1))
                box = (left + gx0, top + gy0, left + gx1, top + gy1)
                if all(_overlap_fraction(box, b) <= 0.25 for b in boxes):
                    placed = (top, left, box)
                    break
            if placed is None:
                continue
            top, left, box = placed
            # Crop the glyph square to the image (only its empty margin can fall outside).
            t0, l0 = max(0, -top), max(0, -left)
            t1, l1 = min(s, SIZE - top), min(s, SIZE - left)
            glyph_in = glyph[t0:t1, l0:l1]
            x0, y0, x1, y1 = box
            region = canvas[y0:y1 + 1, x0:x1 + 1].astype(np.int64)
            lum_sum = int((299 * region[..., 0] + 587 * region[..., 1] + 114 * region[..., 2]).sum())
            bg_lum = lum_sum / (1000.0 * region.shape[0] * region.shape[1])
            colour = self._object_colour(rng, bg_lum)
            opacity = 0.85 + rng.random() * 0.15
            self._draw(canvas, glyph_in, top + t0, left + l0, colour, opacity, shaded=True)
            boxes.append(box)
            sources.append(int(self.source_index[k]))

        amp = int(rng.integers(0, 3))
        if amp > 0:
            canvas = canvas + rng.integers(-amp, amp + 1, size=(SIZE, SIZE, 1)).astype(np.float64)
        return round_u8(canvas), label, boxes, sources + distractor_sources

    def batch(self, indices):
        """Fast path for training: (N,H,W,3) uint8 images and (N,) int64 labels."""
        images = np.empty((len(indices), SIZE, SIZE, 3), np.uint8)
        labels = np.empty(len(indices), np.int64)
        for j, i in enumerate(indices):
            images[j], labels[j], _, _ = self.scene(int(i))
        return images, labels


def _overlap_fraction(a, b):
    """Intersection area over the smaller box's area (inclusive pixel boxes)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)
    return iw * ih / min(area(a), area(b))


def union_box(boxes):
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def annotation_xml(image_id, split, label, boxes):
    """ILSVRC2012 val layout; coordinates written 1-based (0-based box + 1)."""
    lines = ["<annotation>",
             "\t<folder>%s</folder>" % split,
             "\t<filename>%s</filename>" % image_id,
             "\t<source>",
             "\t\t<database>attrib Fashion-MNIST scenes</database>",
             "\t</source>",
             "\t<size>",
             "\t\t<width>%d</width>" % SIZE,
             "\t\t<height>%d</height>" % SIZE,
             "\t\t<depth>3</depth>",
             "\t</size>",
             "\t<segmented>0</segmented>"]
    for (x0, y0, x1, y1) in boxes:
        lines += ["\t<object>",
                  "\t\t<name>%s</name>" % WNIDS[label],
                  "\t\t<pose>Unspecified</pose>",
                  "\t\t<truncated>0</truncated>",
                  "\t\t<difficult>0</difficult>",
                  "\t\t<bndbox>",
                  "\t\t\t<xmin>%d</xmin>" % (x0 + 1),
                  "\t\t\t<ymin>%d</ymin>" % (y0 + 1),
                  "\t\t\t<xmax>%d</xmax>" % (x1 + 1),
                  "\t\t\t<ymax>%d</ymax>" % (y1 + 1),
                  "\t\t</bndbox>",
                  "\t</object>"]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def csv_row(image_id, index, label, boxes):
    x0, y0, x1, y1 = union_box(boxes)
    # Relative pixel-edge coordinates, as the NIPS 2017 dev_dataset.csv;
    # k/128 is exact in binary, and repr() prints it exactly.
    rel = [x0 / SIZE, y0 / SIZE, (x1 + 1) / SIZE, (y1 + 1) / SIZE]
    target = (label + 1 + index % (NUM_CLASSES - 1)) % NUM_CLASSES  # != label
    return [image_id, "", *[repr(v) for v in rel], str(label + 1), str(target + 1),
            "https://github.com/zalandoresearch/fashion-mnist", "MIT (Fashion-MNIST)",
            "Zalando Research (glyphs) / attrib make_scenes.py (scene)",
            "https://github.com/zalandoresearch"]


def write_split(split, count, seed, out, start=0, indices=None, list_prefix=None):
    """Write `count` scenes (or the given indices) to out/; returns a SHA-256
    over the raw pixels and annotations (a zlib-independent fingerprint)."""
    from PIL import Image
    gen = SceneGenerator(split, seed)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "annotations"), exist_ok=True)
    if indices is None:
        indices = range(start, start + count)
    digest = hashlib.sha256()
    rows, src_rows, paths = [], [], []
    for i in indices:
        img, label, boxes, sources = gen.scene(i)
        image_id = gen.image_id(i)
        Image.fromarray(img).save(os.path.join(out, "images", image_id + ".png"),
                                  optimize=True)
        xml = annotation_xml(image_id, split, label, boxes)
        with open(os.path.join(out, "annotations", image_id + ".xml"), "w") as f:
            f.write(xml)
        digest.update(img.tobytes())
        digest.update(xml.encode())
        rows.append(csv_row(image_id, i, label, boxes))
        src_rows.append([image_id, split, " ".join(str(s) for s in sources[:len(boxes)]),
                         " ".join(str(s) for s in sources[len(boxes):])])
        prefix = list_prefix if list_prefix is not None else out
        paths.append(os.path.join(prefix, "images", image_id + ".png"))
    with open(os.path.join(out, "images.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_HEADER)
        w.writerows(rows)
    with open(os.path.join(out, "sources.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["ImageId", "fashion_mnist_file", "object_indices", "fragment_indices"])
        for r in src_rows:
            r[1] = "t10k" if r[1] == "test" else "train"
            w.writerow(r)
    with open(os.path.join(out, "list.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
    return digest.hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=sorted(SPLIT_IDS), required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=int, default=0, help="first scene index")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--list-prefix", default=None,
                   help="prefix for the paths in list.txt (default: --out)")
    a = p.parse_args(argv)
    digest = write_split(a.split, a.count, a.seed, a.out, start=a.start,
                         list_prefix=a.list_prefix)
    print("wrote %d %s scenes to %s; pixels+xml sha256 %s" % (a.count, a.split, a.out, digest))


if __name__ == "__main__":
    sys.exit(main())
