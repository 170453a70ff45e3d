"""Draw one procedural face photo (384 x 512 RGB) for the built-in demo dataset.

A person's look (`sample_look`) is fixed for all of that person's photos, as in the real set where
the 7 train photos of a person are one source photo with different masks pasted on. A photo's own
draw (`sample_shot`) only picks the mask. `draw_face(look, shot)` renders with PIL ImageDraw in
face units: x and y in multiples of the face half-width, y pointing down, origin at the face centre;
`_Pen` maps them to pixels through the person's pose (scale, rotation, offset).

Cues are deliberately graded and overlapping (a "femininity" latent drives jaw, brows, lips and
hair length; an "apparent age" = true age + noise drives lines, sag and grey hair) so that a clean
classifier gets mask state near-perfect, gender around 95-97% and age bins clearly the hardest.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from audit.labels import GENDERS

WIDTH, HEIGHT = 384, 512
# Faces are drawn at this fraction of the final size and upscaled: a quarter of the pixels to draw,
# and the bilinear upscale gives the soft edges PIL's aliased polygons lack.
RENDER_SCALE = 0.5
# Bumped whenever a change alters what is drawn, so caches of drawn pixels (the pretraining's chunks)
# are never reused across drawings. 2: the femininity latent's spread 0.5 -> 0.35 (BENCHMARKS.md,
# "Clearer drawn gender").
DRAWING_VERSION = 2
# The femininity latent: +FEM_MEAN for women, -FEM_MEAN for men, plus N(0, FEM_SD). At sd 0.5 one face
# in 28 had the other gender's latent and a masked photo could be read right at best 0.968 of the
# time; at 0.35 one in 200 (faces a person could still tell apart are what the audit is about).
FEM_MEAN, FEM_SD = 0.9, 0.35
RACES = ("White", "LatinoHispanic", "Asian", "Black", "MiddleEastern", "Indian")
SOURCES = ("GAN", "photo")

# Skin darkness 0 (light) .. 1 (dark) per race: mean, sd. They overlap on purpose.
_SKIN_DARKNESS = {
    "White": (0.12, 0.07), "Asian": (0.22, 0.08), "LatinoHispanic": (0.33, 0.10),
    "MiddleEastern": (0.35, 0.10), "Indian": (0.55, 0.11), "Black": (0.78, 0.10),
}
# Base hair colours (RGB: black, dark brown, brown, light brown, blonde, red) and per-race probabilities.
_HAIR_COLOURS = (
    (28, 24, 22), (52, 36, 26), (92, 62, 40), (140, 100, 62), (196, 160, 100), (150, 72, 40),
)
_HAIR_P = {
    "White": (0.12, 0.28, 0.25, 0.15, 0.14, 0.06),
    "LatinoHispanic": (0.40, 0.40, 0.15, 0.03, 0.02, 0.0),
    "MiddleEastern": (0.50, 0.38, 0.10, 0.02, 0.0, 0.0),
}
_HAIR_P_DEFAULT = (0.70, 0.25, 0.05, 0.0, 0.0, 0.0)

# Mask styles. Train uses the first group only; eval adds the second (the eval set is shifted).
# Train shows one brightly coloured style (cloth_colour) so a model can learn that masks come in
# colours; eval adds five styles train never shows. With only neutral train masks the demo model
# learned mask COLOURS: 0.52 correct on unseen eval styles vs 0.96 on train styles (BENCHMARKS.md).
TRAIN_MASK_STYLES = ("surgical_blue", "surgical_white", "cloth_black", "cloth_grey", "kf94_white", "kf94_black",
                     "cloth_colour")
EVAL_ONLY_MASK_STYLES = ("cloth_pattern", "n95_valve", "kf94_beige", "surgical_pink", "gaiter")
MASK_STYLES = TRAIN_MASK_STYLES + EVAL_ONLY_MASK_STYLES


@dataclass(frozen=True)
class Look:
    """Everything fixed for one person (one source photo). Colours are RGB 0..255, sizes in face units."""

    gender: int  # true gender code (drawn)
    age: float  # true age, years (drawn)
    race: str
    source: str  # "GAN" (100k-like, studio look) or "photo" (ffhq-like, textured, graded)
    apparent_age: float  # years; the age the cues are drawn for (true age + noise)
    fem: float  # femininity latent, ~+1 women, ~-1 men, overlapping
    skin: tuple
    face_w: float  # face half-width relative to the unit (~1)
    face_h: float  # face half-height
    jaw: float  # 0 round/pointed chin .. 1 square jaw
    hair_colour: tuple
    hair_style: str  # short, buzz, receding, long, bob, bun, curly
    hair_len: float  # long hair: how far below the face centre it reaches (face units)
    fringe: float  # 0 no fringe .. 1 heavy fringe
    parting: float  # -1..1 side of the hair parting
    brow: float  # eyebrow thickness (face units)
    eye_colour: tuple
    eye_size: float
    lip_colour: tuple
    lip_full: float
    beard: str  # none, stubble, moustache, full
    earrings: bool
    glasses: bool
    wrinkles: float  # 0..1
    sag: float  # 0..1
    grey: float  # 0..1 fraction of grey in hair and brows
    spots: int  # age spots
    clothes: tuple
    bg: tuple  # two background colours
    bg_kind: str  # plain, gradient, blobs
    photo_side: int  # side of the square source photo in the 384x512 frame, px
    pad: tuple | None  # padding colour; None = the background continues into the padding
    scale: float  # px per face unit in the source photo
    rot: float  # degrees
    cx: float  # face centre in the source photo, fraction of its side
    cy: float
    light_angle: float  # radians, where the key light comes from
    light: float  # strength of the light gradient 0..0.45
    exposure: float
    tint: tuple  # per-channel gain
    grain: float  # sd of pixel noise (0..255 units)
    blur: float  # blur radius, px
    jpeg_quality: int  # 0, or the quality of an earlier lossy save the photo went through (artefacts)
    seed: int  # for textures and noise, so a person's 7 photos share them


@dataclass(frozen=True)
class Shot:
    """One photo of a person: which mask state is drawn and how."""

    mask: int  # 0 wear, 1 incorrect, 2 not wear (labels.MASK_STATES)
    style: str
    colour: tuple
    colour2: tuple  # pattern / seam colour
    incorrect_mode: str  # "nose" (below the nose) or "chin" (on the chin); ignored unless mask == 1
    drop: float  # small per-photo variation of the mask's height (face units)
    seed: int  # for the mask's pattern


def _skin_colour(darkness: float, warm: float) -> tuple:
    light = np.array([246, 214, 192], float)
    dark = np.array([78, 50, 36], float)
    c = light + (dark - light) * float(np.clip(darkness, 0, 1))
    c += np.array([6, 0, -10]) * warm  # a yellow/red axis independent of darkness
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _mix(a, b, t: float) -> tuple:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def sample_look(rng: np.random.Generator, *, gender: int, age: float, race: str, source: str) -> Look:
    """Draw one person's appearance. `gender`/`age` are the TRUE values to draw."""
    female = gender == GENDERS.index("female")
    fem = (FEM_MEAN if female else -FEM_MEAN) + rng.normal(0, FEM_SD)
    # Apparent age: what the face shows; deepface-like disagreement with the true age is part of the
    # difficulty, so the cues track it, not the true age.
    app = float(age + rng.normal(0, 3.5))
    # Lines start in the early twenties and grow steadily, so the <25 / 25-39 boundary shows
    # above a mask at a classifier's small input (faint lines were invisible at 64x48, age bins
    # stayed at chance; measured in BENCHMARKS.md "Classifier").
    wrinkles = float(np.clip((app - 18) / 30 + rng.normal(0, 0.08), 0, 1))
    sag = float(np.clip((app - 32) / 26 + rng.normal(0, 0.08), 0, 1))
    grey = float(np.clip((app - 36) / 20 + rng.normal(0, 0.12), 0, 1)) if rng.random() > 0.1 else 0.0
    youth = float(np.clip((28 - app) / 11, 0, 1))  # rounder, shorter face, bigger eyes

    mu, sd = _SKIN_DARKNESS.get(race, (0.35, 0.2))
    darkness = float(np.clip(rng.normal(mu, sd) + 0.03 * sag, 0, 1))
    warm = rng.normal(1.0 if race in ("Asian", "LatinoHispanic") else 0.0, 0.7)
    # Weathering: skin a little duller and darker with the years (a cue a small input still sees).
    skin = _mix(_skin_colour(darkness, warm), _skin_colour(min(1.0, darkness + 0.25), warm + 0.5),
                float(np.clip(wrinkles * 0.7, 0, 0.7)))
    hp = _HAIR_P.get(race, _HAIR_P_DEFAULT)
    base_hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=np.array(hp) / sum(hp))]
    grey_rgb = (188, 186, 184) if rng.random() < 0.6 else (222, 220, 216)
    hair_colour = _mix(base_hair, grey_rgb, grey)

    # Hair style: length follows the femininity latent, so some women have short hair and some men long.
    p_long = 1 / (1 + math.exp(-3.2 * fem))
    if rng.random() < p_long:
        hair_style = rng.choice(["long", "long", "long", "bob", "bun"])
    elif not female and app > 38 and rng.random() < 0.35 + 0.3 * sag:
        hair_style = "receding"
    else:
        hair_style = rng.choice(["short", "short", "buzz"])
    if race == "Black" and rng.random() < 0.35:
        hair_style = "curly"
    beard = "none"
    if not female:
        beard = rng.choice(["none", "stubble", "moustache", "full"], p=[0.55, 0.2, 0.08, 0.17])
    lipstick = female and rng.random() < 0.4
    lip_base = _mix(skin, (170, 70, 70), 0.35)
    lip_colour = _mix(lip_base, tuple(rng.choice([(190, 40, 60), (200, 90, 110), (150, 50, 60)])), 0.7) if lipstick else lip_base

    is_photo = source == "photo"
    side = int(rng.uniform(300, 384)) if rng.random() < 0.6 else 384
    pad = None
    if side < 384 or rng.random() < 0.3:
        pad = tuple(int(v) for v in rng.choice([(0, 0, 0), (255, 255, 255), (128, 128, 128), (20, 20, 20)]))
        if rng.random() < 0.4:
            pad = None
    scale = side * rng.uniform(0.19, 0.24) * (1 if is_photo else 0.96)
    cx, cy = 0.5 + rng.normal(0, 0.035), 0.46 + rng.normal(0, 0.03)
    if rng.random() < 0.04:  # a few faces partly out of frame
        if rng.random() < 0.5:
            cx += rng.choice([-1, 1]) * rng.uniform(0.22, 0.3)
        else:
            scale *= rng.uniform(1.45, 1.7)
            cy += rng.uniform(0.05, 0.15)
    if is_photo:
        bg_kind = rng.choice(["gradient", "blobs", "blobs"])
        # Real scenes are mostly muted: random colours pulled towards a random grey.
        muted = (int(rng.integers(60, 200)),) * 3
        bg = tuple(_mix(tuple(int(v) for v in rng.integers(20, 235, 3)), muted, rng.uniform(0.3, 0.7)) for _ in range(2))
    else:
        bg_kind = rng.choice(["plain", "gradient"])
        g = int(rng.integers(150, 245))
        bg = ((g, g, g), _mix((g, g, g), tuple(int(v) for v in rng.integers(90, 240, 3)), 0.4))

    eye_colours = [(70, 45, 25), (45, 30, 20), (90, 110, 140), (80, 100, 70)]
    ep = [0.5, 0.3, 0.12, 0.08] if race == "White" else [0.55, 0.43, 0.01, 0.01]
    return Look(
        gender=int(gender), age=float(age), race=race, source=source, apparent_age=app, fem=float(fem),
        skin=skin,
        face_w=float(np.clip(rng.normal(1.0 - 0.04 * fem + 0.04 * youth + 0.05 * sag, 0.04), 0.85, 1.18)),
        face_h=float(np.clip(rng.normal(1.36 - 0.1 * youth, 0.05), 1.2, 1.5)),
        jaw=float(np.clip(0.5 - 0.28 * fem - 0.2 * youth + 0.25 * sag + rng.normal(0, 0.15), 0, 1)),
        hair_colour=hair_colour, hair_style=str(hair_style),
        hair_len=float(rng.uniform(1.3, 3.4)),
        fringe=float(rng.random() if rng.random() < 0.45 else 0.0),
        parting=float(rng.uniform(-1, 1)),
        brow=float(np.clip(0.07 - 0.022 * fem + rng.normal(0, 0.012), 0.03, 0.12)),
        eye_colour=eye_colours[rng.choice(4, p=ep)],
        eye_size=float(np.clip(rng.normal(0.97 + 0.2 * youth + 0.05 * fem, 0.08), 0.75, 1.35)),
        lip_colour=lip_colour,
        lip_full=float(np.clip(rng.normal(1.0 + 0.15 * fem - 0.3 * sag, 0.12), 0.5, 1.5)),
        beard=str(beard),
        earrings=bool(rng.random() < (0.35 if female else 0.04)),
        glasses=bool(rng.random() < 0.08 + 0.12 * sag),
        wrinkles=wrinkles, sag=sag, grey=grey,
        spots=int(rng.poisson(6 * sag * sag)),
        clothes=tuple(int(v) for v in rng.integers(15, 230, 3)),
        bg=bg, bg_kind=str(bg_kind), photo_side=side, pad=pad, scale=float(scale),
        rot=float(rng.normal(0, 4 if is_photo else 2.5)), cx=float(cx), cy=float(cy),
        light_angle=float(rng.uniform(0, 2 * math.pi)),
        light=float(rng.uniform(0.05, 0.45) if is_photo else rng.uniform(0.0, 0.18)),
        exposure=float(rng.normal(1.0, 0.12 if is_photo else 0.05)),
        tint=tuple(float(v) for v in (1 + rng.normal(0, 0.04 if is_photo else 0.015, 3))),
        grain=float(rng.uniform(1.5, 6) if is_photo else rng.uniform(0, 1.0)),
        blur=float(rng.uniform(0.3, 1.6) if is_photo else rng.uniform(0.4, 0.8)),
        jpeg_quality=int(rng.integers(25, 60)) if is_photo and rng.random() < 0.35 else 0,
        seed=int(rng.integers(0, 2**31)),
    )


