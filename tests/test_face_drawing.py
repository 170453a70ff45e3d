"""Drawing one demo face: size, determinism, where the mask goes, and the graded cues."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from audit.face_drawing import (
    EVAL_ONLY_MASK_STYLES, HEIGHT, MASK_STYLES, MOUTH, NOSE_TIP, RACES, TRAIN_MASK_STYLES, WIDTH,
    draw_face, face_point, sample_look, sample_shot,
)


def _look(seed=0, **kw):
    args = dict(gender=0, age=30, race="White", source="GAN")
    args.update(kw)
    return sample_look(np.random.default_rng(seed), **args)


def _patch(img, xy, r=4):
    x, y = int(round(xy[0])), int(round(xy[1]))
    return np.asarray(img, dtype=np.int16)[y - r:y + r + 1, x - r:x + r + 1]


@pytest.mark.parametrize("style", MASK_STYLES)
def test_every_style_and_state_draws_a_384x512_rgb_image(style):
    look = _look(1, source="photo")
    for mask in (0, 1, 2):
        shot = replace(sample_shot(np.random.default_rng(2), mask=mask, split="eval"), style=style)
        img = draw_face(look, shot)
        assert img.size == (WIDTH, HEIGHT) == (384, 512) and img.mode == "RGB"


def test_same_inputs_same_pixels():
    look, shot = _look(3), sample_shot(np.random.default_rng(4), mask=0)
    assert draw_face(look, shot).tobytes() == draw_face(look, shot).tobytes()
    other = sample_shot(np.random.default_rng(5), mask=0)
    assert other != shot and draw_face(look, other).tobytes() != draw_face(look, shot).tobytes()


def test_mask_states_cover_the_right_parts_of_the_face():
    """wear hides nose and mouth; 'below the nose' shows the nose only; 'on the chin' shows both."""
    for seed in range(6):
        look = replace(_look(seed, gender=seed % 2, race=RACES[seed]), rot=5.0 * (seed - 3))
        base = sample_shot(np.random.default_rng(seed), mask=0)
        # a mask colour far from any skin so "covered" is unambiguous
        base = replace(base, style="surgical_blue", colour=(40, 120, 230), drop=0.0)
        none = draw_face(look, replace(base, mask=2))
        wear = draw_face(look, base)
        nose_mode = draw_face(look, replace(base, mask=1, incorrect_mode="nose"))
        chin_mode = draw_face(look, replace(base, mask=1, incorrect_mode="chin"))
        nose, mouth = face_point(look, *NOSE_TIP), face_point(look, *MOUTH)

        def diff(a, b, at):
            return np.abs(_patch(a, at) - _patch(b, at)).mean()

        assert diff(wear, none, nose) > 20 and diff(wear, none, mouth) > 20
        assert diff(nose_mode, none, nose) < 3 and diff(nose_mode, none, mouth) > 20
        assert diff(chin_mode, none, nose) < 3 and diff(chin_mode, none, mouth) < 3


def test_train_shots_use_train_styles_and_eval_adds_more():
    rng = np.random.default_rng(0)
    train = {sample_shot(rng, mask=0, split="train").style for _ in range(400)}
    evals = [sample_shot(rng, mask=0, split="eval").style for _ in range(400)]
    assert train == set(TRAIN_MASK_STYLES)
    assert set(evals) == set(MASK_STYLES)
    assert np.mean([s in EVAL_ONLY_MASK_STYLES for s in evals]) > 0.4
    modes = [sample_shot(rng, mask=1).incorrect_mode for _ in range(200)]
    assert {"nose", "chin"} == set(modes)


def test_cues_are_graded_and_overlapping():
    rng = np.random.default_rng(1)

    def looks(gender, age, n=150):
        return [sample_look(rng, gender=gender, age=age, race=RACES[i % 6], source="GAN") for i in range(n)]

    young, mid, old = looks(1, 20), looks(1, 32), looks(1, 52)
    # age cues increase with age on average but overlap between neighbouring bins
    w = [np.array([lk.wrinkles for lk in group]) for group in (young, mid, old)]
    assert w[0].mean() < w[1].mean() < w[2].mean()
    assert (w[1] < np.percentile(w[0], 95)).mean() > 0.05
    assert np.mean([lk.grey for lk in old]) > 0.3 > np.mean([lk.grey for lk in mid])
    # hair length follows gender, with exceptions both ways; only men have beards
    men, women = looks(0, 30), looks(1, 30)
    long_styles = {"long", "bob", "bun"}
    p_long_w = np.mean([lk.hair_style in long_styles for lk in women])
    p_long_m = np.mean([lk.hair_style in long_styles for lk in men])
    assert 0.7 < p_long_w < 0.97 and 0.03 < p_long_m < 0.3
    assert not any(lk.beard != "none" for lk in women) and any(lk.beard != "none" for lk in men)
    # skin tone by race overlaps: some Latino/Hispanic faces are lighter than some White faces
    white = [sum(lk.skin) for lk in looks(0, 30) if lk.race == "White"]
    latino = [sum(lk.skin) for lk in looks(0, 30) if lk.race == "LatinoHispanic"]
    assert max(latino) > min(white)
