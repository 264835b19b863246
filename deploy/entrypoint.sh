#!/usr/bin/env bash
# Container entrypoint: fetch the weights on first start (kept in the mounted volume), report the host, start the app.
# KNEESCOPE_DRY_RUN=1 prints the commands instead of running them (used by the tests).
set -euo pipefail

run() {
	if [[ "${KNEESCOPE_DRY_RUN:-0}" == "1" ]]; then
		echo "+ $*"
	else
		"$@"
	fi
}

: "${KNEESCOPE_WEIGHTS_DIR:=/weights}"
: "${KNEESCOPE_WORKDIR:=/work}"
: "${KNEESCOPE_MODEL:=fullres}"
export KNEESCOPE_WEIGHTS_DIR KNEESCOPE_WORKDIR HF_HOME="${HF_HOME:-$KNEESCOPE_WEIGHTS_DIR/hf}"

# Weights: downloaded once into the volume, then reused offline. No hub access is not fatal: the app falls back to
# the bundled demo model and says so on the page.
if ! run python -m pipeline weights download "$KNEESCOPE_MODEL"; then
	echo "warning: could not fetch the '$KNEESCOPE_MODEL' weights; the app will offer the demo model only" >&2
fi
run python -m pipeline doctor --workdir "$KNEESCOPE_WORKDIR" || true

# Inside the compose network Caddy reaches the app by name, so bind all interfaces of the container; the port is
# not published on the host (see deploy/compose.yml).
exec_cmd=(python app.py --host "${KNEESCOPE_HOST:-0.0.0.0}" --port "${KNEESCOPE_PORT:-7860}" --workdir "$KNEESCOPE_WORKDIR")
if [[ -n "${KNEESCOPE_ROOT_PATH:-}" ]]; then
	exec_cmd+=(--root-path "$KNEESCOPE_ROOT_PATH")
fi
if [[ "${KNEESCOPE_DRY_RUN:-0}" == "1" ]]; then
	echo "+ exec ${exec_cmd[*]}"
else
	exec "${exec_cmd[@]}"
fi