_MASK_COLOURS = {
    "surgical_blue": [(140, 190, 222), (120, 170, 210), (160, 205, 230)],
    "surgical_white": [(236, 238, 240), (225, 230, 232)],
    "surgical_pink": [(236, 170, 190), (225, 190, 205)],
    "cloth_black": [(28, 28, 30), (40, 40, 44)],
    "cloth_grey": [(110, 112, 118), (150, 150, 155), (60, 65, 80)],
    "kf94_white": [(238, 238, 236), (230, 232, 235)],
    "kf94_black": [(30, 30, 32)],
    "kf94_beige": [(215, 195, 170)],
    "cloth_pattern": [(200, 60, 60), (40, 90, 160), (240, 220, 120), (60, 140, 90)],
    "cloth_colour": [(210, 80, 120), (70, 150, 110), (230, 170, 60), (110, 80, 170), (30, 50, 110)],
    "n95_valve": [(240, 240, 240), (225, 228, 230)],
    "gaiter": [(80, 90, 60), (130, 40, 40), (50, 60, 110), (200, 200, 200)],
}


def sample_shot(rng: np.random.Generator, *, mask: int, split: str = "train") -> Shot:
    """Pick how one photo's mask looks. Eval photos draw from more styles than train."""
    styles = MASK_STYLES if split == "eval" else TRAIN_MASK_STYLES
    if split == "eval":  # new styles are common in eval, not a rarity
        p = np.array([1.0] * len(TRAIN_MASK_STYLES) + [1.4] * len(EVAL_ONLY_MASK_STYLES))
    else:
        p = np.array([3.0, 2.0, 2.0, 1.0, 1.5, 1.0, 1.5])
    style = str(styles[rng.choice(len(styles), p=p / p.sum())])
    options = _MASK_COLOURS[style]
    colour = options[rng.integers(len(options))]
    colour = tuple(int(np.clip(v + rng.normal(0, 6), 0, 255)) for v in colour)
    colour2 = tuple(int(v) for v in rng.integers(0, 256, 3))
    mode = "nose" if rng.random() < 0.6 else "chin"
    return Shot(mask=int(mask), style=style, colour=colour, colour2=colour2, incorrect_mode=mode,
                drop=float(rng.normal(0, 0.03)), seed=int(rng.integers(0, 2**31)))


