"""Compositing of the demo dataset images.

Real face crops (scikit-image's LFW subset) are tinted, resized, degraded and
pasted onto backgrounds made from the photographs bundled with scikit-image
and from procedural textures. Every face returns the box it was drawn in and
the attribute labels of what was actually done to it. The rules are in the
docstring of ``ppdet_hambox.data.source.demo``.
"""
import math
from dataclasses import dataclass

import cv2
import numpy as np

CROP = 25
NUM_FACE_CROPS = 100
# Bundled in the scikit-image wheel (no download) and without human faces:
# `astronaut` and `camera` show real faces that would be unannotated.
PHOTOS = ('coffee', 'chelsea', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'retina',
          'brick', 'grass', 'gravel', 'coins', 'moon', 'page', 'text', 'clock', 'cell')
SKIN_TONES_RGB = np.array([(255, 224, 196), (234, 192, 160), (208, 160, 120), (176, 122, 86),
                           (132, 88, 58), (92, 60, 40)], np.float32)
MIN_FACE = 6
CROWD_LARGE = (30, 90)      # the 1-3 large faces among a crowd
GROUP_SIZE = (16, 120)      # group faces, also at most 45% of the short side
PORTRAIT_SIZE = (60, 180)   # a single portrait face, also at most 60% of the short side
MIN_ROTATED_FACE = 12
POSE_ANGLE = (20.0, 45.0)
UPSCALE_BLUR = 8.0          # faces enlarged more than this from the 25 px crop look soft: blur >= 1
DARK_GAIN, BRIGHT_GAIN = 0.5, 1.8   # total light gain outside (DARK, BRIGHT) is extreme illumination
HEAVY_OCCLUSION = 1.0 / 3.0
INVALID_OCCLUSION = 0.55
INVALID_TINY = 8


@dataclass
class Assets:
    faces: np.ndarray     # float32 [100, 25, 25] in [0, 1]
    photos: list          # BGR uint8 images


