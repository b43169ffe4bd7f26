#!/usr/bin/env python3
"""An independent digit classifier for checking a conditional model's samples (not used by
the tests; needs numpy and pillow). It trains a small MLP (784-256-10, numpy, Adam, 4 epochs)
on the MNIST training images of assets/mnist (cached next to this script's output as
--cache), then reads picture grids written by `gpu-ae sample --padding 0 --scale 1` whose rows
are classes, and prints per row the share of cells read as that row's class.

  python3 scripts/classify_samples.py --grid samples.png --rows 0,1,2,3,4,5,6,7,8,9
"""
import argparse, gzip, os, struct
import numpy as np
from PIL import Image

def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        r, c = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, r * c)
    return np.frombuffer(data, np.uint8, offset=8)

def train(mnist, seed=0):
    x = idx(os.path.join(mnist, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255
    y = idx(os.path.join(mnist, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, np.sqrt(2 / 784), (784, 256)).astype(np.float32); b1 = np.zeros(256, np.float32)
    w2 = rng.normal(0, np.sqrt(2 / 256), (256, 10)).astype(np.float32); b2 = np.zeros(10, np.float32)
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]; v = [np.zeros_like(p) for p in params]
    t = 0
    for epoch in range(4):
        order = rng.permutation(len(x))
        for s in range(0, len(x), 128):
            i = order[s:s + 128]
            xb, yb = x[i], y[i]
            h = np.maximum(xb @ w1 + b1, 0)
            logits = h @ w2 + b2
            p = np.exp(logits - logits.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1; p /= len(yb)
            dh = (p @ w2.T) * (h > 0)
            grads = [xb.T @ dh, dh.sum(0), h.T @ p, p.sum(0)]
            t += 1
            for k, (q, g) in enumerate(zip(params, grads)):
                m[k] = 0.9 * m[k] + 0.1 * g; v[k] = 0.999 * v[k] + 0.001 * g * g
                q -= 1e-3 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8)
    return params

def predict(params, x):
    w1, b1, w2, b2 = params
    return (np.maximum(x @ w1 + b1, 0) @ w2 + b2).argmax(1)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", required=True)
    ap.add_argument("--rows", required=True, help="the class of each row, comma-separated")
    ap.add_argument("--mnist", default="assets/mnist")
    ap.add_argument("--cache", default="/tmp/gpu-ae-digit-classifier.npz")
    a = ap.parse_args()
    if os.path.exists(a.cache):
        params = list(np.load(a.cache).values())
    else:
        params = train(a.mnist)
        np.savez(a.cache, *params)
    tx = idx(os.path.join(a.mnist, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255
    ty = idx(os.path.join(a.mnist, "t10k-labels-idx1-ubyte.gz"))
    print(f"classifier accuracy on the MNIST test set: {(predict(params, tx) == ty).mean():.4f}")
    img = np.asarray(Image.open(a.grid).convert("L"), np.float32) / 255
    rows = [int(r) for r in a.rows.split(",")]
    cols = img.shape[1] // 28
    total = 0
    for r, label in enumerate(rows):
        cells = np.stack([img[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28].reshape(784) for c in range(cols)])
        hits = (predict(params, cells) == label).mean()
        total += hits
        print(f"row {r} (class {label}): {hits:.2f} of {cols} samples read as {label}")
    print(f"mean: {total / len(rows):.3f}")

main()
