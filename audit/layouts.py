"""The storage layouts of the mask dataset, described once as data.

A layout says where a dataset keeps its images and manifests, relative to the data root. The
index (`audit.dataset_index`), the app's re-index stamp (`ui/app_cache.dataset_stamp`) and the
export (`audit.export`) read these descriptions instead of naming folders themselves, as timm
keeps one reader per storage layout behind a factory. A third layout is one more `DatasetLayout`
in `LAYOUTS` (and its test in tests/test_layouts.py); the CSV formats are the download's (train.csv:
id, gender, race, age, path; info.csv: ImageID, ans), whatever folder a layout keeps them in.

- seed (what `make_demo` writes)::

      ROOT/images/train/<person>/<mask_type>.<ext>
      ROOT/images/eval/<id>_<gender>_<race>_<age>_<mask_type>.<ext>

- competition (the post-competition download, and the original competition)::

      ROOT/train/images/<person>/<mask_type>.<ext>     ROOT/train/train.csv
      ROOT/eval/images/<file>                          ROOT/eval/info.csv
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetLayout:
    """Where one layout keeps things; every path is POSIX, relative to the data root."""

    name: str                      # "seed", "competition": DatasetIndex.layout, run meta, messages
    train_images: str              # folder of person folders ({id}_{gender}_{race}_{age}/<mask_type>.<ext>)
    eval_images: str               # folder of eval image files
    train_csv: str | None = None   # train.csv (one row per person: labels + provenance); None: names only
    eval_csv: str | None = None    # info.csv (ImageID, ans + provenance); None: names only
    # Folders whose presence (any one) says a data root is in this layout: a split may be missing.
    markers: tuple[str, ...] = ()
    # Folder names a user may give instead of the data root (its parent is then tried): the seed
    # layout's images/, which people open because it is where the pictures are.
    inner_folders: tuple[str, ...] = ()
    # What it looks like, in the one-line 'not a mask dataset' message.
    expected: str = ""

    def is_layout_of(self, folder: Path) -> bool:
        """Does `folder` hold this layout (one of its markers is a folder)? A few stat calls."""
        return any((Path(folder) / marker).is_dir() for marker in self.markers)

    @property
    def manifests(self) -> tuple[str, ...]:
        """The layout's CSV paths (train.csv, info.csv) that it has."""
        return tuple(p for p in (self.train_csv, self.eval_csv) if p)

    @property
    def stamp_paths(self) -> tuple[str, ...]:
        """Paths whose modification time changes when the data changes enough to re-index: every
        image folder and manifest and each folder above them (adding or removing a person folder
        or an eval file touches an image folder; replacing a CSV by rename touches its folder)."""
        out: list[str] = []
        for path in (self.train_images, self.eval_images, *self.manifests):
            parts = path.split("/")
            for n in range(1, len(parts) + 1):
                prefix = "/".join(parts[:n])
                if prefix not in out:
                    out.append(prefix)
        return tuple(out)


SEED = DatasetLayout(
    name="seed", train_images="images/train", eval_images="images/eval",
    markers=("images/train", "images/eval"), inner_folders=("images",),
    expected="images/train/<person>/ + images/eval/",
)
COMPETITION = DatasetLayout(
    name="competition", train_images="train/images", eval_images="eval/images",
    train_csv="train/train.csv", eval_csv="eval/info.csv", markers=("train/images", "eval/images"),
    expected="train/images/ + train/train.csv, eval/images/ + eval/info.csv",
)
# In the order detection tries them: a folder holding two layouts is read as the first.
LAYOUTS: tuple[DatasetLayout, ...] = (SEED, COMPETITION)


def get_layout(layout: str | DatasetLayout) -> DatasetLayout:
    """A layout by name ("seed", "competition"; a DatasetLayout is returned as is); ValueError otherwise."""
    if isinstance(layout, DatasetLayout):
        return layout
    for candidate in LAYOUTS:
        if candidate.name == layout:
            return candidate
    raise ValueError(f"unknown dataset layout {layout!r}; known: {', '.join(x.name for x in LAYOUTS)}")


def layout_of(folder: Path) -> DatasetLayout | None:
    """The first layout whose markers `folder` holds, or None."""
    return next((layout for layout in LAYOUTS if layout.is_layout_of(folder)), None)


def expected_layouts() -> str:
    """Every layout's look and where it is searched, for the 'not a mask dataset' message."""
    looks = " or ".join(f"{layout.expected} ({layout.name} layout)" for layout in LAYOUTS)
    return f"expected {looks}, in it or in data/ or input/data/ under it"


def all_stamp_paths() -> tuple[str, ...]:
    """Every layout's `stamp_paths`, once each: a stamp that needs no detection first (a folder
    that changes layout is still seen to change)."""
    out: list[str] = []
    for layout in LAYOUTS:
        out += [p for p in layout.stamp_paths if p not in out]
    return tuple(out)