def load_assets():
    try:
        from skimage import data
    except ImportError as exc:
        raise ImportError('the demo dataset is built from the face crops and photographs bundled with '
                          'scikit-image, which is not installed: pip install scikit-image '
                          '(or pip install -e ".[demo]")') from exc
    faces = np.asarray(data.lfw_subset()[:NUM_FACE_CROPS], np.float32)
    photos = []
    for name in PHOTOS:
        image = np.asarray(getattr(data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(image[..., 2::-1]))
    return Assets(faces, photos)


def log_uniform(rng, low, high, size=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def muted_colours(rng, shape):
    """Random BGR colours [..., 3], partly desaturated towards their grey."""
    colours = rng.uniform(0, 255, tuple(shape) + (3,)).astype(np.float32)
    grey = colours.mean(axis=-1, keepdims=True)
    return grey + (colours - grey) * np.float32(rng.uniform(0.2, 0.7))


# ---------------------------------------------------------------- backgrounds
def _value_noise(rng, height, width):
    out = np.zeros((height, width, 3), np.float32)
    for octave in range(3):
        cells = 2 + 3 * 2 ** octave
        grid = muted_colours(rng, (cells, cells))
        out += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) / 2 ** octave
    return out / 1.75


def _stripes(rng, height, width):
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(6, 60)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    wave = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
    a, b = muted_colours(rng, (2,))
    return wave[..., None] * a + (1 - wave[..., None]) * b


def _tiles(rng, height, width):
    tile = int(rng.integers(12, 64))
    grid = muted_colours(rng, (height // tile + 1, width // tile + 1))
    return cv2.resize(grid, None, fx=tile, fy=tile, interpolation=cv2.INTER_NEAREST)[:height, :width]


def _gradient(rng, height, width):
    a, b = muted_colours(rng, (2,))
    if rng.random() < 0.5:
        t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    else:
        t = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    return np.broadcast_to(t * a + (1 - t) * b, (height, width, 3)).copy()


TEXTURES = (_value_noise, _stripes, _tiles, _gradient)


def _photo_crop(rng, photo, height, width):
    ph, pw = photo.shape[:2]
    zoom = max(width / pw, height / ph) * rng.uniform(1.0, 3.0)
    ch, cw = min(ph, max(2, round(height / zoom))), min(pw, max(2, round(width / zoom)))
    y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = cv2.resize(photo[y:y + ch, x:x + cw], (width, height), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = cv2.flip(crop, 1)
    return crop.astype(np.float32) * rng.uniform(0.75, 1.25, 3).astype(np.float32)


def background(rng, assets, height, width):
    """A float32 BGR canvas: a tinted photo crop, optionally blended with a
    procedural texture, or a texture alone."""
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    if rng.random() < 0.25:
        return texture(rng, height, width)
    canvas = _photo_crop(rng, assets.photos[int(rng.integers(len(assets.photos)))], height, width)
    if rng.random() < 0.35:
        mix = rng.uniform(0.2, 0.5)
        canvas = (1 - mix) * canvas + mix * texture(rng, height, width)
    return canvas


def skin_tones(rng, count):
    """[count, 3] BGR skin colours interpolated between the SKIN_TONES_RGB anchors."""
    t = rng.uniform(0, len(SKIN_TONES_RGB) - 1, count)
    i = np.minimum(t.astype(int), len(SKIN_TONES_RGB) - 2)
    f = (t - i)[:, None]
    rgb = (1 - f) * SKIN_TONES_RGB[i] + f * SKIN_TONES_RGB[i + 1] + rng.uniform(-8, 8, (count, 3))
    return rgb[:, ::-1].astype(np.float32)


def draw_clutter(rng, canvas):
    """Skin-coloured blobs and plain shapes: negatives that are not faces."""
    height, width = canvas.shape[:2]
    for _ in range(int(rng.integers(1, 6))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(4, 40)), int(rng.integers(4, 40)))
        colour = skin_tones(rng, 1)[0] if rng.random() < 0.5 else muted_colours(rng, ())
        if rng.random() < 0.6:
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour.tolist(), -1)
        else:
            corner = (centre[0] + axes[0], centre[1] + axes[1])
            cv2.rectangle(canvas, centre, corner, colour.tolist(), -1)


def draw_body(rng, canvas, box, tone):
    """Neck and shoulders below a face slot (drawn before any face is pasted)."""
    x, y, w, h = box
    cx = x + w / 2
    neck = (round(cx - 0.22 * w), round(y + 0.8 * h), round(cx + 0.22 * w), round(y + 1.3 * h))
    cv2.rectangle(canvas, neck[:2], neck[2:], (tone * 0.8).tolist(), -1)
    clothes = muted_colours(rng, ()) * (0.3 if rng.random() < 0.4 else 1.0)
    centre = (round(cx), round(y + 1.3 * h + 0.6 * h))
    cv2.ellipse(canvas, centre, (max(1, round(1.25 * w)), max(1, round(0.75 * h))), 0, 0, 360,
                clothes.tolist(), -1)


# ---------------------------------------------------------------- layout
class Occupancy:
    """Face slots padded by a margin never overlap, so that no face, occluder
    or blur touches another face."""

    def __init__(self):
        self.padded = np.zeros((0, 4), np.float32)
        self.slots = []

    @staticmethod
    def pad(w, h):
        return math.ceil(0.2 * max(w, h)) + 1

    def try_add(self, x, y, w, h):
        p = self.pad(w, h)
        used = self.padded[:len(self.slots)]
        if ((np.minimum(used[:, 2], x + w + p) > np.maximum(used[:, 0], x - p))
                & (np.minimum(used[:, 3], y + h + p) > np.maximum(used[:, 1], y - p))).any():
            return False
        if len(self.slots) == len(self.padded):
            self.padded = np.vstack([self.padded, np.zeros((max(16, len(self.padded)), 4), np.float32)])
        self.padded[len(self.slots)] = (x - p, y - p, x + w + p, y + h + p)
        self.slots.append((int(x), int(y), int(w), int(h)))
        return True


def _face_width(rng, height):
    return max(4, round(height * rng.uniform(0.75, 1.0)))


def place_random(rng, occupancy, height, width, sizes, tries=40):
    for size in sizes:
        h = int(min(round(size), height - 2, width - 2))
        w = _face_width(rng, h)
        for _ in range(tries):
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            if occupancy.try_add(x, y, w, h):
                break


def place_crowd(rng, occupancy, height, width, count):
    """Rows of small faces, larger towards the bottom (perspective); a random
    subset of ``count`` of the candidate slots is kept."""
    top, bottom = rng.uniform(MIN_FACE, 9), rng.uniform(13, 26)
    candidates = []
    y = rng.uniform(0.03, 0.3) * height
    while y < height - bottom:
        size = top + (bottom - top) * y / height
        x = rng.uniform(0, size)
        while x < width - 1.2 * size:
            h = max(MIN_FACE, round(size * rng.uniform(0.85, 1.15)))
            w = _face_width(rng, h)
            yy = int(np.clip(y + rng.uniform(-0.2, 0.2) * size, 0, height - h))
            if x + w <= width:
                candidates.append((int(x), yy, w, h))
            x += w + 2 * Occupancy.pad(w, h) + rng.uniform(0, size)
        y += size * rng.uniform(1.7, 2.3)
    for i in rng.permutation(len(candidates))[:count]:
        occupancy.try_add(*candidates[i])


def plan_slots(rng, kind, height, width):
    """Face slots (x, y, w, h) for an image of the given kind."""
    occupancy = Occupancy()
    short = min(height, width)
    if kind == 'crowd':
        place_crowd(rng, occupancy, height, width, int(rng.integers(15, 46)))
        place_random(rng, occupancy, height, width, log_uniform(rng, *CROWD_LARGE, int(rng.integers(1, 4))))
    elif kind == 'group':
        count = int(rng.integers(3, 13))
        place_random(rng, occupancy, height, width,
                     log_uniform(rng, GROUP_SIZE[0], min(GROUP_SIZE[1], 0.45 * short), count))
    elif kind == 'portrait':
        count = int(rng.choice([1, 2, 3, 4], p=[0.4, 0.3, 0.2, 0.1]))
        low, high = (PORTRAIT_SIZE[0], min(PORTRAIT_SIZE[1], 0.6 * short)) if count == 1 else (40, 0.4 * short)
        place_random(rng, occupancy, height, width, log_uniform(rng, low, high, count))
    elif kind != 'empty':
        raise ValueError('unknown image kind {!r}'.format(kind))
    return occupancy.slots


# ---------------------------------------------------------------- faces
@dataclass
class FaceRecipe:
    slot: tuple
    crop: int
    flip: bool
    tone: np.ndarray
    blur: int              # applied blur level 0, 1, 2
    occlusion: float       # target occluded fraction of the box, 0 for none
    angle: float           # in-plane rotation in degrees, 0 for none
    expression: bool       # lower face stretched
    light: str             # 'normal', 'dark', 'bright' or 'side'
    gain: float


LIGHTS = ('normal', 'dark', 'bright', 'side')
LIGHT_P = (0.92, 0.03, 0.025, 0.025)
LIGHT_GAIN = np.array([(0.8, 1.25), (0.2, 0.4), (1.9, 2.6), (1.0, 1.0)])
BLUR_P = (0.6, 0.28, 0.12)
OCCLUSION_P = (0.7, 0.18, 0.12)
OCCLUSION_FRACTION = np.array([(0.0, 0.0), (0.12, 0.3), (0.36, 0.7)])


def categorical(rng, p, count):
    return np.minimum(np.searchsorted(np.cumsum(p), rng.random(count), side='right'), len(p) - 1)


def sample_recipes(rng, slots):
    """One FaceRecipe per slot, all random choices drawn at once."""
    n = len(slots)
    heights = np.array([slot[3] for slot in slots], int)
    light = categorical(rng, LIGHT_P, n)
    low, high = LIGHT_GAIN[light].T
    gain = low + (high - low) * rng.random(n)
    low, high = OCCLUSION_FRACTION[categorical(rng, OCCLUSION_P, n)].T
    occlusion = low + (high - low) * rng.random(n)
    rotate = (heights >= MIN_ROTATED_FACE) & (rng.random(n) < 0.12)
    angle = np.where(rotate, rng.uniform(*POSE_ANGLE, n) * rng.choice([-1.0, 1.0], n), 0.0)
    crop, flip, tones = rng.integers(NUM_FACE_CROPS, size=n), rng.random(n) < 0.5, skin_tones(rng, n)
    blur, expression = categorical(rng, BLUR_P, n), rng.random(n) < 0.08
    return [FaceRecipe(slot=slot, crop=int(crop[i]), flip=bool(flip[i]), tone=tones[i], blur=int(blur[i]),
                       occlusion=float(occlusion[i]), angle=float(angle[i]), expression=bool(expression[i]),
                       light=LIGHTS[light[i]], gain=float(gain[i]))
            for i, slot in enumerate(slots)]


def superellipse_alpha(h, w):
    """Opaque along the box edges' middles, fading into the background at the
    corners, so the face fills its box without a rectangular outline."""
    v = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    u = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    r = np.abs(v)[:, None] ** 4 + np.abs(u)[None, :] ** 4
    return np.clip((1.6 - r) / 0.6, 0, 1)


def stretch_lower_face(crop):
    """Exaggerated-expression stand-in: rows 13..24 (mouth, jaw) take 60% of the height."""
    top = cv2.resize(crop[:13], (CROP, 10), interpolation=cv2.INTER_AREA)
    bottom = cv2.resize(crop[13:], (CROP, CROP - 10), interpolation=cv2.INTER_LINEAR)
    return np.vstack([top, bottom])


def face_footprint(recipe):
    """Where a recipe's face is drawn: (alpha [h, w], box (x, y, w, h), warp).
    A rotated face turns inside its slot, shrunk to fit, and is cropped to
    the tight box of its drawn (alpha > 0.5) pixels; ``warp`` is then
    (matrix, x0, y0) for the face pixels, else None. No randomness: the box
    is known without rendering."""
    x, y, w, h = recipe.slot
    alpha = superellipse_alpha(h, w)
    if not recipe.angle:
        return alpha, (x, y, w, h), None
    c, s = abs(math.cos(math.radians(recipe.angle))), abs(math.sin(math.radians(recipe.angle)))
    scale = min(w / (w * c + h * s), h / (w * s + h * c))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), recipe.angle, scale)
    alpha = cv2.warpAffine(alpha, matrix, (w, h), flags=cv2.INTER_LINEAR)
    rows, cols = np.nonzero(alpha > 0.5)
    y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    return alpha[y0:y1, x0:x1], (x + x0, y + y0, x1 - x0, y1 - y0), (matrix, x0, y0)


