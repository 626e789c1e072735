"""Camera frames -> network input, without ROS: the checks every frame from the wire needs.

A ROS Image is (encoding, width, height, step, data); a CompressedImage is (format, data). Any of
those can be wrong on a robot: a driver with another encoding, a truncated message, a corrupt JPEG.
Each problem raises ImageDecodeError with a `kind` the node counts on /diagnostics.
"""
from __future__ import annotations

import numpy as np

from ..ir import Preprocessing

# encoding -> (channels, dtype, channel order of the data)
ENCODINGS = {
    "mono8": (1, np.uint8, "gray"), "mono16": (1, np.uint16, "gray"),
    "rgb8": (3, np.uint8, "rgb"), "bgr8": (3, np.uint8, "bgr"),
    "rgb16": (3, np.uint16, "rgb"), "bgr16": (3, np.uint16, "bgr"),
    "8UC1": (1, np.uint8, "gray"), "8UC3": (3, np.uint8, "bgr"),
}


class ImageDecodeError(ValueError):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # encoding, size, empty, truncated, compressed


# the first bytes of the compressed formats OpenCV decodes: (offset, bytes)
COMPRESSED_MAGIC = {
    "png": ((0, b"\x89PNG\r\n\x1a\n"),), "jpeg": ((0, b"\xff\xd8\xff"),), "bmp": ((0, b"BM"),),
    "tiff": ((0, b"II*\x00"),), "tiff (big-endian)": ((0, b"MM\x00*"),), "webp": ((0, b"RIFF"), (8, b"WEBP")),
}


def decode_raw(encoding: str, width: int, height: int, step: int, data: bytes, big_endian: bool = False):
    """-> (H, W, C) uint8 image and its channel order ('gray', 'rgb' or 'bgr')."""
    check_raw(encoding, width, height, step, len(data))
    channels, dtype, order = ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    rows = np.frombuffer(data, dtype=np.uint8).reshape(height, step)[:, :row_bytes]
    pixels = rows.copy().view(np.dtype(dtype).newbyteorder(">" if big_endian else "<"))
    image = pixels.reshape(height, width, channels)
    if itemsize == 2:
        image = (image >> 8).astype(np.uint8)  # keep the 8 most significant bits
    return image, order


def check_raw(encoding: str, width: int, height: int, step: int, n_bytes: int) -> None:
    """What can be known of a raw image without touching its pixels; raises ImageDecodeError."""
    if encoding not in ENCODINGS:
        raise ImageDecodeError("encoding", f"unsupported encoding {encoding!r}; "
                                           f"supported: {', '.join(ENCODINGS)}")
    channels, dtype, order = ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    if n_bytes == 0:
        raise ImageDecodeError("empty", "image data is empty")
    if width <= 0 or height <= 0:
        raise ImageDecodeError("size", f"image size {width}x{height} has no pixels")
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageDecodeError("size", f"step {step} is shorter than a row of {width} {encoding} pixels "
                                       f"({row_bytes} bytes)")
    expected = step * height
    if n_bytes < expected:
        raise ImageDecodeError("truncated", f"{n_bytes} bytes of data, step {step} x height {height} = "
                                            f"{expected} expected")
    if n_bytes > expected:  # a publisher that got width, height or step wrong: the pixels would be garbage
        raise ImageDecodeError("size", f"{n_bytes} bytes of data, but step {step} x height {height} = "
                                       f"{expected}")


def check_compressed(fmt: str, data) -> None:
    """Whether the data starts as a format OpenCV decodes; raises ImageDecodeError. `data`: bytes,
    or the array.array a ROS message holds."""
    if len(data) == 0:
        raise ImageDecodeError("empty", "compressed image data is empty")
    head = bytes(data[:12])
    if not any(all(head[at:at + len(magic)] == magic for at, magic in marks) for marks in COMPRESSED_MAGIC.values()):
        raise ImageDecodeError("compressed", f"compressed image (format {fmt!r}, {len(data)} bytes) is none of "
                                             f"{', '.join(COMPRESSED_MAGIC)}: it starts with {head[:8]!r}")


def decode_compressed(fmt: str, data: bytes):
    """jpeg/png bytes -> (H, W, C) uint8 image and its channel order."""
    import cv2

    if len(data) == 0:
        raise ImageDecodeError("empty", "compressed image data is empty")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError("compressed", f"corrupt or unsupported compressed image (format {fmt!r}, "
                                             f"{len(data)} bytes)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return image[..., None], "gray"
    return image[..., :3], "bgr"  # OpenCV decodes colour as BGR


def to_network_input(image: np.ndarray, order: str, pre: Preprocessing) -> np.ndarray:
    """(H, W, C) uint8 -> (1, C, H, W) float32 for the network: colour, size, preprocessing.
    OpenCV is imported only for a conversion or a resize (its import takes ~15 ms, on the first frame)."""
    channels, height, width = pre.input_shape
    if channels == 1 and image.shape[2] == 3:
        import cv2

        code = cv2.COLOR_RGB2GRAY if order == "rgb" else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(np.ascontiguousarray(image), code)[..., None]
    elif channels == 3:
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        elif order != ("bgr" if pre.channel_order == "bgr" else "rgb"):
            image = image[..., ::-1]
    if image.shape[:2] != (height, width):
        import cv2

        image = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)
        if image.ndim == 2:
            image = image[..., None]
    return pre.apply(image[None])


def compressed_pixels(data: bytes):
    """Width x height a PNG or JPEG header declares, read without decoding (so that a small file
    declaring an enormous image is refused before it is inflated); None when the header says nothing.
    `data`: bytes, or the array.array a ROS message holds (only the header is copied)."""
    data = bytes(data[:65536])  # a JPEG's size marker comes after its metadata segments
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:  # the IHDR chunk comes first
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):  # JPEG segments: 0xFF, marker, 2-byte length; SOFn holds the size
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 5:i + 7], "big") * int.from_bytes(data[i + 7:i + 9], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None
