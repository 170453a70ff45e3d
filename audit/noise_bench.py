"""The scored label-noise benchmark (beside `audit/noise/`, not in it: that package holds pure
detectors, this module runs the whole pipeline - drawing, training, prediction - around them).

`run_bench` builds a demo dataset with known injected noise (audit.demo_data.make_demo), indexes
it, trains with person-grouped out-of-fold predictions (audit.training), predicts a run
(audit.prediction.predict_run), runs every detector and the merged queue, and scores each against
truth.csv per field (audit.noise.scoring): AUROC, AUPRC, precision and recall at k = the true
number of corrupted items.

Items: mask per train image; gender and age per train person. The baseline ("cleanlab") is
scored at the same item level as the rest: its image scores are aggregated per person by MAX
(the person is as suspicious as their most suspicious photo). "cleanlab_mean" (mean over the
person's photos) is reported beside it for gender and age.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field as dc_field
from pathlib import Path

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise.merge import SECOND_OPINION_DETECTORS
from audit.noise.scoring import RESULT_KEYS, score_all, score_detector, truth_items


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run. Sizes are the demo's; training options are audit.training's."""

    people: int = 300  # train people (7 photos each)
    eval_images: int = 300
    seed: int = 0  # demo data and training seed
    epochs: int | None = None  # per model; None: 12 from scratch, DEMO_FINETUNE_EPOCHS fine-tuning
    folds: int = 3
    eval_in_folds: bool = True  # eval images join the training folds (audit.training)
    arch: str | None = None  # None: audit.training's default (the demo model's)
    img_size: tuple[int, int] | None = None  # (H, W); None: training's default
    crop: float | None = None  # central fraction the model sees; None: the demo model's (DEMO_CROP)
    k: int = 10  # neighbours per image
    workers: int | None = None
    # Fine-tune from the domain-pretrained checkpoint (pretrained_file, default
    # audit.demo_recipe.DEMO_PRETRAINED when present) instead of training from scratch.
    pretrained: bool = True
    pretrained_file: str | None = None
    # Predict the pretrained checkpoint over the demo as a second-opinion run (it never saw these
    # labels): the second_opinion, ensemble and simifeat detectors join the queue.
    second_opinion: bool = True

    def __post_init__(self):
        if self.crop is not None:  # fail before drawing and training, not after
            from audit.model import validate_crop

            object.__setattr__(self, "crop", validate_crop(self.crop))


@dataclass
class BenchResult:
    results: pd.DataFrame  # columns RESULT_KEYS
    timings: dict = dc_field(default_factory=dict)  # seconds per stage
    counts: dict = dc_field(default_factory=dict)  # noisy items per field, demo sizes
    queue: pd.DataFrame | None = None
    model: dict = dc_field(default_factory=dict)  # the run's headline metrics (train = out-of-fold)

    def to_json_dict(self) -> dict:
        rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in self.results.to_dict("records")]
        return {"results": rows, "timings": self.timings, "counts": self.counts, "model": self.model}


