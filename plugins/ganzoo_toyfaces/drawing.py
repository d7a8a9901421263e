"""Drawing toyfaces: procedurally drawn cartoon faces, a pure function of (seed, index, attributes).

Choices worth knowing:

- Every image is a pure function of (seed, index, attributes, resolution), byte-identical on
  every machine: parameters come from raw PCG64 draws keyed by SeedSequence((seed, index,
  stream)) (the bit stream is stable across numpy versions, unlike `Generator` methods), and
  per-pixel math uses only + - * / sqrt, abs, min/max and comparisons in float64, all exactly
  rounded by IEEE 754. No float reductions whose order could depend on SIMD width.
- Identity (stream 0: face shape, skin, feature placement, background, shirt) and attributes
  (stream 1) are independent, so drawing identity i with other attributes is the ground truth
  for attribute translation. Attributes only change hair, beard, wrinkles, mouth and glasses.
- Anti-aliasing is analytic: each shape is a signed distance d and covers a pixel by
  clip(0.5 - d / pixel), strokes thinner than a pixel are drawn one pixel wide and faded.
  Below 32px we also supersample, so tiny features keep their true area.
- Faces are drawn in batches (numpy arrays (N, H, W)); small features only inside a window
  around them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ATTRIBUTES", "HAIR_COLOURS", "RENDER_VERSION", "attribute_rows", "box_down", "draw",
           "identity"]

ATTRIBUTES = ("black_hair", "blond_hair", "brown_hair", "male", "young", "smiling", "eyeglasses")
HAIR_COLOURS = ATTRIBUTES[:3]
RENDER_VERSION = 1  # bump on any change to the pixels: it keys the disk caches

_HAIR_RGB = np.array([[42, 36, 34], [236, 200, 112], [118, 70, 36]], np.float64)
_SILVER = np.array([214, 214, 220], np.float64)[:, None, None, None]
_SKIN = np.array([[255, 226, 200], [226, 174, 128], [118, 78, 52]], float)[..., None, None, None]
_IRIS = np.array([[92, 56, 30], [60, 110, 170], [70, 120, 70], [40, 32, 28]], np.float64)
WINDOWS = True  # draw small features in windows (tests switch it off to check it is exact)


def _rgb(r, g, b) -> np.ndarray:
    return np.array([r, g, b], np.float64)[:, None, None, None]  # broadcasts as (3, N, 1, 1)


def _draws(seed: int, index: int, stream: int, k: int) -> np.ndarray:
    return np.random.PCG64(np.random.SeedSequence((seed, index, stream))).random_raw(k)


def attribute_rows(seed: int, indices) -> np.ndarray:
    """(N, 7) int64 0/1 attributes: hair colour uniform over three, the rest fair coins."""
    out = np.zeros((len(indices), len(ATTRIBUTES)), np.int64)
    for row, index in enumerate(indices):
        bits = [int(b) for b in _draws(seed, index, 1, 5)]
        out[row, ((bits[0] >> 32) * 3) >> 32] = 1
        out[row, 3:] = [b >> 63 for b in bits[1:]]
    return out


def identity(seed: int, indices) -> dict:
    """Per-identity parameters as (N, 1, 1) arrays, colours as (3, N, 1, 1)."""
    u = np.stack([(_draws(seed, i, 0, 24) >> np.uint64(11)) * 2.0**-53 for i in indices])
    u = u.T[:, :, None, None]  # (24, N, 1, 1)
    p = {"fcx": -0.04 + 0.08 * u[0], "fcy": 0.06 * u[1],
         "fa": 0.42 + 0.08 * u[2], "fb": 0.54 + 0.08 * u[3], "taper": 0.08 + 0.16 * u[4]}
    t = 2 * u[5]  # skin: light -> medium -> dark, then a small warm/cool shift
    lo, hi = np.where(t < 1, _SKIN[0], _SKIN[1]), np.where(t < 1, _SKIN[1], _SKIN[2])
    f = np.where(t < 1, t, t - 1)
    p["skin"] = (lo + f * (hi - lo)) * (1 + (u[6] - 0.5) * _rgb(0.06, 0, -0.06))
    p["eye_y"] = p["fcy"] + p["fb"] * (-0.22 + 0.12 * u[7])
    p["eye_dx"] = p["fa"] * (0.36 + 0.08 * u[8])
    p["eye_r"] = 0.056 + 0.016 * u[9]
    p["iris"] = _IRIS[np.minimum((u[10] * 4).astype(np.int64), 3)[:, 0, 0]].T[:, :, None, None]
    p["brow"] = 0.04 + 0.03 * u[11]
    p["nose_y"] = p["fcy"] + p["fb"] * (0.18 + 0.1 * u[12])
    p["nose_r"] = 0.035 + 0.02 * u[13]
    p["mouth_y"] = p["fcy"] + p["fb"] * (0.50 + 0.08 * u[14])
    p["mouth_w"] = p["fa"] * (0.3 + 0.1 * u[15])
    p["bg"] = 135 + 110 * u[16:19]
    p["shirt"] = 30 + 190 * u[19:22]
    p["volume"] = 0.04 + 0.06 * u[22]
    p["shade"] = 0.9 + 0.2 * u[23]
    return p


# Signed distances (negative inside) in frame units: the frame spans [-1, 1], y points down.
def _ellipse(x, y, cx, cy, a, b):
    u, v = (x - cx) / a, (y - cy) / b
    g = np.sqrt((u / a) * (u / a) + (v / b) * (v / b))
    return (u * u + v * v - 1) / np.maximum(2 * g, 1e-9)  # (q - 1) / |grad q|: exact at the edge


def _box(x, y, cx, cy, hx, hy, r):
    qx, qy = np.abs(x - cx) - hx + r, np.abs(y - cy) - hy + r
    ox, oy = np.maximum(qx, 0), np.maximum(qy, 0)
    return np.sqrt(ox * ox + oy * oy) + np.minimum(np.maximum(qx, qy), 0) - r


def _arc(x, y, cx, cy, hw, k, t):
    """Stroke of width t along y = cy + k (x - cx)^2 for |x - cx| <= hw."""
    dx = x - cx
    slope = 2 * k * dx
    return np.maximum(np.abs(y - cy - k * dx * dx) / np.sqrt(1 + slope * slope) - t / 2,
                      np.abs(dx) - hw)


def _segment(x, y, ax, ay, bx, by, t):
    ex, ey = bx - ax, by - ay
    px, py = x - ax, y - ay
    h = np.clip((px * ex + py * ey) / (ex * ex + ey * ey), 0, 1)
    qx, qy = px - h * ex, py - h * ey
    return np.sqrt(qx * qx + qy * qy) - t / 2


class _Canvas:
    """Float64 RGB planes (3, N, R, R) painted back to front with coverage alpha."""

    def __init__(self, background, res: int):
        self.res, self.px = res, 2.0 / res
        coords = (np.arange(res, dtype=np.float64) * 2 + 1 - res) / res  # pixel centres
        self.x, self.y = coords[None, None, :], coords[None, :, None]
        self.img = np.broadcast_to(background, (*background.shape[:2], res, res)).copy()

    def window(self, x0, x1, y0, y1):
        """Coordinates and slices of the pixels within a box (plus 3 pixels) of frame units."""
        if not WINDOWS:
            return self.x, self.y, (slice(None),) * 3
        lo = lambda v: max(0, int(np.floor((float(v) + 1) / self.px)) - 3)
        hi = lambda v: min(self.res, int(np.ceil((float(v) + 1) / self.px)) + 3)
        cs, rs = slice(lo(np.min(x0)), hi(np.max(x1))), slice(lo(np.min(y0)), hi(np.max(y1)))
        return self.x[:, :, cs], self.y[:, rs, :], (slice(None), rs, cs)

    def paint(self, d, colour, opacity=1.0, win=(slice(None),) * 3):
        alpha = np.clip(0.5 - d / self.px, 0, 1) * opacity
        for c in range(3):
            region = self.img[c][win]
            region += alpha * (colour[c] - region)

    def stroke(self, shape, t, colour, opacity=1.0, win=(slice(None),) * 3):
        """shape(width) -> distance; sub-pixel strokes are drawn 1px wide, faded to their area."""
        wide = np.maximum(t, self.px)
        self.paint(shape(wide), colour, opacity * t / wide, win)

    def uint8(self, ss: int) -> np.ndarray:
        img, acc = self.img, 0.0
        for i in range(ss):  # box-average ss x ss subpixels in a fixed order
            for j in range(ss):
                acc = acc + img[:, :, i::ss, j::ss]
        out = np.rint(np.clip(acc / (ss * ss), 0, 255)).astype(np.uint8)
        return out.transpose(1, 0, 2, 3)  # (N, 3, R, R)


def draw(p: dict, attrs: np.ndarray, res: int) -> np.ndarray:
    """uint8 (N, 3, res, res) faces for identity parameters p and (N, 7) attributes."""
    ss = max(1, 32 // res)
    cv = _Canvas(p["bg"], res * ss)
    x, y = cv.x, cv.y
    a = attrs.astype(np.float64).T[:, :, None, None]
    male, young, smile, glasses = a[3], a[4], a[5], a[6]
    female, old = 1 - male, 1 - young
    hair = _HAIR_RGB[np.argmax(attrs[:, :3], axis=1)].T[:, :, None, None] * p["shade"]
    hair = np.minimum(hair + 0.5 * old * (_SILVER - hair), 255)
    skin = p["skin"]
    fcx, fcy, fa, fb, vol = p["fcx"], p["fcy"], p["fa"], p["fb"], p["volume"]

    # Body and back hair: shoulders, long hair (female), neck, ears.
    cv.paint(_ellipse(x, y, 0.5 * fcx, 1.28, 0.92, 0.5), p["shirt"])
    cv.paint(_box(x, y, fcx, fcy + 0.45 * fb, fa + 0.1 + 0.5 * vol, 1.02 * fb, 0.22), hair, female)
    cv.paint(_box(x, y, fcx, fcy + fb + 0.15, 0.4 * fa, 0.3, 0.06), skin * 0.84)
    for side in (-1, 1):
        cv.paint(_ellipse(x, y, fcx + side * 0.97 * fa, p["eye_y"] + 0.1, 0.07, 0.11), skin * 0.9)
    # Face: an ellipse narrowing towards the chin by `taper`.
    v = (y - fcy) / fb
    cv.paint(_ellipse(x, y, fcx, fcy, fa * (1 - p["taper"] * np.maximum(v, 0)), fb), skin)

    # Lower face: stubble (male), smile lines (old), nose, mouth.
    xl, yl, wl = cv.window(fcx - fa, fcx + fa, p["nose_y"] - 0.36, fcy + fb)
    chin = _ellipse(xl, yl, fcx, fcy, fa * (1 - p["taper"] * np.maximum((yl - fcy) / fb, 0)), fb)
    beard = hair * 0.55 + skin * 0.45
    dxl = xl - fcx  # beard: the face below a line rising from under the nose to the sideburns
    cv.paint(np.maximum(chin, p["nose_y"] + 0.04 - 1.2 * dxl * dxl - yl), beard, 0.75 * male, wl)
    my, mw, nr = p["mouth_y"], p["mouth_w"], p["nose_r"]
    for side in (-1, 1):
        cv.stroke(lambda t: _segment(xl, yl, fcx + side * (0.6 * mw + 0.07), p["nose_y"] + 0.01,
                                     fcx + side * (mw + 0.04), my + 0.01, t),
                  0.018, skin * 0.65, old, wl)
    cv.paint(_ellipse(xl, yl, fcx, p["nose_y"], nr, 0.7 * nr), skin * 0.78, 0.8, wl)
    lips = skin * 0.55 + _rgb(200, 70, 80) * 0.45
    # Smiling: an open crescent, corners lifted, teeth on top. Else: closed, flat lips.
    s = (xl - fcx) / mw
    s = s * s
    top, bottom = my - 0.05 * s, my + 0.12 - 0.17 * s
    mouth = np.maximum(np.maximum(top - yl, yl - bottom), np.abs(xl - fcx) - mw)
    cv.paint(mouth - 0.015, lips, smile, wl)
    cv.paint(mouth, _rgb(90, 20, 30), smile, wl)
    cv.paint(np.maximum(mouth, yl - top - 0.035), _rgb(245, 245, 240), smile, wl)
    cv.paint(_ellipse(xl, yl, fcx, my + 0.02, 0.9 * mw, 0.03), lips, 1 - smile, wl)
    cv.stroke(lambda t: _arc(xl, yl, fcx, my + 0.02, 0.85 * mw, 0.0, t), 0.014,
              skin * 0.35, 1 - smile, wl)

    # Eyes, brows, forehead lines (old) and glasses, in a band around the eyes.
    ey, er, edx = p["eye_y"], p["eye_r"], p["eye_dx"]
    ring = 1.3 * er + 0.035
    xe, ye, we = cv.window(fcx - fa - 0.05, fcx + fa + 0.05, ey - 0.4, ey + ring + 0.05)
    dark = _rgb(22, 20, 26)
    for side in (-1, 1):
        ex = fcx + side * edx
        cv.paint(_ellipse(xe, ye, ex, ey, 1.3 * er, 0.85 * er), _rgb(250, 250, 250), 1, we)
        cv.paint(_ellipse(xe, ye, ex, ey, 0.62 * er, 0.62 * er), p["iris"], 1, we)
        cv.paint(_ellipse(xe, ye, ex, ey, 0.32 * er, 0.32 * er), dark, 1, we)
        cv.stroke(lambda t: _arc(xe, ye, ex, ey + 1.05 * er, 0.9 * er, 4.0, t), 0.014,
                  skin * 0.6, old, we)
        cv.stroke(lambda t: _arc(xe, ye, ex, ey - er - p["brow"], 1.35 * er, 2.5, t),
                  0.028 + 0.018 * male, hair * 0.7, 1, we)
    for k in (0.13, 0.2):
        cv.stroke(lambda t: _arc(xe, ye, fcx, ey - er - p["brow"] - k, 0.45 * fa, 0.6, t), 0.014,
                  skin * 0.6, old, we)

    # Front hair: a cap above a hairline curving down at the sides (sideburns); female hair is
    # fuller, with a lower fringe and locks framing the face.
    xh, yh, wh = cv.window(fcx - fa - 0.3, fcx + fa + 0.3, fcy - fb - 0.3, fcy + 0.6 * fb)
    dx = xh - fcx
    margin = 0.03 + 0.3 * vol + female * (0.05 + 0.3 * vol)
    cap = _ellipse(xh, yh, fcx, fcy - 0.5 * vol, fa + margin, fb + 1.5 * vol)
    line = yh - (fcy - fb * (0.56 - 0.12 * female) + (1.3 - 0.3 * female) * dx * dx)
    locks = np.maximum(np.maximum(cap, 0.8 * fa - np.abs(dx)), yh - fcy - 0.45 * fb)
    cv.paint(np.minimum(np.maximum(cap, line), np.where(female > 0, locks, 1.0)), hair, 1, wh)

    # Glasses: round dark frames, faint lenses, bridge and temples.
    for side in (-1, 1):
        ex = fcx + side * edx
        lens = _ellipse(xe, ye, ex, ey, ring, ring)
        cv.paint(lens, _rgb(225, 225, 225), 0.25 * glasses, we)
        cv.stroke(lambda t: np.abs(lens) - t / 2, 0.04, dark, glasses, we)
        mid = (fa + 0.02 + edx + ring) / 2
        cv.stroke(lambda t: _arc(xe, ye, fcx + side * mid, ey - 0.2 * er, mid - edx - ring, 0, t),
                  0.03, dark, glasses, we)
    cv.stroke(lambda t: _arc(xe, ye, fcx, ey - 0.2 * er, edx - ring + 0.01, 0, t), 0.035, dark,
              glasses, we)
    return cv.uint8(ss)


def box_down(images: np.ndarray, res: int) -> np.ndarray:
    """`downsample_uint8` for a batch, bit for bit: exact integer box sums (2x2 at a time, which
    is much faster in numpy than avg_pool2d), divided and rounded half to even like torch."""
    s = images.astype(np.uint32)
    while s.shape[-1] > res:
        s = s[..., 0::2, 0::2] + s[..., 0::2, 1::2] + s[..., 1::2, 0::2] + s[..., 1::2, 1::2]
    n = (images.shape[-1] // res) ** 2
    q = s // n
    rem = s - q * n
    return (q + ((2 * rem > n) | ((2 * rem == n) & (q % 2 == 1)))).astype(np.uint8)
