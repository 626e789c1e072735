"""The arena in MuJoCo, headless on the CPU: the Gazebo world's twin, built from the same description.

The base moves with planar velocity actuators following the differential drive's kinematics (forward
speed and turn rate, as Gazebo's diff-drive system takes them on cmd_vel); the wheels are drawn, not
simulated. Panels glow with their image (emission 1) in a dark room, so that the camera sees what the
dataset shows: a light object on black. The battery drains with the base load, with motion (the
arena's power per speed) and with the compute energy the agent reports.
"""
from __future__ import annotations

import math
import os
from typing import Optional

os.environ.setdefault("MUJOCO_GL", "osmesa")  # before mujoco is imported: software GL, no display needed
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from .arena import DARK_RGBA as DARK, Arena, texture_png  # noqa: E402

PHYSICS_DT = 0.002


def mjcf(arena: Arena) -> tuple:
    """(MJCF text, assets {file name: PNG bytes}) of the arena."""
    assets = {arena.texture_name(i): texture_png(image) for i, image in enumerate(arena.object_images())}
    cam, robot = arena.camera, arena.robot
    fovy = math.degrees(2 * math.atan(math.tan(cam.hfov / 2) * cam.height / cam.width))
    half = arena.panel_size / 2
    length, width, height = robot.body
    body_z = robot.wheel_radius + height / 2
    textures = "\n".join(
        f'    <texture name="object_{i:02d}" type="2d" file="{arena.texture_name(i)}"/>\n'
        f'    <material name="object_{i:02d}" texture="object_{i:02d}" emission="1" specular="0" shininess="0"/>'
        for i in range(len(arena.objects)))
    panels = "\n".join(
        f'    <body name="object_{i:02d}" pos="{o.x:.4f} {o.y:.4f} {arena.panel_height}" '
        f'xyaxes="{-o.normal[1]:.6f} {o.normal[0]:.6f} 0 0 0 1">\n'
        f'      <geom type="plane" size="{half} {half} 0.1" material="object_{i:02d}"/>\n    </body>'
        for i, o in enumerate(arena.objects))
    sx, sy = arena.room[0] / 2, arena.room[1] / 2
    walls = "\n".join(
        f'    <geom name="wall_{n}" type="box" pos="{x} {y} {arena.wall_height / 2}" '
        f'size="{hx} {hy} {arena.wall_height / 2}" rgba="{DARK}"/>'
        for n, (x, y, hx, hy) in enumerate([(sx + 0.05, 0, 0.05, sy), (-sx - 0.05, 0, 0.05, sy),
                                             (0, sy + 0.05, sx, 0.05), (0, -sy - 0.05, sx, 0.05)]))
    wheels = "\n".join(
        f'      <geom name="wheel_{side}" type="cylinder" pos="0 {sign * robot.wheel_separation / 2} '
        f'{robot.wheel_radius - body_z}" euler="90 0 0" size="{robot.wheel_radius} 0.015" rgba="0.1 0.1 0.1 1"/>'
        for side, sign in (("left", 1), ("right", -1)))
    xml = f"""<mujoco model="{arena.name}">
  <option timestep="{PHYSICS_DT}" gravity="0 0 0"/>
  <default><geom contype="0" conaffinity="0"/></default>
  <visual>
    <global offwidth="{cam.width}" offheight="{cam.height}"/>
    <headlight ambient="0.1 0.1 0.1" diffuse="0.2 0.2 0.2" specular="0 0 0"/>
  </visual>
  <asset>
{textures}
  </asset>
  <worldbody>
    <geom name="floor" type="plane" size="{sx} {sy} 0.1" rgba="{DARK}"/>
{walls}
{panels}
    <body name="robot" pos="0 0 {body_z}">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <joint name="yaw" type="hinge" axis="0 0 1"/>
      <geom name="chassis" type="box" size="{length / 2} {width / 2} {height / 2}" mass="2" rgba="0.3 0.3 0.35 1"/>
{wheels}
      <camera name="camera" pos="{cam.forward} 0 {arena.panel_height - body_z}" xyaxes="0 -1 0 0 0 1" fovy="{fovy:.4f}"/>
    </body>
  </worldbody>
  <actuator>
    <velocity name="vx" joint="x" kv="100"/>
    <velocity name="vy" joint="y" kv="100"/>
    <velocity name="vyaw" joint="yaw" kv="5"/>
  </actuator>
</mujoco>
"""
    return xml, assets