class _Pen:
    """Draws shapes given in face units onto a PIL image through a similarity transform."""

    def __init__(self, image: Image.Image, *, scale: float, rot_deg: float, cx: float, cy: float):
        self.draw = ImageDraw.Draw(image, "RGBA")
        self.s = scale
        a = math.radians(rot_deg)
        self.c, self.si = math.cos(a) * scale, math.sin(a) * scale
        self.cx, self.cy = cx, cy

    def pts(self, xy) -> list:
        xy = np.asarray(xy, float)
        out = xy @ np.array([[self.c, self.si], [-self.si, self.c]]) + (self.cx, self.cy)
        return out.ravel().tolist()  # PIL takes a flat [x0, y0, x1, y1, ...] sequence

    def poly(self, xy, fill):
        self.draw.polygon(self.pts(xy), fill=fill)

    def ellipse(self, x, y, rx, ry, fill, n=40, a0=0.0, a1=2 * math.pi):
        self.poly(_ellipse(x, y, rx, ry, n, a0, a1), fill)

    def line(self, xy, fill, width):
        self.draw.line(self.pts(xy), fill=fill, width=max(1, int(round(width * self.s))), joint="curve")


_UNIT_ARCS: dict = {}


def _ellipse(x, y, rx, ry, n=40, a0=0.0, a1=2 * math.pi):
    """(n, 2) points on an ellipse arc from angle a0 to a1 (radians)."""
    key = (n, a0, a1)
    arc = _UNIT_ARCS.get(key)
    if arc is None:  # the same few arcs recur thousands of times
        t = np.linspace(a0, a1, n)
        arc = _UNIT_ARCS[key] = np.stack([np.cos(t), np.sin(t)], 1)
    return arc * (rx, ry) + (x, y)


