"""Frame decoding: every encoding, and every way a frame can be broken."""
import cv2
import numpy as np
import pytest

from snn_agent.ir import Preprocessing
from snn_agent.sensing.images import ImageDecodeError, decode_compressed, decode_raw, to_network_input

GREY = Preprocessing(input_shape=(1, 28, 28))
RGB = Preprocessing(input_shape=(3, 28, 28), channel_order="rgb")


def test_mono8_with_row_padding():
    image = np.arange(6 * 4, dtype=np.uint8).reshape(4, 6)
    padded = np.zeros((4, 8), np.uint8)
    padded[:, :6] = image
    decoded, order = decode_raw("mono8", 6, 4, 8, padded.tobytes())
    assert order == "gray" and decoded.shape == (4, 6, 1)
    np.testing.assert_array_equal(decoded[..., 0], image)


def test_mono16_and_16bit_png_keep_the_high_byte():
    image = np.array([[0, 255, 256, 65535]], np.uint16)
    decoded, order = decode_raw("mono16", 4, 1, 8, image.astype("<u2").tobytes())
    assert order == "gray" and decoded[:, :, 0].tolist() == [[0, 0, 1, 255]]
    ok, png = cv2.imencode(".png", image)
    decoded, order = decode_compressed("png", png.tobytes())
    assert decoded.dtype == np.uint8 and decoded[:, :, 0].tolist() == [[0, 0, 1, 255]]


@pytest.mark.parametrize("big_endian", [False, True])
def test_rgb16_keeps_high_byte(big_endian):
    image = (np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 1000)
    data = image.astype(">u2" if big_endian else "<u2").tobytes()
    decoded, order = decode_raw("rgb16", 3, 2, 3 * 3 * 2, data, big_endian)
    assert order == "rgb"
    np.testing.assert_array_equal(decoded, (image >> 8).astype(np.uint8))


def test_bgr_and_rgb_give_same_network_input():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    a = to_network_input(*decode_raw("rgb8", 28, 28, 84, rgb.tobytes()), RGB)
    b = to_network_input(*decode_raw("bgr8", 28, 28, 84, rgb[..., ::-1].copy().tobytes()), RGB)
    np.testing.assert_allclose(a, b)
    grey = to_network_input(*decode_raw("rgb8", 28, 28, 84, rgb.tobytes()), GREY)
    assert grey.shape == (1, 1, 28, 28)


def test_compressed_png_and_jpeg_and_resize():
    image = np.tile(np.arange(64, dtype=np.uint8)[None, :], (48, 1)) * 4
    ok, png = cv2.imencode(".png", image)
    decoded, order = decode_compressed("png", png.tobytes())
    np.testing.assert_array_equal(decoded[..., 0], image)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    decoded, order = decode_compressed("jpeg", jpeg.tobytes())
    assert order == "bgr" and decoded.shape == (48, 64, 3)
    assert to_network_input(decoded, order, GREY).shape == (1, 1, 28, 28)


@pytest.mark.parametrize("args, kind", [
    (("yuv422", 4, 4, 8, bytes(32)), "encoding"),
    (("mono8", 4, 4, 3, bytes(16)), "size"),  # step shorter than a row
    (("mono8", 0, 4, 4, bytes(16)), "size"),
    (("mono8", 4, 4, 4, bytes(20)), "size"),  # more data than step x height: wrong width/height/step
    (("rgb8", 4, 4, 4, bytes(16)), "size"),  # a mono-sized rgb frame
    (("mono8", 4, 4, 4, b""), "empty"),
    (("rgb8", 4, 4, 12, bytes(40)), "truncated"),
])
def test_broken_raw_frames(args, kind):
    with pytest.raises(ImageDecodeError) as err:
        decode_raw(*args)
    assert err.value.kind == kind


def test_broken_compressed_frames():
    with pytest.raises(ImageDecodeError) as err:
        decode_compressed("jpeg", b"\xff\xd8\xff\xe0 not really a jpeg")
    assert err.value.kind == "compressed"
    with pytest.raises(ImageDecodeError) as err:
        decode_compressed("png", b"")
    assert err.value.kind == "empty"
