/// The console's script: a small single-page application over `/api/`.
/// Views are chosen by the URL's fragment (`#/repositories`, `#/image?…`).
enum ConsoleScript {
    static let source = #"""
"use strict";
(() => {
const $ = id => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
// el("td", {class: "num"}, "text", child…): every string becomes a text node.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
const size = n => { const u = ["B","KiB","MiB","GiB","TiB"]; let i = 0; n = Number(n) || 0; while (n >= 1024 && i < 4) { n /= 1024; i++; } return n.toFixed(i ? 1 : 0) + " " + u[i]; };
const short = d => String(d || "").replace(/^sha256:/, "").slice(0, 12);
const when = t => t ? new Date(t).toLocaleString() : "–";
const q = o => Object.entries(o).map(([k, v]) => encodeURIComponent(k) + "=" + encodeURIComponent(v)).join("&");
const link = (text, hash) => el("a", {href: "#" + hash}, text);
const table = (head, rows) => el("table", {}, el("tr", {}, head.map(h => el("th", {}, h))), rows);
const kv = pairs => el("table", {class: "kv"}, pairs.filter(p => p).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))));

let session = {user: null, csrf: null, admin: false, writable_namespaces: [], writable_chart_repositories: [], sign_in_possible: false};
let afterSignIn = null;

async function api(method, path, body) {
  const headers = {"X-Anchorage-Console": "1"};
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const sentWith = session;
  const r = await fetch("/api/" + path, {method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body)});
  let data = null;
  try { data = await r.json(); } catch (e) { data = {error: "unreadable answer (" + r.status + ")"}; }
  if (r.status === 401 && path !== "session") {
    // A request sent before a sign-in that finished meanwhile: not a reason to ask again.
    if (session === sentWith) showSignIn(() => route());
    throw new Error("sign in first");
  }
  if (!r.ok) throw new Error((data && (data.error || (data.errors && data.errors[0] && data.errors[0].message))) || ("HTTP " + r.status));
  return data;
}

function notice(text, error) {
  const n = $("notice");
  n.textContent = text; n.hidden = !text; n.className = error ? "error" : "";
}

// ---- session ----
async function loadSession() {
  try { session = await api("GET", "session"); } catch (e) { /* anonymous */ }
  drawWho();
}
function drawWho() {
  const w = $("who"); w.replaceChildren();
  if (session.user) {
    w.append("Signed in as ", el("b", {id: "whoami"}, session.user), session.admin ? " (admin)" : "",
             el("button", {id: "signout", onclick: async () => { await api("DELETE", "session"); await loadSession(); route(); }}, "Sign out"));
  } else {
    w.append(el("button", {id: "signin-open", onclick: () => showSignIn(() => route())}, "Sign in"));
  }
}
function showSignIn(then) {
  if (!session.sign_in_possible) { notice("Nobody can sign in: set [auth] htpasswd (and admins) in mirror.conf.", true); return; }
  afterSignIn = then;
  $("signin").hidden = false; $("signin-error").textContent = "";
  $("signin-user").focus();
}
async function signIn(ev) {
  ev.preventDefault();
  try {
    session = await api("POST", "session", {user: $("signin-user").value, password: $("signin-password").value});
    $("signin").hidden = true; $("signin-password").value = "";
    drawWho();
    if (afterSignIn) { const f = afterSignIn; afterSignIn = null; f(); }
  } catch (e) { $("signin-error").textContent = e.message; }
}
const canAdmin = () => session.user && session.admin;
const canWrite = ns => session.user && (session.admin || (session.writable_namespaces || []).includes(ns));
const canWriteCharts = r => session.user && (session.admin || (session.writable_chart_repositories || []).includes(r));

// Runs an action; asks to sign in first when nobody is.
async function act(label, f) {
  if (!session.user) { showSignIn(() => act(label, f)); return; }
  try { const r = await f(); notice(label + ": done" + (r && r.summary ? " — " + r.summary : ""), false); route(); }
  catch (e) { notice(label + ": " + e.message, true); }
}

