"""How well could ANY detector find the demo's moved ages? The ceiling the drawn age cues allow.

    python benchmarks/oracle_age.py [TRIALS] [APPARENT_SD]

Simulates bench-noise's train people (300 people, ages from audit.demo_data.TRAIN_AGE_BRACKETS,
`NoiseRates.age_shift` = 8% moved across the nearest default-bin boundary by `_shifted_age`) and
the drawing's age cue (audit/face_drawing.py `sample_look`: every age cue - lines, sag, grey hair,
skin - is drawn from the APPARENT age = true age + N(0, 3.5 years)). The oracle sees the apparent
age exactly (more than any cue-reader can) and knows the noise process, so its posterior
P(label moved | given age, apparent age) is the Bayes-optimal score: its AUPRC is an upper bound
for every age detector on the demo. Also scored: the same oracle restricted to moves of >= 4 years
(label vs true age), and the plain residual |apparent - given| across the boundary.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.demo_data import TRAIN_AGE_BRACKETS  # noqa: E402
from audit.labels import DEFAULT_BINS  # noqa: E402

APPARENT_SD = 3.5  # face_drawing.sample_look: app = age + N(0, 3.5)
PEOPLE, SHIFT = 300, 0.08


def sample_ages(rng, n):
    p = np.array([b[2] for b in TRAIN_AGE_BRACKETS])
    which = rng.choice(len(TRAIN_AGE_BRACKETS), size=n, p=p / p.sum())
    return np.array([rng.integers(TRAIN_AGE_BRACKETS[w][0], TRAIN_AGE_BRACKETS[w][1] + 1) for w in which])


def shifted_candidates(given: int) -> np.ndarray:
    """The true ages `_shifted_age` can give (uniform): across the nearest boundary by 0..4 years."""
    lo, hi = DEFAULT_BINS.edges
    boundary = lo if abs(given - lo) <= abs(given - hi) else hi
    d = np.arange(5)
    return boundary + d if given < boundary else boundary - 1 - d


def main() -> None:
    global APPARENT_SD
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    if len(sys.argv) > 2:  # what-if: a drawing whose age cues follow the true age more closely
        APPARENT_SD = float(sys.argv[2])
    rng = np.random.default_rng(0)
    res = {"oracle (apparent age, Bayes posterior)": [], "residual |apparent - given| toward the boundary": []}
    moved_by = []
    for _ in range(trials):
        given = sample_ages(rng, PEOPLE)
        true = given.copy()
        noisy = np.zeros(PEOPLE, bool)
        noisy[rng.choice(PEOPLE, round(SHIFT * PEOPLE), replace=False)] = True
        for i in np.flatnonzero(noisy):
            true[i] = rng.choice(shifted_candidates(int(given[i])))
        moved_by.extend(np.abs(true[noisy] - given[noisy]))
        app = true + rng.normal(0, APPARENT_SD, PEOPLE)
        clean_lik = norm.pdf(app, given, APPARENT_SD)
        moved_lik = np.array([norm.pdf(a, shifted_candidates(int(g)), APPARENT_SD).mean() for a, g in zip(app, given)])
        post = SHIFT * moved_lik / (SHIFT * moved_lik + (1 - SHIFT) * clean_lik)
        res["oracle (apparent age, Bayes posterior)"].append(average_precision_score(noisy, post))
        res["residual |apparent - given| toward the boundary"].append(
            average_precision_score(noisy, np.abs(app - given)))
    for name, v in res.items():
        print(f"{name}: mean AUPRC {np.mean(v):.3f} (sd {np.std(v):.3f}) over {trials} simulated demos")
    print(f"label moved by: median {np.median(moved_by):.0f} years, quartiles {np.percentile(moved_by, 25):.0f}"
          f"-{np.percentile(moved_by, 75):.0f}, <=4 years {np.mean(np.array(moved_by) <= 4):.0%}")


if __name__ == "__main__":
    main()