def _rgba(c, a):
    return (int(c[0]), int(c[1]), int(c[2]), int(min(max(a, 0), 255)))


def _shade(c, k):
    return tuple(int(min(max(v * k, 0), 255)) for v in c)


def _face_half_width(look: Look, y):
    """Face outline half-width at height y (face units; array ok). Zero outside the face."""
    y = np.asarray(y, float)
    W, H = look.face_w, look.face_h
    up = np.clip(-y / (H * 0.97), 0, 1)
    down = np.clip(y / H, 0, 1)
    upper = W * np.sqrt(1 - up ** 2)
    # Lower half: a superellipse whose exponent squares the jaw; sag widens the jowls.
    e = 2.0 + 2.2 * look.jaw
    lower = W * (1 - down ** e) ** (1 / e) * (1 + 0.06 * look.sag * np.sin(np.pi * down))
    return np.where(y < 0, upper, lower)


def _face_outline(look: Look, n=64):
    H = look.face_h
    ys = np.linspace(-H * 0.97, H, n // 2)
    xs = _face_half_width(look, ys)
    right = np.stack([xs, ys], 1)
    left = right[::-1] * [-1, 1]
    return np.concatenate([right, left])


def _background(look: Look, side: int, rng: np.random.Generator) -> Image.Image:
    c0, c1 = np.array(look.bg[0], np.float32), np.array(look.bg[1], np.float32)
    if look.bg_kind == "plain":
        return Image.new("RGB", (side, side), tuple(int(v) for v in c0))
    # Draw small and upscale: smooth gradients and blurry "bokeh" blobs for almost nothing.
    small = 24
    yy, xx = np.mgrid[0:small, 0:small] / (small - 1)
    a = rng.uniform(0, 2 * math.pi)
    t = (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)) + 0.5
    img = c0 + (c1 - c0) * np.clip(t, 0, 1)[..., None]
    if look.bg_kind == "blobs":
        for _ in range(int(rng.integers(3, 9))):
            bx, by, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
            col = (rng.integers(0, 255, 3) * 0.5 + c0 * 0.5).astype(np.float32)
            w = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * r * r))[..., None] * rng.uniform(0.3, 0.8)
            img = img * (1 - w) + col * w
    small_img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return small_img.resize((side, side), Image.BILINEAR)


def _draw_hair_back(p: _Pen, look: Look):
    hc = look.hair_colour
    W, H = look.face_w, look.face_h
    if look.hair_style in ("long", "bob"):
        length = look.hair_len if look.hair_style == "long" else min(look.hair_len, 1.5)
        top = _ellipse(0, -0.2, W * 1.2, H * 1.05, 30, math.pi, 2 * math.pi)
        w = W * (1.28 if look.hair_style == "long" else 1.22)
        body = [(w, -0.2), (w * 1.02, length - 0.3), (w * 0.8, length), (-w * 0.8, length), (-w * 1.02, length - 0.3), (-w, -0.2)]
        p.poly(np.concatenate([top, body]), fill=hc)
    elif look.hair_style == "bun":
        p.ellipse(0.2 * look.parting, -H * 1.02 - 0.28, 0.5, 0.42, fill=hc)
    elif look.hair_style == "curly":
        t = np.linspace(0, 2 * math.pi, 80)
        r = 1 + 0.05 * np.sin(14 * t)
        p.poly(np.stack([W * 1.45 * r * np.cos(t), -0.35 + H * 1.05 * r * np.sin(t)], 1), fill=hc)


