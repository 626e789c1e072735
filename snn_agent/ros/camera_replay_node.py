"""The `camera_replay` node: dataset test images as a camera stream, with their labels.

Publishes `image` (sensor_msgs/Image, mono8 or rgb8, stamped) and then its class on `~/ground_truth`
(std_msgs/Int32, which has no header): the agent pairs each label with the newest image stamped
before the label arrived (see LabelPairing in agent_node.py). Where vision_msgs is importable, the
class also goes out on `~/ground_truth_stamped` (vision_msgs/Classification under the image's own
header), which any consumer pairs with its frame by stamp.
"""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Int32

from ..data import datasets
from ..graph import resolve_path
from .spin import spin_node
from .vision import VISION_MSGS_MISSING, classification


class CameraReplayNode(Node):
    def __init__(self, **kwargs):
        super().__init__("camera_replay", **kwargs)
        read_only = {"read_only": True}
        self.declare_parameter("dataset", "", ParameterDescriptor(
            description="fashion-mnist | digits | file.npz | folder; empty: fashion-mnist if installed, else digits",
            **read_only))
        self.declare_parameter("rate_hz", 30.0, ParameterDescriptor(
            description="[Hz] frames per second", floating_point_range=[FloatingPointRange(
                from_value=0.1, to_value=10000.0, step=0.0)], **read_only))
        self.declare_parameter("loop", True, ParameterDescriptor(description="start again after the last image"))
        self.declare_parameter("limit", 0, ParameterDescriptor(
            description="images to publish, 0 = all",
            integer_range=[IntegerRange(from_value=0, to_value=10**7, step=1)], **read_only))
        spec = self.get_parameter("dataset").value or datasets.default_dataset_name()
        if spec == "digits" and not self.get_parameter("dataset").value:
            self.get_logger().warning("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): "
                                      "replaying scikit-learn's digits, which a Fashion-MNIST model such as "
                                      "the bundled one does not know: expect a low accuracy")
        data = datasets.load(resolve_path(spec) if spec not in datasets.NAMED_DATASETS else spec, "test")
        limit = self.get_parameter("limit").value
        self.data = data.subset(limit) if limit else data
        if self.data.images.dtype != "uint8":
            raise ValueError(f"{spec}: camera_replay needs uint8 images")
        self.index = 0
        self.pub_image = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.pub_truth = self.create_publisher(Int32, "~/ground_truth", 10)
        self.pub_truth_stamped = None
        if VISION_MSGS_MISSING:
            self.get_logger().info(f"{VISION_MSGS_MISSING}: ~/ground_truth_stamped is not published")
        else:
            from vision_msgs.msg import Classification
            self.pub_truth_stamped = self.create_publisher(Classification, "~/ground_truth_stamped", 10)
        self.create_timer(1.0 / self.get_parameter("rate_hz").value, self._publish)
        self.get_logger().info(f"replaying {len(self.data)} images of {self.data.name} at "
                               f"{self.get_parameter('rate_hz').value} Hz")

    def _publish(self) -> None:
        if self.index >= len(self.data):
            if not self.get_parameter("loop").value:
                return
            self.index = 0
        image = self.data.images[self.index]
        height, width, channels = image.shape
        msg = Image(height=height, width=width, encoding="mono8" if channels == 1 else "rgb8",
                    is_bigendian=0, step=width * channels, data=image.tobytes())
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "camera"
        self.pub_image.publish(msg)
        label = int(self.data.labels[self.index])
        self.pub_truth.publish(Int32(data=label))
        if self.pub_truth_stamped is not None:
            scores = [1.0 if i == label else 0.0 for i in range(len(self.data.class_names))]
            self.pub_truth_stamped.publish(classification(msg.header, self.data.class_names, scores))
        self.index += 1


def main(args=None) -> None:
    spin_node(CameraReplayNode, args)
