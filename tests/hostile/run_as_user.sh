#!/usr/bin/env bash
# Run the hostile suite as an unprivileged user: no root, no cgroups, user namespaces only.
# As root, this creates the user `grader-ci` (if missing), copies the project into a folder it
# owns, and runs there with a venv of its own. Usage: bash tests/hostile/run_as_user.sh [USER]
set -euo pipefail
user="${1:-grader-ci}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
if [ "$(id -u)" != 0 ]; then
  echo "run_as_user.sh: already unprivileged; running the suite directly"
  cd "$src" && exec .venv/bin/python -m pytest tests/hostile -q -p no:cacheprovider
fi
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
work="$(mktemp -d /tmp/grader-unprivileged.XXXXXX)"
tar -C "$src" --exclude=./.venv --exclude='*/__pycache__' --exclude=./examples/grades -cf - . | tar -C "$work" -xf -
chown -R "$user:" "$work"
# The interpreter that built the root venv may sit under /root (unreadable to others): use the
# system's Python 3.11 for the user's own venv.
python=/usr/bin/python3.11
[ -x "$python" ] || python="$(command -v python3)"
status=0
su "$user" -s /bin/bash -c "cd '$work' && '$python' -m venv .venv && .venv/bin/pip install -q -e '.[test]' \
  && .venv/bin/python -m pytest tests/hostile -q -p no:cacheprovider" || status=$?
rm -rf "$work"
exit $status
