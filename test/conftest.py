"""Test session set-up: a ROS_DOMAIN_ID of its own (before rclpy loads), shared helpers."""
import os
import random

# A unique DDS domain per test session, so parallel sessions (and a running robot) never cross.
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 101))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_SNN = os.path.join(ROOT, "models", "fashion_cnn_snn")


@pytest.fixture(scope="session")
def rclpy_context():
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()
