"""How well could ANY detector find the demo's moved ages? The ceiling the drawn age cues allow.

    python benchmarks/oracle_age.py [TRIALS] [APPARENT_SD]
    python benchmarks/oracle_age.py --bench-seeds 0 1 2 3 4

The second form scores both oracles on the very train people `python -m audit bench-noise --seed S`
draws (their drawn Look values, no images), so a detector's AUPRC on those seeds can be set beside
the ceiling of the same people. Per seed an oracle is optimal only in expectation, so a detector may
beat it on one seed by luck.

Simulates bench-noise's train people (300 people, ages from audit.demo_data.TRAIN_AGE_BRACKETS,
`NoiseRates.age_shift` = 8% moved across the nearest default-bin boundary by `_shifted_age`) and
the drawing's age cue (audit/face_drawing.py `sample_look`: every age cue - lines, sag, grey hair,
skin - is drawn from the APPARENT age = true age + N(0, 3.5 years)). The oracle sees the apparent
age exactly (more than any cue-reader can) and knows the noise process, so its posterior
P(label moved | given age, apparent age) is the Bayes-optimal score: its AUPRC is an upper bound
for every age detector on the demo. Also scored: the same oracle restricted to moves of >= 4 years
(label vs true age), and the plain residual |apparent - given| across the boundary.

The apparent age itself is never drawn: `sample_look` renders it through cues with their own noise
(wrinkles, sag and grey hair each `(app - a) / b + N(0, s)`, clipped to 0..1, grey missing on 10% of
people; the "youth" of faces under 28 shapes eye size, face height and width and the jaw, each with
its own noise; some men whose apparent age is over 38 get a receding hairline). So the second
oracle, "drawn cues", sees those rendered values exactly (and the gender and femininity latent the
geometry and hair also follow) and computes the Bayes posterior through them:
P(cues | true age a) = sum over apparent ages A of P(cues | A) N(A; a, APPARENT_SD). That is the
ceiling a reader of the pictures can reach - still generous: it sees sub-pixel values exactly.
(Glasses, age spots, fuller lips and skin tone follow the drawn sag or lines, so they add nothing
once those are seen.)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.demo_data import TRAIN_AGE_BRACKETS  # noqa: E402
from audit.face_drawing import FEM_MEAN, FEM_SD  # noqa: E402
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


APP_GRID = np.arange(-5.0, 110.0, 0.25)  # apparent ages the cue oracle integrates over
CLIPPED = {  # face_drawing.sample_look: value = clip(mean(app, ...) + N(0, sd), lo, hi)
    "wrinkles": (0.08, 0.0, 1.0), "sag": (0.08, 0.0, 1.0), "grey": (0.12, 0.0, 1.0),
    "face_w": (0.04, 0.85, 1.18), "face_h": (0.05, 1.2, 1.5), "jaw": (0.15, 0.0, 1.0), "eye_size": (0.08, 0.75, 1.35),
}


def _youth(app):
    return np.clip((28 - app) / 11, 0, 1)


def _cue_means(app, fem, sag):
    """Each cue's mean before noise and clipping, as sample_look draws it (sag: the drawn value)."""
    youth = _youth(app)
    return {"wrinkles": (app - 18) / 30, "sag": (app - 32) / 26, "grey": (app - 36) / 20,
            "face_w": 1.0 - 0.04 * fem + 0.04 * youth + 0.05 * sag, "face_h": 1.36 - 0.1 * youth,
            "jaw": 0.5 - 0.28 * fem - 0.2 * youth + 0.25 * sag, "eye_size": 0.97 + 0.2 * youth + 0.05 * fem}


def _p_receding(app, sag):
    """P(receding hairline) of a man without long hair: sample_look's rule."""
    return np.where(app > 38, 0.35 + 0.3 * sag, 0.0)


