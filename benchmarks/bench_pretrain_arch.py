"""Does a bigger network or input read the drawn gender better? Equal-data comparison.

    python benchmarks/bench_pretrain_arch.py --work-dir DIR [--identities 8000] [--epochs 5]
        [--size 96x72] [--archs test_resnet deep_test_resnet ...]
    python benchmarks/bench_pretrain_arch.py --work-dir DIR --read weights/pretrained/model.pt
    python benchmarks/bench_pretrain_arch.py --work-dir DIR --continue-from weights/pretrained/model.pt
        --first-identity 32800 --identities 32000 --epochs 4 --lr 0.001

Each architecture is trained from scratch by `audit.pretraining.fit_arrays` (the pretraining's own
loop and recipe) on the first N pretraining identities x 2 photos, drawn at SIZE directly by
`draw_identities`, and scored on the committed pretraining's held-out identities 32,000-32,799
against their TRUE labels. Besides timm names, three variants of timm's `test_resnet` are
registered here (same blocks and stem, one change each): `deep_test_resnet` (two blocks a stage),
`wide_test_resnet` (stem 24, channels 48/64/64/128), `os16_test_resnet` (output stride 16: the last
stage keeps twice the resolution). Drawn identities are cached in DIR by the pretraining's own
chunk cache (`audit.pretraining.draw_dataset`, per drawing version). Prints one JSON row per
architecture and appends it to DIR/results.jsonl. --continue-from CHECKPOINT trains that
checkpoint further instead (its architecture, input size and crop) on identities
FIRST..FIRST+N-1: does more data still lift a converged reader?

--read CHECKPOINT scores a trained checkpoint on the same held-out photos instead: gender accuracy
plain and with a horizontal-flip average, by drawn race and source, and beside the sign of the
drawing's femininity latent (an oracle of the one cue a masked photo shows best). BENCHMARKS.md, "Domain pretraining: what limits
gender".
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HELD_OUT = (32000, 32800)  # the committed pretraining's held-out identities (weights/pretrained card)


def register_variants() -> None:
    import timm
    from timm.models import register_model
    from timm.models.resnet import BasicBlock, Bottleneck, _create_resnet

    base = dict(block=[BasicBlock, BasicBlock, Bottleneck, BasicBlock], layers=(1, 1, 1, 1), stem_width=16,
                stem_type="deep", avg_down=True, channels=(32, 48, 48, 96))  # timm's test_resnet
    variants = {"deep_test_resnet": {"layers": (2, 2, 2, 2)},
                "wide_test_resnet": {"stem_width": 24, "channels": (48, 64, 64, 128)},
                "os16_test_resnet": {"output_stride": 16}}
    for name, change in variants.items():
        if timm.is_model(name):
            continue

        def make(pretrained=False, _change=change, **kwargs):
            return _create_resnet("test_resnet", pretrained, **dict(base, **_change, **kwargs))
        make.__name__ = name
        register_model(make)


def drawn(work_dir: Path, start: int, stop: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Identities start..stop-1 x 2 photos at SIZE, through the pretraining's own chunk cache."""
    from audit.pretraining import PretrainConfig, draw_dataset

    return draw_dataset(work_dir, PretrainConfig(img_size=size), start=start, stop=stop,
                        interpolation="bilinear", workers=2)


