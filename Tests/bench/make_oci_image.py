#!/usr/bin/env python3
"""Writes an OCI image layout for tests and benchmarks, with no network.

  make_oci_image.py OUT_DIR --tag TAG [--layers N] [--layer-size BYTES]
                    [--seed S] [--multiarch]

(For Docker media types push with `skopeo copy --format v2s2`: skopeo's
OCI-layout reader accepts only OCI media types.)

Layers are uncompressed tars holding one file of pseudo-random bytes (fast to
make at any size; registries do not unpack layers). --multiarch writes an
image index with linux/amd64 and linux/arm64/v8 children.
"""
import argparse, hashlib, io, json, os, random, tarfile

def blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    p = os.path.join(out, "blobs", "sha256", d)
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
    return "sha256:" + d, len(data)

def layer(size, rng):
    payload = rng.randbytes(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo("data/blob.bin")
        info.size = size
        info.mtime = 0
        t.addfile(info, io.BytesIO(payload))
    return buf.getvalue()

def image(out, args, rng, arch, variant=None):
    mt_layer = "application/vnd.oci.image.layer.v1.tar"
    layers = []
    diff_ids = []
    for i in range(args.layers):
        data = layer(args.layer_size if i == 0 else max(1024, args.layer_size // (i + 4)), rng)
        d, n = blob(out, data)
        layers.append({"mediaType": mt_layer, "digest": d, "size": n})
        diff_ids.append(d)
    platform = {"architecture": arch, "os": "linux"}
    if variant:
        platform["variant"] = variant
    config = dict(platform, created="2026-01-01T00:00:00Z",
                  config={"Cmd": ["/bin/true"]},
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
