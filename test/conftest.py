"""Test session set-up: a DDS graph of its own (before rclpy loads), shared fixtures."""
import os
import random

# A domain of its own per test session, and no discovery outside this process (the tests talk to
# their nodes in-process; `snn-agent run` under test is one process too): sessions running side by
# side, and any robot on the network, can never feed these nodes frames or read their results.
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 101))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "OFF"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# MuJoCo picks its GL backend when first imported: software rendering, whichever test imports it first
os.environ.setdefault("MUJOCO_GL", "osmesa")

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_SNN = os.path.join(ROOT, "models", "fashion_cnn_snn")


@pytest.fixture(scope="session")
def rclpy_context():
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()
