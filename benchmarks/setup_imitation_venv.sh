#!/usr/bin/env bash
# Create (or refresh) the isolated virtualenv used by benchmarks/imitation_baseline.py.
#
# Usage:  bash benchmarks/setup_imitation_venv.sh
#
# The `imitation` library (HumanCompatibleAI/imitation) pins gymnasium~=0.29,
# stable-baselines3~=2.2.1 and seals~=0.2.1, which clash with our own
# environment, so it lives in its own venv at benchmarks/.venv-imitation.
# Idempotent: re-running reuses the venv and pip skips what is already satisfied.
# Needs network access to PyPI only (plus the local torch wheel, see below).
#
# Environment overrides:
#   PYTHON        interpreter used to create the venv   (default: python3)
#   TORCH_SPEC    torch requirement installed first      (default: torch==2.13.0)
#   VENV_DIR      where to create the venv               (default: benchmarks/.venv-imitation)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV_DIR:-$here/.venv-imitation}"
python="${PYTHON:-python3}"
# Pinned so pip picks the local CPU wheel instead of pulling a multi-GB CUDA build.
torch_spec="${TORCH_SPEC:-torch==2.13.0}"

# Versions known to work together (imitation 1.0.1 is the latest release).
imitation_reqs=(
  "imitation==1.0.1"
  "seals==0.2.1"
  "gymnasium[classic-control,mujoco]==0.29.1"
  # MuJoCo for Hopper-v4 / seals/Hopper-v1 (continuous_vs_imitation.py); gymnasium 0.29's MuJoCo envs
  # predate mujoco 3.2 (3.1.6 checked: Hopper-v4 and seals/Hopper-v1 make, reset and step).
  "mujoco<3.2"
  "stable-baselines3==2.2.1"
  # gymnasium 0.29 / sb3 2.2 predate NumPy 2 (np.bool8 etc. are gone there).
  "numpy<2"
)

if [[ ! -x "$venv/bin/python" ]]; then
  echo ">> creating venv at $venv"
  "$python" -m venv "$venv"
else
  echo ">> reusing venv at $venv"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# torch first, on its own, so the resolver never chooses a different (CUDA) build.
echo ">> installing $torch_spec"
"${pip[@]}" install "$torch_spec"

echo ">> installing imitation and its pinned dependencies"
# Re-state the torch pin so the second resolve cannot upgrade/replace it.
"${pip[@]}" install "$torch_spec" "${imitation_reqs[@]}"

echo ">> installed versions"
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import sys

print(f"python {sys.version.split()[0]}")
for name in ("imitation", "seals", "gymnasium", "stable-baselines3", "torch", "numpy", "scipy", "mujoco"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} MISSING")
        sys.exit(1)
# Import check: fails loudly if the stack is broken rather than at benchmark time.
import imitation.algorithms.mce_irl  # noqa: E402,F401
print("import imitation.algorithms.mce_irl: ok")
import gymnasium as gym  # noqa: E402
import seals  # noqa: E402,F401

for env_id in ("Hopper-v4", "seals/Hopper-v1"):
    env = gym.make(env_id)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
print("make / step Hopper-v4, seals/Hopper-v1: ok")
EOF
