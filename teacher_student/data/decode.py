"""One image file -> the uint8 array the models take, with PIL: for training, export and predict.

JPEG, PNG, BMP, GIF, WebP and TIFF (the first frame of an animated or multi-page file).

Grayscale, palette, CMYK, 16-bit and images with alpha are converted (alpha is dropped, 16-bit
values are scaled down, not wrapped); the image is resized to `size` x `size`, averaging the
pixels each output pixel covers when shrinking (no aliasing) and interpolating bilinearly when
enlarging. A large JPEG is decoded at a reduced scale when that still covers `size` (libjpeg's
DCT scaling): photos of several megapixels decode several times faster.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class UnusableImage(ValueError):
    """A file that is not a decodable image; the message is the reason, for skipped_files.csv."""


def decode_image(path: str | os.PathLike, size: int, channels: int) -> np.ndarray:
    """uint8 [size, size, channels] from the image file at `path`, or UnusableImage."""
    try:
        empty = os.path.getsize(path) == 0
    except OSError as err:  # gone since it was listed, or not readable
        raise UnusableImage(f"cannot read: {err.strerror or err}") from err
    if empty:
        raise UnusableImage("cannot decode: empty file")
    try:
        with Image.open(path) as image:
            image.draft("RGB" if channels == 3 else "L", (size, size))
            image.load()
            image = _to_eight_bits(image).convert("RGB" if channels == 3 else "L")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UnusableImage(f"cannot decode: {' '.join(str(err).split())[:200]}") from err
    shrinks = image.width >= size and image.height >= size
    image = image.resize((size, size), Image.Resampling.BOX if shrinks
                         else Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(size, size, channels)


def decode_problem(path: str | os.PathLike) -> str | None:
    """None if the file decodes, else the reason."""
    try:
        decode_image(path, 1, 1)
    except UnusableImage as err:
        return str(err)
    return None


def _to_eight_bits(image: Image.Image) -> Image.Image:
    """16- and 32-bit images scaled to 0..255 (PIL's own conversion would clip them)."""
    if image.mode not in WIDE_MODES:
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode != "F" and values.max(initial=0) > 255:
        values = values / 257.0  # 65535 -> 255, as TensorFlow's decoder scales
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))
