"""How well could ANY detector find the demo's flipped genders? An oracle's AUPRC.

    python benchmarks/oracle_gender.py [TRIALS]

Simulates the demo drawing's gender cues (audit/face_drawing.py `sample_look`: femininity latent
fem = +-0.9 + N(0, 0.5); beards on 45% of men, lipstick on 40% of women) for 260 people with 4%
flipped labels (bench-noise's train people and `NoiseRates.gender_flip`), and scores two oracles
that see those cues exactly: the latent alone, and the Bayes log-likelihood ratio of all three.
The gap between these and bench-noise's gender AUPRC is what the classifier fails to see.
(The "oracle ~0.93" in BENCHMARKS.md, "Label-noise detectors".)
"""
from __future__ import annotations

import sys

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score

FEM_MEAN, FEM_SD, P_BEARD, P_LIPSTICK = 0.9, 0.5, 0.45, 0.4  # as drawn in audit/face_drawing.py
PEOPLE, FLIP = 260, 0.04


def main() -> None:
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
