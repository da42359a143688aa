// Node's `eventsource` package (the WHATWG EventSource) against an SSE URL: prints every event as
// `type id data` and exits when an event of type `done` arrives (or after N events of type
// `tick`), or fails after 10 s. Usage: node eventsource.mjs URL [TYPE COUNT]
import { EventSource } from "eventsource";

const [url, type = "done", count = "1"] = process.argv.slice(2);
if (!/^http:\/\/127\./.test(url ?? "")) {
  console.error("usage: node eventsource.mjs http://127.0.0.1:PORT/... [TYPE COUNT] (loopback only)");
  process.exit(2);
}
const want = Number(count);
let seen = 0;
const es = new EventSource(url);
const timer = setTimeout(() => { console.error("timeout"); process.exit(1); }, 10000);
const show = (e) => {
  console.log(`${e.type} ${e.lastEventId} ${e.data}`);
  if (e.type === type && ++seen >= want) {
    clearTimeout(timer);
    es.close();
    process.exit(0);
  }
};
for (const t of ["update", "done", "tick", "message"]) es.addEventListener(t, show);
es.onerror = (e) => console.log(`error ${e.message ?? ""}`);
