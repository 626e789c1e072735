"""The arena as a Gazebo (Harmonic) world: SDF 1.9, from the same description as the MuJoCo twin.

    python -m snn_agent.sim.gazebo [--arena worlds/arena.yaml] [--out worlds/]

writes worlds/<name>.sdf and worlds/textures/ (each object's image, from the installed dataset).
The Gazebo topics are named here once; config/gz_bridge.yaml maps them to the ROS topics the agent,
the patrol and the MuJoCo `sim` node use (test/test_sim_worlds.py holds the three together).
"""
from __future__ import annotations

import argparse
import os
from xml.sax.saxutils import escape

from .arena import DARK_RGBA as DARK, Arena, load_arena, write_textures

ROBOT = "robot"
BATTERY = "main"
CAMERA_TOPIC = f"/model/{ROBOT}/camera/image"
CMD_VEL_TOPIC = f"/model/{ROBOT}/cmd_vel"
ODOMETRY_TOPIC = f"/model/{ROBOT}/odometry"
BATTERY_STATE_TOPIC = f"/model/{ROBOT}/battery/{BATTERY}/state"  # fixed by LinearBatteryPlugin
# LinearBatteryPlugin starts draining on the first message here: the agent's first inference. It
# does not read the message: the energy in it cannot reach the battery (docs/simulation.md).
COMPUTE_TOPIC = f"/model/{ROBOT}/battery/{BATTERY}/compute"
CLOCK_TOPIC = "/clock"
TEXTURES = "textures"


def world_sdf(arena: Arena) -> str:
    sx, sy = arena.room[0] / 2, arena.room[1] / 2
    h = arena.wall_height
    walls = "".join(_box(f"wall_{n}", (x, y, h / 2), (lx, ly, h), DARK, collide=True)
                    for n, (x, y, lx, ly) in enumerate([(sx + 0.05, 0, 0.1, 2 * sy), (-sx - 0.05, 0, 0.1, 2 * sy),
                                                        (0, sy + 0.05, 2 * sx, 0.1), (0, -sy - 0.05, 2 * sx, 0.1)]))
    panels = "".join(_panel(arena, i) for i in range(len(arena.objects)))
    return f"""<?xml version="1.0"?>
<!-- Generated from worlds/arena.yaml by `python -m snn_agent.sim.gazebo`: edit the arena file, not this. -->
<sdf version="1.9">
  <world name="{escape(arena.name)}">
    <physics name="2ms" type="ignored">
      <max_step_size>0.002</max_step_size>
      <real_time_factor>1.0</real_time_factor>
    </physics>
    <plugin filename="gz-sim-physics-system" name="gz::sim::systems::Physics"/>
    <plugin filename="gz-sim-user-commands-system" name="gz::sim::systems::UserCommands"/>
    <plugin filename="gz-sim-scene-broadcaster-system" name="gz::sim::systems::SceneBroadcaster"/>
    <plugin filename="gz-sim-sensors-system" name="gz::sim::systems::Sensors">
      <render_engine>ogre2</render_engine>
    </plugin>
    <scene>
      <ambient>0.1 0.1 0.1 1</ambient>
      <background>0 0 0 1</background>
      <shadows>false</shadows>
    </scene>
    <light type="directional" name="sun">
      <pose>0 0 10 0 0 0</pose>
      <diffuse>0.2 0.2 0.2 1</diffuse>
      <specular>0 0 0 1</specular>
      <direction>-0.3 0.2 -1</direction>
      <cast_shadows>false</cast_shadows>
    </light>
    <model name="ground">
      <static>true</static>
      <link name="link">
        <collision name="collision">
          <geometry><plane><normal>0 0 1</normal><size>{2 * sx} {2 * sy}</size></plane></geometry>
        </collision>
        <visual name="visual">
          <geometry><plane><normal>0 0 1</normal><size>{2 * sx} {2 * sy}</size></plane></geometry>
          <material><ambient>{DARK}</ambient><diffuse>{DARK}</diffuse><specular>0 0 0 1</specular></material>
        </visual>
      </link>
    </model>
    <model name="walls">
      <static>true</static>
      <link name="link">{walls}
      </link>
    </model>{panels}
{_robot(arena)}
  </world>
</sdf>
"""