// ---- views ----
const views = {};
let timer = null;
function route() {
  if (timer) { clearInterval(timer); timer = null; }
  const h = location.hash.slice(1) || "/";
  const [path, query] = h.split("?");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  const name = path.replace(/^\//, "") || "overview";
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.nav === (name === "repository" || name === "image" ? "repositories" : name === "chart" ? "charts" : name)));
  const view = views[name] || views.overview;
  // Each route draws into a box of its own: a view still waiting for an
  // answer when the route changes (or the user signs in) draws into a box
  // that is no longer on the page.
  const main = el("div");
  $("view").replaceChildren(main);
  window.scrollTo(0, 0);
  Promise.resolve(view(params, main)).catch(e => { main.replaceChildren(el("p", {class: "bad"}, e.message)); });
}

views.overview = async (p, main) => {
  const draw = async () => {
    const [s, act] = await Promise.all([api("GET", "status"), api("GET", "activity")]);
    $("version").textContent = s.version;
    const c = s.cache, pct = c.max_bytes ? Math.min(100, 100 * c.bytes / c.max_bytes) : 0;
    const gauge = el("div", {id: "used"}); gauge.style.width = pct.toFixed(1) + "%";
    const h = s.hit_ratio_last_hour;
    main.replaceChildren(el("h1", {}, "Overview"), el("div", {class: "grid"},
      el("section", {}, el("h2", {}, "Cache"), el("div", {class: "gauge"}, gauge),
        el("p", {id: "cachetext"}, size(c.bytes) + " of " + size(c.max_bytes) + " (" + pct.toFixed(1) + "%), " + c.entries + " blobs, " + size(c.pinned_bytes) + " pinned, " + c.in_flight + " fetching"),
        el("p", {}, "Hit ratio, last hour: ", el("b", {id: "hitratio"}, h.ratio === null ? "no requests" : (100 * h.ratio).toFixed(1) + "% of " + h.requests))),
      el("section", {}, el("h2", {}, "Last hour"), activityChart(act.minutes)),
      el("section", {}, el("h2", {}, "Upstreams"), table(["registry", "url", "state", "last error", "rate limit left"], s.upstreams.map(u =>
        el("tr", {}, el("td", {}, u.name, u.default ? " (default)" : ""), el("td", {}, u.url),
          el("td", {class: u.breaker === "closed" ? "ok" : "bad", "data-breaker": u.breaker}, u.breaker === "closed" ? "up" : u.breaker === "open" ? "down (breaker open)" : "probing (half-open)"),
          el("td", {}, u.last_error ? u.last_error.outcome + " at " + when(u.last_error.time) : "–"),
          el("td", {class: "num"}, u.rate_limit_remaining === null ? "–" : u.rate_limit_remaining)))),
        s.chart_repositories.length ? table(["chart repository", "url", "entries"], s.chart_repositories.map(r => el("tr", {}, el("td", {}, r.name), el("td", {}, r.url), el("td", {class: "num"}, r.entries === null ? "–" : r.entries)))) : null),
      el("section", {}, el("h2", {}, "Hosted namespaces"), s.hosted.length ? table(["namespace", "used", "quota"], s.hosted.map(n => {
        const q = n.max_bytes ? (100 * n.bytes / n.max_bytes).toFixed(1) + "% of " + size(n.max_bytes) : "no quota";
        return el("tr", {}, el("td", {}, n.name), el("td", {class: "num"}, size(n.bytes)), el("td", {}, q));
      })) : el("p", {class: "muted"}, "none configured")),
      el("section", {}, el("h2", {}, "Recent digest mismatches"), s.recent_digest_mismatches.length ? table(["time", "source", "expected", "got"], s.recent_digest_mismatches.map(m =>
        el("tr", {}, el("td", {}, when(m.time)), el("td", {}, m.source), el("td", {}, el("code", {}, short(m.expected))), el("td", {}, el("code", {}, short(m.actual)))))) : el("p", {class: "muted"}, "none")),
      el("section", {}, el("h2", {}, "Sync"), el("p", {id: "synctext"}, s.sync.rules + " rules; schedule: " + (s.sync.schedule || "none") + "; last run: " +
        (s.sync.last_run ? (s.sync.last_run.ok ? "ok" : "failed") + " at " + when(s.sync.last_run.finished) + " — " + s.sync.last_run.summary : "none yet")), link("Sync history and actions", "/sync")),
      el("section", {}, el("h2", {}, "Top repositories by pulls"), s.top_repositories.by_pulls.length ? table(["repository", "pulls", "bytes"], s.top_repositories.by_pulls.map(r =>
        el("tr", {}, el("td", {}, r.name), el("td", {class: "num"}, r.pulls), el("td", {class: "num"}, size(r.bytes))))) : el("p", {class: "muted"}, "no pulls yet"))));
  };
  await draw();
  timer = setInterval(() => draw().catch(() => {}), 5000);
};