def read_checkpoint(path: str, x: np.ndarray, y: np.ndarray) -> dict:
    import torch

    from audit.model import load_checkpoint
    from audit.pretraining import PRETRAIN_SEED, _to_input, identity_look

    model, card = load_checkpoint(path, "cpu")
    model.float().eval()

    def gender_probs(pixels):
        inputs, mean, std = _to_input(pixels, card.mean, card.std)
        with torch.inference_mode():
            return model((inputs - mean) / std)["gender"].float().softmax(1).numpy()

    plain = gender_probs(x)
    flipped = gender_probs(np.ascontiguousarray(x[:, :, ::-1]))
    truth, masked = y[:, 1], y[:, 0] == 0
    right = plain.argmax(1) == truth
    looks = {}
    for i in np.unique(y[:, 4]):  # each identity's look, as draw_identities drew it
        who, look, _ = identity_look(PRETRAIN_SEED, int(i))
        looks[int(i)] = (who["race"], who["source"], look.fem)
    race = np.array([looks[int(i)][0] for i in y[:, 4]])
    source = np.array([looks[int(i)][1] for i in y[:, 4]])
    latent_right = (np.array([looks[int(i)][2] for i in y[:, 4]]) > 0) == (truth == 1)

    def acc(ok, where=None):
        where = np.ones(len(ok), bool) if where is None else where
        return {"acc": round(float(ok[where].mean()), 4), "n": int(where.sum())}

    return {"checkpoint": path, "photos": len(y),
            "gender": acc(right), "gender_masked": acc(right, masked),
            "gender_flip_averaged": acc((plain + flipped).argmax(1) == truth),
            "gender_flip_averaged_masked": acc((plain + flipped).argmax(1) == truth, masked),
            "by_race": {r: acc(right, race == r) for r in sorted(set(race))},
            "by_source": {s: acc(right, source == s) for s in sorted(set(source))},
            "latent_sign_oracle": acc(latent_right),
            "errors_where_the_latent_is_right": int((~right & latent_right).sum()),
            "errors_where_the_latent_is_wrong": int((~right & ~latent_right).sum())}


def main() -> None:
    import torch

    from audit.model import create_model, read_card, save_checkpoint
    from audit.pretraining import PretrainConfig, fit_arrays

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--identities", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--size", default="96x72")
    ap.add_argument("--archs", nargs="+", default=["test_resnet"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--read", metavar="CHECKPOINT", help="score this checkpoint on the held-out photos instead")
    ap.add_argument("--continue-from", metavar="CHECKPOINT", help="train this checkpoint further")
    ap.add_argument("--first-identity", type=int, default=0)
    ap.add_argument("--lr", type=float, default=PretrainConfig.lr)
    args = ap.parse_args()
    register_variants()
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    x_va, y_va = drawn(work_dir, *HELD_OUT, size)
    if args.read:
        print(json.dumps(read_checkpoint(args.read, x_va, y_va), indent=1))
        return
    first = args.first_identity
    if not (first + args.identities <= HELD_OUT[0] or first >= HELD_OUT[1]):
        ap.error(f"identities {first}..{first + args.identities - 1} overlap the held-out {HELD_OUT[0]}..{HELD_OUT[1] - 1}")
    x_tr, y_tr = drawn(work_dir, first, first + args.identities, size)
    if args.continue_from:
        args.archs = [read_card(args.continue_from).arch]
    for arch in args.archs:
        config = PretrainConfig(identities=args.identities, arch=arch, img_size=size, epochs=args.epochs, lr=args.lr)
        torch.manual_seed(0)
        model = create_model(arch, pretrained=False, pretrained_file=args.continue_from, img_size=size,
                             crop=config.crop, drop_rate=config.drop_rate)
        t0 = time.perf_counter()
        history = fit_arrays(model, config, x_tr, y_tr, x_va, y_va, log=lambda _: None)
        last = history[-1]["val"]
        row = {"arch": arch, "continued_from": args.continue_from, "first_identity": first,
               "lr": args.lr, "parameters": sum(p.numel() for p in model.parameters()), "size": args.size,
               "identities": args.identities, "epochs": args.epochs,
               "train_s": round(time.perf_counter() - t0), **{k: last[k] for k in (
                   "mask_acc", "gender_acc", "gender_acc_masked", "age_acc", "age_mae")},
               "gender_by_epoch": [h["val"]["gender_acc"] for h in history]}
        print(json.dumps(row), flush=True)
        if args.continue_from:
            save_checkpoint(model, model.card, work_dir / "continued.pt")
        with open(work_dir / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