class MujocoTwin:
    """The simulated robot in its arena: command(), step(), render(), ground_truth(), its battery."""

    def __init__(self, arena: Arena):
        self.arena = arena
        xml, assets = mjcf(arena)
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self.data = mujoco.MjData(self.model)
        self.data.qpos[:3] = arena.robot.start
        mujoco.mj_forward(self.model, self.data)
        self.renderer = mujoco.Renderer(self.model, arena.camera.height, arena.camera.width)
        self.battery = arena.battery.full()
        self.drained_j = {"base": 0.0, "motion": 0.0, "compute": 0.0}  # by cause, since the start
        self._compute_pending_j = 0.0
        self._command = (0.0, 0.0)

    @property
    def time_s(self) -> float:
        return float(self.data.time)

    @property
    def pose(self) -> tuple:
        x, y, yaw = self.data.qpos[:3]
        return float(x), float(y), float(yaw)

    @property
    def velocity(self) -> tuple:
        """(forward speed [m/s], turn rate [rad/s]) of the base."""
        vx, vy, turn = self.data.qvel[:3]
        yaw = self.data.qpos[2]
        return float(vx * math.cos(yaw) + vy * math.sin(yaw)), float(turn)

    def command(self, speed: float, turn_rate: float) -> None:
        """cmd_vel: forward speed and turn rate, clipped to the robot's limits (NaN counts as 0)."""
        r = self.arena.robot
        speed = 0.0 if not math.isfinite(speed) else float(np.clip(speed, -r.max_speed, r.max_speed))
        turn = 0.0 if not math.isfinite(turn_rate) else float(np.clip(turn_rate, -r.max_turn_rate, r.max_turn_rate))
        self._command = (speed, turn)

    def add_compute_energy(self, joules: float) -> None:
        """Energy the agent reports for an inference: the battery pays it on the next step."""
        if math.isfinite(joules) and joules > 0:
            self._compute_pending_j += joules

    def step(self, seconds: float) -> None:
        """Advance physics and the battery by `seconds` of simulated time. An empty battery stops the base."""
        steps = max(1, round(seconds / PHYSICS_DT))
        speed, turn = self._command if self.battery.energy_j > 0 else (0.0, 0.0)
        motion_j = 0.0
        for _ in range(steps):
            yaw = self.data.qpos[2]
            self.data.ctrl[:] = (speed * math.cos(yaw), speed * math.sin(yaw), turn)
            mujoco.mj_step(self.model, self.data)
            motion_j += self.arena.battery.motion_power_w(*self.velocity) * PHYSICS_DT
        seconds = steps * PHYSICS_DT
        self.battery.step(seconds, motion_j + self._compute_pending_j)
        self.drained_j["base"] += self.battery.base_load_w * seconds
        self.drained_j["motion"] += motion_j
        self.drained_j["compute"] += self._compute_pending_j
        self._compute_pending_j = 0.0

    def render(self) -> np.ndarray:
        """The camera's view, (height, width, 3) uint8 RGB."""
        self.renderer.update_scene(self.data, camera="camera")
        return self.renderer.render()

    def object_in_view(self) -> Optional[int]:
        """Index of the object filling the view, or None."""
        return self.arena.object_in_view(*self.pose)

    def ground_truth(self) -> Optional[int]:
        """The dataset class of the object filling the view, or None."""
        index = self.object_in_view()
        return None if index is None else self.arena.objects[index].class_id

    def close(self) -> None:
        """Close the renderer now: OSMesa's clean-up at interpreter exit prints a traceback."""
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