def _draw_hair_front(p: _Pen, look: Look, rng: np.random.Generator):
    hc = look.hair_colour
    W, H = look.face_w, look.face_h
    style = look.hair_style
    if style == "curly":
        return  # the back shape already frames the face; add the hairline cap below
    # Hairline: temples at y=-0.15 on the sides, centre at `line_y`.
    line_y = -0.74
    if style == "receding":
        line_y = -0.95 - 0.2 * look.sag
    if style == "buzz":
        line_y = -0.78
    fringe = look.fringe if style in ("long", "bob", "short", "bun") else 0.0
    line_y += 0.38 * fringe
    cap_h = {"buzz": 1.02, "short": 1.07, "receding": 1.0}.get(style, 1.12)
    cap_w = {"buzz": 1.03, "short": 1.06, "receding": 1.03}.get(style, 1.14)
    outer = _ellipse(0, -0.15, W * cap_w, H * cap_h, 36, math.pi * 0.98, math.pi * 2.02)
    xs = np.linspace(W * 1.02, -W * 1.02, 24)
    shape = np.cos(np.linspace(-math.pi / 2, math.pi / 2, 24))
    temple_y = {"receding": -0.35, "short": -0.25, "buzz": -0.3}.get(style, -0.15)
    ys = temple_y + (line_y - temple_y) * shape ** 0.6
    if fringe > 0:  # a ragged fringe edge
        ys = ys + 0.04 * np.sin(np.linspace(0, 9 * math.pi, 24)) * fringe
    ys = ys + 0.08 * look.parting * np.exp(-((xs - 0.3 * look.parting) ** 2) / 0.05)
    hairline = np.stack([xs, ys], 1)
    colour = hc if style != "buzz" else _mix(hc, look.skin, 0.45)
    if style == "receding":
        colour = _mix(hc, look.skin, 0.25 + 0.4 * look.sag)
    p.poly(np.concatenate([outer, hairline]), fill=colour)
    if style in ("long", "bob", "bun"):
        # Side locks in front of the ears.
        low = 0.9 if style != "bun" else 0.1
        for sgn in (-1, 1):
            lock = [(sgn * W * 0.86, -0.5), (sgn * W * 1.18, -0.3), (sgn * W * 1.22, low), (sgn * W * 0.97, low - 0.05), (sgn * W * 0.92, 0.0)]
            p.poly(lock, fill=hc)
    # Strands give texture; a darker and a lighter tone.
    for _ in range(6 if style not in ("buzz", "receding") else 0):
        x0 = rng.uniform(-0.8, 0.8) * W
        p.line([(x0, -H * 1.0), (x0 * 1.1 + rng.normal(0, 0.1), line_y - 0.05)],
               fill=_rgba(_shade(hc, rng.choice([0.75, 1.25])), 120), width=0.025)