// Hit ratio (line) and bytes served (bars) per minute, last 60 minutes.
function activityChart(minutes) {
  const W = 420, H = 120, now = Math.floor(Date.now() / 60000) * 60;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H + 20); svg.setAttribute("id", "activity");
  const add = (tag, attrs, text) => { const e = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text) e.textContent = text; svg.append(e); return e; };
  add("rect", {x: 0, y: 0, width: W, height: H, fill: "#fff", stroke: "#d8dde3"});
  const maxBytes = Math.max(1, ...minutes.map(m => m.bytes));
  const x = t => W - ((now - t) / 60 + 1) * (W / 60);
  let line = "";
  for (const m of minutes) {
    const bh = (m.bytes / maxBytes) * (H - 10);
    add("rect", {x: x(m.minute), y: H - bh, width: W / 60 - 1, height: bh, fill: "#b9d3ee"});
    if (m.requests > 0) {
      const cx = x(m.minute) + W / 120, cy = H - (m.hits / m.requests) * (H - 10);
      line += (line ? " L" : "M") + cx.toFixed(1) + " " + cy.toFixed(1);
      add("circle", {cx: cx.toFixed(1), cy: cy.toFixed(1), r: 2.5, fill: "#13793b"});
    }
  }
  if (line) add("path", {d: line, fill: "none", stroke: "#13793b", "stroke-width": 2});
  add("text", {x: 2, y: H + 14}, "−60 min");
  add("text", {x: W - 30, y: H + 14}, "now");
  add("text", {x: 70, y: H + 14}, "bars: bytes served (peak " + size(maxBytes) + "/min) · line: hit ratio");
  if (!minutes.length) add("text", {x: W / 2 - 50, y: H / 2}, "no requests yet");
  return svg;
}

// ---- repositories ----
const PAGE = 100;
const columns = [
  ["kind", "where", r => r.kind + " " + r.source], ["name", "repository", r => r.name], ["tags", "tags", r => r.tags],
  ["size", "size", r => r.size], ["unique_size", "unique", r => r.unique_size], ["last_pull", "last pull", r => r.last_pull || ""],
  ["last_push", "last push", r => r.last_push || ""], ["pinned", "pinned", r => r.pinned ? 1 : 0]];
let repoState = {filter: "", sort: "name", dir: 1, page: 0, all: null};
views.repositories = async (p, main) => {
  const started = performance.now();
  const all = await api("GET", "repositories");
  repoState.all = all;
  const input = el("input", {id: "filter", placeholder: "filter by name, registry or namespace", size: 40, value: repoState.filter});
  const body = el("div", {id: "repo-table"});
  const count = el("span", {id: "repo-count"});
  const draw = () => {
    const f = repoState.filter.toLowerCase();
    const col = columns.find(c => c[0] === repoState.sort) || columns[1];
    const rows = (f ? all.filter(r => (r.source + "/" + r.name).toLowerCase().includes(f) || r.kind.includes(f)) : all.slice())
      .sort((a, b) => { const x = col[2](a), y = col[2](b); return (x < y ? -1 : x > y ? 1 : 0) * repoState.dir; });
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    repoState.page = Math.min(repoState.page, pages - 1);
    const shown = rows.slice(repoState.page * PAGE, (repoState.page + 1) * PAGE);
    count.textContent = rows.length + " of " + all.length + " repositories";
    const head = el("tr", {}, columns.map(c => el("th", {class: "sortable" + (c[0] === repoState.sort ? (repoState.dir > 0 ? " sorted-asc" : " sorted-desc") : "") + (["tags","size","unique_size"].includes(c[0]) ? " num" : ""),
      "data-sort": c[0], onclick: () => { repoState.dir = repoState.sort === c[0] ? -repoState.dir : 1; repoState.sort = c[0]; draw(); }}, c[1])));
    const trs = shown.map(r => el("tr", {class: "repo-row"},
      el("td", {}, el("span", {class: "badge " + r.kind}, r.kind), " ", r.source),
      el("td", {}, link(r.name, "/repository?" + q({kind: r.kind, source: r.source, name: r.name}))),
      el("td", {class: "num"}, r.tags), el("td", {class: "num"}, size(r.size)), el("td", {class: "num"}, size(r.unique_size)),
      el("td", {}, when(r.last_pull)), el("td", {}, when(r.last_push)),
      el("td", {}, r.kind === "hosted" ? el("span", {class: "muted"}, "never evicted") : r.pinned ? el("span", {class: "badge pinned"}, "pinned") : "")));
    const pager = el("div", {class: "pager"},
      el("button", {id: "prev", disabled: repoState.page === 0, onclick: () => { repoState.page--; draw(); }}, "‹ previous"),
      el("span", {id: "page"}, "page " + (repoState.page + 1) + " of " + pages),
      el("button", {id: "next", disabled: repoState.page >= pages - 1, onclick: () => { repoState.page++; draw(); }}, "next ›"));
    body.replaceChildren(el("table", {id: "repos"}, head, trs), pager);
  };
  input.addEventListener("input", () => { repoState.filter = input.value; repoState.page = 0; draw(); });
  main.replaceChildren(el("h1", {}, "Repositories"), el("p", {}, input, " ", count), body);
  draw();
  window.anchorageRenderMillis = performance.now() - started;
  main.dataset.rendered = "repositories";
};

