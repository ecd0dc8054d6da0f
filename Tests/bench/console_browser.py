#!/usr/bin/python3
"""Drives Anchorage's web console in headless Chromium (Debian's chromium and
chromedriver, Selenium from python3-selenium) and checks what it shows and
does. Run by ConsoleBrowserTests, which prepares the daemon's content and
checks the effects from outside. Prints one 'ok'/'FAIL' line per check and a
final 'RESULT {json}' line; exits 1 if any check failed."""
import argparse, base64, http.server, json, os, socketserver, threading, time, urllib.request, urllib.error
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from selenium.common.exceptions import StaleElementReferenceException

ap = argparse.ArgumentParser()
ap.add_argument("--base", required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--shots", required=True)
ap.add_argument("--profile", required=True)
args = ap.parse_args()
BASE = args.base
AUTH = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
failures = []
result = {}


STARTED = time.monotonic()


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + f"[{time.monotonic() - STARTED:5.1f} s] " + what, flush=True)
    if not cond:
        failures.append(what)


def api(path):
    req = urllib.request.Request(BASE + "/api/" + path, headers={"Authorization": AUTH})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


opts = webdriver.ChromeOptions()
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000", "--user-data-dir=" + args.profile]:
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
driver.set_script_timeout(60)


def wait(cond, what, timeout=90):
    # A view that refreshes itself (sync progress, every second) replaces its
    # elements: one found just before is stale, which means "look again".
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]).until(lambda d: cond())
        return True
    except Exception:
        check(False, "timed out waiting: " + what)
        return False


def css(sel):
    return driver.find_elements(By.CSS_SELECTOR, sel)


def text(sel):
    try:
        found = css(sel)
        return found[0].text if found else None
    except StaleElementReferenceException:
        return None


def go(hash_):
    driver.get(BASE + "/#" + hash_)


def shot(name):
    driver.save_screenshot(os.path.join(args.shots, name + ".png"))


def accept_confirm():
    WebDriverWait(driver, 10).until(lambda d: d.switch_to.alert)
    driver.switch_to.alert.accept()