def _draw_features(p: _Pen, look: Look, rng: np.random.Generator):
    skin, W = look.skin, look.face_w
    dark = _shade(skin, 0.72)
    # Age spots and skin unevenness.
    for _ in range(look.spots):
        p.ellipse(rng.uniform(-0.7, 0.7) * W, rng.uniform(-0.6, 0.4), 0.03, 0.025, fill=_rgba(_shade(skin, 0.8), 110), n=10)
    # Cheek blush (more on women, make-up) and jaw shading.
    blush = 25 + 45 * max(look.fem, 0)
    for sgn in (-1, 1):
        p.ellipse(sgn * 0.5 * W, 0.32, 0.2, 0.12, fill=_rgba((210, 90, 90), blush * 0.6), n=20)
    # Eyes.
    ey, ex = -0.15, 0.4
    er = 0.16 * look.eye_size
    for sgn in (-1, 1):
        x = sgn * ex
        p.ellipse(x, ey, er, er * 0.5, fill=(245, 245, 240), n=24)
        p.ellipse(x, ey, er * 0.45, er * 0.45, fill=look.eye_colour, n=16)
        p.ellipse(x, ey, er * 0.2, er * 0.2, fill=(10, 10, 10), n=10)
        lid_w = 0.022 + 0.03 * max(look.fem, 0)  # lashes / eyeliner
        p.line(_ellipse(x, ey + 0.01, er * 1.05, er * 0.55, 14, math.pi * 1.05, math.pi * 1.95), fill=(25, 20, 20), width=lid_w)
        # Under-eye bags and crow's feet grow with age.
        # Shadow under the eye, darker with age: an area, not a line, so it survives downscaling.
        if look.wrinkles > 0.08:
            p.ellipse(x, ey + 0.1, er * 1.05, er * 0.5, fill=_rgba(_shade(skin, 0.55), 30 + 170 * look.wrinkles), n=16)
        bags = max(look.sag, look.wrinkles - 0.25)
        if bags > 0.05:
            p.line(_ellipse(x, ey + 0.05, er * 0.9, er * 0.7, 10, 0.2 * math.pi, 0.8 * math.pi),
                   fill=_rgba(_shade(skin, 0.6), 60 + 170 * bags), width=0.025 + 0.04 * bags)
        if look.wrinkles > 0.2:
            for k in (-1, 0, 1):
                x0 = x + sgn * er * 1.15
                p.line([(x0, ey + 0.03 * k), (x0 + sgn * 0.13, ey + 0.07 * k)],
                       fill=_rgba(_shade(skin, 0.55), 180 * look.wrinkles), width=0.02 + 0.03 * look.wrinkles)
        # Eyebrows.
        brow_c = _mix(look.hair_colour, (40, 30, 25), 0.3 if look.grey < 0.5 else 0.0)
        bx = np.linspace(x - sgn * 0.12, x + sgn * 0.2, 6)
        by = -0.37 - 0.05 * np.sin(np.linspace(0.3, 2.6, 6)) - 0.03 * max(look.fem, 0)
        p.line(np.stack([bx, by], 1), fill=brow_c, width=look.brow)
    # Forehead lines, graded with age.
    if look.wrinkles > 0.1:
        n_lines = 1 + int(look.wrinkles * 3.5)
        for k in range(n_lines):
            y = -0.52 - 0.08 * k
            xs = np.linspace(-0.45, 0.45, 8) * W
            p.line(np.stack([xs, y - 0.025 * np.sin(np.linspace(0, math.pi, 8))], 1),
                   fill=_rgba(_shade(skin, 0.6), 50 + 170 * look.wrinkles), width=0.03 + 0.04 * look.wrinkles)
    # Nose: bridge shadow, tip and nostrils (the cue that tells "incorrect" from "wear").
    p.line([(0.06, -0.05), (0.09, 0.28)], fill=_rgba(dark, 90), width=0.04)
    p.ellipse(0, 0.34, 0.13, 0.08, fill=_rgba(_shade(skin, 0.88), 255), n=20)
    for sgn in (-1, 1):
        p.ellipse(sgn * 0.075, 0.37, 0.045, 0.025, fill=_shade(skin, 0.4), n=12)
        p.line([(sgn * 0.16, 0.3), (sgn * 0.13, 0.4)], fill=_rgba(dark, 150), width=0.02)
    # Nasolabial folds, deeper with age.
    if look.wrinkles > 0.15:
        for sgn in (-1, 1):
            t = np.linspace(0, 1, 8)
            xs = sgn * (0.2 + 0.15 * t + 0.05 * np.sin(t * math.pi))
            p.line(np.stack([xs, 0.38 + 0.42 * t], 1), fill=_rgba(_shade(skin, 0.6), 30 + 190 * look.wrinkles), width=0.022)
    # Mouth.
    my, mw = 0.68, 0.25
    lip_h = 0.06 * look.lip_full
    upper = [(-mw, my), (-mw * 0.4, my - lip_h), (0, my - lip_h * 0.7), (mw * 0.4, my - lip_h), (mw, my)]
    lower = [(mw, my), (mw * 0.5, my + lip_h * 1.3), (-mw * 0.5, my + lip_h * 1.3), (-mw, my)]
    p.poly(upper + lower, fill=look.lip_colour)
    p.line([(-mw, my), (0, my + 0.01), (mw, my)], fill=_shade(look.lip_colour, 0.55), width=0.018)
    # Jowl and neck lines for older people.
    if look.sag > 0.25:
        for sgn in (-1, 1):
            p.line([(sgn * 0.42 * W, 0.85), (sgn * 0.5 * W, 1.1)], fill=_rgba(_shade(skin, 0.65), 200 * look.sag), width=0.02)


def _draw_beard(p: _Pen, look: Look, rng: np.random.Generator):
    if look.beard == "none":
        return
    hc = look.hair_colour
    H = look.face_h
    if look.beard in ("full", "stubble"):
        ys = np.linspace(0.2, H, 14)
        xs = _face_half_width(look, ys) * 0.99
        outer = np.concatenate([np.stack([xs, ys], 1), np.stack([-xs[::-1], ys[::-1]], 1)])
        inner = [(-0.3, 0.5), (-0.33, 0.75), (0, 0.92), (0.33, 0.75), (0.3, 0.5)]
        alpha = 235 if look.beard == "full" else 85
        p.poly(np.concatenate([outer, np.array(inner)[::-1]]), fill=_rgba(hc, alpha))
        p.poly([(-0.3, 0.5), (-0.33, 0.77), (0, 1.0), (0.33, 0.77), (0.3, 0.5), (0, 0.86)], fill=_rgba(hc, alpha * 0.8))
    if look.beard in ("full", "moustache"):
        p.poly([(-0.3, 0.62), (-0.15, 0.5), (0, 0.52), (0.15, 0.5), (0.3, 0.62), (0, 0.6)], fill=_rgba(hc, 235))