views.repository = async (p, main) => {
  const r = await api("GET", "repository?" + q({kind: p.kind, source: p.source, name: p.name}));
  const key = {kind: r.kind, source: r.source, name: r.name};
  const actions = t => {
    const ref = {ref: t.tag};
    if (r.kind === "hosted") return el("button", {class: "danger", "data-action": "delete-tag", "data-tag": t.tag, disabled: session.user && !canWrite(r.source),
      onclick: () => confirm("Delete tag " + t.tag + "?") && act("delete " + t.tag, () => api("DELETE", "image?" + q({...key, ...ref})))}, "delete tag");
    return el("span", {}, t.pinned
      ? el("button", {"data-action": "unpin", "data-tag": t.tag, onclick: () => act("unpin " + t.tag, () => api("DELETE", "pins?" + q({...key, ...ref})))}, "unpin")
      : el("button", {"data-action": "pin", "data-tag": t.tag, onclick: () => act("pin " + t.tag, () => api("POST", "pins?" + q({...key, ...ref})))}, "pin"),
      " ", el("button", {class: "danger", "data-action": "evict", "data-tag": t.tag, onclick: () => confirm("Evict " + t.tag + " from the cache?") && act("evict " + t.tag, () => api("DELETE", "image?" + q({...key, ...ref})))}, "evict"));
  };
  main.replaceChildren(el("h1", {}, el("span", {class: "badge " + r.kind}, r.kind), " ", r.source + "/" + r.name),
    el("h2", {}, "Tags"),
    table(["tag", "digest", "media type", r.kind === "hosted" ? "pushed" : "pinned", ""], r.tags.map(t => el("tr", {class: "tag-row", "data-tag": t.tag},
      el("td", {}, link(t.tag, "/image?" + q({...key, ref: t.tag}))), el("td", {}, el("code", {}, short(t.digest))), el("td", {}, t.media_type || ""),
      el("td", {}, r.kind === "hosted" ? when(t.pushed_at) : t.pinned ? el("span", {class: "badge pinned"}, "pinned") : ""), el("td", {}, actions(t))))),
    r.untagged.length ? el("div", {}, el("h2", {}, "Untagged manifests"), el("ul", {}, r.untagged.map(d => el("li", {}, link(short(d), "/image?" + q({...key, ref: d})))))) : null);
};

function copyButton(text) {
  return el("button", {class: "copy", onclick: async ev => {
    const b = ev.target;
    try { await navigator.clipboard.writeText(text); }
    catch (e) { const t = el("textarea", {}, text); document.body.append(t); t.select(); document.execCommand("copy"); t.remove(); }
    b.textContent = "copied";
    setTimeout(() => { b.textContent = "copy"; }, 1500);
  }}, "copy");
}

