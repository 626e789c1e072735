"""vision_msgs where the ROS install has it: results stamped with their frame's header.

vision_msgs is not on PyPI (a ROS install ships it, `ros-<distro>-vision-msgs`); without it the nodes
publish their std_msgs topics only. VISION_MSGS_MISSING says why, or is None.
"""
from __future__ import annotations

try:
    from vision_msgs.msg import Classification, ObjectHypothesis
    VISION_MSGS_MISSING = None
except ImportError as exc:
    VISION_MSGS_MISSING = f"vision_msgs is not importable ({exc})"


def classification(header, class_names, scores) -> "Classification":
    """Every class with its score, under the frame's header."""
    return Classification(header=header, results=[
        ObjectHypothesis(class_id=str(class_names[i]) if i < len(class_names) else str(i), score=float(score))
        for i, score in enumerate(scores)])
