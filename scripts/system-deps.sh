#!/usr/bin/env bash
# The Debian packages a make target needs besides the venv, checked and installed.
#
#   scripts/system-deps.sh TARGET...    TARGET: venv, demo, test or bench
#
#   venv   python3 and python3-venv (to create .venv; $PYTHON if set, else python3)
#   demo   nothing more: the demo runs on SQLite and the broker bundled in the venv
#   test   postgresql (server binaries in /usr/lib/postgresql/15/bin, or $STRANGLER_PG_BIN),
#          kubectl 1.21+ (kubectl kustomize k8s/), chromium, prometheus (for promtool),
#          procps (pgrep)
#   native a C compiler and the Python headers (to compile the request path: make native)
#   bench  nginx and wrk
#
# When everything is there it makes no apt call at all.  When something is missing: as
# root it runs `apt-get update` once, then `apt-get install -y --no-install-recommends`
# for the missing packages; otherwise it fails and prints the exact command to run.
set -euo pipefail

PYTHON=${PYTHON:-python3}
PG_BIN=${STRANGLER_PG_BIN:-/usr/lib/postgresql/15/bin}
KUBECTL_MIN_MINOR=21

packages_for() {
  case "$1" in
    venv | demo) echo python3 python3-venv ;;
    test) echo postgresql kubectl chromium prometheus procps ;;
    native) echo gcc python3-dev ;;
    bench) echo nginx wrk ;;
    *)
      echo "system-deps: unknown target '$1' (known: venv, demo, test, native, bench)" >&2
      return 2
      ;;
  esac
}

# present PACKAGE: is what the project uses from PACKAGE on this machine?
present() {
  case "$1" in
    python3) command -v "$PYTHON" >/dev/null ;;
    python3-venv) "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ;;
    postgresql) [[ -n ${STRANGLER_TEST_PG_DSN:-} || -x $PG_BIN/initdb ]] ;;
    kubectl) command -v kubectl >/dev/null ;;
    chromium) [[ -x /usr/bin/chromium ]] ;;
    prometheus) command -v promtool >/dev/null ;;
    procps) command -v pgrep >/dev/null ;;
    gcc) command -v cc >/dev/null ;;
    python3-dev) "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ;;
    nginx) command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] ;;
    wrk) command -v wrk >/dev/null ;;
    *) return 1 ;;
  esac
}

# where PACKAGE: what was looked for, for messages.
where() {
  case "$1" in
    python3) echo "$PYTHON" ;;
    python3-venv) echo "$PYTHON's ensurepip module" ;;
    postgresql) echo "$PG_BIN/initdb (set STRANGLER_PG_BIN to another PostgreSQL's bin/)" ;;
    chromium) echo /usr/bin/chromium ;;
    prometheus) echo promtool ;;
    procps) echo pgrep ;;
    gcc) echo cc ;;
    python3-dev) echo "$PYTHON's Python.h" ;;
    *) echo "$1" ;;
  esac
}

kubectl_too_old() {
  local minor
  minor=$(kubectl version --client -o json 2>/dev/null |
    sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -n 1)
  [[ -n $minor && $minor -lt $KUBECTL_MIN_MINOR ]]
}

# offered PACKAGE: does an apt source offer a version of PACKAGE?
offered() {
  LC_ALL=C apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'
}

no_kubectl_package() {
  cat >&2 <<EOF
system-deps: no apt source here offers the kubectl package.  Debian's own archive has
only kubernetes-client (kubectl 1.20), too old to build k8s/ (1.$KUBECTL_MIN_MINOR or newer is needed).
Add the Kubernetes project's apt repository (the Kubernetes documentation, "Install and
Set Up kubectl on Linux", gives its two commands) and run this again, or put a kubectl
1.$KUBECTL_MIN_MINOR+ on PATH.
EOF
}

main() {
  (($#)) || set -- test
  local target pkg missing=() seen=" "
  for target in "$@"; do
    packages_for "$target" >/dev/null || return
  done
  for target in "$@"; do
    for pkg in $(packages_for "$target"); do
      [[ $seen == *" $pkg "* ]] && continue
      seen+="$pkg "
      present "$pkg" || missing+=("$pkg")
    done
  done
  if [[ $seen == *" kubectl "* ]] && present kubectl && kubectl_too_old; then
    echo "system-deps: $(command -v kubectl) is older than 1.$KUBECTL_MIN_MINOR;" \
      "k8s/ needs kubectl 1.$KUBECTL_MIN_MINOR or newer" >&2
    return 1
  fi
  if ((${#missing[@]} == 0)); then
    echo "system-deps ($*): all present"
    return 0
  fi
  local install=(apt-get install -y --no-install-recommends "${missing[@]}")
  if ((EUID != 0)); then
    echo "system-deps ($*): missing ${missing[*]}; run:" >&2
    echo "  sudo apt-get update && sudo ${install[*]}" >&2
    [[ " ${missing[*]} " != *" kubectl "* ]] || offered kubectl || no_kubectl_package
    return 1
  fi
  echo "system-deps ($*): installing ${missing[*]}"
  apt-get update -qq
  if [[ " ${missing[*]} " == *" kubectl "* ]] && ! offered kubectl; then
    no_kubectl_package
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive "${install[@]}"
  local still=()
  for pkg in "${missing[@]}"; do
    present "$pkg" || still+=("$(where "$pkg")")
  done
  if ((${#still[@]})); then
    printf 'system-deps: installed, but still not found: %s\n' "${still[@]}" >&2
    return 1
  fi
  echo "system-deps ($*): installed ${missing[*]}"
}

main "$@"
