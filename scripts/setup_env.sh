#!/usr/bin/env bash
# Creates .venv (Python 3.10), installs snn_agent and its dependencies, and the Fashion-MNIST data.
# Idempotent: a finished step is skipped on the next run (a stamp records what was installed).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.snn_agent_setup

say() { printf '[setup] %s\n' "$*"; }

find_python310() {
    local candidate
    for candidate in "${PYTHON310:-}" python3.10 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/"3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
        [ -n "$candidate" ] || continue
        if "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

# What decides the venv's content: requirement files, setup.py and the ROS source.
ros_mode="wheels (ros-kilted-* from PyPI)"
[ -n "${ROS_DISTRO:-}" ] && ros_mode="system ROS 2 $ROS_DISTRO (venv with system site packages)"
wanted=$(cat requirements.txt requirements-ros.txt setup.py | sha256sum | cut -c1-16)-${ROS_DISTRO:-wheels}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ] && [ -x "$VENV/bin/python" ]; then
    say "environment up to date ($VENV, ROS 2: $ros_mode)"
else
    PY=$(find_python310) || {
        echo "[setup] ERROR: Python 3.10 not found. lava-nc 0.10 and lava-dl 0.6 require Python >=3.10,<3.11." >&2
        echo "[setup] Install it (Debian/Ubuntu: apt-get install python3.10 python3.10-venv; or pyenv install 3.10)," >&2
        echo "[setup] or point PYTHON310=/path/to/python3.10 at one." >&2
        exit 1
    }
    say "Python 3.10: $PY"
    say "ROS 2: $ros_mode"
    rm -rf "$VENV"
    if [ -n "${ROS_DISTRO:-}" ]; then
        "$PY" -m venv --system-site-packages "$VENV"
    else
        "$PY" -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    reqs=(-r requirements.txt)
    [ -z "${ROS_DISTRO:-}" ] && reqs+=(-r requirements-ros.txt)
    say "installing dependencies (first time: a few minutes, ~6 GB with torch from lava-dl)..."
    "$VENV/bin/pip" install -q "${reqs[@]}" 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/pip" install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c 'import rclpy, lava.magma, openvino, onnx, cv2, numpy, numba, mujoco' 2>/dev/null || {
        echo "[setup] ERROR: the venv is incomplete (an import failed); see the pip output above" >&2; exit 1; }
    echo "$wanted" > "$STAMP"
    say "environment ready"
fi

FMNIST=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [ -f "$FMNIST" ]; then
    say "Fashion-MNIST: installed"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Fashion-MNIST (Debian package dataset-fashion-mnist)..."
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) \
        || say "could not install dataset-fashion-mnist: falling back to scikit-learn's digits"
else
    say "Fashion-MNIST absent and apt-get not usable (needs root): falling back to scikit-learn's digits"
fi

# The simulation: MuJoCo renders headless through OSMesa (libosmesa6); the Gazebo world is checked
# with the real SDF parser (libsdformat-dev, sdformat 12, compiled against with g++).
SIM_PACKAGES=(libosmesa6 libsdformat-dev g++)
missing_sim=()
for package in "${SIM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing_sim+=("$package")
done
if [ ${#missing_sim[@]} -eq 0 ]; then
    say "simulation packages: installed (${SIM_PACKAGES[*]})"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing_sim[*]} (MuJoCo's headless rendering, the strict SDF check)..."
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_sim[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_sim[@]}" >/dev/null 2>&1; }) \
        || say "could not install ${missing_sim[*]}: without libosmesa6 the MuJoCo twin cannot render (its tests fail); without libsdformat-dev and g++ the SDF check is skipped"
else
    say "${missing_sim[*]} absent and apt-get not usable (needs root): run apt-get install ${missing_sim[*]} as root;"
    say "  without libosmesa6 the MuJoCo twin cannot render, without libsdformat-dev and g++ the SDF check is skipped"
fi

# The Gazebo world's textures: each panel's image, written from the installed dataset (never downloaded)
say "arena: writing worlds/arena.sdf and its textures from worlds/arena.yaml..."
"$VENV/bin/python" -m snn_agent.sim.gazebo || say "could not write the arena's textures (is the dataset installed?)"

# numba caches the compiled kernels next to their source; the first compile takes ~15 s, which
# would otherwise land on the first frame of the first node or test that runs the CPU engine
say "CPU engine kernels: compiling (or loading from numba's cache)..."
"$VENV/bin/python" -c 'from snn_agent.engine.frame_kernels import warm_up; warm_up()'
