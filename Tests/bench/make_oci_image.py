#!/usr/bin/env python3
"""Writes an OCI image layout for tests and benchmarks, with no network.

  make_oci_image.py OUT_DIR --tag TAG [--layers N] [--layer-size BYTES]
                    [--seed S] [--multiarch]

(For Docker media types push with `skopeo copy --format v2s2`: skopeo's
OCI-layout reader accepts only OCI media types.)

Layers are tar+gzip (gzip level 0: stored blocks, made at memory speed)
holding one file of pseudo-random bytes, streamed to disk at any size. --multiarch writes an
image index with linux/amd64 and linux/arm64/v8 children.
"""
import argparse, gzip, hashlib, json, os, random, tarfile

def blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    p = os.path.join(out, "blobs", "sha256", d)
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
    return "sha256:" + d, len(data)

class RandomReader:
    """Pseudo-random bytes on demand, so a layer of any size streams to disk."""
    def __init__(self, size, rng):
        self.left, self.rng = size, rng
    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)

class HashingWriter:
    """Hashes what tarfile writes (the uncompressed tar: its diff_id)."""
    def __init__(self, inner):
        self.inner, self.h = inner, hashlib.sha256()
    def write(self, b):
        self.h.update(b)
        return self.inner.write(b)
    def tell(self):
        return self.inner.tell()

def layer(out, size, rng):
    """Writes a one-file tar+gzip layer straight into blobs/; returns
    (digest, size, diff_id). gzip level 0 (stored blocks) is valid gzip at
    memory speed, and skopeo pushes it as it is."""
    tmp = os.path.join(out, "blobs", "sha256", ".layer.tmp")
    with gzip.GzipFile(tmp, mode="wb", compresslevel=0, mtime=0) as gz:
        hw = HashingWriter(gz)
        with tarfile.TarFile(fileobj=hw, mode="w", format=tarfile.USTAR_FORMAT, copybufsize=4 << 20) as t:
            info = tarfile.TarInfo("data/blob.bin")
            info.size = size
            info.mtime = 0
            t.addfile(info, RandomReader(size, rng))
    diff_id = "sha256:" + hw.h.hexdigest()
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(4 << 20), b""):
            h.update(chunk)
    d = h.hexdigest()
    os.replace(tmp, os.path.join(out, "blobs", "sha256", d))
    return "sha256:" + d, os.path.getsize(os.path.join(out, "blobs", "sha256", d)), diff_id

def image(out, args, rng, arch, variant=None):
    mt_layer = "application/vnd.oci.image.layer.v1.tar+gzip"
    layers = []
    diff_ids = []
    for i in range(args.layers):
        d, n, diff_id = layer(out, args.layer_size if i == 0 else max(1024, args.layer_size // (i + 4)), rng)
        layers.append({"mediaType": mt_layer, "digest": d, "size": n})
        diff_ids.append(diff_id)
    platform = {"architecture": arch, "os": "linux"}
    if variant:
        platform["variant"] = variant
    config = dict(platform, created="2026-01-01T00:00:00Z",
                  config=dict({"Cmd": ["/bin/true"]}, **({"Labels": dict(l.split("=", 1) for l in args.label),
                                                           "Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/usr/bin", "MODE=console"]}
                                                          if args.label else {})),
                  rootfs={"type": "layers", "diff_ids": diff_ids})
    cd, cn = blob(out, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": layers,
    }
    md, mn = blob(out, json.dumps(manifest, indent=2).encode())
    return {"mediaType": manifest["mediaType"], "digest": md, "size": mn, "platform": platform}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tag", default="latest")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--layer-size", type=int, default=64 * 1024)
    ap.add_argument("--seed", default="anchorage")
    ap.add_argument("--multiarch", action="store_true")
    ap.add_argument("--label", action="append", default=[], help="KEY=VALUE, into the config's Labels (also sets Entrypoint and Env)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(os.path.join(args.out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(args.out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    if args.multiarch:
        children = [image(args.out, args, rng, "amd64"), image(args.out, args, rng, "arm64", "v8")]
        idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children}
        d, n = blob(args.out, json.dumps(idx, indent=2).encode())
        top = {"mediaType": idx["mediaType"], "digest": d, "size": n}
    else:
        m = image(args.out, args, rng, "amd64")
        top = {k: m[k] for k in ("mediaType", "digest", "size")}
    top["annotations"] = {"org.opencontainers.image.ref.name": args.tag}
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f)
    print(top["digest"])

if __name__ == "__main__":
    main()
