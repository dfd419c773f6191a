"""Image folders: listing them by class and reading their bytes (decoding is
`keras_bigmodel.layers.decode_and_resize`, which the saved model uses too; the image folder
reader is `image_folder.py`)."""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_bigmodel.errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
IMAGE_KINDS = "PNG, JPEG, GIF or BMP"
LAYOUT = "one sub-folder of images per class (DIR/cat/*.png, DIR/dog/*.png)"
#: files named in a message before "and N more".
NAMED_IN_MESSAGES = 3


@dataclass
class FolderScan:
    """What a folder holds, before any check of its layout.

    Attributes:
        classes: the image files under each sub-folder, by sub-folder name (sorted).
        beside: the files directly in the folder, beside its sub-folders.
        ignored: files under the sub-folders whose extension is not an image's.
    """

    classes: dict
    beside: list
    ignored: list


@dataclass
class ImageFiles:
    """The images a folder (or a single image file) holds.

    Attributes:
        files: the image files, sorted by class, then path.
        classes: each file's class, the name of its sub-folder; `None` for a flat folder.
    """

    files: list
    classes: list | None


def scan_image_folder(root):
    """Lists a folder's sub-folders and files; hidden ones (`.DS_Store`) are passed over.

    Returns:
        A `FolderScan`.
    """
    root = Path(root)
    classes, ignored = {}, []
    for entry in _visible(root.iterdir()):
        if entry.is_dir():
            under = _files_under(entry)
            classes[entry.name] = [p for p in under if is_image(p)]
            ignored += [p for p in under if not is_image(p)]
    beside = [p for p in _visible(root.iterdir()) if p.is_file()]
    return FolderScan(classes=classes, beside=beside, ignored=ignored)


def list_image_folder(path, with_classes=True):
    """Lists the images of a folder laid out with one sub-folder per class.

    Files whose extension is not PNG, JPEG, GIF or BMP are ignored, with a note in the log.

    Args:
        path: the folder, or (without classes) one image file.
        with_classes: require the class layout; without it, a flat folder of images is read
            too, and classes are kept only when every image sits in a sub-folder.

    Returns:
        An `ImageFiles`.

    Raises:
        UserError: no such folder, no class sub-folders, a class folder without images,
            or no images at all.
    """
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such folder; --data for cnn is a folder with {LAYOUT}.")
    if root.is_file():
        if not with_classes and is_image(root):
            return ImageFiles(files=[root], classes=None)
        raise UserError(f"{root}: is a file; --data for cnn is a folder with {LAYOUT}.")
    scan = scan_image_folder(root)
    files = [p for found in scan.classes.values() for p in found]
    classes = [name for name, found in scan.classes.items() for _ in found]
    ignored = scan.ignored
    if with_classes:
        if not files:
            kind = "images but no" if any(is_image(p) for p in scan.beside) else "no"
            raise UserError(
                f"{root}: {kind} class sub-folders with images; cnn reads a folder with {LAYOUT}."
            )
        empty = [root / name for name, found in scan.classes.items() if not found]
        if empty:
            raise UserError(
                f"{named_files(empty)}: no {IMAGE_KINDS} images in "
                f"{'this class folder' if len(empty) == 1 else 'these class folders'}; "
                "add some or remove the folder."
            )
        if scan.beside:
            log.warning(
                "Ignored %d file(s) beside the class sub-folders of %s: %s",
                len(scan.beside),
                root,
                named_files(scan.beside),
            )
    else:
        images = [p for p in scan.beside if is_image(p)]
        ignored = ignored + [p for p in scan.beside if not is_image(p)]
        if images:
            # Images loose in the folder: it is not laid out by class.
            files, classes = images + files, None
        if not files:
            raise UserError(f"{root}: no {IMAGE_KINDS} images here or in its sub-folders.")
    if ignored:
        log.info(
            "Ignored %d file(s) that are not %s images: %s",
            len(ignored),
            IMAGE_KINDS,
            named_files(ignored),
        )
    return ImageFiles(files=files, classes=classes)


def read_contents(files):
    """Returns each file's bytes, as a NumPy object array.

    Raises:
        UserError: a file cannot be read.
    """
    contents = np.empty(len(files), dtype=object)
    for i, path in enumerate(files):
        try:
            contents[i] = Path(path).read_bytes()
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror}).") from exc
    return contents


def image_header(path):
    """Returns `(height, width, mode)` from an image file's header, without decoding it.

    `mode` is PIL's name for the pixel format (`L` grayscale, `RGB`, `RGBA`, `P` palette);
    the result is `None` if the header is not one PIL understands.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.height, image.width, image.mode
    except Exception:  # PIL raises many types for a header it cannot parse
        return None


def _visible(paths):
    return sorted(p for p in paths if not p.name.startswith("."))


def _files_under(folder):
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def is_image(path):
    """Whether a file's extension is that of an image bigmodel reads."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def named_files(paths):
    """Names the first few paths for a message, and how many more there are."""
    shown = ", ".join(str(p) for p in paths[:NAMED_IN_MESSAGES])
    more = len(paths) - NAMED_IN_MESSAGES
    return shown + (f" and {more} more" if more > 0 else "")