def _mask_outline(look: Look, top: float, bottom: float, style: str) -> np.ndarray:
    """Mask polygon between heights `top` and `bottom` (face units), hugging the face's sides."""
    W, H = look.face_w, look.face_h
    n = 14
    ys = np.linspace(top + 0.06, min(bottom - 0.12, H - 0.05), n)
    xs = np.maximum(_face_half_width(look, ys) * 1.05, 0.38 * W)
    right = np.stack([xs, ys], 1)
    bx = np.linspace(xs[-1], -xs[-1], 11)
    # Bottom edge sags under the chin; KF94/N95 come to a point or a round cup.
    if style.startswith("kf94"):
        by = ys[-1] + (bottom - ys[-1]) * (1 - np.abs(bx / xs[-1]))
    else:
        by = ys[-1] + (bottom - ys[-1]) * np.sqrt(np.clip(1 - (bx / xs[-1]) ** 2, 0, 1))
    tx = np.linspace(-xs[0], xs[0], 11)
    rise = 0.14 if style.startswith("kf94") else 0.08
    ty = top + 0.06 - rise * (1 - np.abs(tx / xs[0])) ** (0.7 if style.startswith("kf94") else 1.5)
    return np.concatenate([right, np.stack([bx, by], 1), right[::-1] * [-1, 1], np.stack([tx, ty], 1)])


def _draw_mask(p: _Pen, look: Look, shot: Shot, rng: np.random.Generator):
    if shot.mask == 2:
        return
    H, W = look.face_h, look.face_w
    if shot.mask == 0:
        top, bottom = -0.04 + shot.drop, H + 0.1
    elif shot.incorrect_mode == "nose":
        top, bottom = 0.47 + shot.drop, H + 0.12  # nostrils at ~0.37 stay visible
    else:
        top, bottom = 0.86 + shot.drop, H + 0.45  # on the chin: mouth and nose visible
    style = shot.style
    if style == "gaiter":
        bottom = H + 0.9
    outline = _mask_outline(look, top, bottom, style)
    col = shot.colour
    p.poly(outline, fill=col)
    shade = _shade(col, 0.8)
    xs_top = _face_half_width(look, top + 0.1) * 1.05
    if style.startswith("surgical"):
        for k in range(3):  # pleats
            y = top + (bottom - top) * (0.3 + 0.2 * k)
            xw = float(np.maximum(_face_half_width(look, min(y, H - 0.05)) * 1.0, 0.4))
            p.line([(-xw, y), (xw, y)], fill=shade, width=0.025)
        p.line([(-xs_top * 0.9, top + 0.03), (xs_top * 0.9, top + 0.03)], fill=_shade(col, 0.9), width=0.03)
    elif style.startswith("kf94"):
        p.line([(-xs_top, top + (bottom - top) * 0.45), (xs_top, top + (bottom - top) * 0.45)], fill=shade, width=0.02)
        p.line([(0, top - 0.08), (0, bottom - 0.02)], fill=shade, width=0.018)
    elif style.startswith("cloth"):
        p.line([(0, top - 0.05), (0.02, bottom - 0.02)], fill=_shade(col, 0.7), width=0.02)
        if style == "cloth_pattern":
            kind = rng.integers(3)
            for _ in range(22):
                x = rng.uniform(-0.8, 0.8) * W
                y = rng.uniform(top + 0.08, bottom - 0.12)
                if kind == 0:
                    p.ellipse(x, y, 0.05, 0.05, fill=shot.colour2, n=10)
                elif kind == 1:
                    p.poly([(x, y - 0.07), (x + 0.06, y + 0.05), (x - 0.06, y + 0.05)], fill=shot.colour2)
                else:
                    p.line([(x - 0.1, y), (x + 0.1, y)], fill=shot.colour2, width=0.03)
    elif style == "n95_valve":
        p.line(_ellipse(0, (top + bottom) / 2, W * 0.6, (bottom - top) * 0.38, 20), fill=shade, width=0.02)
        p.ellipse(0.45 * W, (top + bottom) / 2 + 0.1, 0.16, 0.16, fill=(190, 190, 195), n=18)
        p.ellipse(0.45 * W, (top + bottom) / 2 + 0.1, 0.09, 0.09, fill=(120, 120, 125), n=14)
    elif style == "gaiter":
        for k in range(4):
            y = top + 0.2 + 0.3 * k
            p.line([(-W, y), (W, y + 0.05)], fill=_rgba(_shade(col, 0.7), 150), width=0.03)
    # Ear loops (not on a gaiter).
    if style != "gaiter":
        ly = top + 0.1
        for sgn in (-1, 1):
            p.line([(sgn * xs_top, ly), (sgn * W * 1.02, -0.05), (sgn * W * 1.04, ly + 0.35), (sgn * xs_top * 0.98, ly + (bottom - top) * 0.6)],
                   fill=_shade(col, 0.85) if style != "cloth_black" else (40, 40, 40), width=0.025)


def _draw_glasses(p: _Pen, look: Look):
    col = (30, 30, 30)
    for sgn in (-1, 1):
        p.line(_ellipse(sgn * 0.4, -0.14, 0.22, 0.15, 24), fill=col, width=0.03)
    p.line([(-0.18, -0.16), (0.18, -0.16)], fill=col, width=0.03)


def face_point(look: Look, x: float, y: float) -> tuple[float, float]:
    """Where the face-unit point (x, y) lands in the final 384 x 512 image, pixels (x right, y down)."""
    side = int(round(look.photo_side * RENDER_SCALE))
    a = math.radians(look.rot)
    s = look.scale * RENDER_SCALE
    rx = look.cx * side + s * (math.cos(a) * x - math.sin(a) * y)
    ry = look.cy * side + s * (math.sin(a) * x + math.cos(a) * y)
    k = look.photo_side / side
    return (WIDTH - look.photo_side) // 2 + rx * k, HEIGHT - look.photo_side + ry * k


