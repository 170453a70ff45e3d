"""How well could ANY detector find the demo's flipped genders? An oracle's AUPRC.

    python benchmarks/oracle_gender.py [TRIALS]
    python benchmarks/oracle_gender.py --per-photo [PEOPLE]

Simulates the demo drawing's gender cues (audit/face_drawing.py `sample_look`: femininity latent
fem = +-FEM_MEAN + N(0, FEM_SD); beards on 45% of men, lipstick on 40% of women) for 260 people with 4%
flipped labels (bench-noise's train people and `NoiseRates.gender_flip`), and scores two oracles
that see those cues exactly: the latent alone, and the Bayes log-likelihood ratio of all three.
The gap between these and bench-noise's gender AUPRC is what the classifier fails to see.
(The "oracle ~0.93" in BENCHMARKS.md, "Label-noise detectors".)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.face_drawing import FEM_MEAN, FEM_SD  # noqa: E402

P_BEARD, P_LIPSTICK = 0.45, 0.4  # as drawn in audit/face_drawing.py
P_EARRINGS = (0.04, 0.35)  # men, women: drawn on the ears, visible with a mask on
PEOPLE, FLIP = 260, 0.04


def per_photo_ceiling(people: int = 200_000) -> dict:
    """The best accuracy any reader of ONE photo can reach against the true gender (Bayes rule on the
    cues it shows, read exactly): a masked photo shows the femininity latent (blush, lashes, brows,
    neck) and earrings; an unmasked one beards and lipstick besides. The ceiling for the demo
    model's per-photo gender target."""
    rng = np.random.default_rng(1)
    female = rng.integers(0, 2, people)
    fem = np.where(female == 1, FEM_MEAN, -FEM_MEAN) + rng.normal(0, FEM_SD, people)
    earrings = rng.random(people) < np.where(female == 1, P_EARRINGS[1], P_EARRINGS[0])
    beard = (female == 0) & (rng.random(people) < P_BEARD)
    lipstick = (female == 1) & (rng.random(people) < P_LIPSTICK)
    masked = norm.logpdf(fem, FEM_MEAN, FEM_SD) - norm.logpdf(fem, -FEM_MEAN, FEM_SD) + np.where(
        earrings, np.log(P_EARRINGS[1] / P_EARRINGS[0]), np.log((1 - P_EARRINGS[1]) / (1 - P_EARRINGS[0])))
    unmasked = masked + np.where(beard, -50, np.log(1 / (1 - P_BEARD))) \
        + np.where(lipstick, 50, np.log(1 - P_LIPSTICK))
    return {"masked photo": float(np.mean((masked > 0) == (female == 1))),
            "unmasked photo": float(np.mean((unmasked > 0) == (female == 1)))}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--per-photo":
        people = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
        for name, acc in per_photo_ceiling(people).items():
            print(f"{name}: best possible gender accuracy {acc:.3f} ({people} simulated people)")
        return
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = np.random.default_rng(0)
    scores = {"latent only": [], "latent + beard + lipstick": []}
    for _ in range(trials):
        female = rng.integers(0, 2, PEOPLE)
        fem = np.where(female == 1, FEM_MEAN, -FEM_MEAN) + rng.normal(0, FEM_SD, PEOPLE)
        beard = (female == 0) & (rng.random(PEOPLE) < P_BEARD)
        lipstick = (female == 1) & (rng.random(PEOPLE) < P_LIPSTICK)
        noisy = np.zeros(PEOPLE, bool)
        noisy[rng.choice(PEOPLE, max(1, round(FLIP * PEOPLE)), replace=False)] = True
        given = np.where(noisy, 1 - female, female)
        # log-likelihood of the cues under "female" and under "male" (-50: impossible)
        log_f = norm.logpdf(fem, FEM_MEAN, FEM_SD) + np.where(beard, -50, 0) \
            + np.where(lipstick, np.log(P_LIPSTICK), np.log(1 - P_LIPSTICK))
        log_m = norm.logpdf(fem, -FEM_MEAN, FEM_SD) + np.where(beard, np.log(P_BEARD), np.log(1 - P_BEARD)) \
            + np.where(lipstick, -50, 0)
        scores["latent only"].append(average_precision_score(noisy, np.where(given == 1, -fem, fem)))
        scores["latent + beard + lipstick"].append(
            average_precision_score(noisy, np.where(given == 1, log_m - log_f, log_f - log_m)))
    for name, values in scores.items():
        print(f"{name}: mean AUPRC {np.mean(values):.3f} over {trials} simulated demos")


if __name__ == "__main__":
    main()