views.image = async (p, main) => {
  const m = await api("GET", "image?" + q({kind: p.kind, source: p.source, name: p.name, ref: p.ref}));
  const r = m.repository, key = {kind: r.kind, source: r.source, name: r.name};
  const parts = [el("h1", {}, el("span", {class: "badge " + r.kind}, r.kind), " ", link(r.source + "/" + r.name, "/repository?" + q(key)), p.ref.includes(":") ? "@" + short(p.ref) : ":" + p.ref)];
  parts.push(kv([["digest", el("code", {id: "digest"}, m.digest)], ["media type", m.media_type], ["manifest size", size(m.size)],
    ["tags", el("span", {id: "image-tags"}, m.tags.join(", ") || "–")],
    m.total_size !== undefined ? ["image size", el("span", {id: "total-size"}, size(m.total_size))] : null,
    m.artifact_type ? ["artifact type", m.artifact_type] : null,
    m.pushed_by !== undefined ? ["pushed", (m.pushed_by || "?") + " at " + when(m.pushed_at)] : null]));
  const buttons = [];
  if (r.kind === "hosted") buttons.push(el("button", {class: "danger", id: "delete-manifest", onclick: () => confirm("Delete this manifest and every tag naming it?") && act("delete manifest", async () => { const x = await api("DELETE", "image?" + q({...key, ref: m.digest})); location.hash = "#/repository?" + q(key); return x; })}, "delete manifest"));
  else buttons.push(el("button", {id: "pin-image", onclick: () => act("pin", () => api("POST", "pins?" + q({...key, ref: m.digest})))}, "pin"), " ",
                    el("button", {id: "unpin-image", onclick: () => act("unpin", () => api("DELETE", "pins?" + q({...key, ref: m.digest})))}, "unpin"), " ",
                    el("button", {class: "danger", id: "evict-image", onclick: () => confirm("Evict from the cache?") && act("evict", () => api("DELETE", "image?" + q({...key, ref: m.digest})))}, "evict"));
  parts.push(el("p", {}, buttons));
  parts.push(el("h2", {}, "Pull"), el("div", {id: "pull"}, m.pull.map(c => el("div", {class: "cmd", "data-client": c.label}, el("span", {class: "muted"}, c.label), el("pre", {}, c.command), copyButton(c.command)))));
  if (m.platforms) parts.push(el("h2", {}, "Platforms"), table(["platform", "manifest", "size", ""], m.platforms.map(pl => el("tr", {class: "platform-row"},
    el("td", {}, pl.platform || "(unspecified)"), el("td", {}, pl.available ? link(short(pl.digest), "/image?" + q({...key, ref: pl.digest})) : el("code", {}, short(pl.digest))),
    el("td", {class: "num"}, size(pl.size)), el("td", {class: "muted"}, pl.available ? "" : "not " + (r.kind === "cached" ? "cached" : "stored"))))));
  if (m.layers) parts.push(el("h2", {}, "Layers"), table(["#", "digest", "size", "media type", "shared with"], m.layers.map((l, i) => el("tr", {class: "layer-row"},
    el("td", {class: "num"}, i + 1), el("td", {}, el("code", {}, short(l.digest))), el("td", {class: "num layer-size"}, size(l.size)), el("td", {}, l.media_type),
    el("td", {}, l.shared_by ? l.shared_by + " other repositor" + (l.shared_by === 1 ? "y" : "ies") : "–")))));
  if (m.config) {
    const c = m.config;
    parts.push(el("h2", {}, "Configuration"), c.available ? kv([["created", el("span", {id: "created"}, c.created || "–")], ["platform", [c.os, c.architecture, c.variant].filter(x => x).join("/")],
      c.author ? ["author", c.author] : null, ["entrypoint", el("code", {id: "entrypoint"}, JSON.stringify(c.entrypoint))], ["cmd", el("code", {}, JSON.stringify(c.cmd))],
      c.working_dir ? ["working dir", c.working_dir] : null, c.user ? ["user", c.user] : null, c.exposed_ports.length ? ["ports", c.exposed_ports.join(", ")] : null,
      ["environment", el("pre", {id: "env"}, c.env.join("\n"))],
      ["labels", el("table", {id: "labels"}, Object.entries(c.labels).sort().map(([k, v]) => el("tr", {}, el("td", {}, el("code", {}, k)), el("td", {class: "label-value"}, v))))]])
      : el("p", {class: "muted"}, "config blob " + short(c.digest) + " is not " + (r.kind === "cached" ? "cached" : "stored")));
  }
  parts.push(el("h2", {}, "Referrers"), m.referrers.length ? table(["digest", "artifact type", "annotations"], m.referrers.map(x => el("tr", {class: "referrer-row"},
    el("td", {}, link(short(x.digest), "/image?" + q({...key, ref: x.digest}))), el("td", {}, x.artifact_type || x.media_type),
    el("td", {}, Object.entries(x.annotations || {}).map(([k, v]) => k + "=" + v).join(", "))))) : el("p", {class: "muted"}, "none known"));
  if (Object.keys(m.annotations || {}).length) parts.push(el("h2", {}, "Annotations"), kv(Object.entries(m.annotations)));
  main.replaceChildren(...parts);
};