def _box(name: str, xyz: tuple, size: tuple, rgba: str, collide: bool = False) -> str:
    geometry = f"<geometry><box><size>{size[0]} {size[1]} {size[2]}</size></box></geometry>"
    collision = f"""
        <collision name="{name}_collision">
          <pose>{xyz[0]} {xyz[1]} {xyz[2]} 0 0 0</pose>
          {geometry}
        </collision>""" if collide else ""
    return f"""{collision}
        <visual name="{name}">
          <pose>{xyz[0]} {xyz[1]} {xyz[2]} 0 0 0</pose>
          {geometry}
          <material><ambient>{rgba}</ambient><diffuse>{rgba}</diffuse><specular>0 0 0 1</specular></material>
        </visual>"""


def _panel(arena: Arena, index: int) -> str:
    obj = arena.objects[index]
    texture = f"{TEXTURES}/{arena.texture_name(index)}"
    s = arena.panel_size
    # a plane facing the model's +x, turned to face where the arena says; it glows with its image
    # (emissive map), as the MuJoCo twin's panels do, so that lighting does not change what is seen
    return f"""
    <model name="object_{index:02d}">
      <!-- {escape(obj.class_name)}: {escape(arena.dataset)} test image {obj.image} -->
      <static>true</static>
      <pose>{obj.x:.4f} {obj.y:.4f} {arena.panel_height} 0 0 {obj.facing:.6f}</pose>
      <link name="link">
        <visual name="image">
          <geometry><plane><normal>1 0 0</normal><size>{s} {s}</size></plane></geometry>
          <material>
            <diffuse>1 1 1 1</diffuse>
            <emissive>1 1 1 1</emissive>
            <pbr><metal><albedo_map>{texture}</albedo_map><emissive_map>{texture}</emissive_map></metal></pbr>
          </material>
        </visual>
      </link>
    </model>"""


def _inertial(mass: float, ixx: float, iyy: float, izz: float) -> str:
    return (f"<inertial><mass>{mass}</mass><inertia><ixx>{ixx:.6g}</ixx><iyy>{iyy:.6g}</iyy><izz>{izz:.6g}</izz>"
            f"<ixy>0</ixy><ixz>0</ixz><iyz>0</iyz></inertia></inertial>")


