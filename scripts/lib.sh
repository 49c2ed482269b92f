# shellcheck shell=bash
# Shared helpers for promoflow's scripts. Source it; do not run it.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Everything here is prefixed `pf_` (functions) or `PF_` (variables) so the
# sourcing script's own names never collide with it.

# Repository root: the parent of the folder holding this file, resolved to an
# absolute path so scripts work from any current directory.
PF_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export PF_REPO_ROOT

# Where cargo puts its output (honours CARGO_TARGET_DIR like cargo does).
PF_TARGET_DIR="${CARGO_TARGET_DIR:-$PF_REPO_ROOT/target}"
case "$PF_TARGET_DIR" in
    /*) ;;
    *) PF_TARGET_DIR="$PF_REPO_ROOT/$PF_TARGET_DIR" ;;
esac
export PF_TARGET_DIR

# Name of the calling script, for messages ("postgres", "test", ...).
PF_SCRIPT_NAME="$(basename "${0:-promoflow}")"

# pf_banner TEXT: a line that stands out in a long log.
pf_banner() {
    printf '\n==> %s\n' "$*"
}

# pf_info TEXT: a progress message, on stderr so stdout stays machine-readable.
pf_info() {
    printf '%s: %s\n' "$PF_SCRIPT_NAME" "$*" >&2
}

# pf_die TEXT: print an error on stderr and exit non-zero.
pf_die() {
    printf '%s: error: %s\n' "$PF_SCRIPT_NAME" "$*" >&2
    exit 1
}

# pf_have CMD: is CMD on PATH?
pf_have() {
    command -v "$1" >/dev/null 2>&1
}

# pf_python: print the name of a usable Python 3 interpreter.
pf_python() {
    local py
    for py in python3 python; do
        if pf_have "$py" && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
            printf '%s\n' "$py"
            return 0
        fi
    done
    return 1
}

# pf_free_port: print a TCP port on 127.0.0.1 that was free a moment ago.
# (The kernel picks it by binding port 0; a caller that can lose the race
# should retry with a new port.)
pf_free_port() {
    local py
    py="$(pf_python)" || pf_die "python3 is needed to pick a free port"
    "$py" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# pf_as_root CMD...: run CMD as root (directly, or through sudo when we are not
# root and sudo is there).
pf_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif pf_have sudo; then
        sudo -n "$@"
    else
        pf_die "need root (or sudo) to run: $*"
    fi
}

# pf_apt_install PACKAGE...: install Debian packages non-interactively.
pf_apt_install() {
    pf_have apt-get || pf_die "apt-get not found; install these by hand: $*"
    pf_info "installing with apt-get: $*"
    pf_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
        pf_die "apt-get update failed"
    pf_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null >&2 ||
        pf_die "apt-get install $* failed"
}
