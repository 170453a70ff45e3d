"""The age ceiling in BENCHMARKS.md rests on benchmarks/oracle_age.py modelling the drawing's age
cues as face_drawing.sample_look draws them: if the drawing changes and the oracle does not, its
posterior over the apparent age stops being calibrated, and this fails."""
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import oracle_age  # noqa: E402

from audit import face_drawing  # noqa: E402


LO, HI = 16, 70  # true ages drawn uniformly from LO..HI-1


@pytest.fixture(scope="module")
def drawn():
    rng = np.random.default_rng(7)
    looks, male = [], []
    for _ in range(800):
        gender = int(rng.integers(2))
        looks.append(face_drawing.sample_look(rng, gender=gender, age=float(rng.integers(LO, HI)),
                                              race="White", source="GAN"))
        male.append(gender == 0)
    return looks, np.array(male)


def _calibration(looks, male) -> tuple[float, float]:
    """Where each person's apparent age falls in their own posterior (with the prior the faces were
    drawn from): (share inside the central 90%, mean of those quantiles); (0.9, 0.5) when calibrated."""
    grid = oracle_age.APP_GRID
    prior = np.log(norm.cdf((grid - LO + 0.5) / oracle_age.APPARENT_SD)
                   - norm.cdf((grid - HI + 0.5) / oracle_age.APPARENT_SD) + 1e-300)
    cues = oracle_age.look_cues(looks, male)
    loglik = oracle_age.cue_log_likelihood_apparent(cues, np.array([look.fem for look in looks])) + prior
    post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    app = np.array([look.apparent_age for look in looks])
    quantile = np.array([p[grid <= a].sum() for p, a in zip(post, app)])
    return float(((quantile > 0.05) & (quantile < 0.95)).mean()), float(quantile.mean())


def test_cue_oracle_posterior_is_calibrated_on_drawn_faces(drawn):
    inside, mean = _calibration(*drawn)
    assert 0.86 <= inside <= 0.94  # measured 0.885-0.905 on three draws of 800
    assert abs(mean - 0.5) < 0.03


@pytest.mark.parametrize("wrong", [{"wrinkles": lambda app: (app - 23) / 30},  # lines 5 years later
                                   {"sag": lambda app: (app - 32) / 20}])  # sag growing faster
def test_a_cue_model_that_differs_from_the_drawing_is_caught(drawn, monkeypatch, wrong):
    real = oracle_age._cue_means
    monkeypatch.setattr(oracle_age, "_cue_means", lambda app, fem, sag: {
        **real(app, fem, sag), **{name: f(app) for name, f in wrong.items()}})
    inside, mean = _calibration(*drawn)
    assert not (0.86 <= inside <= 0.94 and abs(mean - 0.5) < 0.03)  # measured ~0.72 inside
