# Shared by the real-client scripts in tests/*/run.sh (source it; it sets nothing on its own
# but `root`, `bin` and the functions below).
#   need CMD:PACKAGE ...   install Debian's PACKAGE for each missing CMD (apt-get; sudo if not root)
#   python_venv DIR MODULES       a Python venv in DIR/.venv with DIR/requirements.txt, unless MODULES import
#   node_modules DIR PKG   npm install in DIR unless DIR/node_modules/PKG is there
#   build_server           the debug pagi-server binary, as $bin
#   free_port, wait_port PORT
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing Debian's ${missing[*]}"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

python_venv() {
  local dir=$1 modules=$2
  if [ ! -x "$dir/.venv/bin/python" ] || ! "$dir/.venv/bin/python" -c "import $modules" 2>/dev/null; then
    python3 -m venv "$dir/.venv"
    "$dir/.venv/bin/pip" install -q -r "$dir/requirements.txt"
  fi
}

node_modules() {
  [ -d "$1/node_modules/$2" ] || (cd "$1" && npm install --no-audit --no-fund --silent)
}

build_server() {
  cargo build -q -p pagi-cli --manifest-path "$root/Cargo.toml"
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/pagi-server"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
}