def _robot(arena: Arena) -> str:
    r, cam, b = arena.robot, arena.camera, arena.battery
    length, width, height = r.body
    x, y, yaw = r.start
    body_z = r.wheel_radius + height / 2
    mass = 2.0
    chassis_inertia = _inertial(mass, mass * (width ** 2 + height ** 2) / 12, mass * (length ** 2 + height ** 2) / 12,
                                mass * (length ** 2 + width ** 2) / 12)
    wheels = "".join(f"""
      <link name="{side}_wheel">
        <pose>0 {sign * r.wheel_separation / 2} {r.wheel_radius} -1.5707963 0 0</pose>
        {_inertial(0.2, 1.4e-4, 1.4e-4, 2.5e-4)}
        <collision name="collision">
          <geometry><cylinder><radius>{r.wheel_radius}</radius><length>0.03</length></cylinder></geometry>
        </collision>
        <visual name="visual">
          <geometry><cylinder><radius>{r.wheel_radius}</radius><length>0.03</length></cylinder></geometry>
          <material><ambient>0.1 0.1 0.1 1</ambient><diffuse>0.1 0.1 0.1 1</diffuse></material>
        </visual>
      </link>
      <joint name="{side}_wheel_joint" type="revolute">
        <parent>chassis</parent>
        <child>{side}_wheel</child>
        <axis><xyz>0 0 1</xyz></axis>
      </joint>""" for side, sign in (("left", 1), ("right", -1)))
    return f"""    <model name="{ROBOT}">
      <pose>{x} {y} 0 0 0 {yaw:.6f}</pose>
      <link name="chassis">
        <pose>0 0 {body_z} 0 0 0</pose>
        {chassis_inertia}
        <collision name="collision">
          <geometry><box><size>{length} {width} {height}</size></box></geometry>
        </collision>
        <collision name="caster">
          <pose>{-length / 2 + r.wheel_radius / 2} 0 {-height / 2} 0 0 0</pose>
          <geometry><sphere><radius>{r.wheel_radius / 2}</radius></sphere></geometry>
          <surface><friction><ode><mu>0</mu><mu2>0</mu2></ode></friction></surface>
        </collision>
        <visual name="visual">
          <geometry><box><size>{length} {width} {height}</size></box></geometry>
          <material><ambient>0.3 0.3 0.35 1</ambient><diffuse>0.3 0.3 0.35 1</diffuse></material>
        </visual>
        <sensor name="camera" type="camera">
          <pose>{cam.forward} 0 {arena.panel_height - body_z} 0 0 0</pose>
          <always_on>true</always_on>
          <update_rate>{cam.rate_hz}</update_rate>
          <topic>{CAMERA_TOPIC}</topic>
          <camera>
            <horizontal_fov>{cam.hfov:.6f}</horizontal_fov>
            <image><width>{cam.width}</width><height>{cam.height}</height><format>R8G8B8</format></image>
            <clip><near>0.05</near><far>20</far></clip>
          </camera>
        </sensor>
      </link>{wheels}
      <plugin filename="gz-sim-diff-drive-system" name="gz::sim::systems::DiffDrive">
        <left_joint>left_wheel_joint</left_joint>
        <right_joint>right_wheel_joint</right_joint>
        <wheel_separation>{r.wheel_separation}</wheel_separation>
        <wheel_radius>{r.wheel_radius}</wheel_radius>
        <max_linear_velocity>{r.max_speed}</max_linear_velocity>
        <max_angular_velocity>{r.max_turn_rate}</max_angular_velocity>
        <topic>{CMD_VEL_TOPIC}</topic>
        <odom_topic>{ODOMETRY_TOPIC}</odom_topic>
        <frame_id>odom</frame_id>
        <child_frame_id>base_link</child_frame_id>
        <odom_publish_frequency>{2 * cam.rate_hz:g}</odom_publish_frequency>
      </plugin>
      <!-- snn_agent/sim/battery.py's LinearBattery: constant voltage (no slope, no resistance), the
           base load as power_load. Motion power and compute energy are not modelled here: see
           docs/simulation.md -->
      <plugin filename="gz-sim-linearbatteryplugin-system" name="gz::sim::systems::LinearBatteryPlugin">
        <battery_name>{BATTERY}</battery_name>
        <voltage>{b.voltage}</voltage>
        <open_circuit_voltage_constant_coef>{b.voltage}</open_circuit_voltage_constant_coef>
        <open_circuit_voltage_linear_coef>0</open_circuit_voltage_linear_coef>
        <initial_charge>{b.capacity_ah}</initial_charge>
        <capacity>{b.capacity_ah}</capacity>
        <resistance>0</resistance>
        <smooth_current_tau>1.0</smooth_current_tau>
        <power_load>{b.base_load_w}</power_load>
        <fix_issue_225>true</fix_issue_225>
        <start_on_motion>true</start_on_motion>
        <power_draining_topic>{COMPUTE_TOPIC}</power_draining_topic>
      </plugin>
    </model>"""


def write_world(arena: Arena, folder: str) -> str:
    """worlds/<name>.sdf and its textures under `folder`; returns the world's path."""
    os.makedirs(folder, exist_ok=True)
    write_textures(arena, os.path.join(folder, TEXTURES))
    path = os.path.join(folder, f"{arena.name}.sdf")
    with open(path, "w") as f:
        f.write(world_sdf(arena))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snn_agent.sim.gazebo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arena", default="", help="arena file (default: worlds/arena.yaml)")
    parser.add_argument("--out", default="worlds", help="folder for the world and its textures")
    args = parser.parse_args(argv)
    arena = load_arena(args.arena)
    path = write_world(arena, args.out)
    print(f"{path}: {len(arena.objects)} objects, textures in {os.path.join(args.out, TEXTURES)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
