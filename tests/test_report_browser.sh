#!/bin/sh
# grpo report in a real browser: headless Chromium loads a report built from the tests' database (hostile
# model output included) with a checker script put in front of the page's own. The checker records
# script errors, Content-Security-Policy violations and alert() calls, measures the rendered charts,
# clicks a step button and writes what it saw into the DOM, which --dump-dom prints. Then a screenshot,
# decoded here, must be a real picture. Chromium is installed by `make setup`; without it this fails.
BUILD=${BUILD:-build}
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
finish() { rm -rf "$tmp"; echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

tmp=$(mktemp -d /tmp/grpo_report_browser_XXXXXX)
CHROMIUM=$(command -v chromium || command -v chromium-browser)
if [ -z "$CHROMIUM" ]; then bad "chromium is not installed (make setup installs it)"; finish; fi
if [ ! -x ./grpo ] || [ ! -x "$BUILD/tests/test_report" ]; then bad "./grpo and $BUILD/tests/test_report must be built (make test)"; finish; fi

"$BUILD/tests/test_report" --hostile-db "$tmp/run.db" && ./grpo report "$tmp/run.db" -o "$tmp/report.html" 2>"$tmp/log" \
  && ok "report written" || { bad "report: $(cat "$tmp/log")"; finish; }

# The checker goes right after <meta charset>, ahead of the page's CSP, so it runs without the nonce and
# its listeners are in place before anything of the page runs.
cat >"$tmp/check.js" <<'EOF'
<script>
var errs = [];
window.alert = function (m) { errs.push('alert ' + m); };
addEventListener('error', function (e) { errs.push('error ' + e.message); });
document.addEventListener('securitypolicyviolation', function (e) { errs.push('csp ' + e.violatedDirective); });
addEventListener('load', function () {
  var r = {errors: errs}, charts = document.querySelectorAll('svg.chart');
  r.charts = charts.length;
  r.drawn = 0;
  charts.forEach(function (s) {
    var b = s.getBoundingClientRect();
    if (b.width > 200 && b.height > 150 && s.querySelector('path')) r.drawn++;
  });
  r.hover = document.querySelectorAll('svg.chart circle.pt > title').length;
  r.js = document.documentElement.classList.contains('js');
  var shown = function (els) { return [].filter.call(els, function (p) { return p.offsetParent !== null; }).length; };
  var box = document.querySelector('.episodes'), panels = box.querySelectorAll('.panel');
  r.panels = panels.length;
  r.shown_before = shown(panels);
  r.last_shown = panels[panels.length - 1].offsetParent !== null;
  box.querySelector('.stepbar button').click();
  r.shown_after = shown(panels);
  r.first_shown = panels[0].offsetParent !== null;
  r.hostile_as_text = document.body.textContent.indexOf('<\/script><script>alert(1)<\/script><img src=x') >= 0;
  r.imgs = document.querySelectorAll('img').length;
  var d = document.createElement('pre');
  d.id = 'report-check';
  d.textContent = JSON.stringify(r);
  document.body.appendChild(d);
});
</script>
EOF
awk -v f="$tmp/check.js" '{ print } /<meta charset="utf-8">/ && !done { while ((getline l < f) > 0) print l; done = 1 }' \
  "$tmp/report.html" >"$tmp/checked.html"

CHROME="$CHROMIUM --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=$tmp/profile"
timeout 120 $CHROME --enable-logging=stderr --v=0 --dump-dom "file://$tmp/checked.html" >"$tmp/dom.html" 2>"$tmp/chrome.log"
if grep -q ':CONSOLE' "$tmp/chrome.log"; then bad "console messages:"; grep ':CONSOLE' "$tmp/chrome.log" | head -5
else ok "no console messages"; fi
sed -n 's/.*<pre id="report-check">\(.*\)<\/pre>.*/\1/p' "$tmp/dom.html" >"$tmp/check.json"
if [ ! -s "$tmp/check.json" ]; then
  bad "the checker wrote nothing; chromium said:"; tail -5 "$tmp/chrome.log"
else
  # 17 charts in run 1 and 6 in run 2, as tests/test_report.c counts them
  /usr/bin/python3 - "$tmp/check.json" >"$tmp/py.log" 2>&1 <<'EOF'
import html, json, sys
r = json.loads(html.unescape(open(sys.argv[1]).read()))
failed = 0
def check(cond, what):
    global failed
    failed += not cond
    print(("ok   " if cond else "FAIL ") + what + ("" if cond else ": " + json.dumps(r)))
check(r["errors"] == [], "nothing thrown, no CSP violations, no alert() calls")
check(r["charts"] == 23 and r["drawn"] == 23, "23 charts rendered with a size and lines")
check(r["hover"] > 100, "hover titles on points")
check(r["js"] and r["panels"] == 8 and r["shown_before"] == 1 and r["last_shown"], "one step shown: the last")
check(r["shown_after"] == 1 and r["first_shown"], "a step button switches the step")
check(r["hostile_as_text"] and r["imgs"] == 0, "hostile completion shown as text")
sys.exit(1 if failed else 0)
EOF
  rc=$?
  cat "$tmp/py.log"
  pass=$((pass + $(grep -c '^ok ' "$tmp/py.log"))); fail=$((fail + $(grep -c '^FAIL ' "$tmp/py.log")))
  [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$tmp/py.log" && bad "the checker's output did not parse"
fi

timeout 120 $CHROME --window-size=1024,768 --screenshot="$tmp/shot.png" "file://$tmp/report.html" >/dev/null 2>&1
# Decodes the PNG (any filter, RGB or RGBA) and wants a picture: many colours, the header's dark blue,
# and most of the page not background.
/usr/bin/python3 - "$tmp/shot.png" <<'EOF' && ok "screenshot is a real picture" || bad "screenshot"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    if kind == b"IDAT": idat += body
    pos += 12 + n
assert (w, h) == (1024, 768) and depth == 8 and ctype in (2, 6), (w, h, depth, ctype)
bpp, raw = (3 if ctype == 2 else 4), zlib.decompress(idat)
stride, prev, colours, background = w * bpp, bytearray(w * bpp), {}, 0
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp * 2):
        px = bytes(line[x:x + 3])
        colours[px] = colours.get(px, 0) + 1
    prev = line
total = sum(colours.values())
print("screenshot: %d colours, %.0f%% background, header %d px" % (len(colours), 100.0 * colours.get(b"\xf4\xf5\xf7", 0) / total,
      colours.get(b"\x11\x18\x27", 0)))
assert len(colours) > 200 and colours.get(b"\x11\x18\x27", 0) > 5000 and colours.get(b"\xf4\xf5\xf7", 0) < 0.6 * total
EOF
finish
