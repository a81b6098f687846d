#!/bin/sh
# Puts the Go sources this bench builds against into ./third_party/, at the
# versions memguard v0.22.5's go.mod names, so that `go build` runs offline
# (GOPROXY=off) through the `replace` lines of ./go.mod.
#
#   ./setup.sh                      # git clone from GitHub
#   MIRROR=/work/.mirror ./setup.sh # bare git dirs <MIRROR>/<owner>+<name>/repo
#
# Why v0.22.5: it is the newest memguard whose go.mod (go 1.18) and
# dependencies build with Debian bookworm's Go 1.19; v0.22.6 and v0.23.0 ask
# for Go 1.23.1. Their Open path differs from v0.22.5's only in where the
# Coffer takes its lock (README.md).
set -eu
cd "$(dirname "$0")"
rm -rf third_party
mkdir -p third_party

# dir owner/name tag
get() {
    dir=third_party/$1
    mkdir -p "$dir"
    if [ -n "${MIRROR:-}" ]; then
        git_dir=$MIRROR/$(echo "$2" | tr / +)/repo
        [ -d "$git_dir/.git" ] && git_dir=$git_dir/.git
        git --git-dir="$git_dir" archive "$3" | tar -x -C "$dir"
        commit=$(git --git-dir="$git_dir" rev-parse "$3^{commit}")
    else
        git clone --quiet "https://github.com/$2" "$dir"
        git -C "$dir" checkout --quiet "$3"
        commit=$(git -C "$dir" rev-parse HEAD)
    fi
    echo "$1: $2 $3 $commit"
}

get memguard awnumar/memguard v0.22.5
get memcall awnumar/memcall v0.2.0
get crypto golang/crypto v0.16.0
get sys golang/sys v0.15.0
# Named in memguard's go.mod (its examples use them), so the module graph
# needs their go.mod files; no package of theirs is built.
get frand lukechampine/frand v1.4.2
get chacha20 aead/chacha20 8b13a72661da
[ -f third_party/chacha20/go.mod ] ||
    printf 'module github.com/aead/chacha20\n\ngo 1.12\n' >third_party/chacha20/go.mod
