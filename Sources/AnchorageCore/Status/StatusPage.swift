/// The status page: one self-contained HTML document (no external fonts,
/// scripts or CDNs; it works offline) that renders `/api/status` and the
/// browsing endpoints, refreshing every 5 seconds.
enum StatusPage {
    static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Anchorage</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 .5em} h2{font-size:15px;margin:1.2em 0 .4em;border-bottom:1px solid #ddd}
.bar{background:#e4e4e4;height:18px;border-radius:3px;overflow:hidden;max-width:560px}
.bar>div{background:#2b7bb9;height:100%} .pin{background:#e0a100!important}
table{border-collapse:collapse;margin:.3em 0} td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
th{color:#666;font-weight:600} code{font-size:12px} .bad{color:#b00} .ok{color:#080} a{color:#2b7bb9;cursor:pointer}
#grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:0 2em}
</style></head><body>
<h1>Anchorage <span id="version"></span></h1>
<div id="grid">
<section><h2>Cache</h2><div class="bar"><div id="used"></div></div><p id="cachetext"></p>
<p>Hit ratio, last hour: <b id="hitratio">–</b></p></section>
<section><h2>Upstreams</h2><table id="upstreams"></table><table id="chartrepos"></table></section>
<section><h2>Top repositories by bytes</h2><table id="topbytes"></table></section>
<section><h2>Top repositories by pulls</h2><table id="toppulls"></table></section>
<section><h2>Recent digest mismatches</h2><table id="mismatches"></table></section>
<section><h2>Sync</h2><p id="sync"></p></section>
</div>
<h2>Cached images</h2><div id="browse"></div>
<h2>Chart repositories</h2><div id="charts"></div>
<script>
"use strict";
const $ = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const size = n => { const u=["B","KiB","MiB","GiB","TiB"]; let i=0; n=Number(n)||0; while(n>=1024&&i<4){n/=1024;i++} return n.toFixed(i?1:0)+" "+u[i]; };
const rows = (el, head, list, f) => { $(el).innerHTML = (list.length ? "<tr>"+head.map(h=>"<th>"+h+"</th>").join("")+"</tr>"+list.map(x=>"<tr>"+f(x).map(c=>"<td>"+c+"</td>").join("")+"</tr>").join("") : "<tr><td>none</td></tr>"); };
async function getJSON(u) { const r = await fetch(u); return r.json(); }
async function refresh() {
  const s = await getJSON("/api/status");
  $("version").textContent = s.version;
  const c = s.cache, pct = c.max_bytes ? Math.min(100, 100*c.bytes/c.max_bytes) : 0;
  $("used").style.width = pct.toFixed(1)+"%";
  $("cachetext").textContent = size(c.bytes)+" of "+size(c.max_bytes)+" ("+pct.toFixed(1)+"%), "+c.entries+" blobs, "+size(c.pinned_bytes)+" pinned, "+c.in_flight+" fetching";
  const h = s.hit_ratio_last_hour;
  $("hitratio").textContent = h.ratio === null ? "no requests" : (100*h.ratio).toFixed(1)+"% of "+h.requests;
  rows("upstreams", ["registry","url","state","rate limit left"], s.upstreams, u => [esc(u.name)+(u.default?" (default)":""), esc(u.url), u.breaker==="open"?'<span class="bad">down (breaker open)</span>':'<span class="ok">up</span>', u.rate_limit_remaining===null?"–":u.rate_limit_remaining]);
  rows("chartrepos", ["chart repository","url","entries"], s.chart_repositories, r => [esc(r.name), esc(r.url), r.entries===null?"–":r.entries]);
  rows("topbytes", ["repository","bytes","pulls"], s.top_repositories.by_bytes, r => [esc(r.name), size(r.bytes), r.pulls]);
  rows("toppulls", ["repository","pulls","bytes"], s.top_repositories.by_pulls, r => [esc(r.name), r.pulls, size(r.bytes)]);
  rows("mismatches", ["time","source","expected","got"], s.recent_digest_mismatches, m => [esc(m.time), esc(m.source), "<code>"+esc(m.expected.slice(0,19))+"</code>", "<code>"+esc(m.actual.slice(0,19))+"</code>"]);
  const y = s.sync;
  $("sync").innerHTML = y.rules+" rules; schedule: "+esc(y.schedule||"none")+"; last run: "+(y.last_run ? (y.last_run.ok?'<span class="ok">ok</span>':'<span class="bad">failed</span>')+" at "+esc(y.last_run.finished)+" — "+esc(y.last_run.summary) : "none yet");
}
async function browse() {
  const repos = await getJSON("/api/repositories");
  $("browse").innerHTML = repos.length ? "<table><tr><th>upstream</th><th>repository</th><th>tags</th></tr>"+repos.map((r,i)=>'<tr><td>'+esc(r.upstream)+'</td><td><a data-i="'+i+'" class="repo">'+esc(r.name)+'</a></td><td>'+r.tags+'</td></tr><tr><td></td><td colspan="2" id="repo'+i+'"></td></tr>').join("")+"</table>" : "nothing cached yet";
  document.querySelectorAll("a.repo").forEach(a => a.onclick = async () => {
    const r = repos[a.dataset.i], tags = await getJSON("/api/tags?upstream="+encodeURIComponent(r.upstream)+"&name="+encodeURIComponent(r.name));
    $("repo"+a.dataset.i).innerHTML = "<table>"+tags.map(t=>'<tr><td>'+esc(t.tag)+'</td><td><a class="man" data-d="'+esc(t.digest)+'"><code>'+esc(t.digest.slice(0,19))+'</code></a></td><td>'+esc(t.media_type)+'</td></tr><tr><td colspan="3" id="m'+esc(t.digest.slice(7,19))+'"></td></tr>').join("")+"</table>";
    document.querySelectorAll("a.man").forEach(m => m.onclick = () => manifest(m.dataset.d));
  });
  const charts = await getJSON("/api/charts");
  $("charts").innerHTML = charts.length ? charts.map(r => "<b>"+esc(r.repository)+"</b><table>"+r.charts.map(c=>"<tr><td>"+esc(c.name)+"</td><td>"+c.versions.map(esc).join(", ")+"</td></tr>").join("")+"</table>").join("") : "none configured";
}
async function manifest(d) {
  const m = await getJSON("/api/manifest?digest="+encodeURIComponent(d)), el = $("m"+d.slice(7,19));
  if (m.platforms) el.innerHTML = "<table>"+m.platforms.map(p=>'<tr><td>'+esc(p.platform)+'</td><td><a class="man" data-d="'+esc(p.digest)+'"><code>'+esc(p.digest.slice(0,19))+'</code></a></td><td>'+(p.cached?"cached":"not cached")+'</td></tr><tr><td colspan="3" id="m'+esc(p.digest.slice(7,19))+'"></td></tr>').join("")+"</table>";
  else if (m.layers) el.innerHTML = "<table>"+m.layers.map(l=>"<tr><td><code>"+esc(l.digest.slice(0,19))+"</code></td><td>"+size(l.size)+"</td><td>"+(l.cached?"cached":"not cached")+"</td></tr>").join("")+"<tr><th>total</th><td>"+size(m.total_size)+"</td></tr></table>";
  else el.textContent = m.error || "not cached";
  document.querySelectorAll("a.man").forEach(a => a.onclick = () => manifest(a.dataset.d));
}
refresh(); browse(); setInterval(refresh, 5000);
</script></body></html>
"""#
}