# Landmarks in face units, for tests and overlays.
NOSE_TIP = (0.0, 0.34)
MOUTH = (0.0, 0.68)


def draw_face(look: Look, shot: Shot) -> Image.Image:
    """Render one photo: RGB PIL image, WIDTH x HEIGHT (384 x 512)."""
    rng = np.random.default_rng(look.seed)  # textures shared by a person's photos
    side = int(round(look.photo_side * RENDER_SCALE))
    img = _background(look, side, rng)
    p = _Pen(img, scale=look.scale * RENDER_SCALE, rot_deg=look.rot, cx=look.cx * side, cy=look.cy * side)
    W, H = look.face_w, look.face_h
    skin = look.skin
    _draw_hair_back(p, look)
    # Neck and shoulders.
    neck_w = 0.55 * W + 0.1 * max(-look.fem, 0)
    p.poly([(-neck_w, 0.6), (neck_w, 0.6), (neck_w * 1.05, H + 1.1), (-neck_w * 1.05, H + 1.1)], fill=_shade(skin, 0.85))
    shoulders = _ellipse(0, H + 2.2, 2.7 + 0.3 * max(-look.fem, 0), 1.25, 40, math.pi, 2 * math.pi)
    p.poly(np.concatenate([shoulders, [(2.7, H + 4), (-2.7, H + 4)]]), fill=look.clothes)
    p.poly([(-neck_w * 1.05, H + 0.9), (0, H + 1.35), (neck_w * 1.05, H + 0.9)], fill=_shade(skin, 0.82))
    if look.hair_style == "long":  # hair falling over the shoulders in front
        hl = look.hair_len
        for sgn in (-1, 1):
            p.poly([(sgn * W * 0.95, 0.6), (sgn * W * 1.28, 0.4), (sgn * W * 1.3, hl), (sgn * W * 0.95, hl - 0.2)], fill=look.hair_colour)
    # Ears, face.
    for sgn in (-1, 1):
        p.ellipse(sgn * W * 0.98, 0.05, 0.13, 0.24, fill=_shade(skin, 0.93), n=20)
        if look.earrings:
            p.ellipse(sgn * W * 1.0, 0.33, 0.045, 0.045, fill=(225, 190, 80), n=10)
    p.poly(_face_outline(look), fill=skin)
    # Soft shading down the face's sides.
    for sgn in (-1, 1):
        p.ellipse(sgn * W * 0.85, 0.35, 0.22, 0.75, fill=_rgba(_shade(skin, 0.8), 60), n=24)
    _draw_features(p, look, rng)
    _draw_beard(p, look, rng)
    _draw_hair_front(p, look, rng)
    if look.glasses:
        _draw_glasses(p, look)
    shot_rng = np.random.default_rng(shot.seed)
    _draw_mask(p, look, shot, shot_rng)
    return _finish(img, look)


def _finish(img: Image.Image, look: Look) -> Image.Image:
    """Lighting, colour grade, blur and grain on the source photo, then pad it into 384 x 512."""
    side = img.size[0]  # the reduced drawing size
    blur = look.blur * RENDER_SCALE
    if blur > 0.3:
        # Box blur costs the same at any radius (Gaussian blur was most of the draw time).
        img = img.filter(ImageFilter.BoxBlur(blur))
    # Light gradient x colour tint x exposure, computed at 16x16 and upscaled (light varies slowly);
    # applied in integer arithmetic with 128 = gain 1.0.
    k = 16
    yy, xx = np.mgrid[0:k, 0:k] / (k - 1) - 0.5
    gain = 1 + look.light * (math.cos(look.light_angle) * xx + math.sin(look.light_angle) * yy) * 2
    if look.source == "photo":  # vignette
        gain = gain * (1 - 0.35 * look.light * (xx ** 2 + yy ** 2) * 2)
    gain = gain[..., None] * (look.exposure * np.asarray(look.tint))
    gain_img = Image.fromarray(np.clip(gain * 128, 0, 255).astype(np.uint8)).resize((side, side), Image.BILINEAR)
    arr = np.asarray(img, np.uint16) * np.asarray(gain_img, np.uint16)
    arr >>= 7
    if look.grain > 0.5:
        rng = np.random.default_rng(look.seed + 1)
        # Grain at the reduced size: blobs of ~2 px after upscaling, like sensor noise after demosaicing.
        g = (rng.standard_normal((side, side), dtype=np.float32) * np.float32(look.grain)).astype(np.int16)
        arr = arr.astype(np.int16) + g[..., None]
    full = look.photo_side
    photo = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if look.jpeg_quality:
        # Photo-like source: some pictures were saved lossily before (block and ringing artefacts).
        buf = io.BytesIO()
        photo.save(buf, format="JPEG", quality=look.jpeg_quality)
        buf.seek(0)
        photo = Image.open(buf).convert("RGB")
    photo = photo.resize((full, full), Image.BILINEAR)
    side = full
    if look.pad is None:
        # The scene continues: the photo's top rows, smoothed, fill the padding.
        canvas = photo.crop((0, 0, side, 4)).resize((8, 1), Image.BILINEAR).resize((WIDTH, 1), Image.BILINEAR)
        canvas = canvas.resize((WIDTH, HEIGHT), Image.NEAREST)
    else:
        canvas = Image.new("RGB", (WIDTH, HEIGHT), look.pad)
    canvas.paste(photo, ((WIDTH - side) // 2, HEIGHT - side))
    return canvas