// ---- charts ----
views.charts = async (p, main) => {
  const repos = await api("GET", "charts");
  const base = location.origin;
  main.replaceChildren(el("h1", {}, "Chart repositories"), repos.length ? repos.map(r => el("section", {class: "chart-repo", "data-repo": r.name},
    el("h2", {}, el("span", {class: "badge " + r.kind}, r.kind), " ", r.name),
    el("div", {class: "cmd"}, el("pre", {}, "helm repo add " + r.name + " " + base + "/charts/" + r.name), copyButton("helm repo add " + r.name + " " + base + "/charts/" + r.name)),
    r.charts.length ? table(["chart", "versions", "newest", "app version", "created"], r.charts.map(c => el("tr", {class: "chart-row", "data-chart": c.name},
      el("td", {}, c.name), el("td", {class: "num"}, c.versions.length),
      el("td", {}, c.versions.length ? link(c.versions[0].version, "/chart?" + q({repository: r.name, chart: c.name})) : "–"),
      el("td", {}, c.versions.length ? c.versions[0].app_version || "–" : ""), el("td", {}, c.versions.length ? when(c.versions[0].created) : "")))) : el("p", {class: "muted"}, r.kind === "cached" ? "index not fetched yet" : "no charts yet")))
    : el("p", {class: "muted"}, "no chart repositories configured"));
};

views.chart = async (p, main) => {
  const repos = await api("GET", "charts");
  const r = repos.find(x => x.name === p.repository); if (!r) throw new Error("no chart repository " + p.repository);
  const c = r.charts.find(x => x.name === p.chart); if (!c) throw new Error("no chart " + p.chart);
  const version = p.version || (c.versions[0] && c.versions[0].version);
  const files = el("div", {id: "chart-files"}, el("p", {class: "muted"}, "Loading files…"));
  const install = "helm install my-" + c.name + " " + r.name + "/" + c.name + " --version " + version;
  main.replaceChildren(el("h1", {}, el("span", {class: "badge " + r.kind}, r.kind), " ", r.name + "/" + c.name),
    el("div", {class: "cmd"}, el("pre", {}, install), copyButton(install)),
    table(["version", "app version", "created", "digest", "", ""], c.versions.map(v => el("tr", {class: "version-row", "data-version": v.version},
      el("td", {}, v.version === version ? el("b", {}, v.version) : link(v.version, "/chart?" + q({repository: r.name, chart: c.name, version: v.version}))),
      el("td", {}, v.app_version || "–"), el("td", {}, when(v.created)), el("td", {}, el("code", {}, short(v.digest))),
      el("td", {}, r.kind === "hosted" ? "hosted" : v.cached ? "cached" : el("span", {class: "muted"}, "not cached")),
      el("td", {}, r.kind === "hosted" ? el("button", {class: "danger", "data-action": "delete-version", disabled: session.user && !canWriteCharts(r.name),
        onclick: () => confirm("Delete " + c.name + " " + v.version + "?") && act("delete " + c.name + " " + v.version, () => api("DELETE", "chart?" + q({repository: r.name, chart: c.name, version: v.version})))}, "delete") : "")))),
    files);
  try {
    const f = await api("GET", "chart?" + q({repository: r.name, chart: c.name, version}));
    files.replaceChildren(...["Chart.yaml", "values.yaml", "README.md"].flatMap(name => [el("h2", {}, name + " (" + version + ")"),
      f[name].text !== undefined ? el("pre", {id: "file-" + name.replace(".", "-")}, f[name].text) : el("p", {class: "muted"}, f[name].error)]));
  } catch (e) { files.replaceChildren(el("p", {class: "muted"}, e.message)); }
};

