#!/bin/bash
# go.sh: run the Go toolchain this project needs (the go line of go.mod),
# installing it first when the machine has none or an older one. Debian
# bookworm's golang-go is 1.19, far too old, so the toolchain comes the way
# the go command itself fetches toolchains: as the golang.org/toolchain
# module from the Go module proxy, unpacked into the cache outside the tree.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
want=$(awk '$1 == "go" { print $2; exit }' "$top/go.mod")
cache=${LM_CACHE:-/var/cache/livemigrate}

# ok GO: is this go at least the version go.mod asks for?
ok() {
	local v
	v=$("$1" env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	[[ $(printf '%s\n%s\n' "$want" "$v" | sort -V | head -n1) == "$want" ]]
}

for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go "$cache/go/bin/go"; do
	if [[ -n $g && -x $g ]] && ok "$g"; then
		exec "$g" "$@"
	fi
done

# Install the newest patch release of the wanted minor version.
minor=$(echo "$want" | cut -d. -f1,2)
proxy=${GOPROXY:-https://proxy.golang.org}
proxy=${proxy%%,*}
command -v curl >/dev/null && command -v unzip >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl unzip ca-certificates >&2
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
ver=$(curl -fsS "$proxy/golang.org/toolchain/@v/list" | sed -n "s/^v0\.0\.1-go\($minor\.[0-9]*\)\.linux-$arch$/\1/p" | sort -V | tail -n1)
[[ -n $ver ]] || { echo "go.sh: no go$minor toolchain for linux-$arch on $proxy" >&2; exit 1; }
echo "go.sh: installing go$ver into $cache/go (from $proxy)" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsS -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$ver.linux-$arch.zip"
unzip -q "$tmp/go.zip" -d "$tmp/x"
mkdir -p "$cache"
rm -rf "$cache/go"
mv "$tmp/x/golang.org/toolchain@v0.0.1-go$ver.linux-$arch" "$cache/go"
chmod +x "$cache/go/bin/"* "$cache/go/pkg/tool/"*/* 2>/dev/null || true
exec "$cache/go/bin/go" "$@"
