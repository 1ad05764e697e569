// Serves the bundled page on two origins of this machine, opens each in headless Chromium
// and prints what the page reported, one JSON object:
// {"allowed": <outcome on an allowed origin>, "refused": <outcome on a refused one>}.
// Environment: INTAKE_URL, TOKEN, PROPERTY_ID, ALLOWED_HOST (127.0.0.1), REFUSED_HOST
// (127.0.0.2), CHROMIUM (/usr/bin/chromium).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };

function serve(host) {
  const server = createServer(async (request, response) => {
    const path = new URL(request.url, "http://x").pathname;
    const file = path === "/" ? "index.html" : path.slice(1);
    if (!["index.html", "dist/page.js"].includes(file)) {
      response.writeHead(404).end();
      return;
    }
    const body = await readFile(join(here, file));
    response.writeHead(200, { "content-type": types[file.slice(file.lastIndexOf("."))] }).end(body);
  });
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

async function outcomeAt(browser, host) {
  const server = await serve(host);
  const { port } = server.address();
  const query = new URLSearchParams({
    intake: process.env.INTAKE_URL,
    token: process.env.TOKEN,
    property: process.env.PROPERTY_ID,
  });
  const page = await browser.newPage();
  try {
    await page.goto(`http://${host}:${port}/?${query}`);
    await page.waitForFunction(() => window.outcome !== undefined, null, { timeout: 45_000 });
    return await page.evaluate(() => window.outcome);
  } finally {
    await page.close();
    server.close();
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const allowed = await outcomeAt(browser, process.env.ALLOWED_HOST ?? "127.0.0.1");
  const refused = await outcomeAt(browser, process.env.REFUSED_HOST ?? "127.0.0.2");
  console.log(JSON.stringify({ allowed, refused }));
} finally {
  await browser.close();
}