def draw_cues(rng, app, fem, female):
    """The rendered age cues of people with apparent ages `app`, femininity `fem` and gender `female`
    (each (N,)); "hair": 1 receding, 0 short or buzz (a man without long hair), -1 no age cue."""
    n = len(app)
    cues = {}
    for name in ("wrinkles", "sag"):
        sd, lo, hi = CLIPPED[name]
        cues[name] = np.clip(_cue_means(app, fem, 0.0)[name] + rng.normal(0, sd, n), lo, hi)
    sd, lo, hi = CLIPPED["grey"]
    cues["grey"] = np.where(rng.random(n) > 0.1, np.clip((app - 36) / 20 + rng.normal(0, sd, n), lo, hi), 0.0)
    means = _cue_means(app, fem, cues["sag"])
    for name in ("face_w", "face_h", "jaw", "eye_size"):
        sd, lo, hi = CLIPPED[name]
        cues[name] = np.clip(means[name] + rng.normal(0, sd, n), lo, hi)
    short = ~female & (rng.random(n) >= 1 / (1 + np.exp(-3.2 * fem)))  # not long hair (curly ignored)
    cues["hair"] = np.where(short, (rng.random(n) < _p_receding(app, cues["sag"])).astype(int), -1)
    return cues


def _clipped_logpdf(x, mean, sd, lo, hi):
    """log density (mass at the clip points) of clip(mean + N(0, sd), lo, hi) at x."""
    at_lo, at_hi = np.isclose(x, lo), np.isclose(x, hi)
    return np.where(at_lo, norm.logcdf((lo - mean) / sd), np.where(
        at_hi, norm.logsf((hi - mean) / sd), norm.logpdf(x, mean, sd)))


def cue_log_likelihood_apparent(cues, fem):
    """log P(cues of person i | apparent age = APP_GRID[j]): (N, len(APP_GRID))."""
    A = APP_GRID[None, :]
    f = fem[:, None]
    total = np.zeros((len(fem), len(APP_GRID)))
    means = _cue_means(A, f, cues["sag"][:, None])
    for name in ("wrinkles", "sag", "face_w", "face_h", "jaw", "eye_size"):
        sd, lo, hi = CLIPPED[name]
        total += _clipped_logpdf(cues[name][:, None], means[name], sd, lo, hi)
    sd, lo, hi = CLIPPED["grey"]
    grey = cues["grey"][:, None]
    drawn = np.log(0.9) + _clipped_logpdf(grey, means["grey"], sd, lo, hi)
    total += np.where(grey == 0, np.logaddexp(np.log(0.1), drawn), drawn)
    hair = cues["hair"][:, None]
    p = _p_receding(A, cues["sag"][:, None])
    with np.errstate(divide="ignore"):
        total += np.where(hair == 1, np.log(p), np.where(hair == 0, np.log1p(-p), 0.0))
    return total


def cue_log_likelihood(cues, fem, true_ages, apparent_sd):
    """log P(cues of person i | true age = true_ages[j]): (N, len(true_ages))."""
    total = cue_log_likelihood_apparent(cues, fem)
    prior = norm.logpdf(APP_GRID[None, :], np.asarray(true_ages, float)[:, None], apparent_sd)  # (T, A)
    return logsumexp(total[:, None, :] + prior[None, :, :], axis=2) + np.log(APP_GRID[1] - APP_GRID[0])


def look_cues(looks, male) -> dict:
    """The cue values cue_log_likelihood reads, from drawn `face_drawing.Look`s; `male` (N,) bool."""
    cues = {name: np.array([getattr(look, name) for look in looks]) for name in CLIPPED}
    style = np.array([look.hair_style for look in looks])
    cues["hair"] = np.where(male & (style == "receding"), 1, np.where(male & np.isin(style, ("short", "buzz")), 0, -1))
    return cues


def _log_odds_moved(loglik, given):
    """log P(moved) / P(right) from log P(cues | true age) over ages 0..100 (N, 101)."""
    clean = loglik[np.arange(len(given)), given]
    moved = np.array([logsumexp(loglik[i, shifted_candidates(int(g))]) - np.log(5) for i, g in enumerate(given)])
    return np.log(SHIFT) + moved - np.log(1 - SHIFT) - clean