try:
    # The page's own headers: nothing from other hosts.
    with urllib.request.urlopen(BASE + "/", timeout=30) as r:
        csp = r.headers.get("Content-Security-Policy", "")
        page = r.read().decode()
    check("default-src 'none'" in csp and "script-src 'self'" in csp and "http" not in csp, "Content-Security-Policy allows this origin only: " + csp)
    check("http://" not in page and "https://" not in page, "the page names no other host")

    # Not signed in: the data needs a user, an action is refused.
    go("/")
    wait(lambda: css("#signin") and css("#signin")[0].is_displayed(), "the sign-in form")
    status = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/pins?kind=cached&source=up.test&name=team/other&ref=v1', {method: 'POST', headers: {'X-Anchorage-Console': '1'}}).then(r => done(r.status));""")
    check(status == 401, f"an action without signing in is refused ({status})")

    # Sign in through the form.
    css("#signin-user")[0].send_keys(args.user)
    css("#signin-password")[0].send_keys(args.password)
    css("#signin-submit")[0].click()
    wait(lambda: text("#whoami") == args.user, "signed in")
    check(not css("#signin")[0].is_displayed(), "the sign-in form closes")

    # Overview.
    wait(lambda: css("#hitratio") and css("#activity"), "the overview")
    rows = [r.text for r in css("table tr")]
    check(any("up.test" in r and "up" in r for r in rows), "upstream health is shown")
    check(css("td[data-breaker='closed']") != [], "the breaker's state is shown")
    check(any(r.startswith("team") for r in rows), "quota use of the hosted namespace is shown")
    shot("overview")

    # The repository list: 10,004 repositories, one page drawn.
    t0 = time.monotonic()
    listed = api("repositories")
    result["api_ms"] = round((time.monotonic() - t0) * 1000)
    print(f"/api/repositories: {len(listed)} repositories in {result['api_ms']} ms")
    t0 = time.monotonic()
    go("/repositories")
    wait(lambda: len(css("tr.repo-row")) > 0, "the repository list")
    result["first_render_ms"] = round((time.monotonic() - t0) * 1000)
    result["script_render_ms"] = round(driver.execute_script("return window.anchorageRenderMillis"))
    result["repository_rows_in_dom"] = len(css("tr.repo-row"))
    count = text("#repo-count")
    print(f"time to first render of {count}: {result['first_render_ms']} ms from navigation ({result['script_render_ms']} ms in the page's script)")
    check(count.endswith(" of 10004 repositories"), "every repository is counted: " + count)
    shot("repositories")
    css("#filter")[0].send_keys("webapp")
    wait(lambda: len(css("tr.repo-row")) == 1, "the filter")
    check("team/webapp" in css("tr.repo-row")[0].text, "the filter keeps team/webapp")
    css("#filter")[0].clear()
    css("#filter")[0].send_keys("x")   # an input event with the text cleared, then 'x'
    css("#filter")[0].clear()
    driver.execute_script("const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'));")
    wait(lambda: len(css("tr.repo-row")) == 100, "the unfiltered list")
    css("th[data-sort='name']")[0].click()
    wait(lambda: css("th.sorted-desc[data-sort='name']"), "sorting by name, descending")
    check(css("tr.repo-row")[0].text.split("\n")[0].endswith("team/webapp") or "team/webapp" in css("tr.repo-row")[0].text, "sorted by name descending, team/webapp first")
    css("#next")[0].click()
    wait(lambda: "page 2 of" in (text("#page") or ""), "the next page")

    # A pushed image: what the API says it is, the hostile label as text.
    app = api("repository?kind=hosted&source=team&name=app")
    v1 = next(t["digest"] for t in app["tags"] if t["tag"] == "v1")
    go("/image?kind=hosted&source=team&name=app&ref=v1")
    wait(lambda: text("#digest"), "the image view")
    check(text("#digest") == v1, "the digest shown is the pushed one")
    shot("image")
    check(len(css("tr.layer-row")) == 3, "three layers are listed")
    labels = [c.text for c in css("#labels td.label-value")]
    check("<script>window.pwned=1</script>" in labels, f"a <script> label is shown as text: {labels}")
    check(driver.execute_script("return window.pwned === undefined"), "no script from a label ran")
    check("/bin/sh" in (text("#entrypoint") or ""), "the entrypoint is shown")
    check("MODE=console" in (text("#env") or ""), "the environment is shown")
    check("alice" in driver.find_element(By.TAG_NAME, "main").text, "who pushed it is shown")
    host = BASE.split("://", 1)[1]
    docker = [e.text for e in css("div.cmd[data-client='docker'] pre")]
    check(docker == [f"docker pull {host}/team/app:v1"], f"the docker pull command: {docker}")
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": BASE, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    css("div.cmd[data-client='docker'] button.copy")[0].click()
    wait(lambda: css("div.cmd[data-client='docker'] button.copy")[0].text == "copied", "the copy button")
    pasted = driver.execute_async_script("const done = arguments[arguments.length - 1]; navigator.clipboard.readText().then(done, e => done('error: ' + e));")
    check(pasted == f"docker pull {host}/team/app:v1", f"the copied pull command is on the clipboard: {pasted!r}")

    # A multi-arch index: each platform, and one platform's own manifest.
    go("/image?kind=hosted&source=team&name=multi&ref=v2")
    wait(lambda: len(css("tr.platform-row")) == 2, "the platforms")
    platforms = [r.text for r in css("tr.platform-row")]
    check(any(p.startswith("linux/amd64") for p in platforms) and any(p.startswith("linux/arm64/v8") for p in platforms), f"platforms: {platforms}")
    shot("multiarch")
    next(r for r in css("tr.platform-row") if r.text.startswith("linux/arm64/v8")).find_element(By.TAG_NAME, "a").click()
    wait(lambda: len(css("tr.layer-row")) == 2, "the arm64 manifest's layers")
    check("arm64" in driver.find_element(By.TAG_NAME, "main").text, "the arm64 config is shown")

    # Delete a hosted tag.
    go("/repository?kind=hosted&source=team&name=app")
    wait(lambda: css("tr.tag-row[data-tag='old']"), "the tag list")
    css("button[data-action='delete-tag'][data-tag='old']")[0].click()
    accept_confirm()
    wait(lambda: not css("tr.tag-row[data-tag='old']") and css("tr.tag-row[data-tag='v1']"), "the deleted tag gone")
    check(text("#notice").startswith("delete old: done"), "the deletion is confirmed: " + (text("#notice") or ""))

    # Pin a cached image.
    go("/repository?kind=cached&source=up.test&name=team/webapp")
    wait(lambda: css("button[data-action='pin'][data-tag='v7']"), "the pin button")
    css("button[data-action='pin'][data-tag='v7']")[0].click()
    wait(lambda: css("tr.tag-row[data-tag='v7'] .badge.pinned"), "the pinned badge")
    check(css("button[data-action='unpin'][data-tag='v7']") != [], "an unpin button replaces pin")

    # A chart: versions, files from the archive, as text.
    go("/chart?repository=apps&chart=demo")
    wait(lambda: css("#file-values-yaml"), "the chart's files")
    check("<img src=x onerror=window.pwned=2>" in text("#file-values-yaml"), "values.yaml is shown as text")
    check("<script>window.pwned=3</script>" in text("#file-README-md"), "the README is shown as text")
    check("name: demo" in text("#file-Chart-yaml"), "Chart.yaml is shown")
    row = css("tr.version-row[data-version='1.2.0']")
    check(bool(row) and "4.5" in row[0].text and "hosted" in row[0].text, "version 1.2.0 with app version 4.5, hosted")
    check(driver.execute_script("return window.pwned === undefined"), "no script from a chart ran")
    check(any("helm install my-demo apps/demo --version 1.2.0" in e.text for e in css("div.cmd pre")), "the helm install line")
    shot("chart")

    # Run a sync and watch it to the end; preview garbage collection.
    go("/sync")
    wait(lambda: css("#sync-run") and css("#sync-idle"), "the sync view")
    css("#sync-run")[0].click()
    seen = set()

    def finished():
        s = text("#sync-items")
        if s:
            seen.add(s)
        return len(css("tr.sync-run")) > 0 and css("#sync-idle")
    wait(finished, "the sync run to finish", timeout=240)
    runs = [r.text for r in css("tr.sync-run")]
    print("progress seen:", sorted(seen), "history:", runs)
    check(bool(runs) and "console (alice)" in runs[0] and " ok " in f" {runs[0]} ", f"the run is in the history, ok: {runs}")
    check(text("#sync-last") == " Last run: 3 of 3 items done, 0 failed, 391.1 KiB fetched." or (text("#sync-last") or "").startswith("Last run: 3 of 3 items done, 0 failed"), "the progress reached the end: " + str(text("#sync-last")))
    sync = api("sync")["history"][0]
    check(sync["failures"] == 0 and sync["items"] > 0, f"the run fetched every item: {sync}")
    shot("sync")
    css("#gc-preview")[0].click()
    wait(lambda: text("#gc-summary"), "the garbage collection preview")
    check(text("#gc-summary").startswith("would remove"), "a dry run says what it would remove: " + text("#gc-summary"))

    # A forged cross-site POST from another origin, with the session cookie.
    forge = "<form id=f method=POST action='%s/api/pins?kind=cached&source=up.test&name=team/other&ref=v1'></form><script>document.getElementById('f').submit()</script>" % BASE

    class Forge(http.server.BaseHTTPRequestHandler):
        timeout = 5   # a browser's idle preconnection must not hold the one-at-a-time server

        def do_GET(self):
            body = forge.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    evil = socketserver.TCPServer(("127.0.0.1", 0), Forge)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    driver.get(f"http://127.0.0.1:{evil.server_address[1]}/")
    wait(lambda: driver.current_url.startswith(BASE + "/api/pins"), "the forged form's submission")
    body = driver.find_element(By.TAG_NAME, "body").text
    check("refused" in body, "the forged POST is refused: " + body)
    other = api("repository?kind=cached&source=up.test&name=team/other")
    check(not other["tags"][0]["pinned"], "the forged POST pinned nothing")
finally:
    driver.quit()

print("RESULT " + json.dumps(result), flush=True)
raise SystemExit(1 if failures else 0)
