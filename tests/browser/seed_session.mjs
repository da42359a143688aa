// The seed's session in a real browser: open ws://127.0.0.1:PORT/ (or wss://localhost:PORT/),
// see `server tick #1`, send `hello`, see `you said: HELLO`, close cleanly.
// Usage: node seed_session.mjs URL [SPKI_SHA256_BASE64] [h2]   (CHROMIUM=/usr/bin/chromium)
// With `h2`, the page is first loaded from the same origin over https://, so that Chromium holds
// an HTTP/2 connection there and opens the WebSocket on it (RFC 8441); run.sh checks the
// server's access log to see which protocol the WebSocket really used.
// With wss://, the server's certificate is trusted by its public key's hash (Chromium's
// --ignore-certificate-errors-spki-list), as a test certificate has no public CA.
import { chromium } from "playwright-core";

const url = process.argv[2];
const spki = process.argv[3];
const overH2 = process.argv[4] === "h2";
if (!/^wss?:\/\/(127\.|localhost)/.test(url ?? "")) {
  console.error("usage: node seed_session.mjs ws://127.0.0.1:PORT/|wss://localhost:PORT/ [SPKI] (loopback only)");
  process.exit(2);
}
const args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"];
if (spki) args.push(`--ignore-certificate-errors-spki-list=${spki}`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args,
});
let failed = 0;
try {
  const page = await browser.newPage();
  if (overH2) {
    // The seed answers plain requests with a 500; what matters is the h2 connection it leaves.
    const response = await page.goto(url.replace(/^wss:/, "https:"));
    console.log(`  page loaded first: HTTP ${response.status()}`);
  }
  const result = await page.evaluate((url) => new Promise((resolve) => {
    const log = [];
    const t0 = performance.now();
    const ws = new WebSocket(url);
    const timer = setTimeout(() => resolve({ log, error: "timeout" }), 8000);
    ws.onopen = () => log.push(`open extensions=${ws.extensions}`);
    ws.onmessage = (e) => {
      log.push(`${Math.round(performance.now() - t0)}ms ${e.data}`);
      if (e.data === "server tick #1") ws.send("hello");
      if (e.data === "you said: HELLO") ws.close(1000, "bye");
    };
    ws.onclose = (e) => {
      clearTimeout(timer);
      resolve({ log, code: e.code, wasClean: e.wasClean });
    };
  }), url);
  for (const line of result.log) console.log("  " + line);
  const check = (ok, what) => {
    console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
    if (!ok) failed++;
  };
  const msgs = result.log.map((l) => l.replace(/^\d+ms /, ""));
  check(!result.error, "session finished before the timeout");
  check(msgs.includes("server tick #1"), "server tick #1 arrived unprompted");
  check(msgs.includes("you said: HELLO"), "hello came back as 'you said: HELLO'");
  check(result.log[0]?.includes("permessage-deflate"), "permessage-deflate negotiated with Chromium");
  check(result.code === 1000 && result.wasClean === true, `clean close (code=${result.code} clean=${result.wasClean})`);
} finally {
  await browser.close();
}
console.log(`${5 - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
