"""A folder of images as a dataset, read with Pillow (torchvision's ImageFolder convention).

    ROOT/<class>/<image>.png|jpg|jpeg   sub-folders are classes, in sorted folder order
    ROOT/<image>.png                    a flat folder: one unlabelled set (unconditional training)

Every image is composited on ``background`` if it has transparency (RGBA, LA, palette with
transparency), converted to ``channels`` (1: "L", 3: "RGB") and resized to ``size`` x ``size``
with ``resample``. The card records all of it with a hash of the file list and contents (``info``),
so `evaluate` reads the same images the model was trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddpm_deploy.errors import UserError

EXTENSIONS = (".png", ".jpg", ".jpeg")
RESAMPLE = ("lanczos", "bicubic", "bilinear", "box", "nearest")
COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128)}
# the most pixels one image may decode to: a 97 KB PNG can hold 10,000 x 10,000 (about 1 GB)
MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class FolderSpec:
    root: str
    size: int | None = None  # None: keep the images' own (square, all equal) size
    channels: int = 3
    background: tuple[int, int, int] = (255, 255, 255)
    resample: str = "lanczos"

    def check(self) -> None:
        if self.channels not in (1, 3):
            raise UserError(f"--channels must be 1 (grey) or 3 (colour), got {self.channels}")
        if self.size is not None and self.size <= 0:
            raise UserError(f"--image-size must be positive, got {self.size}")
        if self.resample not in RESAMPLE:
            raise UserError(f"unknown resampling {self.resample!r}; choose from {list(RESAMPLE)}")


@dataclass
class FolderData:
    images: np.ndarray  # uint8 [N, C, S, S]
    labels: np.ndarray  # int64 [N]; all 0 for a flat folder
    classes: list[str]  # sub-folder names in sorted order; [] for a flat folder
    info: dict  # what the card records under "data"


def parse_background(text: str) -> tuple[int, int, int]:
    """'white', 'black', 'grey', '#rrggbb' or 'r,g,b' -> (r, g, b)."""
    key = text.strip().lower()
    if key in COLOURS:
        return COLOURS[key]
    try:
        if key.startswith("#") and len(key) == 7:
            rgb = tuple(int(key[i : i + 2], 16) for i in (1, 3, 5))
        else:
            rgb = tuple(int(v) for v in key.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise UserError(
            f"--background {text!r} is not a colour; use white, black, grey, #rrggbb or r,g,b"
        )
    return rgb  # type: ignore[return-value]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def list_files(root: str | Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """(files, labels, classes): class sub-folders if there are any, else the flat folder."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--data-root {root} is not a folder of images")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and _images_in(p))
    if classes:
        per_class = [_images_in(root / c) for c in classes]
        files = [f for group in per_class for f in group]
        labels = np.concatenate(
            [np.full(len(g), i, dtype=np.int64) for i, g in enumerate(per_class)]
        )
    else:
        files = _images_in(root)
        labels = np.zeros(len(files), dtype=np.int64)
    if not files:
        raise UserError(
            f"{root} holds no {'/'.join(EXTENSIONS)} images (in it or in its sub-folders); point "
            "--data-root at a folder of images"
        )
    return files, labels, classes


def _open(path: Path, spec: FolderSpec, size: tuple[int, int] | None = None):
    """One image, composited and converted; its size read from the header first, so an image of
    another size (``size``: the first image's, when the folder is not resized) or one too large to
    decode is refused before its pixels are."""
    from PIL import Image

    try:
        img = Image.open(path)
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise UserError(
                f"{path} is {w}x{h} pixels, more than the {MAX_PIXELS:,} an image may decode to; "
                "shrink or remove it"
            )
        if size is not None and spec.size is None and img.size != size:
            raise UserError(
                f"images have mixed sizes ({size[0]}x{size[1]} and {path.name}: {w}x{h}); "
                "pass --image-size S to resize them all"
            )
        img.load()  # decodes now, so a truncated file fails here with its name
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {path} ({e}); remove or replace the file") from None
    img = _eight_bit(img, path)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*spec.background, 255))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert("L" if spec.channels == 1 else "RGB")


def _eight_bit(img, path: Path):
    """16-bit and float images scaled to 8 bits from their true range (Pillow's convert() clips
    I;16 at 255 and truncates float): integer modes (I;16*, I) as 0..65535, float (F) as 0..1;
    values outside those ranges are refused with the file's name."""
    from PIL import Image

    if not (img.mode.startswith("I") or img.mode == "F"):
        return img  # 8-bit modes, palette, CMYK: Pillow converts them to their true values
    a = np.asarray(img, dtype=np.float64)
    top, kind = (1.0, "float") if img.mode == "F" else (65535.0, "16-bit")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > top:
        raise UserError(
            f"{path} is a {kind} image ({img.mode}) with values outside 0..{top:g}; "
            "save it as 8- or 16-bit PNG"
        )
    return Image.fromarray(np.round(a * (255.0 / top)).astype(np.uint8), "L")


def _target_size(first: Path, img_size: tuple[int, int], spec: FolderSpec) -> int:
    if spec.size is not None:
        return spec.size
    w, h = img_size
    if w != h:
        raise UserError(f"{first} is {w}x{h}, not square; pass --image-size S to resize to S x S")
    return w


def read_folder(spec: FolderSpec) -> FolderData:
    """All images of the folder in memory, uint8 [N, C, S, S], with their labels and card info."""
    from PIL import Image

    spec.check()
    files, labels, classes = list_files(spec.root)
    resample = getattr(Image.Resampling, spec.resample.upper())
    digest = hashlib.sha256()
    size, out = None, []
    for path in files:
        img = _open(path, spec, None if size is None else (size, size))
        if size is None:
            size = _target_size(path, img.size, spec)
        if img.size != (size, size):
            if spec.size is None:
                raise UserError(
                    f"images have mixed sizes ({files[0].name}: {size}x{size}, {path.name}: "
                    f"{img.size[0]}x{img.size[1]}); pass --image-size S to resize them all"
                )
            img = img.resize((size, size), resample)
        out.append(np.asarray(img, dtype=np.uint8).reshape(size, size, spec.channels))
        digest.update(str(path.relative_to(spec.root)).encode() + b"\0" + path.read_bytes())
    images = np.stack(out).transpose(0, 3, 1, 2).copy()
    info = {
        "root": str(spec.root),
        "files": len(files),
        "sha256": digest.hexdigest(),
        "size": size,
        "channels": spec.channels,
        "background": list(spec.background),
        "resample": spec.resample,
        "layout": "class-folders" if classes else "flat",
    }
    return FolderData(images=images, labels=labels, classes=classes, info=info)


def spec_from_info(info: dict, root: str | None = None) -> FolderSpec:
    """The reading a card's "data" section records, optionally from another ``root``."""
    return FolderSpec(
        root=root or info["root"],
        size=int(info["size"]),
        channels=int(info["channels"]),
        background=tuple(info["background"]),  # type: ignore[arg-type]
        resample=info["resample"],
    )