// ---- sync and garbage collection ----
views.sync = async (p, main) => {
  const progress = el("div", {id: "sync-progress"}), history = el("div", {id: "sync-history"}), gc = el("div", {id: "gc-result"});
  const draw = async () => {
    const s = await api("GET", "sync");
    if (s.running) {
      const r = s.running, bar = el("div"); bar.style.width = (r.items_total ? 100 * r.items_done / r.items_total : 0).toFixed(1) + "%";
      progress.replaceChildren(el("p", {}, "Running (" + r.trigger + "): ", el("b", {id: "sync-items"}, r.items_done + " of " + r.items_total + " items"),
        ", " + size(r.bytes_done) + " of " + size(r.bytes_total) + ", ", el("span", {id: "sync-failures", class: r.failures ? "bad" : ""}, r.failures + " failed"), " — " + r.current),
        el("div", {class: "progress"}, bar));
    } else {
      const last = s.history[0];
      progress.replaceChildren(el("p", {id: "sync-idle"}, "Not running.", last ? el("span", {id: "sync-last"}, " Last run: " + last.items + " of " + last.items + " items done, " + last.failures + " failed, " + size(last.bytes) + " fetched.") : ""));
    }
    history.replaceChildren(s.history.length ? table(["finished", "trigger", "result", "items", "failed", "fetched", "took"], s.history.map(h => el("tr", {class: "sync-run"},
      el("td", {}, when(h.finished)), el("td", {}, h.trigger), el("td", {class: h.ok ? "ok" : "bad"}, h.ok ? "ok" : "failed"), el("td", {class: "num"}, h.items),
      el("td", {class: "num"}, h.failures), el("td", {class: "num"}, size(h.bytes)), el("td", {class: "num"}, h.seconds + " s")))) : el("p", {class: "muted"}, "no runs since the daemon started"));
    return s;
  };
  const s = await draw();
  // Redraws every second until no run is in progress.
  const poll = () => {
    if (timer) clearInterval(timer);
    const tick = async () => { const st = await draw().catch(() => null); if (st && !st.running && timer) { clearInterval(timer); timer = null; } };
    timer = setInterval(tick, 1000);
    tick();
  };
  const run = async () => {
    if (!session.user) { showSignIn(run); return; }
    try { await api("POST", "sync"); notice("sync started", false); } catch (e) { notice("sync: " + e.message, true); return; }
    poll();
  };
  main.replaceChildren(el("h1", {}, "Sync"), el("p", {}, s.rules + " rules; schedule: " + (s.schedule || "none") + " "),
    el("p", {}, el("button", {id: "sync-run", disabled: !s.rules, onclick: run}, "Run sync now")),
    progress, el("h2", {}, "History"), history,
    el("h1", {}, "Garbage collection (hosted)"),
    el("p", {}, el("button", {id: "gc-preview", onclick: () => gcRun(true, gc)}, "Preview (dry run)"), " ",
      el("button", {class: "danger", id: "gc-run", onclick: () => confirm("Remove unreferenced hosted content now?") && gcRun(false, gc)}, "Collect now")), gc);
  if (s.running) poll();
};
async function gcRun(dry, out) {
  if (!session.user) { showSignIn(() => gcRun(dry, out)); return; }
  try {
    const r = await api("POST", "gc?" + q({dry_run: dry}));
    out.replaceChildren(el("p", {id: "gc-summary"}, r.summary), r.manifests.length ? el("ul", {}, r.manifests.map(m => el("li", {}, el("code", {}, m)))) : null,
      r.tags.length ? el("ul", {}, r.tags.map(t => el("li", {}, "tag " + t))) : null);
  } catch (e) { out.replaceChildren(el("p", {class: "bad"}, e.message)); }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("signin").addEventListener("submit", signIn);
  $("signin-cancel").addEventListener("click", () => { $("signin").hidden = true; afterSignIn = null; });
  window.addEventListener("hashchange", () => { notice(""); route(); });
  await loadSession();
  route();
});
})();
"""#
}
