import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createAdminApp } from "../pipeline/admin/routes.ts";
import { Pipeline } from "../pipeline/app.ts";
import { parseConfig } from "../pipeline/config.ts";
import pricing from "../plugins/dynamic_pricing/mod.ts";

/** A running pipeline (dynamic pricing: it re-keys) behind its admin app, called without a port. */
async function openApp(admin: Record<string, unknown> = {}) {
  const config = parseConfig(
    JSON.stringify({
      state: { path: ":memory:" },
      admin,
      plugins: [{ name: "dynamic_pricing", module: "unused" }],
    }),
    "test.json",
  );
  const pipeline = await Pipeline.open({ path: "test.json", config }, {
    plugins: [{ definition: pricing, name: "dynamic_pricing", options: pricing.options.parse({}) }],
  });
  await pipeline.start();
  const app = createAdminApp(pipeline, config.admin);
  const call = async (url: string, init: RequestInit = {}) => {
    const res = await app.request(
      url.startsWith("http") ? url : `http://127.0.0.1:8080${url}`,
      init,
    );
    const body = await res.json();
    return [res.status, body.error] as [number, string | undefined];
  };
  return { pipeline, app, call };
}

const json = { "Content-Type": "application/json" };
const order = JSON.stringify({
  key: "o1",
  value: {
    orderId: "o1",
    customerId: "C1",
    productId: "P1",
    quantity: 1,
    unitPrice: 10,
    totalAmount: 10,
    currency: "USD",
    status: "CREATED",
    timestamp: 1,
  },
});

Deno.test("requests from a foreign origin are refused with 403 and change nothing", async () => {
  const { pipeline, call } = await openApp();
  const stop = (headers: Record<string, string>) =>
    call("/api/v1/streams/stop", { method: "POST", headers });
  assertEquals(await stop({ Origin: "http://evil.example" }), [403, "forbidden"]);
  assertEquals(await stop({ Origin: "null" }), [403, "forbidden"]);
  assertEquals(await stop({ Origin: "http://127.0.0.1:9999" }), [403, "forbidden"]);
  assertEquals(await stop({ "Sec-Fetch-Site": "cross-site" }), [403, "forbidden"]);
  assertEquals(
    await call("/api/v1/streams/cleanup", { method: "POST", headers: { Origin: "http://x.test" } }),
    [403, "forbidden"],
  );
  assertEquals(
    await call("/api/v1/topics/bss.order.events/records", {
      method: "POST",
      headers: { ...json, Origin: "http://evil.example" },
      body: order,
    }),
    [403, "forbidden"],
  );
  assertEquals(pipeline.running, true);
  assertEquals(pipeline.log.endOffset("bss.order.events", 0), 0);
  // The API's own origin is fine.
  assertEquals(
    (await call("/api/v1/streams/stop", {
      method: "POST",
      headers: { Origin: "http://127.0.0.1:8080" },
    }))[0],
    200,
  );
  await pipeline.close();
});

Deno.test("write bodies must be declared as JSON: text/plain and form bodies get 415", async () => {
  const { pipeline, call } = await openApp();
  const post = (type: string | null, body: BodyInit) =>
    call("/api/v1/topics/bss.order.events/records", {
      method: "POST",
      headers: type ? { "Content-Type": type } : {},
      body,
    });
  assertEquals(await post("text/plain", order), [415, "unsupported media type"]);
  assertEquals(await post("application/x-www-form-urlencoded", `${order}=`), [
    415,
    "unsupported media type",
  ]);
  assertEquals(await post("multipart/form-data; boundary=x", order), [
    415,
    "unsupported media type",
  ]);
  assertEquals(await post(null, new Blob([order])), [415, "unsupported media type"]);
  assertEquals(
    await call("/api/v1/streams/stop", {
      method: "POST",
      headers: { "Content-Type": "text/plain" },
    }),
    [415, "unsupported media type"],
  );
  assertEquals(pipeline.log.endOffset("bss.order.events", 0), 0);
  assertEquals((await post("application/json; charset=utf-8", order))[0], 200);
  // A POST without a body needs no content type (curl -X POST).
  assertEquals((await call("/api/v1/streams/stop", { method: "POST" }))[0], 200);
  await pipeline.close();
});

