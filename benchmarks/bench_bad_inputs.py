"""Bad inputs at the CLI (issue #11): run `python -m audit ...` on each, in a temporary folder, and
print a markdown table: input -> message -> exit code -> nothing lost.

    python benchmarks/bench_bad_inputs.py [--junk 100000] [--keep DIR]

Every case runs the real CLI in a subprocess (cwd = the temporary folder, MASK_AUDIT_WORKSPACE
inside it). "Nothing lost" means: every file that existed before the command has the same bytes
after it, and the command left no new file or folder behind except the output it reports on
success (exit 0). The message is stderr's last line (the whole of it for a refusal; for a dataset
that indexes, the finding stdout lists); "stderr lines" is how many lines stderr held (1 = no
stack trace). Needs weights/demo/model.pt for the predict rows.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
TRAIN_SLOTS = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
PEOPLE = ("000001_male_Asian_22", "000002_female_White_31", "000003_female_Black_55")
EVAL = ("100001_male_White_45_mask", "100002_female_Asian_19_normal", "100003_male_Black_27_incorrect_mask")


def write_dataset(root: Path) -> Path:
    """A seed-layout dataset: 3 people x 7 photos + 3 eval photos, 48x64 noise JPEGs."""
    rng = np.random.default_rng(0)

    def save(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(path, quality=90)

    for person in PEOPLE:
        for slot in TRAIN_SLOTS:
            save(root / "images" / "train" / person / f"{slot}.jpg")
    for name in EVAL:
        save(root / "images" / "eval" / f"{name}.jpg")
    return root


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 (files), 'dir', 'link:<target>' or 'special' for everything under folder."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                out[rel] = "dir"
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


def cli(cwd: Path, *args: str, timeout: float = 300) -> tuple[int, str, float, str]:
    """(exit code, stderr, seconds, stdout) of `python -m audit ARGS` run in `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MASK_AUDIT_WORKSPACE": str(cwd / "workspace")}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "audit", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stderr, time.perf_counter() - t0, done.stdout


def good_csv(path: Path) -> Path:
    path.write_text("ImageID,ans\n" + "".join(f"{n}.jpg,{i}\n" for i, n in enumerate(EVAL)))
    return path


def cases(base: Path, junk: int):
    """(label, setup(tmp) -> argv, expect_refusal). setup builds the input inside tmp."""
    weights = REPO / "weights" / "demo"

    def data_and(tmp: Path) -> Path:
        return write_dataset(tmp / "data")

    def a_run(tmp: Path) -> Path:
        data = data_and(tmp)
        code, err, *_ = cli(tmp, "import-predictions", data, good_csv(tmp / "good.csv"), "--run", tmp / "run")
        assert code == 0, err
        return tmp / "run"

    def run_with_embeddings(tmp: Path) -> Path:
        sys.path.insert(0, str(REPO))
        from audit import runs as R

        run = a_run(tmp)
        pred = R.Run.open(run).predictions
        R.write_run(run, pred, np.random.default_rng(0).normal(size=(len(pred), 8)), dict(R.Run.open(run).meta))
        return run

    def damaged_checkpoint(tmp: Path, content: bytes) -> Path:
        (tmp / "w").mkdir()
        (tmp / "w" / "model.pt").write_bytes(content)
        shutil.copy(weights / "model.json", tmp / "w" / "model.json")  # the card beside it still reads
        return tmp / "w"

    def fifo(path: Path) -> Path:
        os.mkfifo(path)
        return path

    def junk_folder(tmp: Path) -> Path:
        folder = tmp / "junk"
        folder.mkdir()
        for i in range(junk):
            (folder / f"junk_{i:06d}.bin").touch()
        return folder

    def deeper(tmp: Path) -> Path:
        write_dataset(tmp / "stuff" / "old_copy")
        (tmp / "stuff" / "notes.txt").write_text("unrelated")
        return tmp / "stuff"

    def mine(tmp: Path) -> Path:
        (tmp / "mine").mkdir()
        (tmp / "mine" / "thesis.txt").write_text("important\n")
        return tmp / "mine"

    def workspace(tmp: Path) -> Path:
        (tmp / "workspace").mkdir(exist_ok=True)
        (tmp / "workspace" / "reviews.sqlite").write_bytes(b"every decision")
        return tmp / "workspace"

    def csv_text(tmp: Path, text: str | bytes) -> Path:
        path = tmp / "preds.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def probs_csv(tmp: Path, first_p0: str) -> Path:
        head = "ImageID," + ",".join(f"p_class_{i}" for i in range(18)) + "\n"
        rows = []
        for k, n in enumerate(EVAL):
            p = [1 / 18] * 18
            cells = [f"{v:.10f}" for v in p]
            if k == 1:
                cells[0] = first_p0
            rows.append(f"{n}.jpg," + ",".join(cells) + "\n")
        return csv_text(tmp, head + "".join(rows))

    def broken_link_in_person(tmp: Path) -> Path:
        data = data_and(tmp)
        photo = data / "images" / "train" / PEOPLE[0] / "mask3.jpg"
        photo.unlink()
        photo.symlink_to(tmp / "deleted.jpg")
        return data

    def link_out(tmp: Path) -> Path:
        data = data_and(tmp)
        (tmp / "secret.jpg").write_bytes((data / "images" / "eval" / f"{EVAL[0]}.jpg").read_bytes())
        (data / "images" / "eval" / "100009_male_White_40_mask.jpg").symlink_to(tmp / "secret.jpg")
        return data

    def previous_demo_with_a_file(tmp: Path) -> Path:
        code, err, *_ = cli(tmp, "make-demo", tmp / "demo", "--people", "1", "--eval", "1", "--workers", "1")
        assert code == 0, err
        (tmp / "demo" / "images" / "eval" / "thesis.docx").write_text("important")
        return tmp / "demo"

    yield "data folder: empty", lambda t: ["index", (t / "empty").mkdir() or t / "empty"]
    yield "data folder: a file", lambda t: ["index", (t / "f.txt").write_text("x") and t / "f.txt"]
    yield "data folder: a broken symlink", lambda t: ["index", (t / "l").symlink_to(t / "gone") or t / "l"]
    yield "data folder: a FIFO", lambda t: ["index", fifo(t / "pipe")]
    yield "data folder: name with quotes, newline, unicode", \
        lambda t: ["index", (t / "q'\"\nü 데이터").mkdir() or t / "q'\"\nü 데이터"]
    yield f"data folder: {junk:,} junk files", lambda t: ["index", junk_folder(t)]
    yield "data folder: unrelated things, a dataset deeper inside", lambda t: ["index", deeper(t)]
    yield "dataset: a broken symlink in a person folder", lambda t: ["index", broken_link_in_person(t)]
    yield "dataset: a symlink pointing out of the data folder", lambda t: ["index", link_out(t)]
    yield "run: truncated predictions.parquet (suspects)", lambda t: [
        "suspects", _cut(a_run(t) / "predictions.parquet", 0.5).parent]
    yield "run: corrupted embeddings.npy (layout)", lambda t: [
        "layout", _cut(run_with_embeddings(t) / "embeddings.npy", 0.5).parent, "--method", "pca"]
    yield "run: corrupted embeddings.npy (suspects)", lambda t: [
        "suspects", _garble(run_with_embeddings(t) / "embeddings.npy").parent]
    yield "checkpoint: model.pt that is a text file (predict)", lambda t: [
        "predict", data_and(t), "--weights", damaged_checkpoint(t, b"not a checkpoint\n"), "--run", t / "r", "--workers", "0"]
    yield "checkpoint: model.pt cut short (predict)", lambda t: [
        "predict", data_and(t), "--weights",
        damaged_checkpoint(t, (weights / "model.pt").read_bytes()[:50_000]), "--run", t / "r", "--workers", "0"]
    yield "--run mine/ holding thesis.txt (import-predictions)", lambda t: [
        "import-predictions", data_and(t), good_csv(t / "good.csv"), "--run", mine(t)]
    yield "--run mine/ holding thesis.txt (predict)", lambda t: [
        "predict", data_and(t), "--weights", weights, "--run", mine(t), "--workers", "0"]
    yield "--run . (import-predictions)", lambda t: [
        "import-predictions", data_and(t), good_csv(t / "good.csv"), "--run", "."]
    yield "--run <the data folder> (import-predictions)", lambda t: [
        "import-predictions", data_and(t), good_csv(t / "good.csv"), "--run", t / "data"]
    yield "--run <workspace with reviews.sqlite> (import-predictions)", lambda t: [
        "import-predictions", data_and(t), good_csv(t / "good.csv"), "--run", workspace(t)]
    yield "export --out mine/ holding thesis.txt", lambda t: ["export", data_and(t), "--out", mine(t)]
    yield "export --reviews <a file that is not SQLite>", lambda t: [
        "export", data_and(t), "--reviews", csv_text(t, "not sqlite"), "--out", t / "out"]
    yield "make-demo --force into a dataset", lambda t: [
        "make-demo", data_and(t), "--people", "1", "--eval", "1", "--force", "--workers", "1"]
    yield "make-demo over a demo holding someone's file", lambda t: [
        "make-demo", previous_demo_with_a_file(t), "--people", "1", "--eval", "1", "--workers", "1"]
    yield "CSV: a ragged line (3 cells, header 2)", lambda t: [
        "import-predictions", data_and(t), csv_text(t, f"ImageID,ans\n{EVAL[0]}.jpg,1\n{EVAL[1]}.jpg,2,7\n{EVAL[2]}.jpg,3\n"),
        "--run", t / "r"]
    yield "CSV: a FIFO", lambda t: ["import-predictions", data_and(t), fifo(t / "preds.csv"), "--run", t / "r"]
    yield "CSV: a directory", lambda t: [
        "import-predictions", data_and(t), (t / "preds.csv").mkdir() or t / "preds.csv", "--run", t / "r"]
    yield "CSV: non-UTF-8 bytes (Latin-1)", lambda t: [
        "import-predictions", data_and(t),
        csv_text(t, ("ImageID,ans,note\n" + "".join(f"{n}.jpg,1,café\n" for n in EVAL)).encode("latin-1")), "--run", t / "r"]
    yield "CSV: NaN probability", lambda t: ["import-predictions", data_and(t), probs_csv(t, "nan"), "--run", t / "r"]
    yield "CSV: negative probability", lambda t: ["import-predictions", data_and(t), probs_csv(t, "-0.2"), "--run", t / "r"]
    yield "CSV: duplicate rows", lambda t: [
        "import-predictions", data_and(t), csv_text(t, "ImageID,ans\n" + "".join(f"{n}.jpg,1\n" for n in EVAL * 2)),
        "--run", t / "r"]
    yield "CSV: an id with ../", lambda t: [
        "import-predictions", data_and(t),
        csv_text(t, "ImageID,ans\n" + "".join(f"{n}.jpg,1\n" for n in EVAL[:2]) + f"../data/images/eval/{EVAL[2]}.jpg,1\n"),
        "--run", t / "r"]


def _cut(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _garble(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[:16] = b"\x93NUMPY\x01\x00garbage!"
    path.write_bytes(bytes(data))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junk", type=int, default=100_000, help="files in the junk folder (default 100,000)")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temp folder)")
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-bad-inputs-"))
    rows = []
    try:
        for i, (label, setup) in enumerate(cases(base, args.junk)):
            tmp = base / f"case{i:02d}"
            tmp.mkdir(parents=True)
            argv = [str(a) for a in setup(tmp)]
            before = snapshot(tmp)
            code, err, seconds, out = cli(tmp, *argv)
            after = snapshot(tmp)
            changed = [k for k, v in before.items() if after.get(k) != v]
            added = sorted(set(after) - set(before))
            if code == 0:  # a success may add its own output: the workspace, a run, a layout
                added = [a for a in added if not a.startswith(("workspace", "run"))]
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            message = lines[-1] if lines else "(nothing on stderr)"
            if code == 0:  # not refused: show the finding the index listed for it
                found = [ln.strip() for ln in out.splitlines() if "_link" in ln or ln.startswith("Images:")]
                message = "stdout: " + " / ".join(found[:2])
            message = message.replace(str(tmp) + "/", "").replace(str(tmp), ".").replace("|", "\\|").replace("`", "'")
            lost = "yes" if not changed and not added else f"NO ({', '.join((changed + added)[:3])})"
            rows.append((label, message, code, len(lines), lost, seconds))
            print(f"{label}: exit {code}, {seconds:.1f} s", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("| input | message (stderr, last line) | exit | stderr lines | nothing lost | s |")
    print("|---|---|---|---|---|---|")
    for label, message, code, n_lines, lost, seconds in rows:
        if len(message) > 300:
            message = message[:297] + "..."
        print(f"| {label} | `{message}` | {code} | {n_lines} | {lost} | {seconds:.1f} |")  # code span: <person> stays visible


if __name__ == "__main__":
    main()
