/**
 * The Apache Kafka broker of the tests and the Kafka benchmark, with its KRaft controller in a
 * process of its own, run by `broker.sh` (Java and Maven needed; the jars are fetched once).
 * `sharedBroker()` starts one per test process and stops it when the process ends; its data and
 * `broker.log` stay in a temporary folder, named on failure. With KAFKA_TEST_BROKERS=host:port
 * an already running broker is used instead.
 */
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./broker.sh", import.meta.url));

/** A broker the tests talk to. */
export interface TestBroker {
  readonly bootstrap: string;
  /** Where its data and broker.log are (null for an external broker). */
  readonly dir: string | null;
  /** Stops it (kept stopped until `start`). */
  stop(): Promise<void>;
  /**
   * Kills the broker with SIGKILL, as a crash, and waits until the controller (still up) fenced
   * it (kept down until `start`).
   */
  kill(): Promise<void>;
  /** Starts it again with the same data and address. */
  start(): Promise<void>;
}

async function run(args: string[]): Promise<string> {
  const out = await new Deno.Command("bash", { args: [script, ...args], stderr: "piped" })
    .output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `tests/kafka/broker.sh ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}` +
        "\nThe Kafka tests need Java 17+ and Maven (or KAFKA_TEST_BROKERS=host:port).",
    );
  }
  return stdout;
}

/** Starts a broker of its own in a new temporary folder. */
export async function startBroker(): Promise<TestBroker> {
  const dir = await Deno.makeTempDir({ prefix: "bss-kafka-" });
  const started = await run(["start", dir]);
  const bootstrap = /bootstrap=(\S+)/.exec(started)?.[1];
  if (!bootstrap) throw new Error(`tests/kafka/broker.sh start printed no address: ${started}`);
  return {
    bootstrap,
    dir,
    stop: async () => void await run(["stop", dir]),
    kill: async () => void await run(["kill", dir]),
    start: async () => void await run(["start", dir]),
  };
}

let shared: Promise<TestBroker> | null = null;

/** One broker for every Kafka test of this process, stopped when the process exits. */
export function sharedBroker(): Promise<TestBroker> {
  shared ??= (async () => {
    const external = Deno.env.get("KAFKA_TEST_BROKERS");
    if (external) {
      const none = () => Promise.reject(new Error("an external test broker is not stopped"));
      return { bootstrap: external, dir: null, stop: none, kill: none, start: none };
    }
    const broker = await startBroker();
    globalThis.addEventListener("unload", () => {
      for (const role of ["broker", "controller"]) {
        try {
          Deno.kill(Number(Deno.readTextFileSync(`${broker.dir}/${role}.pid`).trim()), "SIGKILL");
        } catch { /* already gone */ }
      }
    });
    return broker;
  })();
  return shared;
}

/** The last lines of a broker's log, for a failing test's message. */
export async function brokerLogTail(broker: TestBroker, lines = 40): Promise<string> {
  if (!broker.dir) return "(external broker: no log here)";
  const text = await Deno.readTextFile(`${broker.dir}/broker.log`).catch(() => "");
  return `${broker.dir}/broker.log:\n${text.split("\n").slice(-lines).join("\n")}`;
}