def _apparent_posterior(app, given):
    clean_lik = norm.pdf(app, given, APPARENT_SD)
    moved_lik = np.array([norm.pdf(a, shifted_candidates(int(g)), APPARENT_SD).mean() for a, g in zip(app, given)])
    return SHIFT * moved_lik / (SHIFT * moved_lik + (1 - SHIFT) * clean_lik)


def bench_seeds(seeds: list[int]) -> None:
    """Both oracles on bench-noise's train people of each seed (BenchConfig's sizes and noise)."""
    from audit.demo_data import NoiseRates, _plan, person_look
    from audit.noise_bench import BenchConfig

    cfg = BenchConfig()
    rows = []
    for seed in seeds:
        plan = [p for p in _plan(people=cfg.people, eval_images=cfg.eval_images, seed=seed, like=None,
                                 like_limit=None, noise=NoiseRates()) if p.split == "train"]
        looks = [person_look(seed, p) for p in plan]
        given = np.array([p.given_age for p in plan])
        noisy = given != np.array([p.true_age for p in plan])
        cues = look_cues(looks, np.array([p.true_gender == 0 for p in plan]))
        fem = np.array([look.fem for look in looks])
        loglik = cue_log_likelihood(cues, fem, np.arange(101), APPARENT_SD)
        app = np.array([look.apparent_age for look in looks])
        rows.append((average_precision_score(noisy, _log_odds_moved(loglik, given)),
                     average_precision_score(noisy, _apparent_posterior(app, given))))
        print(f"seed {seed}: {noisy.sum()} moved of {len(plan)}; AUPRC drawn cues {rows[-1][0]:.3f}, "
              f"apparent age {rows[-1][1]:.3f}", flush=True)
    mean = np.mean(rows, axis=0)
    print(f"mean over seeds {seeds}: drawn cues {mean[0]:.3f}, apparent age {mean[1]:.3f}")


def main() -> None:
    global APPARENT_SD
    if len(sys.argv) > 1 and sys.argv[1] == "--bench-seeds":
        bench_seeds([int(s) for s in sys.argv[2:]])
        return
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    if len(sys.argv) > 2:  # what-if: a drawing whose age cues follow the true age more closely
        APPARENT_SD = float(sys.argv[2])
    rng = np.random.default_rng(0)
    cue_rng = np.random.default_rng(1)  # its own stream: the apparent-age oracle's draws stay as they were
    res = {"oracle (apparent age, Bayes posterior)": [], "residual |apparent - given| toward the boundary": [],
           "oracle (drawn cues, Bayes posterior)": []}
    ages = np.arange(0, 101)
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
        res["oracle (apparent age, Bayes posterior)"].append(average_precision_score(noisy, _apparent_posterior(app, given)))
        res["residual |apparent - given| toward the boundary"].append(
            average_precision_score(noisy, np.abs(app - given)))
        female = cue_rng.random(PEOPLE) < 0.5
        fem = np.where(female, FEM_MEAN, -FEM_MEAN) + cue_rng.normal(0, FEM_SD, PEOPLE)
        loglik = cue_log_likelihood(draw_cues(cue_rng, app, fem, female), fem, ages, APPARENT_SD)  # (N, 101)
        res["oracle (drawn cues, Bayes posterior)"].append(average_precision_score(noisy, _log_odds_moved(loglik, given)))
    for name, v in res.items():
        print(f"{name}: mean AUPRC {np.mean(v):.3f} (sd {np.std(v):.3f}) over {trials} simulated demos")
    print(f"label moved by: median {np.median(moved_by):.0f} years, quartiles {np.percentile(moved_by, 25):.0f}"
          f"-{np.percentile(moved_by, 75):.0f}, <=4 years {np.mean(np.array(moved_by) <= 4):.0%}")


if __name__ == "__main__":
    main()