def occluder_mask(rng, h, w, fraction):
    """A band from one edge or a blob on one edge covering about ``fraction`` of the box."""
    mask = np.zeros((h, w), np.uint8)
    side = int(rng.integers(4))
    if rng.random() < 0.6:
        extent = h if side < 2 else w
        depth = max(1, round(fraction * extent))
        if side == 0:
            mask[h - depth:] = 1
        elif side == 1:
            mask[:depth] = 1
        elif side == 2:
            mask[:, :depth] = 1
        else:
            mask[:, w - depth:] = 1
    else:
        along = (w if side < 2 else h) * rng.uniform(0.35, 0.5)
        across = 2 * fraction * w * h / (math.pi * along)
        centre = [(w / 2, h), (w / 2, 0), (0, h / 2), (w, h / 2)][side]
        axes = (along, across) if side < 2 else (across, along)
        centre = (round(centre[0]), round(centre[1]))
        cv2.ellipse(mask, centre, (max(1, round(axes[0])), max(1, round(axes[1]))), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def occluder_pixels(rng, assets, h, w):
    if rng.random() < 0.4:
        return _photo_crop(rng, assets.photos[int(rng.integers(len(assets.photos)))], h, w)
    colour = muted_colours(rng, ()) * (0.35 if rng.random() < 0.4 else 1.0)
    return colour + rng.normal(0, 6, (h, w, 3)).astype(np.float32)


def _ramp(start, stop, box_start, box_stop, margin):
    coords = np.arange(start, stop, dtype=np.float32)
    outside = np.maximum(np.maximum(box_start - coords, coords - (box_stop - 1)), 0)
    return np.clip(1 - outside / (margin + 1), 0, 1)


def blur_region(canvas, box, sigma, margin):
    """Gaussian blur of the box, fading out over ``margin`` pixels around it."""
    x, y, w, h = box
    height, width = canvas.shape[:2]
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
    region = canvas[y0:y1, x0:x1]
    blurred = cv2.GaussianBlur(region, (0, 0), sigma)
    weight = np.minimum(_ramp(y0, y1, y, y + h, margin)[:, None], _ramp(x0, x1, x, x + w, margin)[None, :])
    region[:] = weight[..., None] * blurred + (1 - weight[..., None]) * region


def render_face(rng, canvas, assets, recipe):
    """Pastes one face; returns its box (x, y, w, h) and the occluded fraction of the box."""
    slot_w, slot_h = recipe.slot[2:]
    grey = assets.faces[recipe.crop]
    if recipe.flip:
        grey = grey[:, ::-1]
    if recipe.expression:
        grey = stretch_lower_face(grey)
    interpolation = cv2.INTER_AREA if slot_h < CROP else cv2.INTER_CUBIC
    face = cv2.resize(np.ascontiguousarray(grey), (slot_w, slot_h), interpolation=interpolation)
    face = np.clip(face, 0, 1)
    alpha, (x, y, w, h), warp = face_footprint(recipe)
    if warp is not None:
        matrix, x0, y0 = warp
        face = cv2.warpAffine(face, matrix, (slot_w, slot_h), flags=cv2.INTER_LINEAR)[y0:y0 + h, x0:x0 + w]
    colour = (face / max(float(face.mean()), 0.15) * 0.8)[..., None] * recipe.tone
    if recipe.light == 'side':
        ramp = np.linspace(0.15, 1.4, w, dtype=np.float32)
        colour *= (ramp if rng.random() < 0.5 else ramp[::-1])[None, :, None]
    else:
        colour *= recipe.gain
    region = canvas[y:y + h, x:x + w]
    region[:] = alpha[..., None] * colour + (1 - alpha[..., None]) * region
    occluded = 0.0
    if recipe.occlusion:
        mask = occluder_mask(rng, h, w, recipe.occlusion)
        region[mask] = occluder_pixels(rng, assets, h, w)[mask]
        occluded = float(mask.mean())
    if recipe.blur:
        low, high, floor = ((0.04, 0.08, 0.6), (0.12, 0.2, 1.2))[recipe.blur - 1]
        sigma = max(floor, rng.uniform(low, high) * h)
        blur_region(canvas, (x, y, w, h), sigma, min(math.ceil(2 * sigma), Occupancy.pad(*recipe.slot[2:])))
    return (x, y, w, h), occluded


def face_labels(recipe, box, occluded, scene_gain):
    """The WIDER attributes of a rendered face, from what was done to it."""
    h = box[3]
    blur = max(recipe.blur, int(h / CROP > UPSCALE_BLUR))
    total_gain = recipe.gain * scene_gain
    extreme_light = recipe.light == 'side' or not DARK_GAIN <= total_gain <= BRIGHT_GAIN
    occlusion = 0 if occluded == 0 else (1 if occluded <= HEAVY_OCCLUSION else 2)
    invalid = occluded > INVALID_OCCLUSION or (h < INVALID_TINY and blur == 2)
    return {'blur': blur, 'expression': int(recipe.expression), 'illumination': int(extreme_light),
            'invalid': int(invalid), 'occlusion': occlusion, 'pose': int(recipe.angle != 0)}


@dataclass
class ImagePlan:
    """Everything that decides where faces are: drawn by ``render_image``."""
    kind: str
    height: int
    width: int
    recipes: list

    def boxes(self):
        return np.array([face_footprint(r)[1] for r in self.recipes], np.int32).reshape(-1, 4)


def plan_image(rng, kind, height, width):
    return ImagePlan(kind, height, width, sample_recipes(rng, plan_slots(rng, kind, height, width)))


def render_image(rng, assets, plan):
    """One image: (BGR uint8 [H, W, 3], boxes int32 [N, 4] xywh, list of label dicts)."""
    canvas = background(rng, assets, plan.height, plan.width)
    if rng.random() < 0.6:
        draw_clutter(rng, canvas)
    if rng.random() < 0.8:
        for recipe in sorted(plan.recipes, key=lambda r: r.slot[1]):
            draw_body(rng, canvas, recipe.slot, recipe.tone)
    rendered = [render_face(rng, canvas, assets, recipe) for recipe in plan.recipes]
    scene_gain = rng.uniform(0.3, 0.45) if rng.random() < 0.06 else rng.uniform(0.8, 1.15)
    canvas *= np.float32(scene_gain)
    canvas += np.float32(rng.uniform(0, 4)) * rng.standard_normal(canvas.shape[:2] + (1,), dtype=np.float32)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    boxes = np.array([box for box, _ in rendered], np.int32).reshape(-1, 4)
    labels = [face_labels(recipe, box, occluded, scene_gain)
              for recipe, (box, occluded) in zip(plan.recipes, rendered)]
    return image, boxes, labels
