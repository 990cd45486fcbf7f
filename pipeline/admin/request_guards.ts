/**
 * What the admin API refuses before any route runs. With no token (the default), the admin API
 * must not be drivable by a web page the operator happens to visit: such a page can send
 * requests to 127.0.0.1 (cross-site requests, DNS rebinding), so requests must come from no
 * browser page at all or from the API's own origin, name one of the server's own addresses,
 * and carry JSON bodies only.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";

/** Writes a JSON error answer; the routes' own helper. */
export type ErrorAnswer = (
  c: Context,
  status: 401 | 403 | 414 | 415 | 421,
  error: string,
  detail: string,
) => Response;

/** Longest request path served; longer ones get 414 without the path being echoed. */
export const MAX_PATH_LENGTH = 4096;

/**
 * Host names this server answers to: the address it listens on, the machine's own addresses
 * and name (when it listens on all of them, or on loopback), and `allowed`. A browser page on
 * any other name (DNS rebinding) gets 421.
 */
export function ownHostNames(listenHost: string, allowed: readonly string[] = []): Set<string> {
  const names = new Set([normalizeHost(listenHost), ...allowed.map(normalizeHost)]);
  const wildcard = listenHost === "0.0.0.0" || listenHost === "::" || listenHost === "[::]";
  const loopback = wildcard || isLoopback(normalizeHost(listenHost));
  if (loopback) { for (const n of ["localhost", "127.0.0.1", "::1"]) names.add(n); }
  if (wildcard) {
    names.add(normalizeHost(Deno.hostname()));
    try {
      for (const i of Deno.networkInterfaces()) names.add(normalizeHost(i.address));
    } catch {
      // Without --allow-sys only the names above (and the allow-list) are served.
    }
  }
  return names;
}

/** Refuses paths longer than MAX_PATH_LENGTH (414) and Host names not in `hosts` (421). */
export function hostGuard(hosts: ReadonlySet<string>, error: ErrorAnswer): MiddlewareHandler {
  return async (c, next) => {
    const url = new URL(c.req.url);
    if (url.pathname.length > MAX_PATH_LENGTH) {
      return error(c, 414, "URI too long", `paths are at most ${MAX_PATH_LENGTH} characters`);
    }
    const host = normalizeHost(url.hostname);
    if (!hosts.has(host)) {
      return error(
        c,
        421,
        "misdirected request",
        `this server does not answer to the host name '${
          truncate(host)
        }': add it to "admin.allowedHosts" in the config to allow it`,
      );
    }
    await next();
  };
}

/**
 * Refuses requests a browser sends from another origin (403): a foreign or opaque `Origin`,
 * and, for anything but GET and HEAD, `Sec-Fetch-Site: cross-site` or `same-site`.
 */
export function sameOriginGuard(error: ErrorAnswer): MiddlewareHandler {
  return async (c, next) => {
    const origin = c.req.header("Origin");
    if (origin !== undefined && origin !== new URL(c.req.url).origin) {
      return error(
        c,
        403,
        "forbidden",
        `requests from another origin (${truncate(origin)}) are refused`,
      );
    }
    const site = c.req.header("Sec-Fetch-Site");
    const safe = c.req.method === "GET" || c.req.method === "HEAD";
    if (!safe && (site === "cross-site" || site === "same-site")) {
      return error(c, 403, "forbidden", "requests from another site are refused");
    }
    await next();
  };
}

/** Refuses a POST whose body is not declared as JSON (415); bodiless POSTs pass. */
export function jsonBodyGuard(error: ErrorAnswer): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method !== "POST") return await next();
    const type = c.req.header("Content-Type");
    const hasBody = c.req.raw.body !== null && c.req.header("Content-Length") !== "0";
    if ((type !== undefined || hasBody) && !isJson(type)) {
      return error(
        c,
        415,
        "unsupported media type",
        `request bodies must be JSON, sent with 'Content-Type: application/json' (got ${
          type === undefined ? "none" : `'${truncate(type)}'`
        })`,
      );
    }
    await next();
  };
}

/** With a token, POSTs need `Authorization: Bearer <token>` (401), compared in constant time. */
export function tokenGuard(token: string | undefined, error: ErrorAnswer): MiddlewareHandler {
  const expected = token === undefined ? null : digest(token);
  return async (c, next) => {
    if (c.req.method !== "POST" || expected === null) return await next();
    const given = /^Bearer (.+)$/.exec(c.req.header("Authorization") ?? "")?.[1];
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      return error(
        c,
        401,
        "unauthorized",
        "this route needs the header 'Authorization: Bearer <admin token>'",
      );
    }
    await next();
  };
}

/** Fixed-length digests, so the comparison takes the same time whatever the lengths. */
function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

function isJson(type: string | undefined): boolean {
  if (type === undefined) return false;
  const mime = type.split(";")[0].trim().toLowerCase();
  return mime === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(mime);
}

function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function truncate(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}