def score_run(predictions: pd.DataFrame, embeddings, truth: pd.DataFrame, *, bins: L.AgeBins = L.DEFAULT_BINS,
              k: int = 10, second_opinion=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every detector + the merged queue on one run, scored against the truth.

    second_opinion: another run of the same images (.predictions, .embeddings, .name), as
    `find_suspects` takes it. With one, "merged_primary" (the queue of the primary run's own
    detectors alone) is scored beside "merged".
    Returns (results frame with columns RESULT_KEYS, the merged queue with calibrated flags).
    """
    from audit.noise.confident_learning import confident_learning
    from audit.noise.merge import calibrated_flags, merge_queue, run_detectors

    detectors = run_detectors(predictions, embeddings, bins=bins, k=k,
                              second_opinion=second_opinion)  # what find_suspects runs
    other = second_opinion.predictions if second_opinion is not None else None
    queue = calibrated_flags(merge_queue(detectors), predictions, other, bins=bins)
    items = truth_items(predictions, truth, bins=bins)
    # The baseline: cleanlab with a person as suspicious as their most suspicious photo.
    baseline = {**detectors, "cleanlab": confident_learning(predictions, person_agg="max", bins=bins)}
    results = score_all(baseline, queue, items)
    if second_opinion is not None:
        primary = {n: f for n, f in detectors.items() if n not in SECOND_OPINION_DETECTORS}
        primary_queue = merge_queue(primary)
        results = pd.concat([results, pd.DataFrame(
            [score_detector(primary_queue, items, f, "merged_primary") for f in L.FIELDS],
            columns=list(RESULT_KEYS))], ignore_index=True)
    mean_cl = confident_learning(predictions, fields=("gender", "age"), person_agg="mean", bins=bins)
    extra = [score_detector(mean_cl, items, f, "cleanlab_mean") for f in ("gender", "age")]
    results = pd.concat([results, pd.DataFrame(extra, columns=list(RESULT_KEYS))], ignore_index=True)
    order = {f: i for i, f in enumerate(L.FIELDS)}
    results = results.sort_values("field", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return results, queue


def bench_pretrained_file(cfg: BenchConfig) -> Path | None:
    """The pretrained checkpoint this benchmark uses (fine-tuning, second opinion), or None."""
    from audit.demo_recipe import default_pretrained_file

    if cfg.pretrained_file:
        return Path(cfg.pretrained_file)
    return default_pretrained_file()


def _train(index, out_dir: Path, cfg: BenchConfig, progress=None) -> Path:
    """Train with out-of-fold predictions; returns the checkpoint path (oof.parquet beside it)."""
    import dataclasses

    from audit import training
    from audit.demo_recipe import demo_train_config

    start = bench_pretrained_file(cfg) if cfg.pretrained else None
    base = demo_train_config(pretrained_file=start, bins=index.bins)
    changes = {"folds": cfg.folds, "seed": cfg.seed, "eval_in_folds": cfg.eval_in_folds,
               "epochs": cfg.epochs or (base.epochs if start is not None else 12)}
    if cfg.crop is not None:
        changes["crop"] = cfg.crop
    if cfg.arch:
        changes["arch"] = cfg.arch
    if cfg.img_size:
        changes["img_size"] = tuple(cfg.img_size)
    if cfg.workers is not None:
        changes["workers"] = cfg.workers
    config = dataclasses.replace(base, **changes)
    return Path(training.train_model(index, config, out_dir, progress=progress).checkpoint)


def run_bench(cfg: BenchConfig = BenchConfig(), *, work_dir: str | Path | None = None, log=print) -> BenchResult:
    """Build, train, predict, detect, score. `work_dir`: keep everything there (default: a temp
    dir removed afterwards). `log(message)` reports the stages."""
    from audit.dataset_index import index_dataset
    from audit.demo_data import make_demo, read_truth
    from audit.prediction import predict_run
    from audit.runs import Run

    timings = {}
    with tempfile.TemporaryDirectory(prefix="bench-noise-") as tmp:
        base = Path(work_dir) if work_dir is not None else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        log(f"drawing the demo: {cfg.people} people x 7 + {cfg.eval_images} eval images (seed {cfg.seed})")
        info = make_demo(base / "data", people=cfg.people, eval_images=cfg.eval_images, seed=cfg.seed,
                         workers=cfg.workers, force=True)
        timings["demo_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = index_dataset(info.root)
        timings["index_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        log(f"training {cfg.folds} folds + final, {cfg.epochs} epochs"
            + (", eval images in the folds" if cfg.eval_in_folds else ", train people only"))
        checkpoint = _train(index, base / "weights", cfg)
        timings["train_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        log("predicting")
        run = Run.open(predict_run(index, checkpoint, base / "run", workers=cfg.workers))
        other = None
        start = bench_pretrained_file(cfg)
        if cfg.second_opinion and start is not None:
            log(f"predicting the second opinion: {start}")
            other = Run.open(predict_run(index, start, base / "run_pretrained", workers=cfg.workers))
        timings["predict_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        truth = read_truth(info.root)
        results, queue = score_run(run.predictions, run.embeddings, truth, bins=run.bins, k=cfg.k,
                                   second_opinion=other)
        timings["detect_and_score_s"] = time.perf_counter() - t0
        timings = {k: round(v, 1) for k, v in timings.items()}
        timings["total_s"] = round(sum(timings.values()), 1)
        counts = {
            "train_people": int(info.train_people), "eval_images": int(info.eval_images),
            **{f"noisy_{f}": int(results.loc[results["field"] == f, "n_noisy"].iloc[0])
               for f in L.FIELDS if (results["field"] == f).any()},
            **flag_counts(queue, truth, bins=run.bins),
        }
        return BenchResult(results=results, timings=timings, counts=counts, queue=queue,
                           model=model_summary(run.predictions))


def model_summary(predictions: pd.DataFrame) -> dict:
    """Headline metrics of the run the detectors judged (given labels, so noise counts against it):
    {"train (out-of-fold)": {"macro_f1", "acc_mask", ...}, "eval": {...}}, rounded."""
    from audit.metrics import headline_metrics

    table = headline_metrics(predictions)
    return {name: {k: (round(float(v), 4) if k != "n" else int(v)) for k, v in row.items()}
            for name, row in table.iterrows()}


def score_existing(run_dir: str | Path, truth_path: str | Path, *, k: int = 10,
                   second_opinion_dir: str | Path | None = None) -> BenchResult:
    """Score an existing run of a demo dataset against that demo's truth.csv (no building,
    training or predicting): the run's train rows must all appear in the truth file.
    second_opinion_dir: another run of the same demo to use as the second opinion."""
    from audit.demo_data import read_truth
    from audit.runs import Run

    t0 = time.perf_counter()
    run = Run.open(run_dir)
    other = Run.open(second_opinion_dir) if second_opinion_dir is not None else None
    truth = read_truth(truth_path)
    results, queue = score_run(run.predictions, run.embeddings, truth, bins=run.bins, k=k, second_opinion=other)
    counts = {f"noisy_{f}": int(results.loc[results["field"] == f, "n_noisy"].iloc[0])
              for f in L.FIELDS if (results["field"] == f).any()}
    counts.update(flag_counts(queue, truth, bins=run.bins))
    return BenchResult(results=results, timings={"detect_and_score_s": round(time.perf_counter() - t0, 1)},
                       counts=counts, queue=queue, model=model_summary(run.predictions))


def flag_counts(queue: pd.DataFrame, truth: pd.DataFrame, *, bins: L.AgeBins = L.DEFAULT_BINS) -> dict:
    """How many queue items are flagged vs how many labels are truly wrong, over every item the
    queue holds (train people, train mask images, eval images): {"flagged": n, "true_errors": n,
    "flagged_<field>": n, "true_errors_<field>": n}."""
    t = truth.set_index("path")
    out = {"flagged": 0, "true_errors": 0}
    for field in L.FIELDS:
        q = queue[queue["field"] == field]
        flags = t[f"{field}_corrupted"].astype(bool)
        # an item is wrong when any of its images is: person items by person key, image items by path
        by_person = flags.groupby(t["person"]).any()
        wrong = np.where(q["item_kind"].to_numpy() == "person",
                         by_person.reindex(q["item"].to_numpy()).fillna(False).to_numpy(dtype=bool),
                         flags.reindex(q["item"].to_numpy()).fillna(False).to_numpy(dtype=bool))
        out[f"flagged_{field}"] = int(q["flagged"].sum())
        out[f"true_errors_{field}"] = int(wrong.sum())
        out["flagged"] += out[f"flagged_{field}"]
        out["true_errors"] += out[f"true_errors_{field}"]
    return out


def format_results(results: pd.DataFrame) -> str:
    """A plain-text table of the results, one line per (field, detector)."""
    head = f"{'field':<7}{'detector':<15}{'AUROC':>7}{'AUPRC':>7}{'P@k':>7}{'R@k':>7}{'items':>7}{'noisy':>7}"
    lines = [head]
    for r in results.itertuples(index=False):
        lines.append(f"{r.field:<7}{r.detector:<15}{r.auroc:>7.3f}{r.auprc:>7.3f}{r.precision_at_k:>7.3f}"
                     f"{r.recall_at_k:>7.3f}{r.n_items:>7}{r.n_noisy:>7}")
    return "\n".join(lines)
