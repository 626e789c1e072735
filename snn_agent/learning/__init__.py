"""Learning on the robot: networks and rules that change their weights from what they see."""
