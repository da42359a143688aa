// Example 05 in a real browser: load its page, whose script opens an EventSource on /events,
// and see the events listed in order, then "done". Usage: node sse_page.mjs http://127.0.0.1:PORT/
import { chromium } from "playwright-core";

const url = process.argv[2];
if (!/^http:\/\/127\./.test(url ?? "")) {
  console.error("usage: node sse_page.mjs http://127.0.0.1:PORT/ (loopback only)");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failed++;
};
try {
  const page = await browser.newPage();
  await page.goto(url + "?n=3", { timeout: 10000 });
  await page.waitForFunction(
    () => document.getElementById("status").textContent.startsWith("done"), null,
    { timeout: 10000 }).catch(() => {});
  const status = await page.textContent("#status");
  const items = await page.$$eval("#events li", (lis) => lis.map((li) => li.textContent));
  for (const i of items) console.log("  " + i);
  check(status.startsWith("done"), `the stream ended with its done event (${status})`);
  check(items.length === 3, `three update events arrived (${items.length})`);
  check(items.every((t, i) => t.startsWith(`${i + 1}: `)), "in order, with their ids");
} finally {
  await browser.close();
}
console.log(`${3 - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
