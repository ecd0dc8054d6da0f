/// The console's page and style sheet (its script is `ConsoleScript`).
enum ConsolePage {
    static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Anchorage</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/console.css">
<script src="/console.js" defer></script>
</head><body>
<header>
  <a class="brand" href="#/">Anchorage <span id="version"></span></a>
  <nav>
    <a href="#/" data-nav="overview">Overview</a>
    <a href="#/repositories" data-nav="repositories">Repositories</a>
    <a href="#/charts" data-nav="charts">Charts</a>
    <a href="#/sync" data-nav="sync">Sync &amp; GC</a>
  </nav>
  <span id="who"></span>
</header>
<div id="notice" hidden></div>
<form id="signin" hidden>
  <h2>Sign in</h2>
  <label>User <input id="signin-user" autocomplete="username" required></label>
  <label>Password <input id="signin-password" type="password" autocomplete="current-password" required></label>
  <button type="submit" id="signin-submit">Sign in</button> <button type="button" id="signin-cancel">Cancel</button>
  <p id="signin-error" class="bad"></p>
</form>
<main id="view"><p>Loading…</p></main>
</body></html>
"""#

    static let css = #"""
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{display:flex;align-items:center;gap:1.5em;padding:.6em 1.5em;background:#16324f;color:#fff}
header a{color:#fff;text-decoration:none} header nav a{margin-right:1em;opacity:.8} header nav a.active{opacity:1;border-bottom:2px solid #7fc4ff}
.brand{font-weight:700;font-size:17px} #version{font-weight:400;font-size:12px;opacity:.7} #who{margin-left:auto}
#who button{margin-left:.5em}
main{padding:1em 1.5em 3em} h1{font-size:20px;margin:.2em 0 .6em} h2{font-size:15px;margin:1.4em 0 .5em;border-bottom:1px solid #d8dde3;padding-bottom:.2em}
table{border-collapse:collapse;background:#fff;margin:.3em 0} td,th{padding:3px 12px 3px 6px;text-align:left;vertical-align:top;border-bottom:1px solid #edf0f3}
th{color:#55606b;font-weight:600;white-space:nowrap} th.sortable{cursor:pointer} th.sorted-asc::after{content:" ▲"} th.sorted-desc::after{content:" ▼"}
td.num,th.num{text-align:right} code,pre{font:12px/1.4 ui-monospace,monospace} pre{background:#fff;border:1px solid #d8dde3;padding:.6em;overflow:auto;max-height:32em;white-space:pre-wrap;word-break:break-word}
a{color:#1b6ac9;cursor:pointer} .bad{color:#b00020} .ok{color:#13793b} .warn{color:#9a6700} .muted{color:#6b7580}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:0 2em} .grid>section{min-width:0;overflow-x:auto}
.gauge{background:#e3e7eb;height:18px;border-radius:3px;overflow:hidden;max-width:560px} .gauge>div{background:#2b7bb9;height:100%;width:0}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;background:#e3e7eb} .badge.hosted{background:#dff3e4} .badge.cached{background:#e3eefc} .badge.pinned{background:#fff1c2}
button{font:inherit;padding:2px 10px;border:1px solid #9aa6b2;border-radius:4px;background:#fff;cursor:pointer} button.danger{border-color:#b00020;color:#b00020} button:disabled{opacity:.5;cursor:default}
input{font:inherit;padding:3px 6px;border:1px solid #9aa6b2;border-radius:4px}
#notice{padding:.5em 1.5em;background:#fff7d6;border-bottom:1px solid #e8d48b} #notice.error{background:#fde7ea;border-color:#e9a2ad}
#signin{background:#fff;border:1px solid #d8dde3;margin:1em 1.5em;padding:.5em 1em 1em;max-width:420px} #signin label{display:block;margin:.4em 0}
.cmd{display:flex;gap:.5em;align-items:flex-start;margin:.3em 0} .cmd pre{margin:0;flex:1}
.pager{margin:.5em 0;display:flex;gap:.6em;align-items:center}
.progress{background:#e3e7eb;height:14px;border-radius:3px;overflow:hidden;max-width:560px} .progress>div{background:#13793b;height:100%;width:0}
svg text{font:11px system-ui,sans-serif;fill:#55606b}
.kv td:first-child{color:#55606b;white-space:nowrap}
"""#
}
