"""The patrol: drives past every panel of the arena in turn, stops in front of each one, looks at it
for the arena's dwell time, and goes on (lap after lap). Waypoints on odometry; no ROS here."""
from __future__ import annotations

import math

from .arena import Arena

POSITION_TOLERANCE_M = 0.02
HEADING_TOLERANCE_RAD = 0.02
TURN_BEFORE_DRIVING_RAD = 0.25  # turn on the spot first when the goal is further off the heading
GAIN = 2.0


def wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


class Patrol:
    def __init__(self, arena: Arena):
        self.arena = arena
        # nearest panel first, then round the ring in the order of the arena file
        x, y, _ = arena.robot.start
        poses = [arena.view_pose(i) for i in range(len(arena.objects))]
        first = min(range(len(poses)), key=lambda i: math.hypot(poses[i][0] - x, poses[i][1] - y))
        self.order = [(first + k) % len(poses) for k in range(len(poses))]
        self.poses = poses
        self.step = 0  # waypoints reached so far
        self.phase = "drive"  # drive -> face -> dwell -> next waypoint
        self.dwell_until = 0.0

    @property
    def target(self) -> int:
        """The object the patrol is heading for (or looking at)."""
        return self.order[self.step % len(self.order)]

    @property
    def laps(self) -> int:
        return self.step // len(self.order)

    def command(self, time_s: float, x: float, y: float, yaw: float) -> tuple:
        """(forward speed, turn rate) from the odometry pose at time_s."""
        r = self.arena.robot
        gx, gy, gyaw = self.poses[self.target]
        if self.phase == "drive":
            distance = math.hypot(gx - x, gy - y)
            if distance > POSITION_TOLERANCE_M:
                error = wrap(math.atan2(gy - y, gx - x) - yaw)
                turn = _clip(GAIN * error, r.max_turn_rate)
                speed = 0.0 if abs(error) > TURN_BEFORE_DRIVING_RAD else min(r.max_speed, GAIN * distance)
                return speed, turn
            self.phase = "face"
        if self.phase == "face":
            error = wrap(gyaw - yaw)
            if abs(error) > HEADING_TOLERANCE_RAD:
                return 0.0, _clip(GAIN * error, r.max_turn_rate)
            self.phase, self.dwell_until = "dwell", time_s + self.arena.dwell_s
        if time_s < self.dwell_until:
            return 0.0, 0.0
        self.step += 1
        self.phase = "drive"
        return 0.0, 0.0


def _clip(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))