Deno.test("a Host that is not the server's own address or allowed gets 421 (DNS rebinding)", async () => {
  const { pipeline, call } = await openApp();
  assertEquals(await call("http://evil.example:8080/health"), [421, "misdirected request"]);
  assertEquals(
    await call("http://rebind.attacker.test:8080/api/v1/streams/stop", { method: "POST" }),
    [421, "misdirected request"],
  );
  assertEquals(pipeline.running, true);
  for (const host of ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"]) {
    assertEquals((await call(`http://${host}/api/v1/streams/status`))[0], 200, host);
  }
  await pipeline.close();

  const allowed = await openApp({ allowedHosts: ["streams.internal"] });
  assertEquals((await allowed.call("http://streams.internal/health"))[0], 200);
  assertEquals(await allowed.call("http://other.internal/health"), [421, "misdirected request"]);
  await allowed.pipeline.close();
});

Deno.test("clients may not write into topics the pipeline owns: outputs, DLQ, late, repartition", async () => {
  const { pipeline, call } = await openApp();
  for (
    const topic of [
      "bss.pricing.recommendations",
      "bss.dlq",
      "bss.late",
      "bss-analytics-streams-product-demand-15m-repartition",
    ]
  ) {
    assertEquals(
      await call(`/api/v1/topics/${topic}/records`, { method: "POST", headers: json, body: order }),
      [403, "forbidden"],
      topic,
    );
    assertEquals((await call(`/api/v1/topics/${topic}/records`))[0], 200, topic);
  }
  await pipeline.close();
});

Deno.test("tokens are checked on every POST: a wrong token of the same length is refused", async () => {
  const { pipeline, call } = await openApp({ token: "s3cret-token" });
  const stop = (auth?: string) =>
    call("/api/v1/streams/stop", { method: "POST", headers: auth ? { Authorization: auth } : {} });
  assertEquals(await stop(), [401, "unauthorized"]);
  assertEquals(await stop("Bearer s3cret-tokem"), [401, "unauthorized"]);
  assertEquals(await stop("Bearer s3cret-token-and-more"), [401, "unauthorized"]);
  assertEquals(await stop("Basic s3cret-token"), [401, "unauthorized"]);
  assertEquals((await stop("Bearer s3cret-token"))[0], 200);
  await pipeline.close();
});

Deno.test("a 400 names the field that is wrong; an over-long path gets a JSON 414", async () => {
  const { pipeline, app } = await openApp();
  const detail = async (body: unknown) => {
    const res = await app.request("http://127.0.0.1/api/v1/topics/bss.order.events/records", {
      method: "POST",
      headers: json,
      body: JSON.stringify(body),
    });
    return [res.status, (await res.json()).detail];
  };
  const prefix =
    "expected a record { key?, value, timestamp?, headers?, partition? } or an array of them: ";
  assertEquals(await detail({ key: 5, value: {} }), [
    400,
    `${prefix}key: Invalid input: expected string, received number`,
  ]);
  assertEquals(await detail([{ value: {} }, { value: {}, headers: { a: 1 } }]), [
    400,
    `${prefix}[1].headers.a: Invalid input: expected string, received number`,
  ]);
  assertEquals(await detail([]), [400, `${prefix}the array is empty`]);
  assertEquals(await detail({ value: {}, timestamp: 9e15 }), [
    400,
    `${prefix}timestamp: Too big: expected number to be <=8640000000000000`,
  ]);
  const long = await app.request(`http://127.0.0.1/api/v1/topics/${"a".repeat(10_000)}/records`);
  assertEquals([long.status, (await long.json()).error], [414, "URI too long"]);
  await pipeline.close();
});
