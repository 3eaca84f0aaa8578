#!/usr/bin/env bash
# Ensures the system packages the test suite needs are installed.
#
# The tests start real servers (see pkg/testenv) instead of mocking them, so
# their binaries must exist on the machine. This script is run by `make test`
# on every invocation: it is silent and fast when everything is present, and
# installs what is missing (Debian/Ubuntu, as root) otherwise.
#
# To add a dependency, append a "binary:package" pair to DEPS below: the
# binary whose presence proves the package is installed, and the apt package
# that provides it.
set -euo pipefail

DEPS=(
	"initdb:postgresql"         # PostgreSQL server (initdb + postgres), pkg/testenv.Postgres
	"redis-server:redis-server" # pkg/testenv.Redis
	"node:nodejs"               # e2e/js: the official Northflank JS client
	"npm:npm"                   # installs e2e/js from its lockfile
	"chromium:chromium"         # e2e: the OAuth sign-in and consent pages in headless Chromium (/usr/bin/chromium)
	"podman:podman"             # pkg/testenv.Podman: the Docker-compatible API (podman system service) for pkg/runtime/docker
	"runc:runc"                 # the OCI runtime pkg/testenv.Podman configures (crun is not used)
	"busybox:busybox-static"    # pkg/testenv.BuildTestImage: the static /bin/busybox that the local test image is made of
	"bwrap:bubblewrap"          # pkg/runtime/process: the sandbox every process-driver workload runs in (also needed by `make run`)
	"slirp4netns:slirp4netns"   # pkg/runtime/process: a sandbox's private network (SLIPWAY_PROCESS_NETWORK=private, the default), as rootless Podman has it
	"setpriv:util-linux"        # pkg/runtime/process, as root: setpriv drops a workload to its own uid, prlimit caps its processes
	"prlimit:util-linux"
	"nsenter:util-linux"        # pkg/runtime/process: Exec enters a running workload's sandbox
	"git:git"                   # services/builds/builder clones with the git CLI; pkg/testenv/gitserver serves git-http-backend
	"sshd:openssh-server"       # pkg/testenv.StartSSHD: the ssh git server that ssh:// builds are tested against
	"ssh:openssh-client"        # services/builds/builder clones ssh:// repositories with ssh
	"git-lfs:git-lfs"           # services/builds/builder: Git LFS objects of a build's repository (git lfs pull)
	"/usr/lib/*/libnss_wrapper.so:libnss-wrapper" # services/builds/builder: ssh in a sandbox, whose user is not in /etc/passwd; services/addons/engine: initdb likewise
	"mariadbd:mariadb-server"   # services/addons/engine: MySQL/MariaDB addons (mariadb-install-db + mariadbd)
	"mariadb-dump:mariadb-client" # services/addons/engine: dump, restore and check of MySQL/MariaDB addons
	"mariadb-backup:mariadb-backup" # services/addons/engine: snapshots of MySQL/MariaDB addons
)

# Directories searched in addition to PATH: non-login root shells and sudo
# may lack the sbin dirs, and Debian's versioned PostgreSQL packages keep the
# server binaries off PATH entirely (pkg/testenv looks there too).
EXTRA_DIRS=(/usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin /usr/lib/postgresql/*/bin)

log() { echo "install-deps: $*" >&2; }

have() {
	local bin=$1 dir
	# An absolute path (a glob) is a file that must exist: a library.
	if [[ $bin == /* ]]; then
		compgen -G "$bin" >/dev/null
		return
	fi
	command -v "$bin" >/dev/null 2>&1 && return 0
	for dir in "${EXTRA_DIRS[@]}"; do
		[[ -x "$dir/$bin" ]] && return 0
	done
	return 1
}

missing_packages() {
	local dep bin pkg seen=" "
	for dep in "${DEPS[@]}"; do
		bin=${dep%%:*}
		pkg=${dep#*:}
		if ! have "$bin" && [[ $seen != *" $pkg "* ]]; then
			seen+="$pkg "
			echo "$pkg"
		fi
	done
}

mapfile -t missing < <(missing_packages)
((${#missing[@]} == 0)) && exit 0

if ((EUID != 0)); then
	log "missing packages: ${missing[*]}"
	log "install them with:"
	log "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
	log "(or re-run this script as root)"
	exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
	log "missing packages: ${missing[*]}, and apt-get is not available to install them;"
	log "install the equivalent packages with your system's package manager"
	exit 1
fi

# The packages are wanted for their binaries only: pkg/testenv starts its own
# throwaway servers. A policy-rc.d that denies everything (exit 101) stops
# the packages' maintainer scripts from starting system-wide daemons. Any
# pre-existing policy-rc.d is put back afterwards.
policy=/usr/sbin/policy-rc.d
backup=""
restore_policy() {
	rm -f "$policy"
	if [[ -n $backup ]]; then
		mv -f "$backup" "$policy"
	fi
}
if [[ -e $policy ]]; then
	backup=$(mktemp "${policy}.install-deps.XXXXXX")
	cp -p "$policy" "$backup"
fi
trap restore_policy EXIT
printf '#!/bin/sh\n# installed temporarily by scripts/install-deps.sh\nexit 101\n' >"$policy"
chmod 755 "$policy"

log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Verify: a package name that no longer provides the expected binary should
# fail here, not later in a confusing test failure.
mapfile -t still_missing < <(missing_packages)
if ((${#still_missing[@]} != 0)); then
	log "installed, but the expected binaries are still missing for: ${still_missing[*]}"
	exit 1
fi
log "done"
