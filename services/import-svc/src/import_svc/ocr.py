"""Text from a photo of a business card: Pillow prepares the picture, tesseract reads it.

tesseract (Debian's `tesseract-ocr`, driven by pytesseract) is the engine engineering.md chose. The
pure-PyPI alternative, RapidOCR's bundled PP-OCR models, was measured here too: it reads cards as
fast but drops the spaces between Latin words ("MariaGonzalez-Smith"), which breaks names and titles.

What tesseract does not do for us, and is done here: it reads lines as they lie, so a card shot a few
degrees askew comes out garbled (tesseract only corrects orientation in 90° steps); the photo is
straightened first by the angle whose rows of ink are sharpest (a projection profile, the classic
deskew, about 40 small rotations with Pillow). Phone photos are also turned upright by their EXIF
orientation, scaled to the size tesseract reads best, and stretched to full contrast.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000
MIN_SIDE = 100
# tesseract reads best with capitals 20-40 px high; a card filling a 12 MP photo is about 2.5x that.
LONG_SIDE_RANGE = (1000, 2400)
MAX_SKEW_DEGREES = 15
MIN_WORD_CONFIDENCE = 30
FORMATS = "JPEG, PNG, HEIC, WebP, TIFF, BMP or GIF"


class ImageRejected(ValueError):
    """The upload cannot be read as a card: the message says why, for the caller."""


class OcrUnavailable(RuntimeError):
    """The OCR engine is not installed or failed: a server problem, not the caller's."""


@dataclass(frozen=True)
class TextLine:
    text: str
    height: int  # pixel height of its words: a card's name is usually its largest line
    confidence: float  # tesseract's mean word confidence, 0-100
    word_confidences: tuple[float, ...] = ()  # one per word of `text` split on spaces


@cache
def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()


def load_image(data: bytes) -> Image.Image:
    """The decoded image, or ImageRejected with the reason; its size is checked from the header first,
    so an image too large is refused before its pixels take memory."""
    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise ImageRejected(f"The image has {image.width} x {image.height} pixels; at most "
                                    f"{MAX_PIXELS // 1_000_000} megapixels are read")
            image.load()
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected(f"The upload is not an image (send a {FORMATS} photo)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(f"The image has more than {MAX_PIXELS // 1_000_000} megapixels") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt files, per codec
        raise ImageRejected(f"The image could not be read: {exc}") from None
    return image


def open_photo(data: bytes) -> Image.Image:
    """The photo, upright and in grey, or ImageRejected with the reason."""
    image = load_image(data)
    if min(image.size) < MIN_SIDE:
        raise ImageRejected(f"The image is {image.width} x {image.height} pixels, too small to read "
                            f"(at least {MIN_SIDE} px on each side)")
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # transparent pixels are often black underneath: lay the picture on white first
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L")


def _rescaled(gray: Image.Image) -> Image.Image:
    low, high = LONG_SIDE_RANGE
    long_side = max(gray.size)
    if low <= long_side <= high:
        return gray
    factor = (high if long_side > high else low) / long_side
    return gray.resize((round(gray.width * factor), round(gray.height * factor)), Image.Resampling.LANCZOS)


def _row_sharpness(ink: Image.Image, angle: float) -> int:
    """How abruptly the ink changes from row to row once turned by `angle`: largest when lines are level."""
    turned = ink.rotate(angle, resample=Image.Resampling.BILINEAR)
    rows = turned.resize((1, turned.height), Image.Resampling.BOX).tobytes()
    return sum((rows[i + 1] - rows[i]) ** 2 for i in range(len(rows) - 1))


def skew_angle(gray: Image.Image) -> float:
    """The rotation (degrees, counter-clockwise) that levels the card's lines of text."""
    small = gray.copy()
    small.thumbnail((600, 600))
    ink = ImageOps.invert(ImageOps.autocontrast(small)).point(lambda v: 255 if v > 128 else 0)
    coarse = max(range(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 1), key=lambda a: _row_sharpness(ink, a))
    fine = max((coarse + step / 5 for step in range(-5, 6)), key=lambda a: _row_sharpness(ink, a))
    return round(fine, 1)


def prepare(gray: Image.Image) -> Image.Image:
    gray = ImageOps.autocontrast(_rescaled(gray), cutoff=1)
    angle = skew_angle(gray)
    if abs(angle) >= 0.4:
        gray = gray.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    return gray


def _lines(data: dict[str, list[Any]]) -> list[TextLine]:
    grouped: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        # tesseract gives words outside its dictionary (surnames: "Lindqvist" at 10%) a low confidence,
        # so only short low-confidence words go: the specks a logo or a border leaves
        alphanumerics = sum(c.isalnum() for c in str(word))
        if str(word).strip() and (alphanumerics >= 2 or float(data["conf"][i]) >= MIN_WORD_CONFIDENCE):
            grouped.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
    out = []
    for indexes in grouped.values():
        text = " ".join(str(data["text"][i]).strip() for i in indexes)
        heights = sorted(int(data["height"][i]) for i in indexes)
        confidences = tuple(round(float(data["conf"][i]), 1) for i in indexes)
        out.append(TextLine(text=text, height=heights[len(heights) // 2],
                            confidence=round(sum(confidences) / len(confidences), 1), word_confidences=confidences))
    return out


def read_lines(gray: Image.Image, *, languages: str = "eng", timeout: float = 30) -> list[TextLine]:
    """tesseract's lines of text, in reading order, without the words it could not make out."""
    import pytesseract

    # tesseract's OpenMP threads spin against each other: one card took 0.9 s with them and 0.2 s
    # without on a 2-core machine, and concurrent requests are spread over cores by the caller anyway.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        data = pytesseract.image_to_data(gray, lang=languages, config="--psm 3",
                                         output_type=pytesseract.Output.DICT, timeout=timeout)
    except pytesseract.TesseractNotFoundError:
        raise OcrUnavailable("Business-card OCR is not available: tesseract is not installed on the server") \
            from None
    except pytesseract.TesseractError as exc:
        raise OcrUnavailable(f"OCR failed: {exc.message}") from None
    except RuntimeError as exc:  # pytesseract says a timeout only in the message of a bare RuntimeError
        if "timeout" not in str(exc).lower():
            raise
        raise ImageRejected(f"The image could not be read within {timeout:g} s; send a sharper, smaller "
                            "photo of the card alone") from None
    return _lines(data)


def read_card(data: bytes, *, languages: str = "eng", timeout: float = 30) -> list[TextLine]:
    """The lines of text on the photo of a card (blocking: run it in a thread)."""
    return read_lines(prepare(open_photo(data)), languages=languages, timeout=timeout)


def plain_text(lines: Iterable[TextLine]) -> str:
    return "\n".join(line.text for line in lines)
