"""Arrange the Noto Color Emoji images as a class-per-folder tree for `train --dataset folder`.

    python scripts/emoji_tree.py ../shared/datasets/emoji data/emoji

Reads EMOJI/emoji.json (emoji-datasource-google 16.0.0, see the dataset's PROVENANCE.md): each entry's
`image` is a file in EMOJI/png64 and its `category` the label; the entries under `skin_variations`
(skin tones) take their parent's category. The five "Component" swatches (skin-tone squares) are
left out, so 9 classes remain. Files are symlinked (nothing is copied) into
OUT/<category slug>/<file>; the folder names sort into the class order the card records.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

SKIPPED = {"Component"}


def slug(category: str) -> str:
    """'Smileys & Emotion' -> 'smileys_emotion'."""
    return re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


def labelled_files(emoji_dir: Path) -> list[tuple[str, str]]:
    """(file name in png64/, category) for every image emoji.json lists, skin tones included."""
    entries = json.loads((emoji_dir / "emoji.json").read_text())
    pairs = []
    for entry in entries:
        if entry["category"] in SKIPPED:
            continue
        images = [entry["image"]] + [v["image"] for v in entry.get("skin_variations", {}).values()]
        pairs += [(name, entry["category"]) for name in images]
    return pairs


def arrange(emoji_dir: Path, out: Path) -> Counter:
    png = emoji_dir / "png64"
    pairs = labelled_files(emoji_dir)
    missing = [name for name, _ in pairs if not (png / name).is_file()]
    if missing:
        sys.exit(f"{len(missing)} files named in emoji.json are not in {png}, e.g. {missing[0]}")
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty; remove it or pick another folder")
    counts: Counter = Counter()
    for name, category in pairs:
        folder = out / slug(category)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to((png / name).resolve())
        counts[slug(category)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("emoji_dir", type=Path, help="the emoji dataset (emoji.json, png64/)")
    parser.add_argument("out", type=Path, help="an empty or new folder for the class tree")
    args = parser.parse_args()
    counts = arrange(args.emoji_dir, args.out)
    for name, n in sorted(counts.items()):
        print(f"{n:5d}  {name}")
    print(f"{sum(counts.values()):5d}  images in {len(counts)} classes under {args.out}")


if __name__ == "__main__":
    main()
